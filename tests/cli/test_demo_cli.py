"""``taskfuse demo``: a tiny run, and bad arguments refused before any scene is rendered."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskfuse.cli.main import main
from taskfuse.data.io import read_image


def test_tiny_demo_writes_the_figure_and_the_fused_scenes(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--scenes", "2", "--size", "32x48", "--method", "mean"]) == 0
    assert (out / "demo.png").is_file()
    fused = sorted((out / "fused").iterdir())
    assert len(fused) == 2 and read_image(fused[0]).shape == (32, 48, 3)
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--size", "240"], "argument --size: expected HxW in pixels, each at least 16 (e.g. 240x320), got '240'"),
        (["--size", "240x"], "got '240x'"),
        (["--size", "8x8"], "each at least 16"),
        (["--size", "240x0"], "got '240x0'"),
        (["--scenes", "0"], "argument --scenes: expected a number of scenes of at least 1, got '0'"),
        (["--scenes", "two"], "got 'two'"),
        (["--seed", "-1"], "argument --seed: expected a non-negative whole number, got '-1'"),
    ],
)
def test_bad_arguments_are_usage_errors(tmp_path: Path, args: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--out", str(tmp_path / "demo"), *args])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.out == ""
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device", "gpu"], "--device gpu: not a device name; use auto, cpu, cuda, cuda:N or mps"),
        (["--method", "psfusion"], "needs trained weights"),
        (["--out", "FILE/demo"], "--out FILE/demo: cannot write there"),
    ],
)
def test_bad_settings_fail_before_rendering(tmp_path: Path, args: list[str], message: str, capsys) -> None:
    (tmp_path / "FILE").write_text("x")
    args = [a.replace("FILE", str(tmp_path / "FILE")) for a in args]
    assert main(["demo", "--out", str(tmp_path / "demo"), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("taskfuse demo: error: ") and message.replace("FILE", str(tmp_path / "FILE")) in err
    assert not (tmp_path / "demo").exists()
