"""PSFusion's targets and full objective (seed 001 eqs. 16-22, and the authors' released form) against
hand-computed values; which source pulls on the target pixels under each variant."""

from __future__ import annotations

import math

import pytest
import torch

from taskfuse.errors import TaskfuseError
from taskfuse.losses.fusion_terms import contrast_masks
from taskfuse.losses.masks import BINARY_WEIGHTS, binary_target, boundary_target
from taskfuse.models.base import FusionOutput
from taskfuse.models.psfusion.loss import PSFusionFusionLoss, PSFusionLoss, local_squared_error
from taskfuse.tasks.segmentation.loss import weighted_cross_entropy

LABEL = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 1]]])


def test_binary_target() -> None:
    expected = torch.tensor([[[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 255, 1]]])
    assert torch.equal(binary_target(LABEL), expected)


def test_boundary_target_is_the_morphological_gradient_over_labelled_pixels() -> None:
    # a pixel is boundary when its 3x3 neighbourhood (ignored pixels left out) holds two classes
    expected = torch.tensor([[[0, 1, 1, 0], [1, 1, 1, 0], [1, 1, 255, 0]]])
    assert torch.equal(boundary_target(LABEL), expected)
    assert boundary_target(torch.ones(1, 3, 3, dtype=torch.long)).sum() == 0


def test_weighted_cross_entropy() -> None:
    logits = torch.tensor([[0.0, math.log(3.0)], [0.0, 0.0], [5.0, -5.0]]).T.reshape(1, 2, 1, 3)
    target = torch.tensor([[[1, 0, 255]]])
    w0, w1 = BINARY_WEIGHTS
    expected = (w1 * -math.log(0.75) + w0 * math.log(2.0)) / (w0 + w1)
    assert weighted_cross_entropy(logits, target, BINARY_WEIGHTS).item() == pytest.approx(expected)


def _out(fused: torch.Tensor, ir: torch.Tensor, vi_y: torch.Tensor, classes: int = 9) -> FusionOutput:
    b, _, h, w = fused.shape
    aux = {
        "semantic": torch.zeros(b, classes, h, w),
        "boundary": torch.zeros(b, 2, h, w),
        "binary": torch.zeros(b, 2, h, w),
        "ir_rec": ir,
        "vi_rec": vi_y,
    }
    return FusionOutput(fused, aux)


def test_full_objective_on_a_perfect_fusion_with_uniform_logits() -> None:
    y = torch.rand(2, 1, 8, 8)
    vi = y.expand(-1, 3, -1, -1)
    batch = {"ir": y, "vi": vi, "label": torch.ones(2, 8, 8, dtype=torch.long)}
    fused = vi[:, :1] * 0.299 + vi[:, 1:2] * 0.587 + vi[:, 2:] * 0.114
    terms = PSFusionLoss()(_out(fused, y, fused), batch)
    # fused = IR = VIS: L_int = L_text = L_sf = 0 and L_corr = 1 / (1 + 1); uniform logits give
    # ln 9 (every pixel harder than the OHEM threshold), ln 2 and ln 2 (the class weights cancel)
    parts = {k: v.item() for k, v in terms.parts.items()}
    assert parts["int"] == pytest.approx(0.0, abs=1e-6)
    assert parts["text"] == pytest.approx(0.0, abs=1e-5)
    assert parts["corr"] == pytest.approx(10 * 0.1 * 0.5, rel=1e-5)
    assert parts["sf_ir"] == 0.0 and parts["sf_vi"] == 0.0
    assert parts["se"] == pytest.approx(10 * math.log(9))
    assert parts["bd"] == pytest.approx(10 * math.log(2))
    assert parts["bi"] == pytest.approx(10 * math.log(2))
    assert terms.total.item() == pytest.approx(10 * math.log(9) + 20 * math.log(2) + 0.5, rel=1e-5)


def test_masked_intensity_part_with_targets_on_half_the_image() -> None:
    a, b = 0.8, 0.3
    ir, vi = torch.full((1, 1, 4, 4), a), torch.full((1, 3, 4, 4), b)
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[..., :2] = 2  # person: a salient target
    fused = torch.zeros(1, 1, 4, 4)
    terms = PSFusionLoss("paper", lambda_f=1.0)(_out(fused, ir, vi[:, :1]), {"ir": ir, "vi": vi, "label": label})
    # flat images: equal (zero) variances, so M_ir = M_vi = 0; M_tar = 1 on half the pixels
    s0, s1 = 0.5, 1 / (1 + math.exp(-1))
    expected = a * (s1 + s0) / 2 + b * (s0 + s1) / 2
    assert terms.parts["int"].item() == pytest.approx(expected, rel=1e-6)


