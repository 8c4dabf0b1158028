"""A side-by-side figure of sources and fused images, one row per pair, for the docs.

    python scripts/side_by_side.py OUT.png --ir IR_DIR --vi VI_DIR --fused laplacian=DIR gff=DIR lite=DIR \\
        --names FLIR_00006 FLIR_00233 --height 240
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from taskfuse.data.io import read_vi, to_uint8, write_image
from taskfuse.data.pairs import list_images


def tile(path: Path, height: int, title: str) -> np.ndarray:
    """The image at ``path`` as (height, W, 3) uint8 RGB with ``title`` written in its top-left corner."""
    img = to_uint8(read_vi(path).expand(3, -1, -1))
    width = round(img.shape[1] * height / img.shape[0])
    img = np.ascontiguousarray(cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA))
    cv2.putText(img, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, title, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 1, cv2.LINE_AA)
    return img


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--ir", type=Path, required=True)
    parser.add_argument("--vi", type=Path, required=True)
    parser.add_argument("--fused", nargs="+", required=True, metavar="NAME=DIR")
    parser.add_argument("--names", nargs="+", required=True, help="file stems, one row each")
    parser.add_argument("--height", type=int, default=240)
    args = parser.parse_args()
    columns = [("IR", list_images(args.ir)), ("VIS", list_images(args.vi))]
    columns += [(n, list_images(Path(d))) for n, d in (f.split("=", 1) for f in args.fused)]
    rows = [np.concatenate([tile(files[s], args.height, t) for t, files in columns], axis=1) for s in args.names]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows]
    write_image(args.out, np.concatenate(rows, axis=0))


if __name__ == "__main__":
    main()
