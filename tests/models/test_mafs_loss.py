"""MAFS objectives against values worked out by hand: masked reconstruction (eqs. 11-13), distillation (eq. 19),
the α-fair dynamic weight average (eqs. 20-21) and its alternatives, and the stage-II assembly (eq. 14)."""

from __future__ import annotations

import math

import pytest
import torch

from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionOutput
from taskfuse.models.mafs.loss import (
    MAFSLoss,
    MAFSPretextLoss,
    TaskWeighting,
    distillation_loss,
    masked_reconstruction_loss,
)
from taskfuse.tasks.segmentation.base import SegmentationOutput


def test_masked_reconstruction_of_one_pixel() -> None:
    rec, src = torch.full((1, 1, 3, 3), 0.9), torch.full((1, 1, 3, 3), 0.3)
    mask = torch.zeros(1, 1, 3, 3)
    mask[..., 1, 1] = 1
    # Only the centre survives the mask: |0.9 - 0.3| / 9 in intensity. With zero padding the Sobel response of
    # a lone centre value v is v times the flipped kernel, whose |entries| sum to 8 in x and 8 in y.
    d = 0.6
    expected = 5 * d / 9 + 5 * 16 * d / 9
    assert masked_reconstruction_loss(rec, src, mask).item() == pytest.approx(expected, rel=1e-5)
    assert masked_reconstruction_loss(rec, src, torch.zeros_like(mask)).item() == 0.0


def test_pretext_loss_sums_both_modalities() -> None:
    mask = torch.zeros(1, 1, 3, 3)
    mask[..., 1, 1] = 1
    aux = {
        "recon_vi": torch.full((1, 1, 3, 3), 0.5),
        "recon_ir": torch.full((1, 1, 3, 3), 0.2),
        "mask_vi": mask,
        "mask_ir": mask,
    }
    batch = {"vi": torch.full((1, 3, 3, 3), 0.25), "ir": torch.full((1, 1, 3, 3), 0.1)}
    terms = MAFSPretextLoss()(FusionOutput(aux["recon_vi"], aux), batch)
    per_unit = 5 / 9 + 5 * 16 / 9
    assert terms.parts["rec_vi"].item() == pytest.approx(0.25 * per_unit, rel=1e-5)
    assert terms.parts["rec_ir"].item() == pytest.approx(0.1 * per_unit, rel=1e-5)
    assert terms.total.item() == pytest.approx(0.35 * per_unit, rel=1e-5)
    with pytest.raises(TaskfuseError, match="forward_pretext"):
        MAFSPretextLoss()(FusionOutput(aux["recon_vi"]), batch)


def test_distillation_of_one_pixel_two_classes() -> None:
    student = torch.zeros(1, 2, 1, 1)
    teacher = torch.tensor([4 * math.log(3.0), 0.0]).view(1, 2, 1, 1)  # /T = 4 -> p_t = (3/4, 1/4)
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert distillation_loss(student, teacher, 4.0, t2=False).item() == pytest.approx(expected, rel=1e-5)
    coarse = teacher.expand(1, 2, 2, 2)
    assert distillation_loss(student.expand(1, 2, 4, 4), coarse, t2=False).item() == pytest.approx(expected, rel=1e-5)
    # the released CriterionKD scales by T^2, so the softened gradients keep their size across temperatures
    assert distillation_loss(student, teacher, 4.0).item() == pytest.approx(16 * expected, rel=1e-5)
    assert distillation_loss(student, teacher / 2, 2.0).item() == pytest.approx(4 * expected, rel=1e-5)


def test_alpha_fair_dwa_weights_follow_eqs_20_21() -> None:
    w = TaskWeighting(2, "fair_dwa", alpha=0.8, temperature=500.0)

    def fair(x: float) -> float:
        return x**0.2 / 0.2

    t1 = w([torch.tensor(4.0), torch.tensor(1.0)])
    assert t1.tolist() == pytest.approx([fair(4.0), fair(1.0)])  # first step: lambda = 1
    t2 = w([torch.tensor(2.0), torch.tensor(1.0)])
    assert t2.tolist() == pytest.approx([fair(2.0), fair(1.0)])  # lambda(2) still from one step only
    r = [fair(2.0) / fair(4.0), 1.0]
    z = math.exp(r[0] / 500) + math.exp(r[1] / 500)
    lam = [2 * math.exp(r[0] / 500) / z, 2 * math.exp(r[1] / 500) / z]
    assert w.current_weights().tolist() == pytest.approx(lam, rel=1e-6)
    t3 = w([torch.tensor(2.0), torch.tensor(1.0)])
    assert t3.tolist() == pytest.approx([lam[0] * fair(2.0), lam[1] * fair(1.0)], rel=1e-6)

    resumed = TaskWeighting(2, "fair_dwa")
    resumed.load_state_dict(w.state_dict())
    assert torch.equal(resumed.current_weights(), w.current_weights()) and int(resumed.steps) == 3


