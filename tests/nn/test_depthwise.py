"""Depthwise convolutions kept in NCHW (``taskfuse.nn.depthwise``): the same values and gradients as
``nn.Conv2d``, eager and compiled, whatever the layout they are given."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from taskfuse.nn.depthwise import NCHWConv2d, autocast_inputs, conv2d_nchw

NCHW_STRIDES = (16 * 12 * 10, 12 * 10, 10, 1)


@pytest.mark.parametrize("kernel", [(1, 7), (7, 1), (3, 3)])
@pytest.mark.parametrize("compiled", [False, True])
def test_conv2d_nchw_is_nn_conv2d_in_nchw(kernel: tuple[int, int], compiled: bool) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, kernel, padding=(kernel[0] // 2, kernel[1] // 2), groups=16)
    conv.to(memory_format=torch.channels_last)
    x = torch.randn(2, 16, 12, 10).to(memory_format=torch.channels_last).requires_grad_()

    def ours(x: torch.Tensor) -> torch.Tensor:
        return conv2d_nchw(2 * x, conv.weight, conv.bias, list(conv.padding), conv.groups)

    run = torch.compile(ours, fullgraph=True) if compiled else ours
    out = run(x)
    assert out.stride() == NCHW_STRIDES
    grads = torch.autograd.grad(out.square().sum(), (x, conv.weight, conv.bias))
    expected = conv(2 * x)
    expected_grads = torch.autograd.grad(expected.square().sum(), (x, conv.weight, conv.bias))
    torch.testing.assert_close(out, expected)
    for grad, want in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(grad, want, rtol=1e-4, atol=1e-4)


def test_conv2d_nchw_under_autocast_computes_in_its_dtype_as_nn_conv2d_does() -> None:
    """Autocast does not see into the operator: its inputs are cast first, in the compiled graph too."""
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, (1, 5), padding=(0, 2), groups=8)
    x = torch.randn(2, 8, 6, 6)

    def ours(x: torch.Tensor) -> torch.Tensor:
        return conv2d_nchw(*autocast_inputs(x, conv.weight, conv.bias), [0, 2], 8)

    assert all(t.dtype == torch.float32 for t in autocast_inputs(x, conv.weight))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch.compile(ours, fullgraph=True)(x)
        expected = conv(x)
    assert out.dtype == expected.dtype == torch.bfloat16
    torch.testing.assert_close(out, expected)


def test_conv2d_nchw_passes_torch_operator_checks() -> None:
    """Its fake (shape-only) version, its registered gradient and its schema agree with what it computes."""
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    weight = torch.randn(8, 1, 1, 5, requires_grad=True)
    torch.library.opcheck(conv2d_nchw, (x, weight, torch.randn(8, requires_grad=True), [0, 2], 8))


def test_nchw_conv2d_keeps_nn_conv2d_parameters() -> None:
    """A checkpoint of ``nn.Conv2d`` loads as is, and off CUDA it computes what ``nn.Conv2d`` does."""
    torch.manual_seed(0)
    plain = nn.Conv2d(4, 4, (1, 5), padding=(0, 2), groups=4)
    ours = NCHWConv2d(4, 4, (1, 5), padding=(0, 2), groups=4)
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(1, 4, 7, 9)
    assert list(ours.state_dict()) == ["weight", "bias"]
    assert torch.equal(ours(x), plain(x))


@pytest.mark.parametrize("options", [{"stride": 2}, {"dilation": 2}, {"bias": False}, {"padding": "same"}])
def test_nchw_conv2d_refuses_what_its_operator_does_not_compute(options: dict) -> None:
    with pytest.raises(ValueError, match="stride 1, no dilation, a bias"):
        NCHWConv2d(4, 4, (1, 5), groups=4, **options)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("autocast", [False, True])
def test_segnext_msca_compiled_in_channels_last_on_cuda_matches_eager(autocast: bool) -> None:
    """On CUDA the strips take the NCHW operator when compiled: SegNeXt's MSCA computes what it does eagerly, in
    fp32 and under bf16 autocast."""
    from taskfuse.tasks.segmentation.segnext import AttentionModule

    torch.manual_seed(0)
    module = AttentionModule(32).cuda().to(memory_format=torch.channels_last)
    x = torch.randn(2, 32, 16, 16, device="cuda").to(memory_format=torch.channels_last).requires_grad_()
    tolerance = 5e-2 if autocast else 1e-3
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        out = torch.compile(module, fullgraph=True)(x)
        grad = torch.autograd.grad(out.float().square().sum(), x)[0]
        expected = module(x)
        expected_grad = torch.autograd.grad(expected.float().square().sum(), x)[0]
    assert out.dtype == expected.dtype
    torch.testing.assert_close(out, expected, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(grad, expected_grad, rtol=tolerance, atol=tolerance)
