"""SeAFusion's original loss and the seed-000 loss, with and without the semantic term, on hand-built inputs."""

from __future__ import annotations

import math

import pytest
import torch

from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionOutput
from taskfuse.models.seafusion.loss import SeAFusionLoss
from taskfuse.tasks.segmentation.base import SegmentationOutput

# Sobel |Gx| + |Gy| of a 3x3 image of ones with zero padding: [[6, 4, 6], [4, 0, 4], [6, 4, 6]], mean 40 / 9.
ONES_GRAD_MEAN = 40 / 9


def flat_batch(ir_value: float, vi_value: float) -> dict[str, torch.Tensor]:
    return {"ir": torch.full((1, 1, 3, 3), ir_value), "vi": torch.full((1, 3, 3, 3), vi_value)}


def test_original_loss_on_flat_images() -> None:
    batch = flat_batch(0.4, 0.2)
    fused = FusionOutput(torch.zeros(1, 1, 3, 3))
    terms = SeAFusionLoss("original")(fused, batch)
    # intensity: |0 - max(0.4, 0.2)|; texture: |0 - max(0.4, 0.2) * grad(ones)| averaged, times 10
    assert terms.parts["int"].item() == pytest.approx(0.4)
    assert terms.parts["text"].item() == pytest.approx(10 * 0.4 * ONES_GRAD_MEAN)
    assert set(terms.parts) == {"int", "text"}
    assert terms.total.item() == pytest.approx(0.4 + 4 * ONES_GRAD_MEAN)


def test_agf_loss_adds_colour_and_weighted_correlation() -> None:
    y = torch.tensor([[0.1, 0.5, 0.2], [0.9, 0.3, 0.4], [0.0, 0.8, 0.6]]).view(1, 1, 3, 3)
    batch = {"ir": y, "vi": y.expand(-1, 3, -1, -1)}
    terms = SeAFusionLoss("agf")(FusionOutput(y.clone()), batch)
    # fused = IR = gray VIS: no intensity or texture error, gray chroma 0.5 on both sides,
    # both weighted correlations 1 -> 0.01 * 1 / 2
    assert terms.parts["int"].item() == pytest.approx(0.0, abs=1e-6)
    assert terms.parts["text"].item() == pytest.approx(0.0, abs=1e-5)
    assert terms.parts["color"].item() == pytest.approx(0.0, abs=1e-6)
    assert terms.parts["wcorr"].item() == pytest.approx(0.005, rel=1e-5)
    assert terms.total.item() == pytest.approx(0.005, rel=1e-3)


def test_semantic_term_is_lambda_times_main_plus_point_one_aux() -> None:
    batch = {**flat_batch(0.4, 0.2), "label": torch.zeros(1, 3, 3, dtype=torch.long)}
    fused = FusionOutput(torch.zeros(1, 1, 3, 3))
    seg = SegmentationOutput(torch.zeros(1, 9, 3, 3), [torch.zeros(1, 9, 3, 3)])
    terms = SeAFusionLoss("original", seg_weight=2.0)(fused, batch, seg)
    # uniform logits: every pixel costs ln 9 (above the OHEM threshold), so L_seg = ln 9 + 0.1 ln 9
    assert terms.parts["seg"].item() == pytest.approx(2.0 * 1.1 * math.log(9))
    assert terms.total.item() == pytest.approx(0.4 + 4 * ONES_GRAD_MEAN + 2.2 * math.log(9), rel=1e-6)


def test_bad_variant_and_missing_label() -> None:
    with pytest.raises(TaskfuseError, match=r"loss\.variant"):
        SeAFusionLoss("seafusion-v2")
    seg = SegmentationOutput(torch.zeros(1, 9, 3, 3))
    with pytest.raises(TaskfuseError, match="label"):
        SeAFusionLoss()(FusionOutput(torch.zeros(1, 1, 3, 3)), flat_batch(0.1, 0.2), seg)
