"""SeAFusion (Tang, Yuan, Ma 2022, Inf. Fusion 82), the network seed 000 (AGF) retrains with the segmenter in the
loop: network (``network.py``), original and seed-000 objectives (``loss.py``), trained by ``iterative_joint``,
whose task network in the loop may be a segmenter (the paper's), a detector or a keypoint network (``tasks``);
the authors' released weights convert with ``taskfuse convert seafusion-official`` (``convert.py``).
"""

from __future__ import annotations

from taskfuse.models.seafusion import convert
from taskfuse.models.seafusion.loss import SeAFusionLoss
from taskfuse.models.seafusion.network import SeAFusion
from taskfuse.models.spec import Converter, MethodSpec, register

SPEC = register(
    MethodSpec(
        name="seafusion",
        network=SeAFusion,
        loss=SeAFusionLoss,
        tasks=("segmentation", "detection", "keypoints"),
        strategy="iterative_joint",
        config="seafusion",
        small={"widths": [8, 16, 16]},
        source="Tang, Yuan, Ma, Inf. Fusion 82 (2022); seed 000 (AGF)",
        converters=(
            Converter(
                convert.NAME,
                convert.read_official,
                "SeAFusion.pth, the authors' MSRS-trained weights (MIT, via Linfeng-Tang/VIF-Benchmark)",
            ),
        ),
    )
)

__all__ = ["SPEC", "SeAFusion", "SeAFusionLoss"]
