"""``lite``: the built-in default fusion network (``network.py``), its objective (``loss.py``), its shipped
weights (``lite.safetensors``) and model card (``MODEL_CARD.md``). Trained fusion-only on unlabelled pairs
(``configs/lite.yaml``), then with a detector in SeAFusion's rounds on the MSRS boxes
(``configs/lite_msrs_det.yaml``, ``iterative_joint``).
"""

from __future__ import annotations

from pathlib import Path

from taskfuse.models.lite.loss import LiteLoss
from taskfuse.models.lite.network import LiteFusion
from taskfuse.models.spec import MethodSpec, register

SPEC = register(
    MethodSpec(
        name="lite",
        network=LiteFusion,
        loss=LiteLoss,
        tasks=("detection", "keypoints"),
        strategy="iterative_joint",
        config="lite",
        small={"width": 8},
        weights=Path(__file__).parent / "lite.safetensors",
        source="taskfuse (SeAFusion's recipe made fast; MODEL_CARD.md)",
    )
)

__all__ = ["SPEC", "LiteFusion", "LiteLoss"]
