"""Fusion-quality metrics by their paper names, and a batched accumulator over a whole test set.

``METRICS`` maps the names used in fusion papers to the functions of ``taskfuse.metrics.functional``
(each ``name(fused, ir, vi) -> (B,)`` float64, matching the SeAFusion / PSFusion MATLAB evaluation).
``DEFAULT_METRICS`` is the set most papers report. ``FusionMetrics`` collects per-image values batch by
batch, like a torchmetrics metric::

    metrics = FusionMetrics()                 # DEFAULT_METRICS
    for fused, ir, vi in loader:
        metrics.update(fused, ir, vi)
    per_image = metrics.compute()             # {"EN": tensor([...]), ...}
    averages = metrics.mean()                 # {"EN": 6.71, ...}
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import torch
from torch import Tensor

from taskfuse.errors import TaskfuseError
from taskfuse.metrics import functional as fm

METRICS: dict[str, fm.MetricFn] = {info.name: info.fn for info in map(fm.FUSION_METRICS.get, fm.FUSION_METRICS)}
"""Every registered metric function by its paper name (``taskfuse.metrics.functional.FUSION_METRICS``)."""

HIGHER_IS_BETTER: dict[str, bool] = {n: fm.FUSION_METRICS.get(n).higher_is_better for n in METRICS}
"""Each metric's better direction, read from its registration."""

DEFAULT_METRICS: tuple[str, ...] = ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM")
"""The set most fusion papers report."""


def metric_info(name: str) -> fm.MetricInfo:
    """A metric's function and facts by name in any case; typos raise with the closest names."""
    if not isinstance(name, str):
        raise TaskfuseError(f"metric names are strings, got {name!r}; use names such as {', '.join(METRICS)}")
    return fm.FUSION_METRICS.get(name)


def metric_name(name: str) -> str:
    """The canonical spelling of a metric name given in any case ("qabf" -> "Qabf"); typos raise with hints."""
    return metric_info(name).name


class FusionMetrics:
    """Accumulates per-image fusion metrics over batches; ``compute`` returns them all, ``mean`` averages.

    ``names``: metric names in any case (default ``DEFAULT_METRICS``), kept in the given order.
    ``sf_scale``: ``"reference"`` (default) computes SF on ``im2double`` images as the reference script
    does; ``"published"`` on 0..255 images as the PSFusion / MAFS tables (255 times larger).
    Inputs follow ``taskfuse.metrics.functional`` (uint8 levels or float in [0, 1], 1 or 3 channels);
    each batch is converted to 8-bit gray once and every metric is computed on it, on the input's device.
    """

    def __init__(self, names: Iterable[str] | None = None, sf_scale: str = "reference") -> None:
        if isinstance(names, str):
            names = [names]
        self.names = [metric_name(n) for n in (DEFAULT_METRICS if names is None else names)]
        if not self.names:
            raise TaskfuseError("FusionMetrics needs at least one metric name; leave names out for the defaults")
        if len(set(self.names)) != len(self.names):
            raise TaskfuseError(f"metric names repeat in {self.names}; list each metric once")
        if sf_scale not in fm.SF_SCALES:
            raise TaskfuseError(f"sf_scale {sf_scale!r} is not one of {', '.join(fm.SF_SCALES)}")
        self.sf_scale = sf_scale
        infos = [metric_info(n) for n in self.names]
        self._functions: dict[str, fm.MetricFn] = {
            i.name: partial(i.fn, scale=sf_scale) if sf_scale in i.scales else i.fn for i in infos
        }
        self._values: dict[str, list[Tensor]] = {n: [] for n in self.names}

    @torch.no_grad()
    def update(self, fused: Tensor, ir: Tensor, vi: Tensor) -> dict[str, Tensor]:
        """Score one batch; returns this batch's values (each (B,) float64) and keeps them for ``compute``."""
        f8, ir8, vi8 = fm.prepare(fused, ir, vi)
        with fm.shared_sources():
            batch = {n: fn(f8, ir8, vi8) for n, fn in self._functions.items()}
        for n, v in batch.items():
            self._values[n].append(v)
        return batch

    def compute(self) -> dict[str, Tensor]:
        """Per-image values of every metric since the last ``reset``, concatenated in update order."""
        if not len(self):
            raise TaskfuseError("FusionMetrics.compute() before any update(); score at least one batch first")
        return {n: torch.cat(v) for n, v in self._values.items()}

    def mean(self) -> dict[str, float]:
        """Average of each metric over all images seen (NaN values, e.g. CC of a flat image, propagate)."""
        return {n: v.mean().item() for n, v in self.compute().items()}

    def reset(self) -> None:
        """Forget all accumulated values."""
        self._values = {n: [] for n in self.names}

    def __len__(self) -> int:
        """Number of images scored since the last ``reset``."""
        return sum(v.numel() for v in self._values[self.names[0]])
