"""The authors' released SeAFusion weights (``SeAFusion.pth``, a state_dict of their ``FusionNet``) as taskfuse
``seafusion`` weights.

All 52 tensors the authors' forward uses map one to one onto ``SeAFusion`` with identical shapes: 44
convolution weights and biases, and the 8 trainable Sobel-initialised gradient kernels of the four GRDBs
(``{vis,inf}_rgbd{1,2}.sobelconv.conv{x,y}.weight``). The 20 BatchNorm tensors of ``decode1``-``decode4`` are
dropped: ``FusionNet.py`` defines those layers but its ``forward`` never applies them. The stored config turns
on the authors' output post-processing (``postprocess: official``, see ``SeAFusion``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from taskfuse.models.official import Release, provenance, read_state_dict, renamed, sha256
from taskfuse.models.seafusion.network import SeAFusion

NAME = "seafusion-official"
EXPECTED = "the authors' SeAFusion.pth (a state_dict of their FusionNet, 72 tensors)"
RELEASE = Release(
    file="SeAFusion.pth",
    sha256="8d65a7f9a50f36349803368cf9920f40420776995e7e8cc8a56d8d30e499431d",
    description="SeAFusion fusion network (Tang, Yuan, Ma, Inf. Fusion 82, 2022), the authors' weights",
    trained_on="MSRS, with the BiSeNet segmenter in the loop",
    licence="MIT (redistributed by Linfeng-Tang/VIF-Benchmark)",
    source="github.com/Linfeng-Tang/VIF-Benchmark (Checkpoint/SeAFusion), from github.com/Linfeng-Tang/SeAFusion",
)
CONFIG: dict[str, Any] = {"widths": [16, 32, 48], "postprocess": "official"}

_ENCODER = {"vis": "vi_encoder", "inf": "ir_encoder"}
_GRDB = {
    "dense.conv1.conv": "dense.layers.0.0",
    "dense.conv2.conv": "dense.layers.1.0",
    "convdown.conv": "squeeze",
    "convup.conv": "grad",
    "sobelconv.convx": "sobel.gx",
    "sobelconv.convy": "sobel.gy",
}
_DECODER = {"decode4": 0, "decode3": 1, "decode2": 2, "decode1": 3}


def taskfuse_name(key: str) -> str | None:
    """The ``SeAFusion`` parameter an official tensor name maps to; None for the unused BatchNorm tensors."""
    head, _, rest = key.partition(".")
    if head in _DECODER:
        if rest.startswith("bn."):
            return None
        return f"decoder.{_DECODER[head]}.0.{rest.removeprefix('conv.')}"
    modality, _, block = head.partition("_")
    if modality not in _ENCODER:
        return key
    if block == "conv":
        return f"{_ENCODER[modality]}.0.0.{rest.removeprefix('conv.')}"
    if block in ("rgbd1", "rgbd2"):
        part, _, param = rest.rpartition(".")
        if part in _GRDB:
            return f"{_ENCODER[modality]}.{block[-1]}.{_GRDB[part]}.{param}"
    return key


def read_official(path: Path) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any]]:
    """``SeAFusion.pth`` -> (``SeAFusion`` state dict, config, provenance)."""
    state = read_state_dict(path, EXPECTED)
    target = SeAFusion(**CONFIG).state_dict()
    mapped = renamed(state, taskfuse_name, target, path, EXPECTED)
    digest = sha256(path)
    release = RELEASE if digest == RELEASE.sha256 else None
    return mapped, dict(CONFIG), provenance(path, digest, release, NAME, RELEASE.file)
