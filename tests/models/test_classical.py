from __future__ import annotations

import pytest
import torch

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.models.classical import box_filter, guided_filter, laplacian_pyramid, reconstruct

CLASSICAL = ["mean", "max", "laplacian", "gff"]


@pytest.mark.parametrize("name", CLASSICAL)
def test_shapes_range_and_identity(name: str) -> None:
    model = models.create(name)
    ir, vi = torch.rand(2, 1, 45, 67), torch.rand(2, 3, 45, 67)
    out = model(ir, vi)
    assert out.fused.shape == (2, 1, 45, 67)
    assert out.fused.min() >= 0 and out.fused.max() <= 1
    x = torch.rand(1, 1, 33, 40)
    assert torch.allclose(model(x, x).fused, x, atol=1e-4)
    assert model.fuse_color(ir, vi).shape == (2, 3, 45, 67)


def test_pyramid_reconstructs_exactly_at_odd_sizes() -> None:
    x = torch.rand(2, 1, 37, 53, dtype=torch.float64)
    assert (reconstruct(laplacian_pyramid(x, 5)) - x).abs().max() < 1e-12


def test_laplacian_keeps_the_stronger_detail() -> None:
    ir = torch.full((1, 1, 64, 64), 0.5)
    vi = ir.clone()
    ir[..., 30:34, 30:34] = 1.0
    vi[..., 10:12, :] = 0.0
    fused = models.create("laplacian")(ir, vi).fused
    assert fused[..., 31, 31] > 0.95 and fused[..., 10, 40] < 0.05 and abs(fused[..., 50, 50] - 0.5) < 0.01


def test_box_filter_matches_direct_window_mean() -> None:
    x = torch.rand(1, 1, 12, 15, dtype=torch.float64)
    r = 2
    out = box_filter(x, r)
    for i, j in [(0, 0), (5, 7), (11, 14), (3, 0)]:
        win = x[0, 0, max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1]
        assert torch.isclose(out[0, 0, i, j], win.mean())


def test_guided_filter_with_tiny_eps_preserves_the_guide() -> None:
    g = torch.rand(1, 1, 20, 20, dtype=torch.float64)
    assert torch.allclose(guided_filter(g, g, 3, 1e-12), g, atol=1e-6)


def test_gff_prefers_the_salient_source() -> None:
    ir = torch.full((1, 1, 64, 64), 0.3)
    ir[..., 28:36, 28:36] = 0.9
    vi = torch.full((1, 1, 64, 64), 0.3)
    vi[..., ::4, :] = 0.6
    fused = models.create("gff")(ir, vi).fused
    assert fused[..., 32, 32] > 0.55
    assert fused[..., 4, 50] - fused[..., 6, 50] > 0.1


def test_unknown_method_suggests_the_close_name() -> None:
    with pytest.raises(TaskfuseError, match="did you mean 'gff'"):
        models.create("gf")
