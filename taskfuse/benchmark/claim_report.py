"""The claim benchmark's report, rebuilt from whatever cells exist (``OUT/cells/<row>/<f>-d<d>.json``).

Per row: the cells finished; mean ± sd over its cells of mAP50 and mAP50:95; per-class AP50 and day / night
mAP50 (means over cells); written to ``OUT/rows/<row>.json`` and tabulated in ``OUT/table.{md,json,csv}``.

Comparisons, in points, by the paired bootstrap of ``taskfuse.benchmark.stats`` (every cell re-scored on the same
resampled validation images; pairs by fusion seed and downstream seed, a row without fusion seeds pairing by
downstream seed):

* for every method: ``task-guided - fusion-only``, the claim; ``reseed - fusion-only``, two runs that differ
  only in seed, the noise floor; and from the noise floor the smallest difference the design detects
  (``stats.detectable``). The verdict: an effect when the claim's interval excludes 0 and its size reaches the
  smallest detectable difference; no effect of that size or more when the interval holds 0 (a null that says
  how large an effect could have hidden); otherwise inconclusive, as it is when the noise floor has no spread at
  all (runs that differ in seed do not score exactly alike unless their trainings failed alike);
* every task-guided row and the best fused row minus the better single modality (``ir`` or ``vi``, by mean
  mAP50), the claim's "better than either modality";
* ``oracle`` minus its base row: how much room better fused inputs have.

Beside them, how large the task term was in each task-guided continuation against the fusion loss it is added
to (``loss_balance``), and where each pre-training stopped.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from taskfuse.benchmark.claim import FIXED, tag
from taskfuse.benchmark.continuation import VARIANTS
from taskfuse.benchmark.stats import (
    Difference,
    bootstrap_draws,
    detectable,
    draw_scores,
    image_matches,
    mean_sd,
    paired_difference,
)
from taskfuse.data.classes import MSRS_DET
from taskfuse.data.datasets import open_dataset
from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError
from taskfuse.metrics.table import markdown_table
from taskfuse.train.log import read_metrics

Key = tuple[int | None, int]
"""A cell: (fusion seed or None, downstream seed)."""
SCORES = {"mAP50": 0, "mAP": 1}
"""Scores compared, by their column in ``stats.draw_scores``."""


def load_cells(out: Path) -> dict[str, dict[Key, dict[str, Any]]]:
    """Every cell record, by row and (fusion seed, downstream seed)."""
    cells: dict[str, dict[Key, dict[str, Any]]] = {}
    for path in sorted((out / "cells").glob("*/*.json")):
        r = json.loads(path.read_text())
        cells.setdefault(r["row"], {})[(r["fusion_seed"], r["downstream_seed"])] = r
    if not cells:
        raise TaskfuseError(f"{out}/cells holds no finished cell; run the benchmark first (without --report)")
    return cells


def summary(row: Mapping[str, Any], cells: Mapping[Key, Mapping[str, Any]]) -> dict[str, Any]:
    """One row's means over its cells, in percent."""
    results = [c["result"] for c in cells.values()]
    out: dict[str, Any] = {"row": row["name"], "kind": row["kind"], "cells": len(cells)}
    for key in SCORES:
        m, sd = mean_sd([100 * r[key] for r in results if r[key] is not None])
        out[key], out[f"{key}_sd"] = m, sd
    for c in MSRS_DET.names:
        out[f"AP50 {c}"] = mean_sd([100 * r["AP50"][c] for r in results if r["AP50"].get(c) is not None])[0]
    for when in ("day", "night"):
        values = [100 * c["conditions"][when]["mAP50"] for c in cells.values() if when in c["conditions"]]
        out[f"mAP50 {when}"] = mean_sd(values)[0]
    out["train_seconds"] = sum(c["train_seconds"] for c in cells.values())
    return out


