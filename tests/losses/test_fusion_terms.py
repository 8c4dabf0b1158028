"""Each fusion loss term against values worked out by hand on 2x2 / 3x3 images."""

from __future__ import annotations

import math

import pytest
import torch

from taskfuse.losses import fusion_terms as T


def img(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).view(1, 1, len(rows), len(rows[0]))


def impulse(value: float, at: tuple[int, int] = (1, 1)) -> torch.Tensor:
    x = torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    x[0, 0, at[0], at[1]] = value
    return x


# |Gx| + |Gy| of a unit impulse (zero padding): at the centre of a 3x3 image, and in its top-left corner.
CENTRE = [[2, 2, 2], [2, 0, 2], [2, 2, 2]]
CORNER = [[0, 2, 0], [2, 2, 0], [0, 0, 0]]


def test_sobel_of_impulses_matches_hand_values() -> None:
    from taskfuse.nn.sobel import sobel_abs

    assert torch.equal(sobel_abs(impulse(1.0)), img(CENTRE))
    assert torch.equal(sobel_abs(impulse(1.0, (0, 0))), img(CORNER))


def test_intensity_max_loss() -> None:
    fused = img([[0.0, 0.4], [0.6, 1.0]])
    ir = img([[0.1, 0.5], [0.3, 0.9]])
    vi = img([[0.3, 0.2], [0.7, 0.1]])
    # max = [[0.3, 0.5], [0.7, 0.9]] -> |diff| = 0.3, 0.1, 0.1, 0.1
    assert T.intensity_max_loss(fused, ir, vi).item() == pytest.approx(0.6 / 4)


def test_texture_max_loss() -> None:
    ir, vi, fused = impulse(0.6), impulse(1.0, (0, 0)), torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    # max(0.6 * CENTRE, CORNER) = [[1.2, 2, 1.2], [2, 2, 1.2], [1.2, 1.2, 1.2]]; |grad fused| = 0
    assert T.texture_max_loss(fused, ir, vi).item() == pytest.approx((6 * 1.2 + 3 * 2) / 9)
    # fused = 0.9 * impulse against ir = 0.6 * impulse, vi = 0: |0.9 - 0.6| * mean(CENTRE)
    assert T.texture_max_loss(impulse(0.9), ir, torch.zeros_like(ir)).item() == pytest.approx(0.3 * 16 / 9)


def test_color_consistency_loss_where_red_clips() -> None:
    vi = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64).view(1, 3, 1, 1)  # pure red
    fused_y = torch.full((1, 1, 1, 1), 0.8, dtype=torch.float64, requires_grad=True)
    # Visible chroma: Y = 0.299, Cb = (0 - 0.299) / 1.772 + 0.5, Cr = (1 - 0.299) / 1.402 + 0.5 = 1.
    # Recombined with Y = 0.8: R = 0.8 + 1.402 * 0.5 = 1.501 -> clipped to 1, G = B = 0.8 - 0.299 = 0.501.
    y2 = 0.299 * 1.0 + 0.587 * 0.501 + 0.114 * 0.501
    cb_f, cr_f = (0.501 - y2) / 1.772 + 0.5, (1.0 - y2) / 1.402 + 0.5
    # gamma 0.1 leaves (1, 0, 0) unchanged, so the reference chroma is the visible one.
    cb_ref, cr_ref = (0.0 - 0.299) / 1.772 + 0.5, (1.0 - 0.299) / 1.402 + 0.5
    loss = T.color_consistency_loss(fused_y, vi, gamma=0.1)
    assert loss.item() == pytest.approx(abs(cb_f - cb_ref) + abs(cr_f - cr_ref), abs=1e-9)
    loss.backward()
    assert fused_y.grad.abs().item() > 0


def test_color_consistency_loss_without_clipping_is_the_gamma_chroma_gap() -> None:
    vi = torch.tensor([0.25, 0.25, 0.25], dtype=torch.float64).view(1, 3, 1, 1)
    fused_y = torch.full((1, 1, 1, 1), 0.6, dtype=torch.float64, requires_grad=True)
    # gray stays gray under gamma: both chromas are 0.5, nothing clips
    loss = T.color_consistency_loss(fused_y, vi, gamma=0.5)
    assert loss.item() == pytest.approx(0.0, abs=1e-12)
    loss.backward()
    assert fused_y.grad.item() == 0.0
    assert T.color_consistency_loss(fused_y, vi[:, :1]).item() == 0.0


