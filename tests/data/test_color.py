from __future__ import annotations

import cv2
import numpy as np
import torch

from taskfuse.data.color import luminance, recombine, rgb_to_ycbcr, ycbcr_to_rgb


def test_round_trip_through_8_bit_is_within_one_level() -> None:
    levels = torch.arange(0, 256, 5, dtype=torch.float64) / 255
    r, g, b = torch.meshgrid(levels, levels, levels, indexing="ij")
    rgb = torch.stack((r, g, b)).reshape(3, -1, 1)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb))
    assert (back - rgb).abs().max() < 1e-12
    rgb32 = rgb.float()
    back8 = (ycbcr_to_rgb(rgb_to_ycbcr(rgb32)) * 255).round()
    assert torch.equal(back8, (rgb32 * 255).round())
    assert (ycbcr_to_rgb(rgb_to_ycbcr(rgb32)) - rgb32).abs().max() < 1 / 255 / 100


def test_matches_opencv_full_range_bt601() -> None:
    """OpenCV rounds the chroma scales to 0.564 and 0.713, hence the 1e-3 tolerance on Cb/Cr."""
    rgb = np.random.default_rng(0).random((7, 9, 3)).astype(np.float32)
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    ours = rgb_to_ycbcr(torch.from_numpy(rgb).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    assert np.abs(ours[..., 0] - ycrcb[..., 0]).max() < 1e-5
    assert np.abs(ours[..., 1] - ycrcb[..., 2]).max() < 1e-3
    assert np.abs(ours[..., 2] - ycrcb[..., 1]).max() < 1e-3


def test_recombine_keeps_visible_chroma_and_gray_stays_gray() -> None:
    vi = torch.rand(2, 3, 5, 6)
    assert torch.allclose(recombine(luminance(vi), vi), vi, atol=1e-6)
    fused = torch.rand(2, 1, 5, 6)
    ycc = rgb_to_ycbcr(vi)
    unclamped = ycbcr_to_rgb(torch.cat((fused, ycc[:, 1:]), 1))
    inside = ((unclamped >= 0) & (unclamped <= 1)).all(1, keepdim=True).expand(-1, 2, -1, -1)
    out = recombine(fused, vi)
    assert inside.any()
    assert torch.allclose(rgb_to_ycbcr(out)[:, 1:][inside], ycc[:, 1:][inside], atol=1e-6)
    assert torch.allclose(luminance(out)[inside[:, :1]], fused[inside[:, :1]], atol=1e-6)
    gray = torch.rand(2, 1, 5, 6)
    assert torch.equal(recombine(fused, gray), fused.clamp(0, 1))