def pairs(a: Sequence[Key], b: Sequence[Key]) -> list[tuple[Key, Key]]:
    """Cells of rows A and B paired by fusion seed and downstream seed; a row without fusion seeds (keys with
    None) pairs by downstream seed with every fusion seed of the other."""
    a_fixed, b_fixed = all(k[0] is None for k in a), all(k[0] is None for k in b)
    if a_fixed and not b_fixed:
        return [((None, d), (f, d)) for f, d in sorted(b, key=str) if (None, d) in a]
    if b_fixed and not a_fixed:
        return [((f, d), (None, d)) for f, d in sorted(a, key=str) if (None, d) in b]
    return [(k, k) for k in sorted(set(a) & set(b), key=str)]


class Scorer:
    """Cell scores on all validation images and on the bootstrap draws, computed once per cell."""

    def __init__(self, out: Path, cells: Mapping[str, Mapping[Key, Mapping[str, Any]]], draws: int) -> None:
        self.out, self.cells = out, cells
        design = json.loads((out / "claim.json").read_text())["design"]
        val = open_dataset("msrs_det", design["root"], "val")
        self.names = [r.name for r in val.records]
        self.targets = [val.read_boxes(r).boxes for r in val.records]  # type: ignore[union-attr]
        self.draws = bootstrap_draws(len(self.names), draws)
        self.full: dict[str, np.ndarray] = {}
        self.drawn: dict[str, np.ndarray] = {}

    def cell_id(self, row: str, key: Key) -> str:
        cell_id = f"{row}:{tag(key[0])}:d{key[1]}"
        if cell_id not in self.full:
            stored = json.loads((self.out / self.cells[row][key]["predictions"]).read_text())
            if stored["names"] != self.names:
                raise TaskfuseError(
                    f"{self.cells[row][key]['predictions']} predicts other validation pairs than the folder now "
                    "holds; a comparison needs every cell scored on the same pairs"
                )
            preds = [np.asarray(p).reshape(-1, 6) for p in stored["predictions"]]
            matches = image_matches(preds, self.targets, MSRS_DET.num_classes)
            self.full[cell_id] = draw_scores(matches, np.arange(len(self.names))[None])[0]
            self.drawn[cell_id] = draw_scores(matches, self.draws)
        return cell_id

    def compare(self, a: str, b: str, score: str) -> Difference | None:
        """Row ``b`` minus row ``a`` in points, or None when they share no pair of cells."""
        paired = pairs(list(self.cells.get(a, {})), list(self.cells.get(b, {})))
        if not paired:
            return None
        ids = [(self.cell_id(a, ka), self.cell_id(b, kb)) for ka, kb in paired]
        col = SCORES[score]
        full = {i: 100 * v[col] for i, v in self.full.items()}
        drawn = {i: 100 * v[:, col] for i, v in self.drawn.items()}
        return paired_difference(ids, full, drawn)


def compare_rows(out: Path, pairs_of_rows: Sequence[Sequence[str]]) -> list[str]:
    """``B minus A`` for each (A, B) of ``pairs_of_rows``, in mAP50 and mAP50:95 points with the paired bootstrap
    interval, one line each (``taskfuse benchmark claim --compare A B``)."""
    claim = json.loads((out / "claim.json").read_text())
    cells = load_cells(out)
    scorer = Scorer(out, cells, claim["preset"]["draws"])
    lines = []
    for a, b in pairs_of_rows:
        missing = [r for r in (a, b) if r not in cells]
        if missing:
            raise TaskfuseError(f"--compare {a} {b}: no finished cell of {', '.join(missing)} in {out}")
        found = {s: scorer.compare(a, b, s) for s in SCORES}
        parts = [f"{s} {d.observed:+.2f} [{d.low:+.2f}, {d.high:+.2f}]" for s, d in found.items() if d is not None]
        pairs_used = next((d.pairs for d in found.values() if d is not None), 0)
        lines.append(f"{b} - {a}: {'; '.join(parts) or 'no paired cells'} ({pairs_used} pairs of cells)")
    return lines


