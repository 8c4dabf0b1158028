"""The benchmark's ``report.html``: its tables, the verdict, and the fused test scenes ranked by one metric."""

from __future__ import annotations

from pathlib import Path

import torch

from taskfuse.benchmark.report import html_sections, markdown
from taskfuse.data.io import write_image
from taskfuse.metrics.fusion import DEFAULT_METRICS
from taskfuse.metrics.html import Figure, Table, TileRow, render_page

ROWS = [("ir", "modality"), ("max", "classical"), ("seafusion-task-guided", "task-guided")]


def _report() -> dict:
    rows = [
        {"row": name, "kind": kind, "mIoU": 10.0 + i, **dict.fromkeys(DEFAULT_METRICS, 1.0 + i),
         "fusion_train_s": 0.0, "fuse_s": 1.0, "downstream_s": 2.0}
        for i, (name, kind) in enumerate(ROWS)
    ]  # fmt: skip
    return {
        "settings": {"scale": "small", "seed": 0},
        "tasks": ["segmentation"],
        "rows": rows,
        "chance": {"majority": 5.0, "majority_class": "road", "prior": 3.0},
        "below_chance": [],
        "verdict": {"segmentation": {"score": "mIoU", "guidance": {"seafusion": 1.5}}},
        "class_tables": {"segmentation": "| Method | car | mIoU |\n| :-- | --: | --: |\n| max | **1.0** | _2.0_ |\n"},
    }


def test_tables_verdict_and_scenes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    for n in ("s0", "s1", "s2"):
        ir, vi = torch.rand(1, 24, 32), torch.rand(3, 24, 32)
        write_image(tmp_path / "scenes" / "test" / "ir" / f"{n}.png", ir)
        write_image(tmp_path / "scenes" / "test" / "vi" / f"{n}.png", vi)
        write_image(tmp_path / "fused" / "max" / "test" / f"{n}.png", torch.maximum(ir, vi))
    report = _report()
    sections = html_sections(tmp_path, report, "Qabf", 1)
    assert [s.heading for s in sections] == [
        "Table", "Verdict", "Per class: segmentation (percent)", "Fused test scenes by Qabf"
    ]  # fmt: skip
    table = sections[0].blocks[0]
    assert isinstance(table, Table) and [r[0] for r in table.rows] == [name for name, _ in ROWS]
    assert table.marks[2][table.header.index("mIoU")] == "best" and "mIoU" in markdown(report["rows"], ["segmentation"])
    assert "task-guided minus fusion-only" in sections[1].blocks[0].items[0]
    scenes = sections[3].blocks
    assert isinstance(scenes[0], Figure) and all(isinstance(b, TileRow) for b in scenes[1:])
    assert [t.label for t in scenes[1].tiles] == ["IR", "VIS", "max"]  # the task-guided row has no fused images
    page = render_page("benchmark", sections)
    assert len(scenes) == 1 + 2 and '<th scope="col" data-kind="text" title="click to sort">Kind</th>' in page
    assert '<th scope="col" data-kind="number" title="click to sort">mIoU</th>' in page
