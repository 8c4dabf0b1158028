"""The benchmark's table, its chance level and its verdict, built from the row files present in ``OUT/rows/``.

``OUT/table.md`` holds the Markdown table (best and second best of every score column marked as in the
seeds' tables), the chance level and the verdict; ``OUT/table.json`` the same numbers with the per-class IoU
and AP50; ``OUT/table.csv`` one line per row. mIoU and mAP50 are in percent everywhere.

Chance is computed from the label maps of the scenes (255 ignored), with the metric's own rules (mIoU over
the classes present in the test labels or predicted):

* ``majority``: the mIoU of predicting the most frequent training class at every test pixel;
* ``prior``: the mIoU of the expected confusion matrix of guessing every pixel at random with the training
  class frequencies (``cm[t, p] = n_t f_p``, ``n_t`` the test pixels of class t, ``f_p`` the training
  frequency of class p).

The verdict states, for every method trained both ways, task-guided minus fusion-only mIoU (and mAP50), and
compares the best fused row and every task-guided row with the better single modality.

``OUT/report.html`` (``taskfuse.metrics.html``) shows the same tables, sortable, with the chance level and the
verdict, then one fusion metric (``html_metric``, Qabf by default) over the test scenes for every fused row: its
cumulative distribution and the crops of the best and worst scenes by it. It is rebuilt with the table every
time (after each run and with ``--report``), so it never shows other rows than ``table.md``.
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
import torch

from taskfuse.benchmark.stats import Difference, detectable, mean_sd
from taskfuse.benchmark.synthetic import OBJECTS
from taskfuse.benchmark.training import benchmark_methods
from taskfuse.data.classes import IGNORE_INDEX, MSRS
from taskfuse.data.io import atomic_path, read_image, read_ir, read_vi
from taskfuse.data.pairs import Pair, find_pairs
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation import SegmentationTask
from taskfuse.evaluation.detection import DetectionTask
from taskfuse.metrics.fusion import DEFAULT_METRICS, HIGHER_IS_BETTER, FusionMetrics, metric_name
from taskfuse.metrics.html import PAIRS, Figure, Paragraph, Section, pair_rows, table_from_markdown, write_page
from taskfuse.metrics.report import cdf_png
from taskfuse.metrics.segmentation import SegmentationMetrics, iou_from_confusion
from taskfuse.metrics.table import mark, markdown_table, rank_marks

SCORES = {"segmentation": "mIoU", "detection": "mAP50"}
"""Headline score of each downstream task."""
LEARNED_IOU = 1.0
"""Test IoU (percent) above which a class counts as learned by the segmenter in a row."""


def class_counts(folder: Path, num_classes: int = MSRS.num_classes) -> torch.Tensor:
    """(C,) pixel counts per class over the label maps in ``folder`` (255 ignored)."""
    counts = np.zeros(num_classes, dtype=np.int64)
    for path in sorted(folder.glob("*.png")):
        label = read_image(path).ravel()
        counts += np.bincount(label[label != IGNORE_INDEX], minlength=num_classes)[:num_classes]
    return torch.from_numpy(counts)


def chance(scenes: Path) -> dict[str, Any]:
    """``majority`` and ``prior`` chance mIoU (percent) of the test labels (module docstring)."""
    train = class_counts(scenes / "train" / "Segmentation_labels")
    if train.sum() == 0:
        raise TaskfuseError(f"{scenes}/train/Segmentation_labels holds no labelled pixel; rewrite the scenes")
    majority = int(train.argmax())
    metrics = SegmentationMetrics(MSRS.num_classes, class_names=MSRS.names)
    for path in sorted((scenes / "test" / "Segmentation_labels").glob("*.png")):
        label = torch.from_numpy(read_image(path).astype(np.int64))[None]
        metrics.update(torch.full_like(label, majority), label)
    test = metrics.cm.sum(dim=1).double()
    expected = test[:, None] * (train.double() / train.sum())[None, :]
    return {
        "majority": 100.0 * metrics.compute()["miou"],
        "majority_class": MSRS.names[majority],
        "prior": 100.0 * float(iou_from_confusion(expected).nanmean()),
    }


def load_records(out: Path) -> list[dict[str, Any]]:
    """Every row file in ``out/rows``, in the order of the scale's rows (recorded in ``benchmark.json``)."""
    files = sorted((out / "rows").glob("*.json"))
    if not files:
        raise TaskfuseError(f"{out}/rows holds no finished row; run the benchmark first (without --report)")
    records = [json.loads(p.read_text()) for p in files]
    order = settings(out)["rows"]
    return sorted(records, key=lambda r: order.index(r["row"]) if r["row"] in order else len(order))


