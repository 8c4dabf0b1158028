from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from taskfuse import models
from taskfuse.cli.main import main
from taskfuse.data.synthetic import write_scenes
from taskfuse.evaluation import loop, segmentation
from taskfuse.models.weights import save_weights

PSFUSION = {"backbone_depth": 18, "width": 16, "rec_width": 8}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An MSRS-layout set (8 train, 4 test scenes), its images fused by ``mean``, and small PSFusion weights."""
    tmp = tmp_path_factory.mktemp("tasks")
    data = write_scenes(tmp / "data", 8, 4, height=64, width=80)
    for split in ("train", "test"):
        fuse = ["fuse", "--method", "mean", "--device", "cpu", "--out", str(tmp / "fused" / split)]
        assert main([*fuse, "--ir", str(data / split / "ir"), "--vi", str(data / split / "vi")]) == 0
    weights = save_weights(models.create("psfusion", **PSFUSION), tmp / "psf.safetensors", "psfusion", PSFUSION)
    return {"data": data, "fused": tmp / "fused", "weights": weights, "out": tmp / "out"}


def _args(s: dict[str, Path], out: Path, *inputs: str) -> list[str]:
    return ["evaluate", "segmentation", "--dataset", "msrs", "--root", str(s["data"]), "--inputs", *inputs,
            "--segmenter", "segformer-b0", "--epochs", "1", "--batch-size", "4", "--grid", "2", "--device", "cpu",
            "--out", str(out)]  # fmt: skip


def test_segmentation_end_to_end_then_rerun_skips(setup, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    out = setup["out"]
    args = [*_args(setup, out, "ir", "vi", "mean", f"fused={setup['fused']}"), "--direct", f"psf={setup['weights']}"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    rows = ["ir", "vi", "mean", "fused", "psf (direct)"]
    assert "| Method | unlabelled | car | person | bike |" in printed
    assert [line.split(" | ")[0][2:] for line in printed.splitlines()[2:7]] == rows

    results = json.loads((out / "results.json").read_text())["results"]
    assert list(results) == rows and all(0 <= r["mIoU"] <= 1 for r in results.values())
    assert results["mean"] == results["fused"]
    ir, vi = (json.loads((out / n / "result.json").read_text()) for n in ("ir", "vi"))
    assert ir["mean"] != vi["mean"] and ir["std"] != vi["std"]
    assert (out / "table.md").read_text().count("\n") == 2 + len(rows)
    with Image.open(out / "grid.png") as grid:
        assert grid.format == "PNG" and grid.height > 2 * 64 and grid.width >= (2 + 2 * len(rows) + 1) * 80

    calls = []
    monkeypatch.setattr(loop, "train_input", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(segmentation, "load_model", lambda *a, **k: calls.append(a))
    assert main(args) == 0
    assert calls == [] and json.loads((out / "results.json").read_text())["results"] == results


def test_missing_fused_images_fail_before_training(setup, tmp_path: Path, capsys) -> None:
    fused = tmp_path / "fused"
    shutil.copytree(setup["fused"], fused)
    gone = sorted((fused / "test").iterdir())[1]
    gone.unlink()
    assert main(_args(setup, tmp_path / "out", "ir", f"f={fused}")) == 2
    err = capsys.readouterr().err
    assert f"no fused image for 1 of the 4 test samples: {gone.stem}" in err
    assert not (tmp_path / "out" / "ir").exists()


def test_unknown_input_is_an_error(setup, tmp_path: Path, capsys) -> None:
    assert main(_args(setup, tmp_path / "out", "ir", "lapalcian")) == 2
    assert "'lapalcian': not an input; give ir, vi, a classical rule" in capsys.readouterr().err


def test_keypoints_command_builds_its_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from taskfuse.cli import evaluate as command
    from taskfuse.evaluation.keypoints import KeypointTask

    data = write_scenes(tmp_path / "kp", 4, 2, height=48, width=64, layout="coco_keypoints")
    seen = {}

    def fake(task, train, test, specs, out, cfg):
        seen.update(task=task, splits=(train.split, test.split), inputs=[s.text for s in specs], cfg=cfg)
        out.mkdir(parents=True)
        (out / "table.md").write_text("| Method | AP |\n")
        return {}

    monkeypatch.setattr(command, "evaluate", fake)
    args = ["evaluate", "keypoints", "--dataset", "coco_keypoints", "--root", str(data), "--inputs", "ir",
            "--inputs", "vi", "--keypoint-net", "simplebaseline-r18", "--crop", "32", "--no-flip", "--out",
            str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0 and "| Method | AP |" in capsys.readouterr().out
    task = seen["task"]
    assert isinstance(task, KeypointTask) and task.model == "simplebaseline-r18" and task.num_keypoints == 4
    assert seen["splits"] == ("train", "test") and seen["inputs"] == ["ir", "vi"]
    assert seen["cfg"].crop == 32 and not seen["cfg"].flip


def test_detection_command_runs_the_protocol(tmp_path: Path, capsys) -> None:
    data = write_scenes(tmp_path / "m3fd", 4, 2, height=48, width=64, layout="m3fd")
    out = tmp_path / "out"
    args = ["evaluate", "detection", "--dataset", "m3fd", "--root", str(data), "--inputs", "ir", "vi",
            "--epochs", "1", "--batch-size", "2", "--grid", "1", "--device", "cpu", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "| Method | People | Car | Motorcycle | mAP50 | mAP50:95 |" in capsys.readouterr().out
    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == "detection" and saved["headline"] == "mAP50" and list(saved["results"]) == ["ir", "vi"]
    record = json.loads((out / "ir" / "result.json").read_text())
    assert record["test"]["count"] == 2 and (out / "grid.png").is_file()


def test_keypoints_command_runs_the_protocol(tmp_path: Path, capsys) -> None:
    data = write_scenes(tmp_path / "kp", 4, 2, height=48, width=64, layout="coco_keypoints")
    out = tmp_path / "out"
    args = ["evaluate", "keypoints", "--dataset", "coco_keypoints", "--root", str(data), "--test-split", "test",
            "--inputs", "ir", "mean", "--epochs", "1", "--batch-size", "2", "--grid", "1", "--device", "cpu",
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "| AP50 | AP75 | AR | AP |" in capsys.readouterr().out
    saved = json.loads((out / "results.json").read_text())
    assert saved["task"] == "keypoints" and saved["headline"] == "AP" and list(saved["results"]) == ["ir", "mean"]
    assert all(0.0 <= r["AP"] <= 1.0 for r in saved["results"].values())
    assert (out / "grid.png").is_file()


def test_segmentation_command_takes_a_class_subset_and_minmax_inputs(
    setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from taskfuse.cli import evaluate as command

    seen = {}

    def fake(task, train, test, specs, out, cfg):
        seen.update(task=task, cfg=cfg)
        out.mkdir(parents=True)
        (out / "table.md").write_text("| Method | car | mIoU |\n")
        return {}

    monkeypatch.setattr(command, "evaluate", fake)
    args = [*_args(setup, tmp_path / "out", "ir"), "--classes", "mfnet7", "--input-norm", "minmax"]
    assert main(args) == 0
    assert seen["task"].scored == ["car", "person", "bike", "curve", "car_stop", "color_cone", "bump"]
    assert seen["cfg"].input_norm == "minmax"
    assert main([*_args(setup, tmp_path / "bad", "ir"), "--classes", "truck"]) == 2
    assert "'truck' is not one of" in capsys.readouterr().err