def test_dwa_equal_and_uncertainty_alternatives() -> None:
    dwa = TaskWeighting(2, "dwa", temperature=1.0)
    dwa([torch.tensor(2.0), torch.tensor(1.0)])
    dwa([torch.tensor(1.0), torch.tensor(1.0)])  # ratios 0.5 and 1
    z = math.exp(0.5) + math.exp(1.0)
    assert dwa.current_weights().tolist() == pytest.approx([2 * math.exp(0.5) / z, 2 * math.exp(1.0) / z])
    eq = TaskWeighting(2, "equal")
    assert eq([torch.tensor(3.0), torch.tensor(0.5)]).tolist() == [3.0, 0.5]
    uw = TaskWeighting(2, "uncertainty")
    with torch.no_grad():
        uw.log_vars.copy_(torch.tensor([math.log(2.0), 0.0]))
    terms = uw([torch.tensor(3.0), torch.tensor(0.5)])
    assert terms.tolist() == pytest.approx([1.5 + math.log(2.0), 0.5])
    assert [p.shape for p in uw.parameters()] == [torch.Size([2])]
    frozen = TaskWeighting(2, "dwa").eval()
    frozen([torch.tensor(2.0), torch.tensor(1.0)])
    assert int(frozen.steps) == 0
    with pytest.raises(TaskfuseError, match="weighting"):
        TaskWeighting(2, "fair")  # type: ignore[arg-type]


def test_stage_two_terms_on_a_tiny_batch() -> None:
    ir = torch.full((1, 1, 4, 4), 0.5)
    vi = torch.full((1, 3, 4, 4), 0.2)
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    logits = torch.zeros(1, 3, 4, 4)
    aux = {"seg": logits, "seg_aux": logits, "binary": torch.zeros(1, 2, 4, 4), "boundary": torch.zeros(1, 2, 4, 4)}
    out = FusionOutput(torch.full((1, 1, 4, 4), 0.3), aux)
    loss = MAFSLoss(weighting="equal")
    terms = loss(out, {"ir": ir, "vi": vi, "label": label})
    log3, log2 = math.log(3.0), math.log(2.0)
    assert terms.parts["int"].item() == pytest.approx(0.2)  # |0.3 - max(0.5, 0.2)|
    # Constant images: |∇c| = c * S with S the Sobel magnitude of a ones image, so |0.3 - 0.5| * mean(S).
    sobel_ones = torch.tensor([[6, 4, 4, 6], [4, 0, 0, 4], [4, 0, 0, 4], [6, 4, 4, 6]], dtype=torch.float)
    assert terms.parts["grad"].item() == pytest.approx(0.2 * sobel_ones.mean().item(), rel=1e-5)
    assert terms.parts["seg"].item() == pytest.approx(log3, rel=1e-5)
    assert terms.parts["seg_aux"].item() == pytest.approx(log3, rel=1e-5)
    assert terms.parts["binary"].item() == pytest.approx(log2, rel=1e-5)
    assert terms.parts["boundary"].item() == pytest.approx(log2, rel=1e-5)
    assert "kd" not in terms.parts
    expected = 0.2 + 0.2 * 3.5 + 2 * log3 + 2 * log2
    assert terms.total.item() == pytest.approx(expected, rel=1e-5)
    assert terms.parts["fusion"].item() + terms.parts["segmentation"].item() == pytest.approx(expected, rel=1e-5)
    with_kd = loss(out, {"ir": ir, "vi": vi, "label": label, "teacher_logits": torch.zeros(1, 3, 2, 2)})
    assert with_kd.parts["kd"].item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(TaskfuseError, match="label"):
        loss(out, {"ir": ir, "vi": vi})


class _ConstantTeacher(torch.nn.Module):
    """A 'segmenter' whose logits are its bias at every pixel, whatever the image."""

    def __init__(self, bias: list[float]) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, len(bias), 1)
        torch.nn.init.zeros_(self.conv.weight)
        with torch.no_grad():
            self.conv.bias.copy_(torch.tensor(bias))

    def forward(self, x: torch.Tensor) -> SegmentationOutput:
        return SegmentationOutput(self.conv(x))


def test_teacher_segmenter_gives_the_distillation_target_and_stays_out_of_the_state() -> None:
    teacher = _ConstantTeacher([4 * math.log(2.0), 0.0, 0.0])  # /T -> p_t = (1/2, 1/4, 1/4)
    loss = MAFSLoss(weighting="uncertainty", teacher=teacher)
    zeros = torch.zeros(1, 3, 4, 4)
    aux = {"seg": zeros, "seg_aux": zeros, "binary": torch.zeros(1, 2, 4, 4), "boundary": torch.zeros(1, 2, 4, 4)}
    batch = {
        "ir": torch.rand(1, 1, 4, 4),
        "vi": torch.rand(1, 3, 4, 4),
        "label": torch.zeros(1, 4, 4, dtype=torch.long),
    }
    terms = loss(FusionOutput(torch.rand(1, 1, 4, 4), aux), batch)
    expected = 16 * (0.5 * math.log(0.5 * 3) + 2 * 0.25 * math.log(0.25 * 3))  # T^2 = 16
    assert terms.parts["kd"].item() == pytest.approx(expected, rel=1e-5)
    assert set(loss.state_dict()) == {
        "weighting.weights",
        "weighting.previous",
        "weighting.steps",
        "weighting.log_vars",
    }
    assert [p.shape for p in loss.parameters()] == [torch.Size([2])]
    assert not any(p.requires_grad for p in teacher.parameters())


