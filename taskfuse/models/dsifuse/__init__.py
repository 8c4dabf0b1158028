"""DSIFuse (seed 004): semantic-guided multi-level collaborative fusion. Network (``network.py``) and objective
(``loss.py``); without labels the objective keeps its intensity and gradient terms. Detection guidance
(``train.task: detection``) draws ``M_label`` from the boxes, without the semantic prior loss (``tasks``).
"""

from __future__ import annotations

from taskfuse.models.dsifuse.loss import DSIFuseLoss
from taskfuse.models.dsifuse.network import DSIFuse
from taskfuse.models.spec import MethodSpec, register

SPEC = register(
    MethodSpec(
        name="dsifuse",
        network=DSIFuse,
        loss=DSIFuseLoss,
        tasks=("segmentation", "detection"),
        strategy="single_stage",
        config="dsifuse",
        small={"depth": 18, "decoder_channels": [8, 8, 16, 16, 32]},
        source="Sensors 26(9) 2577 (2026); seed 004",
    )
)

__all__ = ["SPEC", "DSIFuse", "DSIFuseLoss"]
