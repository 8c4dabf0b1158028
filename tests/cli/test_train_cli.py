"""``taskfuse train``: --list, a run, --resume that extends it, and config errors as exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taskfuse.cli.main import main
from taskfuse.errors import TaskfuseError
from taskfuse.train.log import read_metrics

TRAIN_TESTS = Path(__file__).resolve().parents[1] / "train"


@pytest.fixture
def tiny_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(TRAIN_TESTS))
    from train_helpers import tiny_config

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(steps=3)))
    return path


def test_list_shows_shipped_configs_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    by_name = {line.split()[0]: line for line in lines}
    assert "psfusion_synthetic" in by_name and "seafusion_synthetic" in by_name
    assert "synthetic" in by_name["psfusion_synthetic"].split(maxsplit=1)[1]


def test_train_then_resume_further(tiny_yaml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tiny_yaml), "--out", str(tmp_path / "runs"), "--device", "cpu"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("tiny-") and "fusion.safetensors" in capsys.readouterr().out
    assert main(["train", "--resume", str(run), "--set", "train.iters=5", "--device", "cpu"]) == 0
    assert sorted(read_metrics(run / "metrics.csv")["train/total"]) == [1, 2, 3, 4, 5]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["iters"] == 5


def test_config_errors_exit_2_with_the_fix(tiny_yaml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tiny_yaml), "--set", "train.bach_size=2"]) == 2
    assert "did you mean 'batch_size'" in capsys.readouterr().err
    assert main(["train"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "no_such_config"]) == 2
    assert "taskfuse train --list" in capsys.readouterr().err


def pairs_folder(root: Path, n: int) -> Path:
    """``n`` small registered pairs in a flat ir/ + vi/ folder, as a user's own data would be."""
    from taskfuse.data.io import write_image
    from taskfuse.data.synthetic import render_scene

    for i in range(n):
        scene = render_scene(i, 72, 88)
        write_image(root / "ir" / f"pair_{i:03d}.png", scene["ir"])
        write_image(root / "vi" / f"pair_{i:03d}.jpg", scene["vi"])
    return root


def test_fine_tune_the_default_on_a_flat_folder_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = pairs_folder(tmp_path / "mine", 10)
    args = ["train", "lite_finetune", "--quick", "--set", f"data.train.root={root}", "log.progress=false"]
    assert main([*args, "--out", str(tmp_path / "runs"), "--device", "cpu"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("lite_finetune-quick-") and (run / "fusion.safetensors").is_file()
    data = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert (data["train"]["root"], data["train"]["split"]) == (str(root), "train")
    assert (data["val"]["root"], data["val"]["split"], data["workers"]) == (str(root), "val", 0)
    metrics = read_metrics(run / "metrics.csv")
    assert sorted(metrics["train/total"]) == list(range(1, 7)) and "val/Qabf" in metrics
    assert "last validation" in capsys.readouterr().out


def test_failed_starts_leave_no_run_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    out = tmp_path / "runs"
    assert main(["train", "lite_finetune", "--set", f"data.train.root={tmp_path / 'absent'}", "--out", str(out)]) == 2
    assert "data.train (paired at" in capsys.readouterr().err and not out.exists()
    root = pairs_folder(tmp_path / "mine", 4)
    from taskfuse.train.strategies.fusion_only import FusionOnly

    def fail(self, step: int) -> None:
        raise TaskfuseError("a bad batch")

    args = ["train", "lite", "--quick", "--set", f"data.train.root={root}", "data.val=null", "log.best=null"]
    absent_mix = f"data.train.mix=[{{name: msrs_det, root: {tmp_path / 'no_msrs'}}}]"
    assert main([*args, absent_mix, "--out", str(out), "--device", "cpu"]) == 2
    assert "mix[0] (msrs_det at" in (err := capsys.readouterr().err) and "--set data.train.mix=null" in err
    assert not out.exists()
    monkeypatch.setattr(FusionOnly, "train_step", fail)
    args.append("data.train.mix=null")
    assert main([*args, "--out", str(out), "--device", "cpu"]) == 2
    assert "a bad batch" in capsys.readouterr().err and list(out.iterdir()) == []


def test_quick_refuses_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--resume", str(tmp_path), "--quick"]) == 2
    assert "drop it" in capsys.readouterr().err
