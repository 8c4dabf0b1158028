"""``taskfuse demo``: render synthetic day and night scenes, fuse them, write a side-by-side figure."""

from __future__ import annotations

import argparse
from pathlib import Path

from matplotlib.figure import Figure

from taskfuse import models
from taskfuse.data.io import atomic_path, write_image
from taskfuse.data.synthetic import render_scene
from taskfuse.device import resolve_device
from taskfuse.inference import fuse_tensors, load


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="fuse a few synthetic scenes and write an IR | VIS | fused figure",
        description="Render synthetic road scenes (day and night, no data needed), fuse them with the default "
        "method (or --method/--weights) and write OUT/demo.png plus the fused images.",
    )
    p.add_argument("--out", type=Path, default=Path("taskfuse-demo"), help="output folder (default: taskfuse-demo)")
    p.add_argument("--scenes", type=int, default=4, help="number of scenes, alternating day and night (default 4)")
    p.add_argument("--size", default="240x320", help="HxW of each scene (default 240x320)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    p.add_argument("--method", help=f"fusion method (default: {models.DEFAULT_METHOD})")
    p.add_argument("--weights", type=Path, help="trained weights (.safetensors) of a learned method")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default: auto)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    h, w = (int(v) for v in args.size.lower().split("x"))
    model = load(args.method, args.weights, args.device)
    device = resolve_device(args.device)
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
