"""FGFusion objective (eqs. 8-11) and the foreground masks, against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from taskfuse.errors import TaskfuseError
from taskfuse.losses.fusion_terms import variance_selected_error
from taskfuse.losses.masks import batch_foreground, foreground_from_boxes, foreground_from_labels
from taskfuse.models.base import FusionOutput
from taskfuse.models.fgfusion.loss import FGFusionLoss

SOBEL_ONES = torch.tensor([[6, 4, 4, 6], [4, 0, 0, 4], [4, 0, 0, 4], [6, 4, 4, 6]], dtype=torch.float)
"""|Gx| + |Gy| of a 4 x 4 image of ones with zero padding: corners 3 + 3, edges 0 + 4, interior 0."""


def test_foreground_masks_from_labels_and_boxes() -> None:
    label = torch.tensor([[[0, 1, 2], [3, 255, 5]]])
    assert foreground_from_labels(label).tolist() == [[[[0, 1, 1], [1, 0, 1]]]]
    assert foreground_from_labels(label, [1, 3]).tolist() == [[[[0, 1, 0], [1, 0, 0]]]]
    boxes = torch.tensor([[2.0, 0.5, 1.0, 2.2, 2.0], [7.0, 3.0, 3.0, 9.0, 9.0]])
    mask = foreground_from_boxes(boxes, 4, 5)
    expected = torch.zeros(1, 4, 5)
    expected[0, 1:2, 0:3] = 1  # columns floor(0.5)..ceil(2.2)-1, rows 1..ceil(2.0)-1
    expected[0, 3:4, 3:5] = 1  # clipped to the image
    assert torch.equal(mask, expected)
    assert foreground_from_boxes(torch.zeros(0, 5), 2, 2).sum() == 0
    batch = {"ir": torch.zeros(2, 1, 4, 5), "boxes": [boxes, torch.zeros(0, 5)]}
    assert torch.equal(batch_foreground(batch)[0], expected) and batch_foreground(batch)[1].sum() == 0
    assert batch_foreground({"ir": torch.zeros(1, 1, 4, 5)}) is None
    with pytest.raises(TaskfuseError, match="one per image"):
        batch_foreground({"ir": torch.zeros(3, 1, 4, 5), "boxes": [boxes]})


def test_intensity_term_follows_the_source_of_larger_variance() -> None:
    ir = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 1, 2, 2)  # variance 1/3 (unbiased)
    vi = torch.full((1, 1, 2, 2), 0.5)
    fused = torch.full((1, 1, 2, 2), 0.25)
    assert variance_selected_error(fused, ir, vi).flatten().tolist() == pytest.approx([0.0625, 0.5625] * 2)
    assert variance_selected_error(fused, vi, ir).flatten().tolist() == pytest.approx([0.0625, 0.5625] * 2)
    assert variance_selected_error(fused, vi, vi).flatten().tolist() == pytest.approx([0.0625] * 4)


def test_mask_weighted_objective_on_constant_images() -> None:
    fused, ir = torch.full((1, 1, 4, 4), 0.5), torch.full((1, 1, 4, 4), 0.2)
    vi = torch.full((1, 3, 4, 4), 0.8)
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[0, :2, :2] = 1
    out = FusionOutput(fused, {"foreground": torch.zeros(1, 1, 4, 4)})
    terms = FGFusionLoss()(out, {"ir": ir, "vi": vi, "label": label})
    # W = 3 on the 2 x 2 foreground, 1 elsewhere: sum W = 24. Equal variances pick the visible image:
    # (0.5 - 0.8)^2 = 0.09 per pixel. Gradient: |0.5 - max(0.2, 0.8)| * S. BCE of logit 0: ln 2 everywhere.
    w = torch.ones(4, 4)
    w[:2, :2] = 3
    assert terms.parts["ssim"].item() == pytest.approx(1.0)  # constant images: no correlation
    assert terms.parts["int"].item() == pytest.approx(10 * 0.09, rel=1e-5)
    assert terms.parts["grad"].item() == pytest.approx(10 * 0.3 * (w * SOBEL_ONES).sum().item() / 24, rel=1e-5)
    assert terms.parts["ex"].item() == pytest.approx(5 * math.log(2), rel=1e-5)
    expected = 1 + 0.9 + 10 * 0.3 * 84 / 24 + 5 * math.log(2)
    assert terms.total.item() == pytest.approx(expected, rel=1e-5)
    unlabelled = FGFusionLoss()(out, {"ir": ir, "vi": vi})
    assert "ex" not in unlabelled.parts
    assert unlabelled.parts["grad"].item() == pytest.approx(10 * 0.3 * 3.5, rel=1e-5)


def test_structure_term_is_one_minus_mean_correlation() -> None:
    ir = torch.tensor([[0.1, 0.4], [0.7, 0.2]]).view(1, 1, 2, 2)
    vi = (1 - ir).expand(1, 3, 2, 2)
    out = FusionOutput(ir.clone(), {"foreground": torch.zeros(1, 1, 2, 2)})
    terms = FGFusionLoss()(out, {"ir": ir, "vi": vi})
    assert terms.parts["ssim"].item() == pytest.approx(1 - (1 + -1) / 2, abs=1e-5)
    out = FusionOutput(ir.clone(), {"foreground": torch.zeros(1, 1, 2, 2)})
    same = FGFusionLoss()(out, {"ir": ir, "vi": (2 * ir + 0.1).expand(1, 3, 2, 2)})
    assert same.parts["ssim"].item() == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(TaskfuseError, match="foreground"):
        FGFusionLoss()(FusionOutput(ir), {"ir": ir, "vi": vi})
