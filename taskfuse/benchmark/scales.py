"""Sizes of ``taskfuse benchmark synthetic``: how many scenes, how long every training, which downstream networks.

``small`` is a CPU integration run (a few minutes for every row, tiny networks, few steps: it checks that the
pipeline is complete, not which method wins). ``full`` is a run for one GPU in pieces of under ten minutes
(docs/benchmark.md): the papers' networks (MAFS with ResNet-50 encoders instead of 152, its teacher a
SegFormer-B0), scenes half the size of MSRS, every fusion network trained for the same 400 steps, downstream
networks for 20 epochs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from taskfuse.errors import TaskfuseError
from taskfuse.models.spec import MethodSpec
from taskfuse.train.schema import closest


@dataclass(frozen=True)
class Scale:
    """One preset. The learned methods' recipes are the shipped ``<method>_synthetic`` configs; a preset
    sets only the data, the lengths, the batch and crop, and the network sizes of ``models``."""

    name: str
    height: int
    """Scene height in pixels."""
    width: int
    """Scene width in pixels."""
    n_train: int
    """Training scenes (the fusion networks and the downstream networks train on the same ones)."""
    n_test: int
    """Test scenes: fusion metrics and downstream scores."""
    fusion_steps: int
    """Optimisation steps of every fusion network, identical for both variants of a method: SeAFusion's
    fusion phases together, MAFS's pretext plus stage II."""
    batch_size: int
    """Fusion-training batch size (every phase)."""
    crop: int
    """Fusion-training random crop (every phase)."""
    rounds: int
    """SeAFusion rounds; its fusion phases share ``fusion_steps`` evenly and λ is the round index."""
    segmenter_steps: int
    """SeAFusion's in-loop segmenter steps per round."""
    pretext_steps: int
    """MAFS stage-I steps, part of ``fusion_steps``."""
    teacher_steps: int
    """MAFS teacher-segmenter steps (task-guided only; the teacher is not the fusion network)."""
    teacher: str
    """MAFS teacher segmenter."""
    warmup: int
    """Warm-up steps of the phases whose recipe has one (PSFusion; SeAFusion's and MAFS's segmenters)."""
    classical: tuple[str, ...]
    """Classical fusion rules tabulated as rows."""
    segmenter: str
    """Downstream segmenter."""
    seg_epochs: int
    """Downstream segmenter epochs."""
    seg_lr: float
    """Downstream segmenter learning rate (AdamW)."""
    detection: bool
    """Also train and score the downstream detector."""
    detector: str
    """Downstream detector."""
    det_epochs: int
    """Downstream detector epochs."""
    det_lr: float
    """Downstream detector learning rate (AdamW)."""
    downstream_batch: int
    """Batch size of the downstream networks."""
    downstream_crop: int | None
    """Random crop of the downstream training images; None = whole images."""
    workers: int
    """Data-loader processes of every training."""
    checkpoint_every: int
    """Steps between resumable checkpoints of the fusion trainings (the last step always writes one)."""
    networks: Literal["small", "benchmark"] = "benchmark"
    """Which network every method's spec gives this preset: ``small`` (narrowed for a CPU) or ``benchmark`` (the
    paper's, with the spec's ``benchmark`` overrides where it does not fit one GPU session)."""

    def network(self, spec: MethodSpec) -> Mapping[str, Any]:
        """Keyword arguments over the method config's ``model:``."""
        return spec.small if self.networks == "small" else spec.benchmark


SMALL = Scale(
    name="small",
    height=96,
    width=128,
    n_train=24,
    n_test=8,
    fusion_steps=40,
    batch_size=4,
    crop=32,
    rounds=4,
    segmenter_steps=10,
    pretext_steps=10,
    teacher_steps=10,
    teacher="segformer-b0",
    warmup=4,
    classical=("max", "laplacian"),
    segmenter="segformer-b0",
    seg_epochs=3,
    seg_lr=1e-3,
    detection=False,
    detector="yolox-nano",
    det_epochs=3,
    det_lr=1e-3,
    downstream_batch=4,
    downstream_crop=None,
    workers=0,
    checkpoint_every=1000,
    networks="small",
)

FULL = Scale(
    name="full",
    height=240,
    width=320,
    n_train=160,
    n_test=60,
    fusion_steps=400,
    batch_size=8,
    crop=192,
    rounds=4,
    segmenter_steps=200,
    pretext_steps=100,
    teacher_steps=300,
    teacher="segformer-b0",
    warmup=50,
    classical=("mean", "max", "laplacian", "gff"),
    segmenter="segformer-b0",
    seg_epochs=20,
    seg_lr=6e-4,
    detection=True,
    detector="yolox-s",
    det_epochs=20,
    det_lr=1e-3,
    downstream_batch=8,
    downstream_crop=None,
    workers=0,
    checkpoint_every=200,
    networks="benchmark",
)

SCALES: dict[str, Scale] = {s.name: s for s in (SMALL, FULL)}


def get_scale(name: str) -> Scale:
    if name not in SCALES:
        raise TaskfuseError(f"--scale {name!r}: not a preset{closest(name, list(SCALES))} Known: {', '.join(SCALES)}")
    return SCALES[name]
