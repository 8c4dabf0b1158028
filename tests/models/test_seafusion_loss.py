"""SeAFusion's original loss and the seed-000 losses (as written and with both new terms acting), with and without
the semantic term, on hand-built inputs and synthetic scenes; the share of the gradient each term carries."""

from __future__ import annotations

import math

import pytest
import torch

from taskfuse import models
from taskfuse.data.color import luminance, rgb_to_ycbcr
from taskfuse.data.synthetic import render_scene
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import gradient_shares
from taskfuse.models.base import FusionOutput
from taskfuse.models.seafusion.loss import SeAFusionLoss, ratio_color_loss
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


def _scenes() -> dict[str, torch.Tensor]:
    scenes = [render_scene(i, 64, 80) for i in range(2)]
    return {k: torch.stack([s[k] for s in scenes]) for k in ("ir", "vi", "label")}


def test_agf_as_written_keeps_its_numbers_on_synthetic_scenes() -> None:
    batch = _scenes()
    mean_rule = (batch["ir"] + luminance(batch["vi"])) / 2
    parts = SeAFusionLoss("agf")(FusionOutput(mean_rule), batch).parts
    expected = {"int": 0.242102, "text": 2.3177, "color": 0.503544, "wcorr": 0.0138459}
    assert {k: v.item() for k, v in parts.items()} == pytest.approx(expected, rel=1e-4)


def _shares(variant: str) -> dict[str, float]:
    """Gradient shares w.r.t. the narrowed network's parameters, every term evaluated at the mean-rule fusion
    (F = F0 + net - stopgrad(net): the value of F0, the network's Jacobian)."""
    batch = _scenes()
    torch.manual_seed(0)
    net = models.create("seafusion", **models.get("seafusion").small)
    out = net(batch["ir"], batch["vi"]).fused
    fused = (batch["ir"] + luminance(batch["vi"])) / 2 + out - out.detach()
    return gradient_shares(SeAFusionLoss(variant).terms(FusionOutput(fused), batch), list(net.parameters()))


def test_agf_as_written_is_numerically_the_original_loss() -> None:
    shares = _shares("agf")
    assert shares["color"] < 1e-3 and shares["wcorr"] < 0.02


def test_agf_active_gives_every_term_a_tenth_of_the_gradient_or_more() -> None:
    shares = _shares("agf_active")
    assert set(shares) == {"int", "text", "color", "wcorr"}
    assert min(shares.values()) > 0.10


def test_ratio_recombination_gives_the_colour_term_a_gradient() -> None:
    vi = torch.tensor([0.6, 0.3, 0.2]).view(1, 3, 1, 1).expand(1, 3, 4, 4).contiguous()
    y = luminance(vi)
    fused = (1.5 * y).requires_grad_(True)
    additive = SeAFusionLoss("agf").terms(FusionOutput(fused), {"ir": y, "vi": vi})["color"]
    ratio = ratio_color_loss(fused, vi, gamma=1.0)
    (grad_additive,) = torch.autograd.grad(additive, fused)
    (grad_ratio,) = torch.autograd.grad(ratio, fused)
    assert grad_additive.abs().max() < 1e-6 < 1e-3 < grad_ratio.abs().min()
    # gamma 1: the reference is the visible image itself, whose chroma the gain 1.5 scales by 1.5
    chroma = rgb_to_ycbcr(vi)[:, 1:, :1, :1] - 0.5
    assert ratio.item() == pytest.approx(0.5 * chroma.abs().sum().item(), rel=1e-5)
    assert ratio_color_loss(y, vi, gamma=1.0).item() == pytest.approx(0.0, abs=1e-7)
    assert ratio_color_loss(y, y, gamma=0.1).item() == 0.0


def test_weights_default_to_the_variant_and_can_be_overridden() -> None:
    assert (SeAFusionLoss("agf").color_weight, SeAFusionLoss("agf").wcorr_weight) == (10.0, 0.01)
    assert SeAFusionLoss("agf_active").wcorr_weight == 1.0
    assert SeAFusionLoss("agf_active", wcorr_weight=0.5).wcorr_weight == 0.5
