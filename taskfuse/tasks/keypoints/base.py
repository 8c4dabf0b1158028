"""The registry of keypoint networks (each module of this package registers its own)."""

from __future__ import annotations

from taskfuse.registry import Registry

KEYPOINT_NETS: Registry = Registry("keypoint network")