@pytest.mark.parametrize("through", [False, True])
def test_distillation_reaches_the_fused_image_only_through_a_teacher_asked_to_pass_it(through: bool) -> None:
    torch.manual_seed(0)
    teacher = torch.nn.Conv2d(3, 3, 1)
    segmenter = _ConstantTeacher([0.0, 0.0, 0.0])
    segmenter.conv = teacher
    loss = MAFSLoss(weighting="equal", teacher=segmenter, kd_through_teacher=through)
    fused = torch.rand(1, 1, 4, 4, requires_grad=True)
    student = torch.randn(1, 3, 4, 4, requires_grad=True)
    aux = {"seg": student, "seg_aux": student, "binary": torch.zeros(1, 2, 4, 4), "boundary": torch.zeros(1, 2, 4, 4)}
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    batch = {"ir": torch.rand(1, 1, 4, 4), "vi": torch.rand(1, 3, 4, 4), "label": label}
    kd = loss(FusionOutput(fused, aux), batch).total
    grad_fused, grad_student = torch.autograd.grad(kd, [fused, student], allow_unused=True)
    fused_path = grad_fused is not None and grad_fused.abs().sum() > 0
    # the intensity and gradient terms also reach the fused image: compare with the loss without a teacher
    plain = MAFSLoss(weighting="equal")(FusionOutput(fused, aux), batch).total
    (grad_plain,) = torch.autograd.grad(plain, fused)
    assert fused_path and torch.equal(grad_fused, grad_plain) is not through
    assert grad_student.abs().sum() > 0
    assert teacher.weight.grad is None and not teacher.weight.requires_grad


def test_given_teacher_logits_are_detached() -> None:
    given = torch.randn(1, 3, 4, 4, requires_grad=True)
    student = torch.zeros(1, 3, 4, 4, requires_grad=True)
    aux = {"seg": student, "seg_aux": student, "binary": torch.zeros(1, 2, 4, 4), "boundary": torch.zeros(1, 2, 4, 4)}
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    batch = {"ir": torch.rand(1, 1, 4, 4), "vi": torch.rand(1, 3, 4, 4), "label": label}
    total = MAFSLoss(weighting="equal")(FusionOutput(torch.rand(1, 1, 4, 4), aux), {**batch, "teacher_logits": given})
    assert torch.autograd.grad(total.total, [student, given], allow_unused=True)[1] is None


def test_dwa_at_the_papers_temperature_keeps_the_weights_at_one() -> None:
    w = TaskWeighting(2, "fair_dwa", alpha=0.8, temperature=500.0)
    torch.manual_seed(0)
    seen = []
    for _ in range(50):
        pair = 1 + 0.2 * (2 * torch.rand(2) - 1)  # each task's loss moves by up to 20 % per step
        w([pair[0], pair[1]])
        seen.append(w.current_weights())
    spread = torch.stack(seen).sub(1).abs().max().item()
    assert 0 < spread < 4e-4


@pytest.mark.parametrize("weighting", ["fair_dwa", "uncertainty"])
def test_terms_carry_each_components_part_of_the_total_gradient(weighting: str) -> None:
    torch.manual_seed(0)
    fused = torch.rand(1, 1, 6, 6, requires_grad=True)
    student = torch.randn(1, 3, 6, 6, requires_grad=True)
    aux = {"seg": student, "seg_aux": student * 0.5, "binary": student[:, :2], "boundary": student[:, 1:]}
    label = torch.randint(0, 3, (1, 6, 6))
    batch = {"ir": torch.rand(1, 1, 6, 6), "vi": torch.rand(1, 3, 6, 6), "label": label}
    batch["teacher_logits"] = torch.randn(1, 3, 6, 6)
    loss = MAFSLoss(weighting=weighting)
    loss(FusionOutput(fused, aux), batch)  # one step, so DWA has a history
    terms = loss.terms(FusionOutput(fused, aux), batch)
    total = loss(FusionOutput(fused, aux), batch).total
    summed = torch.autograd.grad(sum(terms.values()), [fused, student], retain_graph=True)
    expected = torch.autograd.grad(total, [fused, student])
    assert set(terms) == {"int", "grad", "seg", "boundary", "binary", "seg_aux", "kd"}
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(summed, expected, strict=True))