def test_weights_scale_their_parts_and_parts_sum_to_total() -> None:
    ir, vi = torch.rand(1, 1, 8, 8), torch.rand(1, 3, 8, 8)
    label = torch.randint(0, 9, (1, 8, 8))
    out = FusionOutput(
        torch.rand(1, 1, 8, 8),
        {
            "semantic": torch.randn(1, 9, 8, 8),
            "boundary": torch.randn(1, 2, 8, 8),
            "binary": torch.randn(1, 2, 8, 8),
            "ir_rec": torch.rand(1, 1, 8, 8),
            "vi_rec": torch.rand(1, 1, 8, 8),
        },
    )
    batch = {"ir": ir, "vi": vi, "label": label}
    base = PSFusionLoss(lambda_f=1, lambda_sf=1, lambda_se=1, alpha=1)(out, batch)
    paper = PSFusionLoss()(out, batch)
    factor = {"int": 10, "text": 10, "corr": 1, "sf_ir": 5, "sf_vi": 5, "se": 10, "bd": 10, "bi": 10}
    for k, f in factor.items():
        assert paper.parts[k].item() == pytest.approx(f * base.parts[k].item(), rel=1e-5)
    assert paper.total.item() == pytest.approx(sum(v.item() for v in paper.parts.values()), rel=1e-6)


def test_missing_labels_are_a_clear_error() -> None:
    x = torch.rand(1, 1, 4, 4)
    with pytest.raises(TaskfuseError, match="label"):
        PSFusionLoss()(_out(x, x, x), {"ir": x, "vi": x.expand(-1, 3, -1, -1)})


def _target_scene() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    torch.manual_seed(0)
    ir, vi = torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12).expand(-1, 3, -1, -1)
    label = torch.zeros(1, 12, 12, dtype=torch.long)
    label[:, 3:9, 2:7] = 2  # a person
    return {"ir": ir, "vi": vi, "label": label}, label[:, None] == 2


@pytest.mark.parametrize(
    ("variant", "source", "visible_pulls"),
    [("paper", "ir", 1.0), ("released", "ir", 0.0), ("released_as_run", "vi", 0.0)],
)
def test_which_source_pulls_on_the_target_pixels(variant: str, source: str, visible_pulls: float) -> None:
    batch, target = _target_scene()
    vi_y = batch["vi"][:, :1]
    fused = (batch["ir"] if source == "ir" else vi_y).clone().requires_grad_(True)
    intensity = PSFusionLoss(variant, mse_window=1).terms(_out(fused, batch["ir"], vi_y), batch)["int"]
    (grad,) = torch.autograd.grad(intensity, fused)
    # at F = the source a variant assigns to targets, any gradient left there is the other source pulling:
    # the sigmoid of eq. 17 keeps the visible weight at 0.5 or more on every target pixel, hard masks at 0
    assert (grad[target].abs() > 1e-6).float().mean().item() == visible_pulls


def test_released_intensity_is_the_local_squared_error_of_the_picked_source() -> None:
    batch, target = _target_scene()
    ir, vi_y = batch["ir"], batch["vi"][:, :1]
    fused = torch.rand(1, 1, 12, 12)
    released = PSFusionLoss("released", lambda_f=1.0).terms(_out(fused, ir, vi_y), batch)["int"]
    m_ir, _ = contrast_masks(ir, vi_y)  # eq. 16, as the released std() comparison
    pick = ((m_ir + target.float()) > 0).float()
    expected = pick * local_squared_error(fused, ir) + (1 - pick) * local_squared_error(fused, vi_y)
    assert released.item() == pytest.approx(expected.mean().item(), rel=1e-6)


def test_label_free_form_follows_the_variant() -> None:
    batch, _ = _target_scene()
    ir, vi_y = batch["ir"], batch["vi"][:, :1]
    out = _out(torch.rand(1, 1, 12, 12), ir, vi_y)
    no_targets = {**batch, "label": torch.zeros_like(batch["label"])}
    for variant in ("paper", "released", "released_as_run"):
        free = PSFusionFusionLoss(variant)(out, {"ir": ir, "vi": batch["vi"]}).parts
        labelled = PSFusionLoss(variant)(out, no_targets).parts
        assert set(free) == {"int", "text", "corr", "sf_ir", "sf_vi"}
        assert all(free[k].item() == pytest.approx(labelled[k].item(), rel=1e-6) for k in free)
    paper, released = PSFusionFusionLoss("paper")(out, batch).parts, PSFusionFusionLoss("released")(out, batch).parts
    assert paper["int"].item() != pytest.approx(released["int"].item(), rel=1e-3)


def test_unknown_variant_names_the_choices() -> None:
    with pytest.raises(TaskfuseError, match="released_as_run"):
        PSFusionLoss("sigmoid")


def test_local_squared_error_matches_the_unfold_form_of_the_released_code() -> None:
    a, b = torch.rand(1, 1, 10, 13), torch.rand(1, 1, 10, 13)
    cols = torch.nn.functional.unfold(a, 9, padding=4) - torch.nn.functional.unfold(b, 9, padding=4)
    expected = (cols**2).sum(1, keepdim=True).view(1, 1, 10, 13) / 81
    assert torch.allclose(local_squared_error(a, b, 9), expected, atol=1e-6)
