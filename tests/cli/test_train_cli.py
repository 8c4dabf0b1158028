"""``taskfuse train``: --list, a run, --resume that extends it, and config errors as exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from taskfuse.cli.main import main
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
