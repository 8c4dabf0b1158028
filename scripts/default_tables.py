"""The validation tables of the built-in default model (taskfuse/models/lite/MODEL_CARD.md): fusion metrics on
three sets of pairs no training saw, against the released SeAFusion and TarDAL weights and the classical rules,
all fused by taskfuse itself.

    python scripts/default_tables.py --shared ../shared --out runs/default_tables \\
        --weights seafusion=seafusion-released.safetensors tardal=tardal-released.safetensors [ours=FILE]

Sets: ``msrs`` (the 62 validation pairs of ``msrs_det``, split fixed by name), ``roadscene`` (the 45 validation
pairs of ``scripts/roadscene_split.py``), ``tno`` (the TNO pairs 17, 21 and 36 of ``data/golden/vifb12``); these
three by default. ``--select NAME=FOLDER ...`` scores the pairs of ``paired`` folders instead (with ``--sets``,
as well), such as the selection split of ``scripts/selection_split.py``, held out of the training pairs for
choosing a setting. Rows:
``lite`` (the shipped default, or ``ours=FILE``), every ``NAME=WEIGHTS`` given, and mean, max, laplacian, gff.
Metrics: EN MI SD SF AG SCD VIF Qabf SSIM (higher is better for all nine), and the per-source halves MI, VIF and
SSIM against each source, which show which source a method draws on. ``--reuse tables.json`` takes the rows
other than ``lite`` from an earlier run where they would come out alike (same pairs; a classical rule or the
same weights file), to score a new ``ours`` alone. For each set, ``OUT/<set>.md`` holds the
table and the count of the nine metrics on which ``lite`` beats each other row; ``OUT/tables.json`` all of it.

``--set KEY=VALUE ...`` gives ``lite`` config keys that leave its weights alone, as ``taskfuse fuse --set``
does: ``--set display=none`` scores the default without its contrast-stretched display, ``--set display=stretch``
other weights with it (``taskfuse/models/lite/network.py``).
Choose such settings on the selection sets, not here.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from taskfuse.cli.fuse import model_config
from taskfuse.data.datasets import open_dataset
from taskfuse.data.io import read_ir, read_vi, write_text
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
VALIDATION = ("msrs", "roadscene", "tno")


def roadscene_val(root: Path) -> list[str]:
    import sys

    sys.path.insert(0, str(HERE))
    from roadscene_split import split

    return split([p.stem for p in (root / "ir").iterdir()])["val"]


def sets(shared: Path) -> dict[str, list[Pair]]:
    """The pairs of each validation set."""
    msrs_root = shared / "data" / "msrs_det"
    records = open_dataset("msrs_det", msrs_root, "val", labels=False).records
    msrs = sorted((Pair(r.name, r.ir, r.vi) for r in records), key=lambda p: p.name)
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


def reusable(earlier: Path, set_name: str, pairs: list[Pair], weights: dict[str, str]) -> dict[str, dict]:
    """The rows of an earlier ``tables.json`` that this run would compute alike: the same pairs of the set, a
    classical rule or the same weights file, never ``lite``."""
    done = json.loads(earlier.read_text())
    table = done["sets"].get(set_name)
    if table is None or table["pairs"] != [p.name for p in pairs]:
        return {}
    same = {n for n, w in weights.items() if Path(w).resolve() == Path(done["weights"].get(n) or "").resolve()}
    return {n: r for n, r in table["rows"].items() if n != "lite" and (n in CLASSICAL or n in same)}


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
    parser.add_argument("--sets", nargs="+", choices=VALIDATION, help="validation sets (default: all three)")
    parser.add_argument("--select", nargs="+", default=[], metavar="NAME=FOLDER", help="paired folders to score")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="config keys of the lite row")
    parser.add_argument("--reuse", type=Path, help="an earlier tables.json whose rows other than lite are taken")
    args = parser.parse_args()
    validation = args.sets if args.sets is not None else [] if args.select else VALIDATION
    chosen = {n: p for n, p in sets(args.shared).items() if n in validation}
    for name, folder in (s.split("=", 1) for s in args.select):
        if name in VALIDATION:
            parser.error(f"--select {name}=...: {name} names a validation set; call the selection set otherwise")
        chosen[name] = find_pairs(Path(folder) / "ir", Path(folder) / "vi")
    device = resolve_device(args.device)
    given = dict(w.split("=", 1) for w in args.weights)
    ours = given.pop("ours", None)
    config = model_config(args.set)
    models = {"lite": lambda: load(weights=ours, device=str(device), **config)}
    models |= {name: (lambda w=w: load(weights=w, device=str(device))) for name, w in given.items()}
    models |= {m: (lambda m=m: load(m, device=str(device))) for m in CLASSICAL}
    report: dict[str, dict] = {}
    for set_name, pairs in chosen.items():
        earlier = reusable(args.reuse, set_name, pairs, given) if args.reuse else {}
        rows = {}
        for name, make in models.items():
            if name in earlier:
                rows[name] = earlier[name]
                continue
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
        kind = "validation" if set_name in VALIDATION else "selection"
        text = f"# {set_name}: {len(pairs)} {kind} pairs\n\n" + markdown_table(header, body)
        write_text(args.out / f"{set_name}.md", text)
        print(text)
    reused = {"reused_from": os.fspath(args.reuse)} if args.reuse else {}
    tables = {"weights": {"ours": ours, **given}, "config": config, **reused, "sets": report}
    write_text(args.out / "tables.json", json.dumps(tables, indent=1) + "\n")
    print(f"tables: {os.fspath(args.out)}")


if __name__ == "__main__":
    main()
