"""``taskfuse demo``: render synthetic day and night scenes, fuse them, write a side-by-side figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from taskfuse import models
from taskfuse.data.io import atomic_path, writable_folder, write_image
from taskfuse.data.synthetic import render_scene
from taskfuse.device import DEVICES, resolve_device
from taskfuse.inference import fuse_tensors, load

MIN_SIZE = 16
"""The smallest scene side the synthetic renderer draws."""


def size_arg(text: str) -> tuple[int, int]:
    """``--size HxW``: two whole numbers of at least ``MIN_SIZE`` pixels."""
    h, sep, w = text.lower().partition("x")
    if not (sep and h.isdigit() and w.isdigit() and min(int(h), int(w)) >= MIN_SIZE):
        raise argparse.ArgumentTypeError(
            f"expected HxW in pixels, each at least {MIN_SIZE} (e.g. 240x320), got {text!r}"
        )
    return int(h), int(w)


def count_arg(text: str) -> int:
    """``--scenes``: a whole number of at least 1."""
    if not (text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"expected a number of scenes of at least 1, got {text!r}")
    return int(text)


def seed_arg(text: str) -> int:
    """``--seed``: a whole number of at least 0."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative whole number, got {text!r}")
    return int(text)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="fuse a few synthetic scenes and write an IR | VIS | fused figure",
        description="Render synthetic road scenes (day and night, no data needed), fuse them with the default "
        "method (or --method/--weights) and write OUT/demo.png plus the fused images.",
    )
    p.add_argument("--out", type=Path, default=Path("taskfuse-demo"), help="output folder (default: taskfuse-demo)")
    p.add_argument(
        "--scenes", type=count_arg, default=4, help="number of scenes, alternating day and night (default 4)"
    )
    p.add_argument(
        "--size", type=size_arg, default=(240, 320), metavar="HxW", help="size of each scene (default 240x320)"
    )
    p.add_argument("--seed", type=seed_arg, default=0, help="scene seed (default 0)")
    p.add_argument("--method", help=f"fusion method (default: {models.DEFAULT_METHOD})")
    p.add_argument("--weights", type=Path, help="trained weights (.safetensors) of a learned method")
    p.add_argument("--device", default="auto", help=f"{DEVICES} (default: auto)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from matplotlib.figure import Figure  # here, not at the top: every command builds this parser

    h, w = args.size
    device = resolve_device(args.device)
    model = load(args.method, args.weights, str(device))
    writable_folder(args.out)
    name = args.method or (str(args.weights.name) if args.weights else models.DEFAULT_METHOD)
    fig = Figure(figsize=(9, 3.2 * args.scenes * h / w), layout="tight")
    axes = fig.subplots(args.scenes, 3, squeeze=False)
    for i in range(args.scenes):
        scene = render_scene(args.seed + i, h, w, night=bool(i % 2))
        fused = fuse_tensors(model, scene["ir"], scene["vi"], device)
        write_image(args.out / "fused" / f"{scene['name']}.png", fused)
        when = "night" if scene["night"] else "day"
        panels = ((scene["ir"], f"IR ({when})"), (scene["vi"], f"VIS ({when})"), (fused, f"fused: {name}"))
        for ax, (img, title) in zip(axes[i], panels, strict=True):
            arr = img.permute(1, 2, 0).numpy()
            ax.imshow(arr[..., 0] if arr.shape[-1] == 1 else arr, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    target = args.out / "demo.png"
    with atomic_path(target) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    print(f"wrote {target} (IR | VIS | fused for {args.scenes} synthetic scenes) and {args.out / 'fused'}/")
    return 0
