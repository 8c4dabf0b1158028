"""Segmentation losses of the task-in-the-loop methods.

``ohem_cross_entropy`` is online hard example mining cross-entropy as in BiSeNet's and SeAFusion's
``OhemCELoss`` (``Linfeng-Tang/SeAFusion``, ``loss.py``; threshold 0.7, at least 1/16 of the batch's pixels):
per-pixel cross-entropy, keep the pixels whose probability of the true class is below ``thresh``
(loss > -log thresh); when fewer than ``min_kept`` are that hard, keep the ``min_kept`` largest losses instead;
average what is kept. Unlike that code, pixels labelled ``ignore_index`` are removed before ranking (it ranks
their zero losses with the rest).

``main_aux_loss`` is the semantic loss of seed 000 Eq. 9, ``L_seg = L_main + lambda_1 L_aux`` with
lambda_1 = 0.1; Eqs. 10-11 write both terms as plain cross-entropy, SeAFusion's code (``train.py``,
``seg_loss = lossp + 0.1 * loss2``) uses OHEM for both, which is the default criterion here. Pass
``functools.partial(torch.nn.functional.cross_entropy, ignore_index=255)`` for the plain form.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.data.classes import IGNORE_INDEX
from taskfuse.errors import TaskfuseError
from taskfuse.losses.base import LossTerms
from taskfuse.tasks.segmentation.base import SegmentationOutput


def _label_map(logits: Tensor, target: Tensor) -> Tensor:
    """``target`` as (B, H, W) int64 matching ``logits`` (B, C, H, W); (B, 1, H, W) is accepted."""
    if target.dim() == 4 and target.shape[1] == 1:
        target = target[:, 0]
    if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
        raise TaskfuseError(
            f"segmentation target {tuple(target.shape)} does not match logits {tuple(logits.shape)}; "
            "labels must be (B, H, W) class indices at the logits' resolution"
        )
    if target.is_floating_point():
        raise TaskfuseError("segmentation target must hold integer class indices, got a float tensor")
    return target.long()


def ohem_cross_entropy(
    logits: Tensor,
    target: Tensor,
    thresh: float = 0.7,
    min_kept: int | None = None,
    ignore_index: int = IGNORE_INDEX,
) -> Tensor:
    """OHEM cross-entropy of (B, C, H, W) ``logits`` against (B, H, W) labels (see the module docstring).

    ``min_kept`` defaults to 1/16 of the labelled pixels (SeAFusion: ``n_min = B * H * W // 16``); at least one
    pixel is always kept. Returns 0 (still attached to the graph) when no pixel is labelled.

    Both means, of the hard pixels and of the ``min_kept`` largest losses, are computed and the rule picks one on
    the device: choosing in Python would read a count back from the GPU, a wait in every training step.
    """
    if not 0.0 < thresh <= 1.0:
        raise TaskfuseError(f"OHEM thresh must be in (0, 1], got {thresh}")
    target = _label_map(logits, target)
    loss = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="none").flatten()
    labelled = target.flatten() != ignore_index
    count = labelled.sum()
    if min_kept is None:
        keep, most = (count // 16).clamp(min=1), max(loss.numel() // 16, 1)
    else:
        keep, most = count.clamp(min=1, max=max(min_kept, 1)), max(min(min_kept, loss.numel()), 1)
    hard = labelled & (loss > -math.log(thresh))
    hardest = hard.sum()
    hard_mean = torch.where(hard, loss, 0.0).sum() / hardest.clamp(min=1)
    top = loss.masked_fill(~labelled, 0.0).topk(most).values
    top_mean = torch.where(torch.arange(most, device=loss.device) < keep, top, 0.0).sum() / keep
    return torch.where(hardest >= keep, hard_mean, top_mean)


class OhemCrossEntropy(nn.Module):
    """Module form of ``ohem_cross_entropy`` with fixed settings."""

    def __init__(self, thresh: float = 0.7, min_kept: int | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.thresh = thresh
        self.min_kept = min_kept
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return ohem_cross_entropy(logits, target, self.thresh, self.min_kept, self.ignore_index)


def main_aux_loss(
    out: SegmentationOutput,
    target: Tensor,
    aux_weight: float = 0.1,
    criterion: Callable[[Tensor, Tensor], Tensor] = ohem_cross_entropy,
) -> LossTerms:
    """Seed 000 Eq. 9: ``criterion(main) + aux_weight * sum(criterion(aux_i))``.

    ``parts`` holds ``seg_main`` and, when the network has auxiliary heads, the weighted ``seg_aux``.
    """
    main = criterion(out.logits, target)
    parts = {"seg_main": main.detach()}
    if not out.aux:
        return LossTerms(main, parts)
    aux = aux_weight * sum(criterion(a, target) for a in out.aux)
    parts["seg_aux"] = aux.detach()
    return LossTerms(main + aux, parts)


def weighted_cross_entropy(
    logits: Tensor, target: Tensor, weights: Sequence[float], ignore_index: int = IGNORE_INDEX
) -> Tensor:
    """Class-weighted cross-entropy, normalised by the summed weights of the counted pixels."""
    w = torch.tensor(list(weights), dtype=logits.dtype).to(logits.device, non_blocking=True)
    return F.cross_entropy(logits, target, weight=w, ignore_index=ignore_index)