def verdict(claim: Difference, floor: float) -> str:
    """The reading of one method's comparison (module docstring)."""
    if math.isnan(floor):
        return "inconclusive: one pair of cells gives no seed spread"
    if floor == 0:
        return "inconclusive: the noise floor has no spread (reseeded runs scored exactly alike: did they train?)"
    if claim.low > 0 or claim.high < 0:
        if abs(claim.observed) >= floor:
            return f"an effect beyond the noise floor ({'better' if claim.observed > 0 else 'worse'} with guidance)"
        return "inconclusive: the interval excludes 0 but the difference is below the smallest detectable one"
    return f"no effect of {floor:.2f} points or more (interval holds 0)"


def build(out: Path) -> dict[str, Any]:
    """Everything the report files show."""
    claim = json.loads((out / "claim.json").read_text())
    cells = load_cells(out)
    rows = [r for r in claim["rows"] if r["name"] in cells]
    summaries = [summary(r, cells[r["name"]]) for r in rows]
    by_row = {s["row"]: s for s in summaries}
    scorer = Scorer(out, cells, claim["preset"]["draws"])
    comparisons: list[dict[str, Any]] = []

    def add(what: str, a: str, b: str) -> dict[str, Any] | None:
        found = {s: scorer.compare(a, b, s) for s in SCORES}
        if found["mAP50"] is None:
            return None
        entry = {"what": what, "a": a, "b": b, **{s: vars(d) for s, d in found.items() if d is not None}}
        comparisons.append(entry)
        return entry

    methods = []
    for m in claim["design"]["methods"]:
        guided = add("task guidance", f"{m}-fusion-only", f"{m}-task-guided")
        noise = add("noise floor", f"{m}-fusion-only", f"{m}-reseed")
        if guided is None:
            continue
        floor = math.nan if noise is None else detectable(Difference(**noise["mAP50"]), guided["mAP50"]["pairs"])
        methods.append(
            {
                "method": m,
                "guidance": guided["mAP50"],
                "noise": None if noise is None else noise["mAP50"],
                "detectable": floor,
                "verdict": verdict(Difference(**guided["mAP50"]), floor),
            }
        )
    modalities = {n: by_row[n]["mAP50"] for n in ("ir", "vi") if n in by_row}
    best_modality = max(modalities, key=modalities.__getitem__) if modalities else None
    fused = {s["row"]: s["mAP50"] for s in summaries if s["kind"] in (*FIXED, *VARIANTS)}
    best_fused = max(fused, key=fused.__getitem__) if fused else None
    if best_modality is not None:
        for s in summaries:
            if s["kind"] == "task-guided":
                add("over the better modality", best_modality, s["row"])
        if best_fused is not None:
            add("best fused over the better modality", best_modality, best_fused)
    oracle_path = out / "oracle.json"
    if "oracle" in by_row and oracle_path.is_file():
        add("room: oracle over its base", json.loads(oracle_path.read_text())["base"], "oracle")
    return {
        "design": claim["design"],
        "preset": claim["preset"],
        "validation_pairs": len(scorer.names),
        "draws": claim["preset"]["draws"],
        "rows": summaries,
        "best_modality": best_modality,
        "best_fused": best_fused,
        "methods": methods,
        "comparisons": comparisons,
        "pretraining": pretraining(out),
        "loss_balance": loss_balance(out),
    }


def pretraining(out: Path) -> list[dict[str, Any]]:
    """Where every pre-training stopped (``continuation.pretrain`` records)."""
    found = []
    for path in sorted((out / "pretrain").glob("*.json")):
        r = json.loads(path.read_text())
        last = r["history"].get(str(r["steps"]), {})
        found.append({"run": path.stem, "steps": r["steps"], "plateau": r["plateau"], "scores": last})
    return found


BOOKKEEPING = frozenset({"total", "lr", "img_s", "round"})
"""Values a run logs under ``train/`` beside its loss terms."""


