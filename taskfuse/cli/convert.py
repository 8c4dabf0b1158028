"""``taskfuse convert``: released checkpoints -> safetensors, read without running code in them.

Every converter a registered method declares (``MethodSpec.converters``) is offered by name; the converted file
carries the method, the config that reproduces the authors' inference, and the source file's provenance, and is
then used like any weights (``taskfuse fuse --weights FILE``). ``backbone`` converts ImageNet backbone weights
released as ``.pth`` (torchvision, timm, mmseg, NVlabs) to a ``.safetensors`` file with the names kept, which the
``backbone_weights`` / ``seg_pretrained`` / ``--pretrained`` options then read
(``taskfuse.nn.pretrained.convert_to_safetensors``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.models.official import convert
from taskfuse.models.spec import Converter
from taskfuse.models.weights import read_meta
from taskfuse.nn.pretrained import convert_to_safetensors

BACKBONE = "backbone"


def converters() -> list[tuple[str, Converter]]:
    """(method, converter) of every converter ``taskfuse convert`` offers, in registry order."""
    return [(name, c) for name in models.names() for c in models.get(name).converters]


def find(name: str) -> tuple[str, Converter]:
    """The (method, converter) named ``name``; an unknown name raises listing the known ones."""
    for method, converter in converters():
        if converter.name == name:
            return method, converter
    known = ", ".join(c.name for _, c in converters())
    raise TaskfuseError(f"no converter named {name!r}; known: {known} (taskfuse convert --list)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert released weights of published methods to taskfuse weights",
        description="Read a released checkpoint (plain PyTorch state_dict, loaded without unpickling code) and "
        "write .safetensors weights holding the method, the config of the authors' inference and the source "
        "file's provenance (name, SHA-256, licence, training data). Use the result with taskfuse fuse --weights.",
    )
    p.add_argument("converter", nargs="?", help=f"converter name (see --list), or {BACKBONE} for backbone weights")
    p.add_argument("src", nargs="?", type=Path, help="the released checkpoint file")
    p.add_argument("--out", type=Path, help=f"output weights file (.safetensors; for {BACKBONE}: default SRC's name)")
    p.add_argument("--overwrite", action="store_true", help=f"{BACKBONE}: replace an existing output file")
    p.add_argument("--list", action="store_true", help="list the converters and exit")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.list:
        for method, c in converters():
            print(f"{c.name:<20} {method:<10} {c.summary}")
        print(f"{BACKBONE:<20} {'-':<10} ImageNet backbone weights (.pth) to .safetensors, names kept")
        return 0
    if args.converter == BACKBONE and args.src is not None:
        done = convert_to_safetensors(args.src, args.out or args.src.with_suffix(".safetensors"), args.overwrite)
        inner = f" (the weights under {done['container']!r})" if done["container"] else ""
        dropped = f"; dropped {', '.join(done['dropped'])}" if done["dropped"] else ""
        print(f"{args.src}{inner} -> {done['dst']}: {done['tensors']} tensors, {done['parameters']:,} values{dropped}")
        return 0
    missing = [n for n, v in (("CONVERTER", args.converter), ("SRC", args.src), ("--out", args.out)) if v is None]
    if missing:
        raise TaskfuseError(f"{', '.join(missing)} required (or --list)")
    method, converter = find(args.converter)
    out = convert(method, converter, args.src, args.out)
    origin = read_meta(out)["provenance"]
    print(f"{args.src} ({origin['release']}; sha256 {origin['sha256'][:12]}) -> {out} [{method}]")
    print(f"  trained on: {origin['trained_on']}; licence: {origin['licence']}")
    return 0
