"""The validation tables of the built-in default model (taskfuse/models/lite/MODEL_CARD.md): fusion metrics on
three sets of pairs no training saw, against the released SeAFusion and TarDAL weights and the classical rules,
all fused by taskfuse itself.

    python scripts/default_tables.py --shared ../shared --out runs/default_tables \\
        --weights seafusion=seafusion-released.safetensors tardal=tardal-released.safetensors [ours=FILE]

Sets: ``msrs`` (the 62 validation pairs of ``msrs_det``, split fixed by name), ``roadscene`` (the 45 validation
pairs of ``scripts/roadscene_split.py``), ``tno`` (the TNO pairs 17, 21 and 36 of ``data/golden/vifb12``); these
three by default. ``--sets select --select FOLDER`` scores the pairs of a ``paired`` folder instead, such as the
selection split of ``scripts/selection_split.py``, held out of the training pairs for choosing a setting. Rows:
``lite`` (the shipped default, or ``ours=FILE``), every ``NAME=WEIGHTS`` given, and mean, max, laplacian, gff.
Metrics: EN MI SD SF AG SCD VIF Qabf SSIM (higher is better for all nine), and the per-source halves MI, VIF and
SSIM against each source, which show which source a method draws on. For each set, ``OUT/<set>.md`` holds the
table and the count of the nine metrics on which ``lite`` beats each other row; ``OUT/tables.json`` all of it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from taskfuse.data.datasets import open_dataset
from taskfuse.data.io import atomic_path, read_ir, read_vi
from taskfuse.data.pairs import Pair, find_pairs
from taskfuse.device import resolve_device
from taskfuse.inference import fuse_pairs, load
from taskfuse.metrics.fusion import FusionMetrics, metric_info
from taskfuse.metrics.table import markdown_table

HERE = Path(__file__).resolve().parent
BAR = ["EN", "MI", "SD", "SF", "AG", "SCD", "VIF", "Qabf", "SSIM"]
SOURCES = ["MI_ir", "MI_vi", "VIF_ir", "VIF_vi", "SSIM_ir", "SSIM_vi"]
CLASSICAL = ["mean", "max", "laplacian", "gff"]
TNO = ("17", "21", "36")


def roadscene_val(root: Path) -> list[str]:
    import sys

    sys.path.insert(0, str(HERE))
    from roadscene_split import split

    return split([p.stem for p in (root / "ir").iterdir()])["val"]


VALIDATION = ("msrs", "roadscene", "tno")


def sets(shared: Path) -> dict[str, list[Pair]]:
    """The pairs of each validation set."""
    msrs_root = shared / "data" / "msrs_det"
    msrs_names = {r.name for r in open_dataset("msrs_det", msrs_root, "val", labels=False).records}
    msrs = [p for p in find_pairs(msrs_root / "ir", msrs_root / "vi") if p.name in msrs_names]
    rs_root = shared / "data" / "roadscene"
    rs_names = set(roadscene_val(rs_root))
    roadscene = [p for p in find_pairs(rs_root / "ir", rs_root / "vi") if p.name in rs_names]
    golden = shared / "data" / "golden" / "vifb12"
    tno = [p for p in find_pairs(golden / "ir", golden / "vi") if p.name in TNO]
    return {"msrs": msrs, "roadscene": roadscene, "tno": tno}


def score(pairs: list[Pair], folder: Path, device: torch.device) -> dict[str, float]:
    """Every metric of ``BAR + SOURCES``, averaged over ``pairs`` fused into ``folder``."""
    meter = FusionMetrics(BAR + SOURCES)
    with torch.inference_mode():
        for p in pairs:
            fused = read_vi(next(folder.glob(f"{p.name}.*"))).to(device)
            meter.update(fused[None], read_ir(p.ir).to(device)[None], read_vi(p.vi).to(device)[None])
    return {k: float(v.mean()) for k, v in meter.compute().items()}


def wins(ours: dict[str, float], other: dict[str, float]) -> int:
    """On how many of the nine bar metrics ``ours`` is better than ``other``."""
    sign = {m: 1.0 if metric_info(m).higher_is_better else -1.0 for m in BAR}
    return sum(sign[m] * (ours[m] - other[m]) > 0 for m in BAR)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", nargs="*", default=[], metavar="NAME=WEIGHTS")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sets", nargs="+", choices=[*VALIDATION, "select"], default=list(VALIDATION))
    parser.add_argument("--select", type=Path, help="paired folder (ir/, vi/) of the select set")
    args = parser.parse_args()
    if "select" in args.sets and args.select is None:
        parser.error("--sets select needs --select FOLDER (scripts/selection_split.py writes one)")
    chosen = {n: p for n, p in sets(args.shared).items() if n in args.sets}
    if args.select is not None:
        chosen["select"] = find_pairs(args.select / "ir", args.select / "vi")
    device = resolve_device(args.device)
    given = dict(w.split("=", 1) for w in args.weights)
    ours = given.pop("ours", None)
    models = {"lite": lambda: load(weights=ours, device=str(device)) if ours else load(device=str(device))}
    models |= {name: (lambda w=w: load(weights=w, device=str(device))) for name, w in given.items()}
    models |= {m: (lambda m=m: load(m, device=str(device))) for m in CLASSICAL}
    report: dict[str, dict] = {}
    for set_name, pairs in chosen.items():
        rows = {}
        for name, make in models.items():
            folder = args.out / "fused" / set_name / name
            fuse_pairs(make(), pairs, folder, device=device, progress=False)
            rows[name] = score(pairs, folder, device)
        report[set_name] = {
            "pairs": [p.name for p in pairs],
            "rows": rows,
            "lite_wins": {n: wins(rows["lite"], r) for n, r in rows.items() if n != "lite"},
        }
        header = ["row", *BAR, *SOURCES, "lite wins"]
        body = [
            [n, *(f"{r[m]:.3f}" for m in BAR + SOURCES), "" if n == "lite" else f"{report[set_name]['lite_wins'][n]}/9"]
            for n, r in rows.items()
        ]
        kind = "selection" if set_name == "select" else "validation"
        text = f"# {set_name}: {len(pairs)} {kind} pairs\n\n" + markdown_table(header, body)
        with atomic_path(args.out / f"{set_name}.md") as tmp:
            tmp.write_text(text)
        print(text)
    with atomic_path(args.out / "tables.json") as tmp:
        tmp.write_text(json.dumps({"weights": {"ours": ours, **given}, "sets": report}, indent=1) + "\n")
    print(f"tables: {os.fspath(args.out)}")


if __name__ == "__main__":
    main()
