"""Training strategies, one module each, sharing the loop of ``taskfuse.train.loop``.

* ``single_stage``: one network and its loss, end to end (PSFusion, FGFusion, DSIFuse);
* ``iterative_joint``: SeAFusion's rounds alternating fusion network and segmenter (seed 000);
* ``mafs_two_stage``: MAFS's masked-autoencoder pretext, teacher and multi-task stages (seed 002);
* ``fusion_only``: any method on unlabelled pairs with its fusion loss alone;
* ``mixed``: unlabelled real pairs for the fusion loss interleaved with labelled batches for the task losses.
"""

from __future__ import annotations

from taskfuse.train.strategies import (  # noqa: F401  (each module registers its strategy)
    fusion_only,
    iterative_joint,
    mafs_two_stage,
    mixed,
    single_stage,
)
from taskfuse.train.strategies.base import STRATEGIES, Context, Strategy

__all__ = ["STRATEGIES", "Context", "Strategy"]
