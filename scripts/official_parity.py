"""Output parity of converted released weights with their authors' own outputs, pair by pair.

    python scripts/official_parity.py ../shared/checkpoints/official ../shared/data/golden/vifb12 --out parity/

For each release in CHECKPOINTS (``SeAFusion.pth``, ``tardal.pt``, ``tardal++.pt``): convert it as
``taskfuse convert`` does, fuse every pair of ``PAIRS/{ir,vi}`` as ``taskfuse fuse`` does (``fuse_pairs``, whole
images, CPU), and compare each 8-bit RGB result with ``CHECKPOINTS/reference_outputs/<release>/NAME.png``: the
largest and the mean absolute difference over all values, and the fraction within one grey level. Writes
``OUT/parity.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from taskfuse.cli.convert import find
from taskfuse.data.pairs import find_pairs
from taskfuse.inference import fuse_pairs, load
from taskfuse.metrics.table import markdown_table
from taskfuse.models.official import convert

RELEASES = {
    "SeAFusion": ("seafusion-official", "SeAFusion.pth"),
    "TarDAL": ("tardal-official", "tardal.pt"),
    "TarDALpp": ("tardalpp-official", "tardal++.pt"),
}


def compare(ours: Path, theirs: Path) -> dict[str, float]:
    a = np.asarray(Image.open(ours), dtype=np.int16)
    b = np.asarray(Image.open(theirs), dtype=np.int16)
    if a.shape != b.shape:
        raise SystemExit(f"{ours} is {a.shape}, the reference {theirs} is {b.shape}")
    diff = np.abs(a - b)
    return {
        "max": int(diff.max()),
        "mean": float(diff.mean()),
        "within_1": float((diff <= 1).mean()),
        "values_off": int((diff > 0).sum()),
        "values": int(diff.size),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, help="folder of the released files and reference_outputs/")
    parser.add_argument("pairs", type=Path, help="folder with ir/ and vi/")
    parser.add_argument("--out", type=Path, default=Path("parity"), help="working and output folder")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    report: dict[str, dict[str, dict[str, float]]] = {}
    for release, (converter, file) in RELEASES.items():
        method, conv = find(converter)
        weights = convert(method, conv, args.checkpoints / file, args.out / f"{converter}.safetensors")
        fused = args.out / release
        fuse_pairs(load(weights=weights), find_pairs(args.pairs / "ir", args.pairs / "vi"), fused, overwrite=True)
        reference = args.checkpoints / "reference_outputs" / release
        report[release] = {p.stem: compare(p, reference / p.name) for p in sorted(fused.glob("*.png"))}
    (args.out / "parity.json").write_text(json.dumps(report, indent=2))
    names = list(next(iter(report.values())))
    rows = [
        [name] + [f"{r[name]['max']} / {r[name]['mean']:.1e} / {r[name]['values_off']}" for r in report.values()]
        for name in names
    ]
    print(markdown_table(["pair", *(f"{k}: max / mean / values off" for k in report)], rows))
    for release, r in report.items():
        within = sum(v["within_1"] * v["values"] for v in r.values()) / sum(v["values"] for v in r.values())
        worst = max(v["max"] for v in r.values())
        print(f"{release}: {100 * within:.4f} % of all values within one grey level, largest difference {worst}")


if __name__ == "__main__":
    main()
