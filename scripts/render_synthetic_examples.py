"""Example figure of the synthetic scenes: day and night rows of VIS | IR | label (MSRS palette, boxes).

    python scripts/render_synthetic_examples.py [--out docs/img/synthetic_examples.png] [--seeds 8 21]

Each seed is shown by day and by night (same street, ``render_scene(seed, night=...)``). Boxes are drawn
in white on the label panel, visible keypoints as small yellow crosses. The figure is stored as a 256-colour
PNG to stay small. Also prints the render time per scene.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from taskfuse.data.classes import MSRS
from taskfuse.data.io import to_uint8
from taskfuse.data.synthetic import render_scene


def label_panel(scene: dict) -> np.ndarray:
    """Label colourised with the MSRS palette, boxes in white, visible keypoints as crosses."""
    panel = np.asarray(MSRS.palette, dtype=np.uint8)[scene["label"].numpy()]
    for _, x1, y1, x2, y2 in scene["boxes"].numpy().astype(int):
        panel[y1:y2, [x1, x2 - 1]] = 255
        panel[[y1, y2 - 1], x1:x2] = 255
    for x, y, v in scene["keypoints"].reshape(-1, 3).numpy():
        if v == 2:
            c, r = int(x), int(y)
            panel[max(r - 1, 0) : r + 2, c] = (255, 255, 0)
            panel[r, max(c - 1, 0) : c + 2] = (255, 255, 0)
    return panel


def save_indexed(figure: np.ndarray, path: Path) -> None:
    """Save as a 256-colour PNG: 64 grey levels (the infrared panels) plus 192 colours fitted to the figure
    (octree), mapped without dithering. A full-colour PNG of noisy images is several times larger."""
    colours = Image.fromarray(figure).quantize(192, method=Image.Quantize.FASTOCTREE).getpalette()[: 192 * 3]
    greys = [v for g in range(0, 256, 4) for v in (g, g, g)]
    palette = Image.new("P", (1, 1))
    palette.putpalette(greys + colours)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(figure).quantize(palette=palette, dither=Image.Dither.NONE).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/synthetic_examples.png"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[8, 21])
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=320)
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        for night in (False, True):
            start = time.perf_counter()
            scene = render_scene(seed, args.height, args.width, night=night)
            elapsed = time.perf_counter() - start
            print(f"{scene['name']}: {len(scene['boxes'])} objects, {1e3 * elapsed:.1f} ms")
            ir = to_uint8(scene["ir"].expand(3, -1, -1))
            gap = np.full((args.height, 4, 3), 255, dtype=np.uint8)
            rows.append(np.concatenate([to_uint8(scene["vi"]), gap, ir, gap, label_panel(scene)], axis=1))
            rows.append(np.full((4, rows[-1].shape[1], 3), 255, dtype=np.uint8))
    figure = np.concatenate(rows[:-1], axis=0)
    save_indexed(figure, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
