"""MAFS (seed 002): one network for fusion and segmentation. Network with its masked-autoencoder pretext
(``network.py``), stage-I, stage-II and label-free objectives (``loss.py``), trained by ``mafs_two_stage``. Its
segmentation decoder and distilled teacher learn from label masks, so only segmentation can guide it (``tasks``);
detection boxes are refused when a config asks for them.

The full-scale synthetic benchmark uses ResNet-50 encoders instead of the paper's ResNet-152 so that a run fits
a GPU session (``benchmark``).
"""

from __future__ import annotations

from taskfuse.models.mafs.loss import MAFSFusionLoss, MAFSLoss, MAFSPretextLoss
from taskfuse.models.mafs.network import MAFS
from taskfuse.models.spec import MethodSpec, register

SPEC = register(
    MethodSpec(
        name="mafs",
        network=MAFS,
        loss=MAFSLoss,
        fusion_loss=MAFSFusionLoss,
        pretext_loss=MAFSPretextLoss,
        seg_head="seg",
        tasks=("segmentation",),
        strategy="mafs_two_stage",
        config="mafs",
        small={"depth": 18, "channels": 16, "inn_blocks": 1, "mask_patch": 8},
        benchmark={"depth": 50},
        source="Wang, Zhang, Jia, Ma, IEEE TIP (2025); seed 002",
    )
)

__all__ = ["MAFS", "SPEC", "MAFSFusionLoss", "MAFSLoss", "MAFSPretextLoss"]
