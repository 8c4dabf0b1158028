"""DSIFuse objective (seed 004, Sec. 3.5): ``L = μ L_int + ζ L_gra + η L_sem`` with μ = 155, ζ = 10, η = 7.

* ``L_int``: ``mean(δ(M_R + M_label) |D_f - X_R|) + mean(δ(M_V + 1 - M_label) |D_f - X_V|)``, where
  ``M_R``, ``M_V`` are the 3 x 3 local-variance maps of the sources min-max normalised to [0, 1]
  (``fusion_terms.minmax_local_variance``; the visible map from its luminance), ``M_label`` the salient-object
  mask and ``δ`` the binary threshold (1 for positive input).
* ``L_gra``: ``mean| |∇D_f| - max(|∇X_R|, |∇X_V|) |`` per RGB channel (Sobel magnitudes).
* ``L_sem``: ``Σ_t mean(||S_R^t - E^t||² + ||S_V^t - E^t||²)`` over the three interaction levels t (strides 8,
  16, 32): the priors' class probabilities resized (bilinear) to level t against the one-hot label resized
  by nearest neighbour; ``||.||²`` sums over classes, the mean runs over labelled pixels.

Two choices the paper leaves open or contradicts:

* ``masks``. Taken as written (``"written"``), ``δ(M_R + M_label)`` is 1 wherever the infrared local variance
  exceeds its image minimum, and ``δ(M_V + 1 - M_label)`` is 0 only on salient pixels of minimal visible
  variance: both terms cover almost every pixel and ``M_label`` changes the weights only on flat pixels (on
  none of the 537 target pixels of two synthetic 64 x 80 scenes; ``tests/models/test_dsifuse_loss.py``), so
  the loss does not do what Sec. 3.5 says it is for, "preserving salient infrared targets". The loss is
  PSFusion's eq. 17 ([15] in seed 004) with δ changed from a sigmoid to a threshold; PSFusion makes its
  contrast masks binary by comparing the two variances (its eq. 16). ``"compared"`` (the default) does the
  same with DSIFuse's normalised maps, ``M_R = [M_R > M_V]`` and ``M_V = [M_V > M_R]``, before δ: on every
  target pixel the infrared term is on and the visible term follows the visible contrast, on the background
  the reverse.
* ``ir_compare``. ``D_f`` is RGB (``R^{H×W×3}``) and ``X_R`` one channel; the paper does not say how they are
  compared. ``"luminance"`` (the default) compares the BT.601 luminance of ``D_f`` with ``X_R``: an infrared
  intensity says how bright, not what colour, and the visible term keeps the colour. ``"channels"`` compares
  each RGB channel with ``X_R`` (the literal broadcast), which pulls salient pixels towards gray.

Means run over pixels and channels (the paper's ``1/HW`` sums the channels of the RGB terms); μ = 155 is kept.
``M_label`` comes from ``label`` with ``object_classes`` or from ``boxes`` (``taskfuse.losses.masks``);
without either it is 0. Without ``label``, ``L_sem`` is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.data.classes import IGNORE_INDEX
from taskfuse.data.color import luminance
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import minmax_local_variance, texture_max_loss
from taskfuse.losses.masks import batch_foreground
from taskfuse.models.base import FusionOutput

MASKS = ("compared", "written")
IR_COMPARE = ("luminance", "channels")


def semantic_prior_loss(
    priors: Sequence[Tensor], label: Tensor, strides: Sequence[int] = (8, 16, 32), ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Multi-scale prior loss: for every stride and prior logits map, the mean over labelled pixels of the
    squared distance between the softmax probabilities and the one-hot label at that scale, summed. A label value
    the priors have no class for stops training: on the CPU with a ``TaskfuseError``, on a GPU with an assertion
    checked on the device (``torch._assert_async``), since reading the labels' maximum back to Python would make
    every step wait for the GPU."""
    h, w = label.shape[-2:]
    total = priors[0].new_zeros(())
    for stride in strides:
        size = (max(1, -(-h // stride)), max(1, -(-w // stride)))
        lab = F.interpolate(label[:, None].float(), size=size, mode="nearest")[:, 0].long()
        valid = lab != ignore_index
        lab = lab.masked_fill(~valid, 0)
        valid = valid.unsqueeze(1)
        for logits in priors:
            k = logits.shape[1]
            try:
                torch._assert_async(lab.max() < k, f"label values reach {k} or more but the priors have {k} classes")
            except RuntimeError as e:
                raise TaskfuseError(f"{e}; set model.num_classes to the dataset's class count") from e
            prob = F.interpolate(logits, size=size, mode="bilinear", align_corners=False).softmax(1)
            classes = torch.arange(k, device=lab.device).view(1, k, 1, 1)
            onehot = (lab.unsqueeze(1) == classes).to(prob.dtype)
            err = ((prob - onehot) ** 2).sum(1, keepdim=True)
            total = total + (err * valid).sum() / valid.sum().clamp_min(1)
    return total


class DSIFuseLoss:
    """``μ L_int + ζ L_gra + η L_sem``; ``object_classes`` are the label values of ``M_label`` (None: all but 0);
    ``masks`` and ``ir_compare`` as in the module docstring."""

    def __init__(
        self,
        mu: float = 155.0,
        zeta: float = 10.0,
        eta: float = 7.0,
        window: int = 3,
        object_classes: Sequence[int] | None = None,
        masks: str = "compared",
        ir_compare: str = "luminance",
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        if masks not in MASKS:
            raise TaskfuseError(f"loss.masks {masks!r} is not one of {', '.join(MASKS)}; fix the config")
        if ir_compare not in IR_COMPARE:
            raise TaskfuseError(f"loss.ir_compare {ir_compare!r} is not one of {', '.join(IR_COMPARE)}; fix the config")
        self.mu, self.zeta, self.eta, self.window = mu, zeta, eta, window
        self.object_classes = None if object_classes is None else tuple(object_classes)
        self.masks, self.ir_compare = masks, ir_compare
        self.ignore_index = ignore_index

    def intensity_weights(self, ir: Tensor, vi: Tensor, m_label: Tensor) -> tuple[Tensor, Tensor]:
        """``δ(M_R + M_label)`` and ``δ(M_V + 1 - M_label)``, (B, 1, H, W) of 0 and 1, for RGB ``vi``."""
        m_r = minmax_local_variance(ir, self.window)
        m_v = minmax_local_variance(luminance(vi), self.window)
        if self.masks == "compared":
            m_r, m_v = (m_r > m_v).to(ir.dtype), (m_v > m_r).to(ir.dtype)
        return (m_r + m_label > 0).to(ir.dtype), (m_v + 1 - m_label > 0).to(ir.dtype)

    def terms(self, out: FusionOutput, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """The weighted terms, attached to the graph."""
        if out.fused.shape[1] != 3:
            raise TaskfuseError("DSIFuse loss expects an RGB fused image; train it with the dsifuse model")
        ir, vi, fused = batch["ir"], batch["vi"], out.fused
        if vi.shape[1] != 3:
            raise TaskfuseError("DSIFuse loss needs the visible image as RGB (B, 3, H, W) in batch['vi']")
        m_label = batch_foreground(batch, self.object_classes)
        if m_label is None:
            m_label = torch.zeros_like(ir)
        w_r, w_v = self.intensity_weights(ir, vi, m_label)
        ir_error = (luminance(fused) if self.ir_compare == "luminance" else fused) - ir
        parts = {
            "int": self.mu * ((w_r * ir_error.abs()).mean() + (w_v * (fused - vi).abs()).mean()),
            "gra": self.zeta * texture_max_loss(fused, ir, vi),
        }
        if batch.get("label") is not None:
            priors = [out.aux["prior_vi"], out.aux["prior_ir"]]
            parts["sem"] = self.eta * semantic_prior_loss(priors, batch["label"], ignore_index=self.ignore_index)
        return parts

    def __call__(self, out: FusionOutput, batch: Mapping[str, Any]) -> LossTerms:
        return LossTerms.of(self.terms(out, batch))
