"""MAFS objectives (seed 002, Sec. III-E): the stage-I masked reconstruction loss and the stage-II multi-task
loss with knowledge distillation and dynamic task weighting.

Stage I (eqs. 10-13): ``L = L_vi + L_ir`` with ``L_x = α1 mean|Î_x ⊙ m - I_x ⊙ m| + α2 mean|∇(Î_x ⊙ m) -
∇(I_x ⊙ m)|``, α1 = α2 = 5, m the patch mask of that modality (1 on masked pixels) and ∇ the Sobel gradient
vector (both components). The visible target is its luminance.

Stage II (eq. 14): ``λ_f L_fus + λ_s L_seg-task`` with

* ``L_fus = L_int + L_grad`` (eqs. 15-16: max-intensity and max-gradient L1, ``taskfuse.losses.fusion_terms``);
* ``L_seg-task = L_seg + L_kd + L_aux``: OHEM cross-entropy of the segmentation logits (threshold 0.7, at
  least 1/16 of the pixels, as in the authors' ``OhemCELoss``); eq. 19 knowledge distillation with T = 4 against
  a teacher segmenter's logits on the fused colour image; eq. 17 multilabel loss = boundary cross-entropy +
  class-weighted binary cross-entropy (eq. 18; the background / foreground weights of PSFusion's code, on
  which MAFS's code builds) + OHEM on the auxiliary semantic logits. Binary and boundary targets come from the
  label (``taskfuse.models.psfusion.loss``).

λ_f, λ_s come from ``TaskWeighting``: α-fair losses ``L^(1-α) / (1-α)`` (eq. 20, α = 0.8) re-weighted by
dynamic weight average (eq. 21, T = 500) by default; equal weights, uncertainty weighting (Kendall et al. 2018)
and plain DWA are the alternatives of the paper's Table X. At the paper's T = 500 the DWA weights stay within
``1 ± |w_f - w_s| / 1000`` of 1, where ``w_k`` is a task's loss ratio between consecutive steps: with ratios
that differ by 0.4 at most, the weights are ``1 ± 4e-4``, so the paper's weighting is in effect the plain sum
of the α-fair losses. This is a property of the paper's setting, kept as written.

Eq. 19 writes ``KL(ρ(L^s/T) || ρ(L^t/T))``; as in the usual distillation code, and in the authors' released
``CriterionKD`` (github.com/Abraham-Einstein/MAFS ``losses.py``), it is computed as the divergence of the
student's softened distribution from the teacher's, ``Σ_c p_t (log p_t - log p_s)``, averaged over pixels (the
paper sums over h, w; ``CriterionKD``'s ``batchmean`` over pixel rows is the same mean). ``CriterionKD``
multiplies by ``T²`` (Hinton et al. 2015: the softened gradients shrink as ``1/T²``), which eq. 19 omits:
``kd_t2`` (default true) follows the code. The teacher's logits are targets: ``kd_through_teacher`` false (the
default, as the authors' ``CriterionCWD`` detaches ``preds_T``) computes them without gradient, so the
distillation trains the student head only; true lets the gradient run back through the frozen teacher into the
fused image and the fusion network, one reading of the paper's Fig. 1(b) ("the teacher is training the fusion
network"). The teacher's own parameters never train here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.data.classes import IGNORE_INDEX
from taskfuse.data.color import luminance, recombine
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import intensity_max_loss, texture_max_loss
from taskfuse.losses.masks import BINARY_WEIGHTS, binary_target, boundary_target
from taskfuse.models.base import FusionOutput
from taskfuse.nn.sobel import sobel_xy
from taskfuse.tasks.segmentation.loss import ohem_cross_entropy, weighted_cross_entropy

Strategy = Literal["fair_dwa", "dwa", "equal", "uncertainty"]
STRATEGIES: tuple[str, ...] = ("fair_dwa", "dwa", "equal", "uncertainty")


def masked_reconstruction_loss(
    rec: Tensor, src: Tensor, mask: Tensor, alpha1: float = 5.0, alpha2: float = 5.0
) -> Tensor:
    """Eqs. 11-13 for one modality: ``α1 mean|rec⊙m - src⊙m| + α2 mean(|∂x(rec⊙m) - ∂x(src⊙m)| +
    |∂y(rec⊙m) - ∂y(src⊙m)|)`` (Sobel derivatives; means over all pixels, the paper's 1/HW)."""
    rm, sm = rec * mask, src * mask
    (rx, ry), (sx, sy) = sobel_xy(rm), sobel_xy(sm)
    return alpha1 * (rm - sm).abs().mean() + alpha2 * ((rx - sx).abs() + (ry - sy).abs()).mean()


def distillation_loss(student: Tensor, teacher: Tensor, temperature: float = 4.0, t2: bool = True) -> Tensor:
    """Eq. 19: per-pixel KL divergence between temperature-softened teacher and student class distributions,
    averaged over pixels, times ``T²`` when ``t2`` (the released ``CriterionKD``). Teacher logits at another
    resolution are resized (bilinear) to the student's. Gradient reaches ``teacher`` unless it is detached."""
    if teacher.shape[-2:] != student.shape[-2:]:
        teacher = F.interpolate(teacher, size=student.shape[-2:], mode="bilinear", align_corners=False)
    log_s = F.log_softmax(student / temperature, dim=1)
    log_t = F.log_softmax(teacher / temperature, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum(1).mean()
    return kl * temperature**2 if t2 else kl


class TaskWeighting(nn.Module):
    """Combine ``num_tasks`` losses into one (eq. 14), with state kept in buffers so ``state_dict`` resumes it.

    * ``fair_dwa`` (the paper): each loss becomes ``L^(1-α) / (1-α)`` (eq. 20), then dynamic weight average
      (eq. 21): ``λ_k(t+1) = K exp(w_k(t)/T) / Σ_i exp(w_i(t)/T)`` with ``w_k(t) = L_k(t) / L_k(t-1)``;
      the first step uses λ = 1.
    * ``dwa``: the same without the α-fair transform (Liu et al. 2019).
    * ``equal``: plain sum.
    * ``uncertainty``: ``Σ exp(-s_k) L_k + s_k`` with learned ``s_k = log σ_k²`` (Kendall et al. 2018); add this
      module's parameters to the optimiser.

    The DWA weights update on every call in training mode with gradients enabled (one call per iteration), on the
    device: the first call keeps λ = 1 through ``torch.where`` rather than a Python test of the step count, which
    would wait for the GPU.
    """

    def __init__(
        self, num_tasks: int = 2, strategy: Strategy = "fair_dwa", alpha: float = 0.8, temperature: float = 500.0
    ) -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise TaskfuseError(f"loss.weighting {strategy!r} is not one of {', '.join(STRATEGIES)}")
        if strategy == "fair_dwa" and not alpha < 1.0:
            raise TaskfuseError(f"loss.alpha must be below 1 for the alpha-fair transform, got {alpha}")
        if temperature <= 0:
            raise TaskfuseError(f"loss.dwa_temperature must be positive, got {temperature}")
        self.num_tasks, self.strategy, self.alpha, self.temperature = num_tasks, strategy, alpha, temperature
        self.register_buffer("weights", torch.ones(num_tasks))
        self.register_buffer("previous", torch.zeros(num_tasks))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.log_vars = nn.Parameter(torch.zeros(num_tasks)) if strategy == "uncertainty" else None

    def current_weights(self) -> Tensor:
        """The weights the next call applies: DWA's λ, ``exp(-s_k)`` for uncertainty, ones for equal."""
        if self.log_vars is not None:
            return torch.exp(-self.log_vars.detach())
        return self.weights.clone()

    def slope(self, losses: Tensor) -> Tensor:
        """The derivative of ``transform`` at ``losses``: ``L^(-α)`` for ``fair_dwa``, ones otherwise."""
        if self.strategy != "fair_dwa":
            return torch.ones_like(losses)
        return losses.clamp_min(1e-12) ** (-self.alpha)

    def transform(self, losses: Tensor) -> Tensor:
        """The α-fair utility of eq. 20 for ``fair_dwa``; the identity otherwise."""
        if self.strategy != "fair_dwa":
            return losses
        return losses.clamp_min(1e-12) ** (1 - self.alpha) / (1 - self.alpha)

    def forward(self, losses: Sequence[Tensor]) -> Tensor:
        """The per-task weighted terms (K,); their sum is the total loss."""
        if len(losses) != self.num_tasks:
            raise ValueError(f"TaskWeighting expects {self.num_tasks} losses, got {len(losses)}")
        values = self.transform(torch.stack(list(losses)))
        if self.log_vars is not None:
            return torch.exp(-self.log_vars) * values + self.log_vars
        if self.strategy == "equal":
            return values
        terms = self.weights.clone() * values
        if self.training and torch.is_grad_enabled():
            current = values.detach()
            ratio = current / self.previous.clamp_min(1e-12)
            dwa = self.num_tasks * torch.softmax(ratio / self.temperature, dim=0)
            self.weights.copy_(torch.where(self.steps > 0, dwa, self.weights))
            self.previous.copy_(current)
            self.steps += 1
        return terms


class MAFSPretextLoss:
    """Stage I (eq. 10): masked reconstruction of the visible luminance and the infrared image, α1 = α2 = 5.

    Reads ``aux`` ``recon_vi``, ``recon_ir``, ``mask_vi``, ``mask_ir`` from ``MAFS.forward_pretext``.
    """

    def __init__(self, alpha1: float = 5.0, alpha2: float = 5.0) -> None:
        self.alpha1, self.alpha2 = alpha1, alpha2

    def __call__(self, out: FusionOutput, batch: Mapping[str, Any]) -> LossTerms:
        keys = ("recon_vi", "recon_ir", "mask_vi", "mask_ir")
        missing = [k for k in keys if k not in out.aux]
        if missing:
            raise TaskfuseError(f"MAFS pretext loss needs aux {missing}; produce them with MAFS.forward_pretext")
        a = out.aux
        parts = {
            "rec_vi": masked_reconstruction_loss(
                a["recon_vi"], luminance(batch["vi"]), a["mask_vi"], self.alpha1, self.alpha2
            ),
            "rec_ir": masked_reconstruction_loss(a["recon_ir"], batch["ir"], a["mask_ir"], self.alpha1, self.alpha2),
        }
        return LossTerms(parts["rec_vi"] + parts["rec_ir"], {k: v.detach() for k, v in parts.items()})


class MAFSLoss(nn.Module):
    """Stage II (eq. 14). ``teacher`` is a frozen segmenter (``taskfuse.tasks.segmentation``; SegNeXt in the
    paper) applied to the fused colour image; without one, ``batch["teacher_logits"]`` is used if present,
    else the distillation term is left out. The batch needs ``ir``, ``vi`` (RGB) and ``label``. ``kd_t2`` and
    ``kd_through_teacher`` are described in the module docstring.

    The teacher stays outside this module's parameters and state (move it to the device yourself); the task
    weighting is a submodule, so ``state_dict`` resumes it and ``parameters()`` holds the uncertainty weights.
    ``parts``: the weighted ``fusion`` and ``segmentation`` terms (they sum to ``total``), their weights
    ``w_fusion`` / ``w_segmentation``, and the unweighted components.
    """

    def __init__(
        self,
        weighting: Strategy = "fair_dwa",
        alpha: float = 0.8,
        dwa_temperature: float = 500.0,
        kd_temperature: float = 4.0,
        kd_t2: bool = True,
        kd_through_teacher: bool = False,
        teacher: nn.Module | None = None,
        ohem_thresh: float = 0.7,
        binary_weights: Sequence[float] = BINARY_WEIGHTS,
        boundary_kernel: int = 3,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__()
        self.weighting = TaskWeighting(2, weighting, alpha, dwa_temperature)
        self.kd_temperature, self.kd_t2, self.kd_through_teacher = kd_temperature, kd_t2, kd_through_teacher
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False) if teacher is not None else None
        self.ohem_thresh = ohem_thresh
        self.binary_weights = tuple(binary_weights)
        self.boundary_kernel = boundary_kernel
        self.ignore_index = ignore_index

    def teacher_logits(self, out: FusionOutput, batch: Mapping[str, Any]) -> Tensor | None:
        """The distillation target: the teacher on the recombined fused image (without gradient unless
        ``kd_through_teacher``), else ``batch["teacher_logits"]`` (detached), else None."""
        if self.teacher is None:
            given = batch.get("teacher_logits")
            return None if given is None else given.detach()
        with torch.set_grad_enabled(self.kd_through_teacher and torch.is_grad_enabled()):
            return self.teacher(recombine(out.fused, batch["vi"])).logits

    def components(self, out: FusionOutput, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """The unweighted terms of eq. 14 (``kd`` when there is a teacher), attached to the graph."""
        missing = [k for k in ("ir", "vi", "label") if k not in batch]
        missing += [f"aux[{k!r}]" for k in ("seg", "seg_aux", "binary", "boundary") if k not in out.aux]
        if missing:
            raise TaskfuseError(
                f"MAFS loss needs {', '.join(missing)}; train mafs on a labelled dataset (MSRS/MFNet/FMB) with the "
                "mafs model's outputs"
            )
        ir, label, fused, aux = batch["ir"], batch["label"], out.fused, out.aux
        vi = luminance(batch["vi"])
        ignore = self.ignore_index
        min_kept = max(1, label.numel() // 16)
        comp = {
            "int": intensity_max_loss(fused, ir, vi),
            "grad": texture_max_loss(fused, ir, vi),
            "seg": ohem_cross_entropy(aux["seg"], label, self.ohem_thresh, min_kept, ignore),
            "boundary": F.cross_entropy(
                aux["boundary"], boundary_target(label, self.boundary_kernel, ignore), ignore_index=ignore
            ),
            "binary": weighted_cross_entropy(aux["binary"], binary_target(label, ignore), self.binary_weights, ignore),
            "seg_aux": ohem_cross_entropy(aux["seg_aux"], label, self.ohem_thresh, min_kept, ignore),
        }
        teacher = self.teacher_logits(out, batch)
        if teacher is not None:
            comp["kd"] = distillation_loss(aux["seg"], teacher, self.kd_temperature, self.kd_t2)
        return comp

    @staticmethod
    def task_losses(comp: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """``(L_fus, L_seg-task)`` of eq. 14 from ``components``."""
        fusion = comp["int"] + comp["grad"]
        segmentation = comp["seg"] + comp["boundary"] + comp["binary"] + comp["seg_aux"]
        return fusion, segmentation + comp["kd"] if "kd" in comp else segmentation

    def terms(self, out: FusionOutput, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """Every component times the weight it has in the gradient of the total (its task's λ times the slope of
        the α-fair transform at the task loss, detached), so each term's gradient is its part of the total's
        gradient (``taskfuse.losses.base.gradient_shares`` reads them). Does not advance the DWA weights."""
        comp = self.components(out, batch)
        losses = torch.stack(self.task_losses(comp)).detach()
        scale = self.weighting.current_weights().to(losses) * self.weighting.slope(losses)
        return {k: scale[0 if k in ("int", "grad") else 1] * v for k, v in comp.items()}

    def forward(self, out: FusionOutput, batch: Mapping[str, Any]) -> LossTerms:
        comp = self.components(out, batch)
        weights = self.weighting.current_weights()
        terms = self.weighting(list(self.task_losses(comp)))
        parts = {"fusion": terms[0], "segmentation": terms[1], **comp}
        logged = {k: v.detach() for k, v in parts.items()}
        logged["w_fusion"], logged["w_segmentation"] = weights[0], weights[1]
        return LossTerms(terms.sum(), logged)


class MAFSFusionLoss(MAFSLoss):
    """Stage II's fusion loss alone, ``L_int + L_grad`` (eqs. 15-16), for pairs without labels
    (``fusion_only``): no segmentation, distillation or task weighting."""

    def forward(self, out: FusionOutput, batch: Mapping[str, Any]) -> LossTerms:
        ir, vi = batch["ir"], luminance(batch["vi"])
        parts = {"int": intensity_max_loss(out.fused, ir, vi), "grad": texture_max_loss(out.fused, ir, vi)}
        return LossTerms(parts["int"] + parts["grad"], {k: v.detach() for k, v in parts.items()})
