"""Training with the task in the loop: configs, strategies, the shared loop, checkpoints.

>>> from taskfuse.train import load_config, train
>>> cfg = load_config("psfusion_synthetic", ["train.steps=100"])
>>> result = train(cfg)                         # runs/psfusion-<date>-<time>/fusion.safetensors

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
