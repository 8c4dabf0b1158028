"""PSFusion's full objective (seed 001, eqs. 16-22), as the paper writes it or as the authors' code computes it.

Binary and boundary targets come from the semantic label (``taskfuse.losses.masks``), as does the
salient-target mask ``M_tar`` of eq. 17 (after STDFusionNet): 1 on pixels of ``target_classes`` (default car,
person, bike, the thermally salient MSRS classes).

The paper and the released code (github.com/Linfeng-Tang/PSFusion: ``losses.py`` ``Fusion_loss``,
``Fusion_losses.py`` ``final_mse1``, ``train.py``) differ in the intensity and texture terms; ``variant``
chooses:

* ``"paper"``: eq. 17, ``mean|δ(M_ir + M_tar)(I_f - I_ir)| + mean|δ(M_vi + 1 - M_tar)(I_f - I_vi)|`` with
  δ the sigmoid (0.5, 0.73 or 0.88), and eq. 18 on ``|∇| = |Gx| + |Gy|``. The sigmoid never goes below 0.5, so
  both sources pull on every pixel: on a target pixel the visible image still has weight 0.5 or 0.73 against
  the infrared's 0.73 or 0.88;
* ``"released"``: ``final_mse1``: one source per pixel, the infrared where ``M_ir + M_tar > 0`` (more infrared
  contrast, or a target) and the visible elsewhere, each compared by its 9 x 9 local mean squared error
  (``released_intensity_loss``); the texture term per Sobel component, ``mean| |Gx_f| - max(|Gx_ir|,
  |Gx_vi|) | + mean| |Gy_f| - max(|Gy_ir|, |Gy_vi|) |``. Target pixels follow the infrared alone;
* ``"released_as_run"``: the same as ``train.py`` runs it. It calls ``Fusion_loss(vi_Y, img_ir, ...)`` while
  ``Fusion_loss`` is declared ``(ir, vi, ...)``, so inside ``final_mse1`` the roles swap: the visible image is
  taken where its variance is higher *or on a target*, the infrared elsewhere (ties included).

``released`` is the default: it is the released loss with the masks assigned as its variable names, eq. 17
and the paper's text (sec. 3.2.1, "preserve the significant targets in the infrared images"; Fig. 17 and
Table 3) assign them, and it keeps the most infrared on the targets (docs/models.md gives the short runs).
Both forms weight the terms alike: ``λ_f (L_int + L_text) + L_corr`` is the code's ``10 int + 10 grad + corr``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.data.classes import IGNORE_INDEX
from taskfuse.data.color import luminance
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import (
    contrast_masks,
    correlation_loss,
    mask_intensity_loss,
    scene_fidelity_loss,
    texture_max_loss,
)
from taskfuse.losses.masks import BINARY_WEIGHTS, binary_target, boundary_target, foreground_from_labels
from taskfuse.models.base import FusionOutput
from taskfuse.nn.sobel import sobel_xy
from taskfuse.tasks.segmentation.loss import ohem_cross_entropy, weighted_cross_entropy

TARGET_CLASSES = (1, 2, 3)
"""MSRS / MFNet car, person, bike: the classes whose pixels form the salient-target mask by default."""

VARIANTS = ("paper", "released", "released_as_run")


def local_squared_error(a: Tensor, b: Tensor, window: int = 9) -> Tensor:
    """``(a - b)²`` averaged over every ``window`` x ``window`` box, zero padding (``Fusion_losses.py`` ``mse``:
    ``F.unfold`` of both images, squared difference summed over the box and divided by its size)."""
    return F.avg_pool2d((a - b) ** 2, window, stride=1, padding=window // 2, count_include_pad=True)


def released_intensity_loss(
    fused: Tensor, first: Tensor, second: Tensor, m_first: Tensor, m_tar: Tensor, window: int = 9
) -> Tensor:
    """``final_mse1``: ``mean(P · e(first) + (1 - P) · e(second))`` with ``P = [M_first + M_tar > 0]`` and
    ``e(x)`` the local squared error of the fused image against ``x`` (``local_squared_error``).

    ``first`` is the source taken on targets and where ``m_first`` marks its higher contrast: the infrared
    image as the code's names intend, the visible one in the argument order ``train.py`` uses."""
    pick = (m_first + m_tar > 0).to(fused.dtype)
    e_first = local_squared_error(fused, first, window)
    e_second = local_squared_error(fused, second, window)
    return (pick * e_first + (1 - pick) * e_second).mean()


