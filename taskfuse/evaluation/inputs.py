"""What the downstream network sees: one image per sample from IR, VIS, a classical rule or a fused folder.

An input is written on the command line as

- ``ir``: the infrared image, repeated to three channels;
- ``vi``: the visible image (a gray one repeated to three channels);
- a parameter-free rule of ``taskfuse.models.classical`` (``mean``, ``max``, ``laplacian``, ``gff``): fused on
  the fly and cached as PNG under ``OUT/inputs/<name>/<split>/``, so a rerun reads instead of fusing;
- ``NAME=DIR``: fused images named by sample stem (any image suffix), in ``DIR/<split>/`` when that folder
  exists, else in ``DIR`` itself. Learned methods enter this way, after ``taskfuse fuse --weights``.

Every input is given to the network as (3, H, W) in [0, 1] so that one architecture serves every row of the
table, as the seeds feed fused, IR and VIS images alike to one segmenter or detector.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from taskfuse import models
from taskfuse.data.io import read_vi, write_image
from taskfuse.data.pairs import list_images, listing
from taskfuse.errors import TaskfuseError
from taskfuse.inference import fuse_tensors

RESERVED = ("direct", "inputs", "samples")
"""Names of the output folder's own sub-folders, which no input may take."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


def name_and_path(text: str) -> tuple[str, Path]:
    """``NAME=PATH``, or a bare ``PATH`` named after its last component (an argparse type)."""
    name, sep, path = text.partition("=")
    if not sep:
        name, path = Path(text).name, text
    if not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=PATH (e.g. seafusion=results/seafusion)")
    return name, Path(path)


def classical_methods() -> list[str]:
    """The registered parameter-free rules."""
    return models.names(learned=False)


@dataclass(frozen=True)
class InputSpec:
    """One input of the protocol: its row name, its kind, and the folder of a ``folder`` input."""

    name: str
    kind: Literal["ir", "vi", "method", "folder"]
    folder: Path | None = None

    @property
    def text(self) -> str:
        """The input as written on the command line."""
        return f"{self.name}={self.folder}" if self.kind == "folder" else self.name


def parse_input(text: str) -> InputSpec:
    """``ir``, ``vi``, a classical rule's name, or ``NAME=DIR`` (see the module docstring)."""
    text = text.strip()
    name, sep, folder = text.partition("=")
    if sep:
        name, folder = name.strip(), folder.strip()
        if not name or not folder:
            raise TaskfuseError(f"--inputs {text!r}: write NAME=DIR, e.g. seafusion=results/seafusion")
        if not _NAME.fullmatch(name) or name in RESERVED:
            raise TaskfuseError(
                f"--inputs {text!r}: {name!r} cannot name an input (it names a folder of the output); use letters, "
                f"digits and _ . + -, and none of {', '.join(RESERVED)}"
            )
        if not Path(folder).is_dir():
            raise TaskfuseError(f"--inputs {text!r}: {folder} is not a folder; give the folder of fused images")
        return InputSpec(name, "folder", Path(folder))
    if text.lower() in ("ir", "vi"):
        return InputSpec(text.lower(), text.lower())  # type: ignore[arg-type]
    classical = classical_methods()
    if text.lower() in classical:
        return InputSpec(text.lower(), "method")
    if text in models.METHODS:
        raise TaskfuseError(
            f"--inputs {text}: a learned method needs its trained weights; fuse the train and test images with "
            f"`taskfuse fuse --method {text} --weights W.safetensors --ir .. --vi .. --out DIR/<split>` and pass "
            f"{text}=DIR"
        )
    raise TaskfuseError(
        f"--inputs {text!r}: not an input; give ir, vi, a classical rule ({', '.join(classical)}) or NAME=DIR "
        "with a folder of fused images"
    )


def parse_inputs(texts: Sequence[str]) -> list[InputSpec]:
    """Every input, in the order given; none may be missing and two may not share a name."""
    specs = [parse_input(t) for t in texts]
    if not specs:
        raise TaskfuseError("--inputs: give at least one input, e.g. --inputs ir vi fused=DIR")
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise TaskfuseError(
                f"--inputs: {seen[spec.name]!r} and {spec.text!r} share the name {spec.name!r}; give each input "
                "its own name (NAME=DIR)"
            )
        seen[spec.name] = spec.text
    return specs


class InputSource:
    """The network input (3, H, W) float in [0, 1] of one ``InputSpec`` for the samples of one split.

    ``cache`` is the output folder's ``inputs`` folder, where classical rules write their fused images;
    ``device`` is where they run.
    """

    def __init__(self, spec: InputSpec, split: str, cache: Path, device: torch.device) -> None:
        self.spec, self.split, self.device = spec, split, device
        self.files: dict[str, Path] = {}
        self.folder: Path | None = None
        self.model: models.FusionModel | None = None
        if spec.kind == "folder":
            assert spec.folder is not None
            sub = spec.folder / split
            self.folder = sub if sub.is_dir() else spec.folder
            self.files = list_images(self.folder)
        elif spec.kind == "method":
            self.folder = cache / spec.name / split
            self.model = models.create(spec.name).to(device).eval()

    def check(self, names: Sequence[str]) -> None:
        """Raise, listing them, when a fused folder lacks the images of some of these samples."""
        if self.spec.kind != "folder":
            return
        missing = [n for n in names if n not in self.files]
        if missing:
            raise TaskfuseError(
                f"--inputs {self.spec.text}: {self.folder} has no fused image for {len(missing)} of the "
                f"{len(names)} {self.split} samples: {listing(missing)}. Fuse them into {self.folder} (same file "
                f"stem, any image suffix), or into {self.spec.folder}/{self.split}/"
            )

    def __call__(self, sample: dict[str, Any]) -> Tensor:
        """The input image of ``sample`` (a dataset sample with ``ir``, ``vi`` and ``name``)."""
        ir, vi = sample["ir"], sample["vi"]
        if self.spec.kind == "ir":
            return ir.expand(3, -1, -1)
        if self.spec.kind == "vi":
            return vi.expand(3, -1, -1)
        assert self.folder is not None
        name = sample["name"]
        path = self.files[name] if self.spec.kind == "folder" else self.folder / f"{name}.png"
        if self.model is not None and not path.exists():
            image = fuse_tensors(self.model, ir, vi, self.device)
            write_image(path, image)
        image = read_vi(path)
        if image.shape[-2:] != ir.shape[-2:]:
            raise TaskfuseError(
                f"{path} is {image.shape[-1]}x{image.shape[-2]} but sample {name} is {ir.shape[-1]}x{ir.shape[-2]}; "
                "fused images must keep the size of their sources"
            )
        return image.expand(3, -1, -1)