def settings(out: Path) -> dict[str, Any]:
    """What ``out`` was made with (``taskfuse.benchmark.synthetic.Settings``)."""
    path = out / "benchmark.json"
    if not path.is_file():
        raise TaskfuseError(f"{out} is not a benchmark folder (no benchmark.json); check --out")
    return json.loads(path.read_text())


def headline(record: Mapping[str, Any], task: str) -> float | None:
    """The task's headline score of a row in percent, None when the row has no such result."""
    value = record.get(task, {}).get("result", {}).get(SCORES[task])
    return None if value is None else 100.0 * value


def flat_rows(records: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> list[dict[str, Any]]:
    """One flat dict per row: scores in percent, fusion metrics, wall times in seconds."""
    rows = []
    for r in records:
        row: dict[str, Any] = {"row": r["row"], "kind": r["kind"]}
        for task in tasks:
            row[SCORES[task]] = headline(r, task)
        row.update(r["fusion_metrics"])
        row["fusion_train_s"] = r.get("fusion_train", {}).get("seconds", 0.0)
        row["fuse_s"] = r.get("fuse_seconds", 0.0)
        row["downstream_s"] = sum(r[t]["seconds"] for t in tasks if t in r)
        rows.append(row)
    return rows


def per_class(record: Mapping[str, Any], tasks: Sequence[str]) -> dict[str, dict[str, float | None]]:
    """Per-class IoU (segmentation) and AP50 (detection) of a row, in percent."""
    keys = {"segmentation": "iou", "detection": "AP50"}
    return {
        t: {c: None if v is None else 100.0 * v for c, v in record[t]["result"][keys[t]].items()}
        for t in tasks
        if t in record
    }


def learned_classes(records: Sequence[Mapping[str, Any]], floor: float = LEARNED_IOU) -> list[str]:
    """Classes whose test IoU exceeds ``floor`` percent in at least one row: where the segmenter learned
    something at all, and so where the rows can differ."""
    ious = [r["segmentation"]["result"]["iou"] for r in records if "segmentation" in r]
    return [c for c in MSRS.names if any((iou.get(c) or 0.0) * 100.0 > floor for iou in ious)]


def class_tables(records: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> dict[str, str]:
    """Per-class tables in the seeds' layout (the downstream tasks' own ``table``): IoU per class and mIoU,
    AP50 per class, mAP50 and mAP50:95."""
    makers = {"segmentation": lambda: SegmentationTask(MSRS), "detection": lambda: DetectionTask(OBJECTS)}
    return {t: makers[t]().table({r["row"]: r[t]["result"] for r in records if t in r}) for t in tasks}


def _cell(value: float | None, digits: int) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> str:
    """The table: scores and fusion metrics with the best and second best marked, then wall times."""
    scores = [SCORES[t] for t in tasks]
    marked = [*scores, *DEFAULT_METRICS]
    times = ["fusion_train_s", "fuse_s", "downstream_s"]
    ranks = {
        c: rank_marks({r["row"]: math.nan if r[c] is None else r[c] for r in rows}, HIGHER_IS_BETTER.get(c, True))
        for c in marked
    }
    body = [
        [
            r["row"],
            r["kind"],
            *(mark(_cell(r[c], 2 if c in scores else 3), r["row"], *ranks[c]) for c in marked),
            *(_cell(r[c], 1) for c in times),
        ]
        for r in rows
    ]
    header = ["Row", "Kind", *marked, "Fusion training (s)", "Fusing (s)", "Downstream (s)"]
    return markdown_table(header, body)


def verdict(records: Sequence[Mapping[str, Any]], task: str) -> dict[str, Any]:
    """The comparisons of the module docstring for one task, in percentage points."""
    score = {r["row"]: headline(r, task) for r in records if headline(r, task) is not None}
    guidance = {
        m: score[f"{m}-task-guided"] - score[f"{m}-fusion-only"]
        for m in benchmark_methods()
        if f"{m}-task-guided" in score and f"{m}-fusion-only" in score
    }
    kinds = {r["row"]: r["kind"] for r in records}
    modalities = {n: v for n, v in score.items() if kinds[n] == "modality"}
    fused = {n: v for n, v in score.items() if kinds[n] != "modality"}
    out: dict[str, Any] = {"score": SCORES[task], "guidance": guidance}
    if modalities:
        name = max(modalities, key=modalities.__getitem__)
        out["best_modality"] = {"row": name, "value": modalities[name]}
        out["guided_over_modality"] = {
            n.removesuffix("-task-guided"): v - modalities[name] for n, v in fused.items() if kinds[n] == "task-guided"
        }
    if fused:
        name = max(fused, key=fused.__getitem__)
        out["best_fused"] = {"row": name, "value": fused[name]}
    return out


def _signed(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:+.2f}" for k, v in values.items())


def verdict_lines(v: Mapping[str, Any]) -> list[str]:
    """The verdict of one task as sentences built from its numbers."""
    s = v["score"]
    lines = []
    g = v["guidance"]
    if g:
        up = [m for m, d in g.items() if d > 0]
        lines.append(
            f"{s}, task-guided minus fusion-only (points): {_signed(g)}; higher with task guidance for "
            f"{len(up)} of {len(g)} methods."
        )
    if "best_modality" in v and "best_fused" in v:
        m, f = v["best_modality"], v["best_fused"]
        lines.append(
            f"{s}, best fused row {f['row']} ({f['value']:.2f}) minus best single modality {m['row']} "
            f"({m['value']:.2f}): {f['value'] - m['value']:+.2f} points."
        )
    over = v.get("guided_over_modality", {})
    if over:
        above = [n for n, d in over.items() if d > 0]
        lines.append(
            f"{s}, task-guided rows minus the best single modality (points): {_signed(over)}; above it for "
            f"{len(above)} of {len(over)}."
        )
    return lines


def build(out: Path) -> dict[str, Any]:
    """Everything the report files show, from the row files in ``out``."""
    records = load_records(out)
    tasks = [t for t in SCORES if any(t in r for r in records)]
    rows = flat_rows(records, tasks)
    level = chance(out / "scenes")
    bar = max(level["majority"], level["prior"])
    verdicts = {t: verdict(records, t) for t in tasks}
    return {
        "settings": settings(out),
        "tasks": tasks,
        "rows": rows,
        "per_class": {r["row"]: per_class(r, tasks) for r in records},
        "chance": level,
        "below_chance": [r["row"] for r in rows if r.get("mIoU") is not None and r["mIoU"] <= bar],
        "learned": learned_classes(records),
        "class_tables": class_tables(records, tasks),
        "verdict": verdicts,
    }


def chance_line(report: Mapping[str, Any]) -> str:
    """The chance levels and the rows at or below them, as a sentence."""
    level = report["chance"]
    return (
        f"Chance mIoU: {level['majority']:.2f} (predicting {level['majority_class']} everywhere), "
        f"{level['prior']:.2f} (random guesses with the training class frequencies). Rows at or below "
        f"chance: {', '.join(report['below_chance']) or 'none'}."
    )


def to_markdown(report: Mapping[str, Any]) -> str:
    s = report["settings"]
    lines = [
        f"# Synthetic benchmark ({s['scale']} scale, seed {s['seed']})",
        "",
        markdown(report["rows"], report["tasks"]),
        chance_line(report),
        "",
        f"Classes with a test IoU above {LEARNED_IOU:g} % in some row: {', '.join(report['learned']) or 'none'}; "
        f"every other class scores at most {LEARNED_IOU:g} % in every row.",
        "",
        "## Verdict",
        "",
    ]
    for task in report["tasks"]:
        lines += [f"- {line}" for line in verdict_lines(report["verdict"][task])]
    for task, table in report["class_tables"].items():
        lines += ["", f"## Per class: {task} (percent)", "", table.rstrip("\n")]
    return "\n".join(lines) + "\n"


def to_csv(report: Mapping[str, Any]) -> str:
    """One line per row: the flat row, then the IoU of every class in percent (segmentation)."""
    rows = report["rows"]
    header = list(rows[0])
    classes = list(MSRS.names) if "segmentation" in report["tasks"] else []
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header + [f"IoU {c}" for c in classes])
    for r in rows:
        iou = report["per_class"][r["row"]].get("segmentation", {})
        values = [r[k] for k in header] + [iou.get(c) for c in classes]
        writer.writerow(["" if v is None else v for v in values])
    return buffer.getvalue()


def scene_values(out: Path, rows: Sequence[str], metric: str) -> tuple[list[Pair], dict[str, dict[str, np.ndarray]]]:
    """The test scenes and ``metric`` of every fused row in ``rows`` on each of them (rows whose fused test
    images are not all there are left out)."""
    scenes = find_pairs(out / "scenes" / "test" / "ir", out / "scenes" / "test" / "vi")
    values = {}
    for row in rows:
        folder = out / "fused" / row / "test"
        if not all((folder / f"{p.name}.png").is_file() for p in scenes):
            continue
        meter = FusionMetrics([metric])
        for p in scenes:
            meter.update(read_vi(folder / f"{p.name}.png")[None], read_ir(p.ir)[None], read_vi(p.vi)[None])
        values[row] = {metric: meter.compute()[metric].numpy()}
    return scenes, values


def html_sections(out: Path, report: Mapping[str, Any], metric: str, pairs: int) -> list[Section]:
    """The sections of ``report.html`` (module docstring)."""
    tasks = report["tasks"]
    scores = " and ".join(SCORES[t] for t in tasks)
    caption = f"{scores} in percent on the test scenes, fusion metrics averaged over them, wall times in seconds."
    verdicts = [line for t in tasks for line in verdict_lines(report["verdict"][t])]
    sections = [
        Section(
            "Table", [table_from_markdown(markdown(report["rows"], tasks), caption), Paragraph(chance_line(report))]
        ),
        Section("Verdict", [Paragraph(items=verdicts)]),
        *(
            Section(f"Per class: {t} (percent)", [table_from_markdown(table)])
            for t, table in report["class_tables"].items()
        ),
    ]
    fused_rows = [r["row"] for r in report["rows"] if r["kind"] != "modality"]
    scenes, values = scene_values(out, fused_rows, metric)
    if values:
        higher = HIGHER_IS_BETTER[metric]
        plot = Figure(cdf_png(metric, {r: v[metric] for r, v in values.items()}, higher), f"{metric} by test scene")
        rows = pair_rows(
            [p.name for p in scenes],
            values,
            metric,
            HIGHER_IS_BETTER,
            lambda i: (read_ir(scenes[i].ir), read_vi(scenes[i].vi)),
            lambda row, i: read_vi(out / "fused" / row / "test" / f"{scenes[i].name}.png"),
            pairs,
        )
        sections.append(Section(f"Fused test scenes by {metric}", [plot, *rows]))
    return sections


def seed_summary(folders: Sequence[Path]) -> dict[str, Any]:
    """Several output folders of one scale that differ only in seed, summarised: every row's headline scores as
    mean ± sd over the seeds, and per method task-guided minus fusion-only paired by seed (mean, sd over the
    seeds, and the smallest difference that many seeds detect given that spread, ``stats.detectable``; the
    synthetic protocol keeps no per-image results, so the test scenes are not resampled)."""
    found = [settings(Path(f)) for f in folders]
    seeds = [f["seed"] for f in found]
    if len(set(seeds)) != len(seeds) or any(
        (f["scale"], f["detection"]) != (found[0]["scale"], found[0]["detection"]) for f in found
    ):
        raise TaskfuseError(
            f"{', '.join(map(str, folders))}: give folders of one scale and detection setting with distinct seeds"
        )
    records = [{r["row"]: r for r in load_records(Path(f))} for f in folders]
    tasks = [t for t in SCORES if any(t in r for rec in records for r in rec.values())]
    rows = []
    for name in dict.fromkeys(n for rec in records for n in rec):
        row: dict[str, Any] = {"row": name, "seeds": sum(name in rec for rec in records)}
        for t in tasks:
            row[SCORES[t]], row[f"{SCORES[t]}_sd"] = mean_sd([headline(rec[name], t) for rec in records if name in rec])
        rows.append(row)
    guidance = {}
    for t in tasks:
        for m in benchmark_methods():
            diffs = [
                headline(rec[f"{m}-task-guided"], t) - headline(rec[f"{m}-fusion-only"], t)
                for rec in records
                if headline(rec.get(f"{m}-task-guided", {}), t) is not None
                and headline(rec.get(f"{m}-fusion-only", {}), t) is not None
            ]
            if diffs:
                mean, sd = mean_sd(diffs)
                spread = Difference(len(diffs), mean, math.nan, math.nan, 0.0, sd)
                guidance[f"{SCORES[t]} {m}"] = {
                    "mean": mean,
                    "sd": sd,
                    "seeds": len(diffs),
                    "detectable": detectable(spread),
                }
    return {"seeds": seeds, "scale": found[0]["scale"], "rows": rows, "guidance": guidance}


def seeds_markdown(summary: Mapping[str, Any]) -> str:
    """The cross-seed summary as Markdown."""
    cols = [c for c in ("mIoU", "mAP50") if any(c in r for r in summary["rows"])]
    body = [[r["row"], str(r["seeds"]), *(_pm(r[c], r[f"{c}_sd"]) for c in cols)] for r in summary["rows"]]
    lines = [
        f"# Synthetic benchmark over seeds {', '.join(map(str, summary['seeds']))} ({summary['scale']} scale)",
        "",
        markdown_table(["Row", "Seeds", *cols], body).rstrip("\n"),
        "",
        "Task-guided minus fusion-only, paired by seed (points; smallest detectable: 80 % power, 5 % level):",
        "",
    ]
    lines += [
        f"- {k}: {g['mean']:+.2f} ± {g['sd']:.2f} over {g['seeds']} seeds; smallest detectable "
        f"{_cell(g['detectable'], 2)}"
        for k, g in summary["guidance"].items()
    ]
    return "\n".join(lines) + "\n"


def _pm(mean: float, sd: float) -> str:
    if mean is None or math.isnan(mean):
        return "n/a"
    return f"{mean:.2f}" if math.isnan(sd) else f"{mean:.2f} ± {sd:.2f}"


def write_seed_summary(folders: Sequence[Path], out: Path) -> list[Path]:
    """Write ``seeds.md`` and ``seeds.json`` (``seed_summary``) into ``out``; returns their paths."""
    summary = seed_summary(folders)
    texts = {"seeds.md": seeds_markdown(summary), "seeds.json": json.dumps(summary, indent=1) + "\n"}
    for name, text in texts.items():
        with atomic_path(Path(out) / name) as tmp:
            tmp.write_text(text)
    return [Path(out) / name for name in texts]


def write_report(out: Path, html_metric: str = "Qabf", html_pairs: int = PAIRS) -> list[Path]:
    """Write ``table.md``, ``table.json``, ``table.csv`` and ``report.html`` (best and worst ``html_pairs`` test
    scenes by ``html_metric``) into ``out``; returns their paths."""
    out = Path(out)
    metric = metric_name(html_metric)
    if html_pairs < 0:
        raise TaskfuseError(f"--html-pairs {html_pairs}: give a number of scenes, 0 or more")
    report = build(out)
    texts = {
        "table.md": to_markdown(report),
        "table.json": json.dumps(report, indent=1) + "\n",
        "table.csv": to_csv(report),
    }
    for name, text in texts.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
    s = report["settings"]
    title = f"Synthetic benchmark ({s['scale']} scale, seed {s['seed']})"
    page = write_page(out / "report.html", title, html_sections(out, report, metric, html_pairs))
    return [*(out / name for name in texts), page]
