"""Bilinear resizing: the matrix-product backward of ``BilinearResize`` gives torch's own gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from taskfuse.nn.resample import BilinearResize, interpolation_matrix, resize


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize(("src", "dst"), [((6, 8), (48, 64)), ((5, 7), (37, 29)), ((30, 40), (7, 9)), ((1, 3), (4, 1))])
def test_the_matrix_backward_gives_torchs_gradient(src: tuple, dst: tuple, align_corners: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 3, *src, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 3, *dst, dtype=torch.float64)
    (expected,) = torch.autograd.grad(F.interpolate(x, dst, mode="bilinear", align_corners=align_corners), x, g)
    out = BilinearResize.apply(x, dst, align_corners)
    (got,) = torch.autograd.grad(out, x, g)
    assert torch.equal(out, F.interpolate(x, dst, mode="bilinear", align_corners=align_corners))
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("align_corners", [False, True])
def test_the_two_matrices_resize_like_interpolate(align_corners: bool) -> None:
    x = torch.randn(1, 2, 9, 13, dtype=torch.float64)
    rows = interpolation_matrix(9, 31, align_corners, x.device, torch.float64)
    cols = interpolation_matrix(13, 20, align_corners, x.device, torch.float64)
    expected = F.interpolate(x, (31, 20), mode="bilinear", align_corners=align_corners)
    torch.testing.assert_close(rows @ x @ cols.T, expected, rtol=1e-12, atol=1e-12)


def test_a_bf16_gradient_keeps_its_type_and_resize_keeps_torchs_path_off_cuda() -> None:
    x = torch.randn(1, 2, 4, 5, dtype=torch.bfloat16, requires_grad=True)
    BilinearResize.apply(x, (16, 20), False).float().square().sum().backward()
    assert x.grad.dtype == torch.bfloat16
    y = resize(x, (16, 20))
    assert y.grad_fn.name() == "UpsampleBilinear2DBackward0"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resize_on_cuda_takes_the_matrix_backward_compiled_too() -> None:
    torch.manual_seed(0)
    x = torch.randn(4, 9, 60, 80, device="cuda", requires_grad=True)
    g = torch.randn(4, 9, 480, 640, device="cuda")
    (expected,) = torch.autograd.grad(F.interpolate(x, (480, 640), mode="bilinear", align_corners=True), x, g)
    for fn in (resize, torch.compile(resize)):
        (got,) = torch.autograd.grad(fn(x, (480, 640), align_corners=True), x, g)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