def loss_balance(out: Path) -> list[dict[str, Any]]:
    """Per task-guided continuation and round: the means over its fusion steps of the weighted task terms and of
    the rest of its loss (the fusion loss), and the fusion loss of its fusion-only twin in that round, from the
    runs' ``metrics.csv``. The task terms are the loss terms the run logs and its twin does not: SeAFusion's
    ``λ_r L_task`` (seed 000 eq. 2), FGFusion's foreground term ``λ4 L_ex`` (seed 003 eq. 11). A task term many
    times the fusion loss steers the fusion network by the task alone; the twin's loss shows what that costs the
    fusion terms (where the task also reweights the fusion terms, as FGFusion's masks do, the two fusion losses
    weigh the pixels differently). Runs whose task adds no term of its own are left out."""
    found = []
    for path in sorted((out / "runs").glob("*-task-guided-f*.json")):
        twin = path.with_name(path.name.replace("-task-guided-", "-fusion-only-"))
        guided, alone = _logged(out, path), _logged(out, twin)
        task_terms = sorted(_terms(guided) - _terms(alone))
        if not task_terms:
            continue
        twin_means = _round_means(alone, task_terms)
        for r, (fusion, term) in _round_means(guided, task_terms).items():
            found.append(
                {
                    "run": path.stem,
                    "round": r,
                    "task": " + ".join(task_terms),
                    "fusion": fusion,
                    "task_term": term,
                    "twin_fusion": twin_means[r][0] if r in twin_means else math.nan,
                }
            )
    return found


def _logged(out: Path, record: Path) -> dict[str, dict[int, float]]:
    """The values logged by the run of a continuation's record (empty when either is missing)."""
    if not record.is_file():
        return {}
    metrics = out / Path(json.loads(record.read_text())["weights"]).parent / "metrics.csv"
    return read_metrics(metrics) if metrics.is_file() else {}


def _terms(logged: Mapping[str, Mapping[int, float]]) -> set[str]:
    """The loss terms of a run: ``train/<name>`` values logged at its fusion steps (those with a total)."""
    steps = set(logged.get("train/total", {}))
    names = {key.removeprefix("train/") for key in logged if key.startswith("train/")}
    return {n for n in names - BOOKKEEPING if "/" not in n and steps & set(logged[f"train/{n}"])}


def _round_means(
    logged: Mapping[str, Mapping[int, float]], task_terms: Sequence[str]
) -> dict[int, tuple[float, float]]:
    """{round: (mean fusion loss, mean of the task terms' sum)} over the fusion steps a run logged (one round,
    0, for strategies without rounds); the fusion loss is the total without the task terms."""
    total, rounds = logged.get("train/total", {}), logged.get("train/round", {})
    by_round: dict[int, list[int]] = {}
    for step in total:
        by_round.setdefault(int(rounds.get(step, 0)), []).append(step)
    means = {}
    for r, steps in sorted(by_round.items()):
        term = float(np.mean([sum(logged.get(f"train/{t}", {}).get(s, 0.0) for t in task_terms) for s in steps]))
        means[r] = (float(np.mean([total[s] for s in steps])) - term, term)
    return means


