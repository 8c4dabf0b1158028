"""PSFusion (seed 001): progressive semantic injection and scene fidelity. Network (``network.py``), objective of
eq. 22 and its label-free form (``loss.py``). Its semantic, binary and boundary heads learn from label masks, so
only segmentation can guide it (``tasks``); detection boxes are refused when a config asks for them.
"""

from __future__ import annotations

from taskfuse.models.psfusion.loss import PSFusionFusionLoss, PSFusionLoss
from taskfuse.models.psfusion.network import PSFusion
from taskfuse.models.spec import MethodSpec, register

SPEC = register(
    MethodSpec(
        name="psfusion",
        network=PSFusion,
        loss=PSFusionLoss,
        fusion_loss=PSFusionFusionLoss,
        seg_head="semantic",
        tasks=("segmentation",),
        strategy="single_stage",
        config="psfusion",
        small={"backbone_depth": 18, "width": 16, "rec_width": 8},
        source="Tang, Zhang, Xu, Ma, Inf. Fusion 99 (2023); seed 001",
    )
)

__all__ = ["SPEC", "PSFusion", "PSFusionFusionLoss", "PSFusionLoss"]
