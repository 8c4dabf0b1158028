import csv
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from taskfuse.errors import TaskfuseError
from taskfuse.metrics.report import summarize, summary_markdown, write_report

IMAGES = ["00001", "00002", "00003", "00004"]
HIGHER = {"EN": True, "MS-SSIM": True, "MSE": False}


def _values() -> dict:
    return {
        "A": {"EN": [6.0, 7.0, 8.0, 7.0], "MS-SSIM": torch.tensor([0.9, 0.8, 0.7, 0.6]), "MSE": [0.02] * 4},
        "B": {"EN": [7.0, 7.5, 7.5, 8.0], "MS-SSIM": torch.tensor([0.5, 0.5, 0.6, 0.6]), "MSE": [0.01] * 4},
        "C": {"EN": [5.0, 5.0, 5.0, 5.0], "MS-SSIM": torch.tensor([0.7, 0.8, 0.9, 0.8]), "MSE": [0.03] * 4},
    }


def test_files_written_and_marks_follow_metric_direction(tmp_path):
    files = write_report(_values(), IMAGES, tmp_path / "report", HIGHER)
    for p in (files.per_image, files.summary_md, files.summary_json):
        assert p.is_file()
    assert not list((tmp_path / "report").glob("*.part"))

    rows = list(csv.reader(files.per_image.open()))
    assert rows[0] == ["method", "image", "EN", "MS-SSIM", "MSE"]
    assert len(rows) == 1 + 3 * 4
    assert rows[1][:2] == ["A", "00001"] and float(rows[1][3]) == pytest.approx(0.9)

    summary = json.loads(files.summary_json.read_text())
    assert summary["images"] == 4
    assert summary["methods"]["B"]["EN"]["mean"] == pytest.approx(7.5)
    assert summary["methods"]["A"]["EN"]["std"] == pytest.approx(np.std([6, 7, 8, 7]))
    assert summary["best"]["EN"] == ["B"] and summary["second"]["EN"] == ["A"]
    assert summary["best"]["MS-SSIM"] == ["C"] and summary["second"]["MS-SSIM"] == ["A"]
    assert summary["best"]["MSE"] == ["B"] and summary["second"]["MSE"] == ["A"]

    md = files.summary_md.read_text()
    assert "| Method | EN ↑ | MS-SSIM ↑ | MSE ↓ |" in md
    assert "| B | **7.5000 ± 0.3536** |" in md
    assert "| A | _7.0000 ± 0.7071_ |" in md
    assert "| C | 5.0000 ± 0.0000 |" in md


def test_cdf_plots_are_valid_pngs(tmp_path):
    files = write_report(_values(), IMAGES, tmp_path, HIGHER)
    assert set(files.cdf_plots) == {"EN", "MS-SSIM", "MSE"}
    assert files.cdf_plots["MS-SSIM"].name == "cdf_MS-SSIM.png"
    for path in files.cdf_plots.values():
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100


def test_single_method_has_no_marks_and_nan_becomes_null(tmp_path):
    values = {"only": {"EN": [1.0, math.nan, 2.0, 3.0], "MSE": [0.1, 0.2, 0.3, 0.4]}}
    files = write_report(values, IMAGES, tmp_path, HIGHER)
    summary = json.loads(files.summary_json.read_text())
    assert summary["methods"]["only"]["EN"]["mean"] is None
    assert summary["best"] == {"EN": [], "MSE": []}
    md = files.summary_md.read_text()
    assert "**" not in md and "| only | nan ± nan | 0.2500 ± 0.1118 |" in md
    assert files.cdf_plots["EN"].is_file()


def test_ties_share_the_mark():
    values = {"A": {"EN": [1.0]}, "B": {"EN": [1.0]}, "C": {"EN": [0.5]}}
    summary = summarize(values, ["x"], HIGHER)
    assert summary["best"]["EN"] == ["A", "B"] and summary["second"]["EN"] == ["C"]
    assert summary_markdown(summary).count("**") == 4


def test_bad_inputs_raise(tmp_path):
    with pytest.raises(TaskfuseError, match="one value per image"):
        write_report({"A": {"EN": [1.0, 2.0]}}, IMAGES, tmp_path, HIGHER)
    with pytest.raises(TaskfuseError, match="same metrics"):
        write_report({"A": {"EN": [1.0]}, "B": {"MSE": [1.0]}}, ["x"], tmp_path, HIGHER)
    with pytest.raises(TaskfuseError, match="higher_is_better"):
        write_report({"A": {"XYZ": [1.0]}}, ["x"], tmp_path, HIGHER)
    (tmp_path / "file").write_text("")
    with pytest.raises(TaskfuseError, match="not a folder"):
        write_report({"A": {"EN": [1.0]}}, ["x"], tmp_path / "file", HIGHER)