def _cell(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _pm(mean: float, sd: float) -> str:
    return _cell(mean) if math.isnan(sd) else f"{mean:.2f} ± {sd:.2f}"


def _interval(d: Mapping[str, Any]) -> str:
    return f"{d['observed']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def to_markdown(report: Mapping[str, Any]) -> str:
    d = report["design"]
    seeds = f"{len(d['fusion_seeds'])} fusion x {len(d['downstream_seeds'])} downstream seeds"
    lines = [
        f"# Claim benchmark on msrs_det ({d['scale']} preset, detector {d['detector']}, {seeds})",
        "",
        f"Scores on the {report['validation_pairs']} validation pairs in percent, mean ± sd over each row's cells; "
        "per class and day / night: means over the cells.",
        "",
    ]
    header = ["Row", "Kind", "Cells", "mAP50", "mAP50:95", *MSRS_DET.names, "day mAP50", "night mAP50"]
    body = [
        [
            s["row"],
            s["kind"],
            str(s["cells"]),
            _pm(s["mAP50"], s["mAP50_sd"]),
            _pm(s["mAP"], s["mAP_sd"]),
            *(_cell(s[f"AP50 {c}"]) for c in MSRS_DET.names),
            _cell(s["mAP50 day"]),
            _cell(s["mAP50 night"]),
        ]
        for s in report["rows"]
    ]
    lines += [markdown_table(header, body).rstrip("\n"), "", "## Task guidance", ""]
    if report["methods"]:
        header = ["Method", "task-guided - fusion-only", "reseed - fusion-only", "smallest detectable", "verdict"]
        body = [
            [
                m["method"],
                _interval(m["guidance"]),
                "n/a" if m["noise"] is None else _interval(m["noise"]),
                _cell(m["detectable"]),
                m["verdict"],
            ]
            for m in report["methods"]
        ]
        lines += [markdown_table(header, body).rstrip("\n"), ""]
    lines += [
        f"mAP50 points: mean over the paired cells [95 % interval of {report['draws']} bootstrap draws of the "
        "validation pairs, the same draw for every cell; seeds not resampled]. Smallest detectable: the true "
        "difference found with 80 % power at the 5 % level given the noise floor's spread over seeds and images.",
        "",
        "## Other comparisons (mAP50 and mAP50:95 points, B minus A)",
        "",
    ]
    body = [
        [c["what"], c["b"], c["a"], _interval(c["mAP50"]), _interval(c["mAP"]), str(c["mAP50"]["pairs"])]
        for c in report["comparisons"]
    ]
    lines += [markdown_table(["Comparison", "B", "A", "mAP50", "mAP50:95", "Pairs"], body).rstrip("\n")]
    if report["pretraining"]:
        lines += ["", "## Pre-training (fusion-only, to the plateau)", ""]
        body = [
            [
                r["run"],
                str(r["steps"]),
                "yes" if r["plateau"] is not None else "no (step limit)",
                ", ".join(f"{k} {v:.3f}" for k, v in r["scores"].items()),
            ]
            for r in report["pretraining"]
        ]
        lines += [markdown_table(["Run", "Steps", "Plateau", "Validation at the end"], body).rstrip("\n")]
    if report["loss_balance"]:
        lines += ["", "## The task term beside the fusion loss (task-guided continuations, fusion phases)", ""]
        body = [
            [
                r["run"],
                str(r["round"]),
                r["task"],
                _cell(r["task_term"], 3),
                _cell(r["fusion"], 3),
                _cell(r["twin_fusion"], 3),
                _cell(r["task_term"] / r["fusion"] if r["fusion"] else math.nan),
            ]
            for r in report["loss_balance"]
        ]
        header = [
            "Run",
            "Round (from 0)",
            "Task terms",
            "task terms (weighted)",
            "fusion loss",
            "twin's fusion loss",
            "task / fusion",
        ]
        lines += [markdown_table(header, body).rstrip("\n")]
    return "\n".join(lines) + "\n"


def to_csv(report: Mapping[str, Any]) -> str:
    rows = report["rows"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(list(rows[0]))
    for r in rows:
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in r.values()])
    return buffer.getvalue()


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, Mapping):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    return x


def write_report(out: Path) -> list[Path]:
    """Write ``rows/<row>.json`` and ``table.md``, ``table.json``, ``table.csv`` into ``out``; returns the tables."""
    out = Path(out)
    report = build(out)
    for s in report["rows"]:
        with atomic_path(out / "rows" / f"{s['row']}.json") as tmp:
            tmp.write_text(json.dumps(_json_safe(s), indent=1) + "\n")
    texts = {
        "table.md": to_markdown(report),
        "table.json": json.dumps(_json_safe(report), indent=1) + "\n",
        "table.csv": to_csv(report),
    }
    for name, text in texts.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    return [out / name for name in texts]