def test_pearson_plain_and_weighted() -> None:
    a, b = img([[1, 2], [3, 4]]), img([[2, 1], [4, 3]])
    # deviations (-1.5, -0.5, 0.5, 1.5) and (-0.5, -1.5, 1.5, 0.5): cov 3, variances 5 and 5
    assert T.pearson(a, b).item() == pytest.approx(3 / 5)
    # weights on the two corners only: (1, 2) and (4, 3) lie on a line of slope 1
    assert T.pearson(a, b, img([[1, 0], [0, 1]])).item() == pytest.approx(1.0)


def test_correlation_loss() -> None:
    fused, ir, vi = img([[1, 2], [3, 4]]), img([[1, 2], [3, 5]]), img([[1, 1], [2, 2]])
    # corr(f, ir) = 6.5 / sqrt(5 * 8.75); corr(f, vi) = 2 / sqrt(5 * 1)
    expected = 1 / (6.5 / math.sqrt(43.75) + 2 / math.sqrt(5))
    assert T.correlation_loss(fused, ir, vi).item() == pytest.approx(expected)
    # corr(f, 5 - f) = -1 cancels corr(f, f) = 1: the sum 0 is held at the floor
    assert T.correlation_loss(fused, fused, 5 - fused, floor=0.01).item() == pytest.approx(100.0)


def test_edge_weighted_correlation_loss() -> None:
    x = img([[0.1, 0.5, 0.2], [0.9, 0.3, 0.4], [0.0, 0.8, 0.6]])
    # perfectly correlated (any weights): 1 / (1 + 1)
    assert T.edge_weighted_correlation_loss(x, x, 2 * x + 0.1).item() == pytest.approx(0.5)
    # +1 and -1 sum to 0, held at the floor
    assert T.edge_weighted_correlation_loss(x, x, 1 - x, floor=0.05).item() == pytest.approx(20.0)


def test_local_variance_is_the_window_variance() -> None:
    x = impulse(1.0)
    # a huge sigma makes the 3x3 Gaussian a box: the centre window holds one 1 and eight 0
    var = T.local_variance(x, window=3, sigma=1e6)
    assert var[0, 0, 1, 1].item() == pytest.approx(1 / 9 - 1 / 81)


def test_contrast_masks() -> None:
    flat, textured = torch.full((1, 1, 3, 3), 0.5), impulse(1.0).float()
    m_ir, m_vi = T.contrast_masks(flat, textured)
    assert torch.equal(m_ir, torch.zeros_like(flat)) and torch.equal(m_vi, torch.ones_like(flat))
    m_ir, m_vi = T.contrast_masks(textured, textured)
    assert m_ir.sum() == 0 and m_vi.sum() == 0


def test_mask_intensity_loss() -> None:
    fused = img([[0.5, 0.5], [0.5, 0.5]])
    ir, vi = img([[0.1, 0.9], [0.5, 0.3]]), img([[0.7, 0.2], [0.5, 0.9]])
    m_ir, m_vi, m_tar = img([[1, 0], [0, 1]]), img([[0, 1], [0, 0]]), img([[1, 0], [0, 0]])

    def s(z: float) -> float:
        return 1 / (1 + math.exp(-z))

    ir_term = (s(2) * 0.4 + s(0) * 0.4 + s(0) * 0.0 + s(1) * 0.2) / 4
    vi_term = (s(0) * 0.2 + s(2) * 0.3 + s(1) * 0.0 + s(1) * 0.4) / 4
    got = T.mask_intensity_loss(fused, ir, vi, m_ir, m_vi, m_tar)
    assert got.item() == pytest.approx(ir_term + vi_term)


def test_scene_fidelity_loss() -> None:
    src, rec = impulse(0.9), torch.zeros(1, 1, 3, 3, dtype=torch.float64)
    # intensity 0.9 / 9, gradient 0.9 * mean(CENTRE) = 0.9 * 16 / 9
    assert T.scene_fidelity_loss(rec, src).item() == pytest.approx(0.1 + 1.6)
    assert T.scene_fidelity_loss(src, src).item() == 0.0
