"""Training with the task in the loop: configs, strategies, the shared loop, checkpoints.

>>> from taskfuse.train import load_config, train
>>> cfg = load_config("psfusion_synthetic", ["train.iters=100", "train.batch_size=4"])
>>> cfg.strategy, cfg.train.iters, cfg.data.train.name
('single_stage', 100, 'synthetic')

``train(cfg)`` then trains into ``runs/psfusion-<date>-<time>/`` (``fusion.safetensors``, metrics, checkpoints);
``load_config(..., quick=True)`` makes any config a run of a few small steps (an example in ``taskfuse.train.loop``).

The command line is ``taskfuse train`` (``taskfuse/cli/train.py``). Heavy modules load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_config", "train"]


def __getattr__(name: str) -> Any:
    if name == "load_config":
        from taskfuse.train.resolve import load_config

        return load_config
    if name == "train":
        from taskfuse.train.loop import train

        return train
    raise AttributeError(name)
