"""FGFusion (seed 003): foreground-guided fusion. Network (``network.py``) and objective (``loss.py``); without
labels or boxes the objective drops its foreground term. Detection guidance (``train.task: detection``) draws the
foreground masks from the boxes (``tasks``).
"""

from __future__ import annotations

from taskfuse.models.fgfusion.loss import FGFusionLoss
from taskfuse.models.fgfusion.network import FGFusion
from taskfuse.models.spec import MethodSpec, register

SPEC = register(
    MethodSpec(
        name="fgfusion",
        network=FGFusion,
        loss=FGFusionLoss,
        tasks=("segmentation", "detection"),
        strategy="single_stage",
        task_head=("foreground",),
        config="fgfusion",
        small={
            "shallow_channels": 8,
            "deep_channels": 16,
            "coupling_blocks": 1,
            "dense_layers": 2,
            "dense_growth": 4,
            "heads": 2,
        },
        source="Chen, Feng, Wang, Li, J. Beijing Inst. Technol. (2026); seed 003",
    )
)

__all__ = ["SPEC", "FGFusion", "FGFusionLoss"]