def texture_component_loss(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """The released texture term: ``mean| |Gx_f| - max(|Gx_ir|, |Gx_vi|) | + mean| |Gy_f| - max(|Gy_ir|,
    |Gy_vi|) |`` per Sobel component (``losses.py`` ``Fusion_loss``), where eq. 18 compares magnitudes."""
    (fx, fy), (ix, iy), (vx, vy) = sobel_xy(fused), sobel_xy(ir), sobel_xy(vi)
    gx = (fx.abs() - torch.maximum(ix.abs(), vx.abs())).abs().mean()
    return gx + (fy.abs() - torch.maximum(iy.abs(), vy.abs())).abs().mean()


class PSFusionLoss:
    """``L = λ_f (L_int + L_text + α L_corr) + λ_sf (L_sf^vi + L_sf^ir) + λ_se (L_se + L_bd + L_bi)`` (eq. 22).

    * ``L_int``: contrast- and target-masked intensity (eqs. 16-17, or ``final_mse1``: see the module
      docstring) against the IR image and the visible Y;
    * ``L_text``: max-gradient texture (eq. 18, or per Sobel component); ``L_corr``: inverse correlation
      (eq. 19);
    * ``L_sf``: scene fidelity of the IR and visible-Y reconstructions (eq. 21);
    * ``L_se``: OHEM cross-entropy of the semantic logits (threshold 0.75 and at least 1/16 of the pixels,
      from the authors' ``train.py``);
    * ``L_bd``: cross-entropy of the boundary logits; ``L_bi``: class-weighted cross-entropy of the binary
      logits.

    Weights λ_f = 10, λ_sf = 5, λ_se = 10, α = 0.1 (section 4.1). ``parts`` holds every term times its
    weight, so they sum to ``total``. The batch needs ``ir``, ``vi`` and ``label``.
    """

    def __init__(
        self,
        variant: str = "released",
        lambda_f: float = 10.0,
        lambda_sf: float = 5.0,
        lambda_se: float = 10.0,
        alpha: float = 0.1,
        target_classes: Sequence[int] = TARGET_CLASSES,
        binary_weights: Sequence[float] = BINARY_WEIGHTS,
        ohem_thresh: float = 0.75,
        boundary_kernel: int = 3,
        variance_window: int = 9,
        variance_sigma: float = 1.5,
        mse_window: int = 9,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        if variant not in VARIANTS:
            raise TaskfuseError(f"loss.variant {variant!r} is not one of {', '.join(VARIANTS)}; fix the config")
        self.variant = variant
        self.lambda_f, self.lambda_sf, self.lambda_se, self.alpha = lambda_f, lambda_sf, lambda_se, alpha
        self.target_classes = tuple(target_classes)
        self.binary_weights = tuple(binary_weights)
        self.ohem_thresh = ohem_thresh
        self.boundary_kernel = boundary_kernel
        self.variance_window, self.variance_sigma = variance_window, variance_sigma
        self.mse_window = mse_window
        self.ignore_index = ignore_index

    def fusion_terms(self, out: FusionOutput, batch: Mapping[str, Tensor], m_tar: Tensor) -> dict[str, Tensor]:
        """The weighted terms of the fusion and scene-fidelity losses, with target mask ``m_tar``."""
        ir, fused = batch["ir"], out.fused
        vi = luminance(batch["vi"])
        m_ir, m_vi = contrast_masks(ir, vi, self.variance_window, self.variance_sigma)
        if self.variant == "paper":
            intensity = mask_intensity_loss(fused, ir, vi, m_ir, m_vi, m_tar)
            texture = texture_max_loss(fused, ir, vi)
        else:
            first = (ir, vi, m_ir) if self.variant == "released" else (vi, ir, m_vi)
            intensity = released_intensity_loss(fused, first[0], first[1], first[2], m_tar, self.mse_window)
            texture = texture_component_loss(fused, ir, vi)
        return {
            "int": self.lambda_f * intensity,
            "text": self.lambda_f * texture,
            "corr": self.lambda_f * self.alpha * correlation_loss(fused, ir, vi),
            "sf_ir": self.lambda_sf * scene_fidelity_loss(out.aux["ir_rec"], ir),
            "sf_vi": self.lambda_sf * scene_fidelity_loss(out.aux["vi_rec"], vi),
        }

    def terms(self, out: FusionOutput, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Every weighted term of eq. 22, attached to the graph."""
        missing = [k for k in ("ir", "vi", "label") if k not in batch]
        missing += [f"aux[{k!r}]" for k in ("semantic", "boundary", "binary", "ir_rec", "vi_rec") if k not in out.aux]
        if missing:
            raise TaskfuseError(
                f"PSFusion loss needs {', '.join(missing)}; train psfusion on a labelled dataset (MSRS/MFNet) "
                "with the psfusion model's outputs"
            )
        label, ignore = batch["label"], self.ignore_index
        m_tar = foreground_from_labels(label, self.target_classes, ignore).to(out.fused.dtype)
        return {
            **self.fusion_terms(out, batch, m_tar),
            "se": self.lambda_se
            * ohem_cross_entropy(out.aux["semantic"], label, self.ohem_thresh, ignore_index=ignore),
            "bd": self.lambda_se
            * F.cross_entropy(
                out.aux["boundary"], boundary_target(label, self.boundary_kernel, ignore), ignore_index=ignore
            ),
            "bi": self.lambda_se
            * weighted_cross_entropy(out.aux["binary"], binary_target(label, ignore), self.binary_weights, ignore),
        }

    def __call__(self, out: FusionOutput, batch: Mapping[str, Tensor]) -> LossTerms:
        return LossTerms.of(self.terms(out, batch))


class PSFusionFusionLoss(PSFusionLoss):
    """Eq. 22 without the semantic terms, for pairs without labels (``fusion_only``):
    ``λ_f (L_int + L_text + α L_corr) + λ_sf (L_sf^ir + L_sf^vi)`` in the chosen ``variant``. The salient-target
    mask of eq. 17 needs labels; without them ``M_tar = 0``, so the intensity term weights (``paper``) or picks
    (``released``) each source by its contrast mask alone. The semantic heads are left untrained."""

    def terms(self, out: FusionOutput, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return self.fusion_terms(out, batch, torch.zeros_like(out.fused))
