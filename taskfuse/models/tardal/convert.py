"""The authors' released TarDAL generator weights as taskfuse ``tardal`` weights.

``tardal.pt`` and ``tardal++.pt`` are state_dicts of the same generator (46 tensors, identical names and
shapes) that the authors run differently: ``tardal.pt`` with the network left in training mode, so that
BatchNorm normalises each image by its own statistics, ``tardal++.pt`` in evaluation mode (running
statistics); both in fp32 on OpenCV's gray visible image, the 8-bit result put back as Y of the visible
image's OpenCV YCrCb. So there is one converter per release, each storing that release's settings
(``batchnorm``, ``color: official``). A file is identified by its SHA-256: the other release's file is
refused with the right converter named; a file that is neither (weights you trained with the authors' code)
converts with the converter's settings and says so in its provenance. The authors' names map onto ``TarDAL``
one to one, their ``fuse`` reconstructor being ``decoder`` here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import Tensor

from taskfuse.errors import TaskfuseError
from taskfuse.models.official import Release, provenance, read_state_dict, renamed, sha256
from taskfuse.models.spec import Converter
from taskfuse.models.tardal.network import TarDAL

EXPECTED = "a TarDAL generator state_dict (the authors' tardal.pt or tardal++.pt, 46 tensors)"
_LICENCE = "MIT (redistributed by Linfeng-Tang/VIF-Benchmark)"
_SOURCE = "github.com/Linfeng-Tang/VIF-Benchmark (Checkpoint/TarDAL), from github.com/JinyuanLiu-CV/TarDAL"
_TRAINED_ON = "not stated with the release; see the TarDAL paper (Liu et al., CVPR 2022)"

RELEASES = {
    "tardal-official": (
        Release(
            file="tardal.pt",
            sha256="e0fa61e25cffa9fb14ff17b47ea7ba237a6e8c6f37e1b9b115d63354ff0f13e1",
            description="TarDAL generator (Liu et al., CVPR 2022), the authors' default release, "
            "optimised for human vision",
            trained_on=_TRAINED_ON,
            licence=_LICENCE,
            source=_SOURCE,
        ),
        {"dim": 32, "depth": 3, "batchnorm": "batch", "color": "official"},
    ),
    "tardalpp-official": (
        Release(
            file="tardal++.pt",
            sha256="7009d125e36db043d6918d9358e10c6dca7fdf2dd08ada09c5ecd294f45f98c5",
            description="TarDAL++ generator (Liu et al., CVPR 2022), the authors' release for joint human "
            "vision and detection accuracy",
            trained_on=_TRAINED_ON,
            licence=_LICENCE,
            source=_SOURCE,
        ),
        {"dim": 32, "depth": 3, "batchnorm": "running", "color": "official"},
    ),
}


def taskfuse_name(key: str) -> str:
    """The ``TarDAL`` parameter an official tensor name maps to."""
    return f"decoder.{key.removeprefix('fuse.')}" if key.startswith("fuse.") else key


def reader(name: str) -> Callable[[Path], tuple[dict[str, Tensor], dict[str, Any], dict[str, Any]]]:
    """The ``Converter.read`` of converter ``name`` (a key of ``RELEASES``)."""
    release, config = RELEASES[name]

    def read(path: Path) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any]]:
        state = read_state_dict(path, EXPECTED)
        target = TarDAL(**config).state_dict()
        mapped = renamed(state, taskfuse_name, target, path, EXPECTED)
        digest = sha256(path)
        for other, (known, _) in RELEASES.items():
            if other != name and digest == known.sha256:
                raise TaskfuseError(
                    f"{path} is the authors' {known.file}, which runs with other settings than {release.file}; "
                    f"convert it with taskfuse convert {other}"
                )
        found = release if digest == release.sha256 else None
        return mapped, dict(config), provenance(path, digest, found, name, release.file)

    return read


CONVERTERS = (
    Converter(
        "tardal-official",
        reader("tardal-official"),
        "tardal.pt, the authors' default TarDAL generator; per-image BatchNorm statistics (MIT, via VIF-Benchmark)",
    ),
    Converter(
        "tardalpp-official",
        reader("tardalpp-official"),
        "tardal++.pt, the authors' TarDAL++ generator; running BatchNorm statistics (MIT, via VIF-Benchmark)",
    ),
)
