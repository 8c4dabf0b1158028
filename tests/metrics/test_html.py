"""``report.html``: tables parsed from the Markdown reports with their marks, escaping, the best and worst pairs,
a page that needs no network, and, in headless Chromium, a column sort done by a click and a screenshot."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskfuse.cli.main import main
from taskfuse.data.io import write_image
from taskfuse.errors import TaskfuseError
from taskfuse.metrics.html import (
    Paragraph,
    Section,
    Table,
    ranked_pairs,
    render_page,
    table_from_markdown,
)
from taskfuse.metrics.table import markdown_table

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
METRICS = ["EN", "SD", "SF", "Qabf"]


def test_markdown_table_keeps_cells_and_marks() -> None:
    text = "Caption line.\n\n" + markdown_table(
        ["Method", "EN ↑", "MSE ↓"], [["a_b", "**7.1 ± 0.2**", "_0.3_"], ["c", "_6.9 ± 0.1_", "**0.1**"]]
    )
    table = table_from_markdown(text)
    assert table.header == ["Method", "EN ↑", "MSE ↓"] and table.caption == "Caption line."
    assert table.rows == [["a_b", "7.1 ± 0.2", "0.3"], ["c", "6.9 ± 0.1", "0.1"]]
    assert table.marks == [["", "best", "second"], ["", "second", "best"]]
    with pytest.raises(TaskfuseError, match="no Markdown table"):
        table_from_markdown("no table here")


def test_text_is_escaped_and_nothing_is_fetched() -> None:
    evil = '<script>alert("x")</script>'
    page = render_page(
        evil, [Section(evil, [Table(["Method", "EN ↑"], [[evil, "1.0"]]), Paragraph(evil, [evil])])], evil
    )
    assert evil not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # the page's own sorting script only
    assert not re.search(r"(src|href)=\"(?!data:)", page) and "http" not in page


def test_ranked_pairs_best_first_then_worst_without_repeats() -> None:
    scores = {"a": np.array([1.0, 5.0, 3.0, np.nan, 2.0]), "b": np.array([1.0, 4.0, 2.0, np.nan, np.nan])}
    assert ranked_pairs(scores, True, 1) == [(1, "best #1"), (0, "worst #1")]
    assert ranked_pairs(scores, False, 1) == [(0, "best #1"), (1, "worst #1")]
    shown = ranked_pairs(scores, True, 3)  # 4 pairs with a value: each shown once
    assert [i for i, _ in shown] == [1, 2, 4, 0] and shown[-1][1] == "worst #1"


def _fusion_report(root: Path, names: list[str]) -> Path:
    """``taskfuse evaluate fusion --html`` over small random pairs and three made-up methods."""
    torch.manual_seed(0)
    for n in names:
        ir, vi = torch.rand(1, 40, 56), torch.rand(3, 40, 56)
        write_image(root / "ir" / f"{n}.png", ir)
        write_image(root / "vi" / f"{n}.png", vi)
        write_image(root / "sharp" / f"{n}.png", (0.5 * ir + 0.5 * vi).clamp(0, 1))
        write_image(root / "flat" / f"{n}.png", torch.full((3, 40, 56), 0.5) + 0.01 * torch.rand(3, 40, 56))
        write_image(root / "a<b>" / f"{n}.png", torch.maximum(ir, vi))
    out = root / "report"
    argv = ["evaluate", "fusion", "--ir", str(root / "ir"), "--vi", str(root / "vi"), "--fused",
            f"sharp={root / 'sharp'}", f"flat={root / 'flat'}", str(root / "a<b>"), "--metrics", *METRICS,
            "--device", "cpu", "--out", str(out), "--html", "--html-metric", "qabf", "--html-pairs", "1"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_fusion_report_html(tmp_path: Path) -> None:
    out = _fusion_report(tmp_path, ["p0", "p1", "p2", "p3"])
    page = (out / "report.html").read_text()
    assert page.count('<table class="sortable">') == 1 + 2  # summary, then one table per pair shown
    assert page.count("data:image/png;base64,") == len(METRICS) + 2 * (2 + 3)  # plots, then IR|VIS|3 methods
    assert "a&lt;b&gt;" in page and "a<b>" not in page
    assert "best #1 by Qabf" in page and "worst #1 by Qabf" in page
    assert not re.search(r"(src|href)=\"(?!data:)", page)


def test_fusion_report_html_refuses_a_metric_not_computed(tmp_path: Path, capsys) -> None:
    root = tmp_path
    write_image(root / "ir" / "a.png", torch.rand(1, 20, 20))
    write_image(root / "vi" / "a.png", torch.rand(3, 20, 20))
    write_image(root / "f" / "a.png", torch.rand(3, 20, 20))
    argv = ["evaluate", "fusion", "--ir", str(root / "ir"), "--vi", str(root / "vi"), "--fused", str(root / "f"),
            "--metrics", "EN", "--out", str(root / "r"), "--html", "--html-metric", "SSIM"]  # fmt: skip
    assert main(argv) == 2
    assert "--html-metric SSIM must be one of --metrics" in capsys.readouterr().err
    assert not (root / "r").exists()


def _browser() -> str:
    found = next((b for b in BROWSERS if shutil.which(b)), None)
    if found is None:
        pytest.skip(f"no headless browser on PATH ({', '.join(BROWSERS)}); apt-get install chromium")
    return found


def _chromium(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


def test_sort_by_click_and_screenshot_in_chromium(tmp_path: Path) -> None:
    browser = _browser()
    out = _fusion_report(tmp_path, ["p0", "p1", "p2"])
    page = (out / "report.html").read_text()
    means = json.loads((out / "summary.json").read_text())["methods"]

    click = """<script>
    var table = document.querySelector("table.sortable"), order = [];
    function rows() { return Array.from(table.tBodies[0].rows, function (r) { return r.cells[0].textContent; }); }
    var sd = Array.from(table.tHead.rows[0].cells).find(function (th) { return th.textContent === "SD ↑"; });
    sd.click(); order.push(rows().join(","));
    sd.click(); order.push(rows().join(","));
    table.tHead.rows[0].cells[0].click(); order.push(rows().join(","));
    document.body.setAttribute("data-orders", order.join("|"));
    </script></body>"""
    clicked = out / "clicked.html"
    clicked.write_text(page.replace("</body>", click))
    dom = _chromium(browser, tmp_path / "profile", "--dump-dom", clicked.as_uri()).stdout
    orders = [o.split(",") for o in html.unescape(re.search(r'data-orders="([^"]*)"', dom).group(1)).split("|")]
    by_sd = sorted(means, key=lambda m: means[m]["SD"]["mean"], reverse=True)
    assert orders[0] == by_sd  # first click: best first (SD, higher is better)
    assert orders[1] == by_sd[::-1]  # second click reverses
    assert orders[2] == sorted(means)  # the name column sorts by text
    assert 'aria-sort="ascending"' in dom

    shot = tmp_path / "report.png"
    _chromium(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,1600", out.joinpath(
        "report.html").as_uri())  # fmt: skip
    with Image.open(shot) as im:
        assert im.size == (1200, 1600)
        pixels = np.asarray(im.convert("L"), np.float64)
    assert pixels.std() > 10  # a rendered page with tables and images, not a blank one
