"""TarDAL (Liu et al., CVPR 2022): the generator of its target-aware dual adversarial fusion network
(``network.py``), its content loss for training on unlabelled pairs (``loss.py``), and the converters of the
authors' released weights (``convert.py``: ``taskfuse convert tardal-official`` / ``tardalpp-official``).
"""

from __future__ import annotations

from taskfuse.models.spec import MethodSpec, register
from taskfuse.models.tardal.convert import CONVERTERS
from taskfuse.models.tardal.loss import TarDALLoss
from taskfuse.models.tardal.network import TarDAL

SPEC = register(
    MethodSpec(
        name="tardal",
        network=TarDAL,
        loss=TarDALLoss,
        strategy="fusion_only",
        config="tardal",
        small={"dim": 8, "depth": 2},
        source="Liu et al., CVPR 2022 (TarDAL)",
        converters=CONVERTERS,
    )
)

__all__ = ["SPEC", "TarDAL", "TarDALLoss"]
