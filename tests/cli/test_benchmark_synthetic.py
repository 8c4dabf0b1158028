"""``taskfuse benchmark synthetic``: the two variants of every method train the same fusion steps on the same
images (labels only for task guidance); rows are selected and renumbered as documented; and the small scale
runs end to end on the CPU into a complete table whose best fused row segments better than chance."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from taskfuse.benchmark.scales import FULL, SMALL, Scale
from taskfuse.benchmark.synthetic import ObjectBoxes, all_rows, select_rows
from taskfuse.benchmark.training import benchmark_methods, train_variant, training_config
from taskfuse.cli.main import main
from taskfuse.data.io import read_image
from taskfuse.data.synthetic import SyntheticScenes, write_scenes
from taskfuse.errors import TaskfuseError
from taskfuse.train.config import RunConfig
from taskfuse.train.strategies.fusion_only import FusionOnly

METHODS = benchmark_methods()


def fusion_steps(cfg: RunConfig) -> int:
    """Optimisation steps of the fusion network in a validated config."""
    o = cfg.options
    if cfg.strategy == "iterative_joint":
        return o.rounds * o.fusion.iters
    pretext = o.pretext.iters if hasattr(o, "pretext") else 0
    return pretext + cfg.train.iters


@pytest.mark.parametrize("scale", [SMALL, FULL], ids=["small", "full"])
@pytest.mark.parametrize("method", METHODS)
def test_variants_share_data_and_fusion_steps(scale: Scale, method: str) -> None:
    guided, plain = (training_config(scale, method, v, Path("/data/scenes"), 3) for v in ("task-guided", "fusion-only"))
    assert plain.strategy == "fusion_only" and guided.strategy != "fusion_only"
    assert fusion_steps(guided) == fusion_steps(plain) == scale.fusion_steps
    for cfg in (guided, plain):
        assert (cfg.data.train.name, cfg.data.train.root, cfg.data.train.split) == ("msrs", "/data/scenes", "train")
        assert cfg.train.seed == 3 and cfg.data.val is None
    assert plain.data.train.options == {"labels": False} and guided.data.train.options == {}


def test_an_interrupted_training_resumes_and_a_finished_one_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scale = replace(SMALL, n_train=4, n_test=2, fusion_steps=4, checkpoint_every=2)
    write_scenes(tmp_path / "scenes", 4, 2, scale.height, scale.width, 0)
    step = FusionOnly.train_step

    def interrupted(self: FusionOnly, t: int) -> dict:
        if t == 3:
            raise KeyboardInterrupt
        return step(self, t)

    monkeypatch.setattr(FusionOnly, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_variant(scale, "fgfusion", "fusion-only", tmp_path, 0, "cpu", progress=False)
    monkeypatch.setattr(FusionOnly, "train_step", step)
    first = train_variant(scale, "fgfusion", "fusion-only", tmp_path, 0, "cpu", progress=False)
    assert first.resumed and first.steps == 4 and first.weights.is_file()
    assert not (first.weights.parent / "checkpoints").exists()
    assert train_variant(scale, "fgfusion", "fusion-only", tmp_path, 0, "cpu", progress=False) == first
    assert len([p for p in (tmp_path / "runs").iterdir() if p.is_dir()]) == 1


def test_rows_are_selected_by_name_method_and_variant() -> None:
    rows = all_rows(SMALL)
    assert [r.name for r in rows[:4]] == ["ir", "vi", "max", "laplacian"]
    assert len(rows) == 4 + 2 * len(METHODS)
    picked = select_rows(rows, ["vi", "psfusion", "mafs-task-guided"])
    assert [r.name for r in picked] == ["vi", "mafs-task-guided", "psfusion-fusion-only", "psfusion-task-guided"]
    assert [r.name for r in select_rows(rows, ["psfusion", "ir"], ["task-guided"])] == ["ir", "psfusion-task-guided"]
    with pytest.raises(TaskfuseError, match="did you mean 'psfusion'"):
        select_rows(rows, ["psfusoin"])
    with pytest.raises(TaskfuseError, match="--variants"):
        select_rows(rows, [], ["guided"])


def test_detector_boxes_are_renumbered_to_the_object_classes() -> None:
    scenes = SyntheticScenes(3, 5, 64, 80)
    for i in range(len(scenes)):
        before, after = scenes[i]["boxes"], ObjectBoxes(scenes)[i]["boxes"]
        lut = {1: 0, 2: 1, 3: 2, 7: 3}
        assert after[:, 0].tolist() == [lut[int(c)] for c in before[:, 0]]
        assert torch.equal(after[:, 1:], before[:, 1:])


def label_counts(folder: Path) -> np.ndarray:
    return sum(np.bincount(read_image(p).ravel(), minlength=256) for p in folder.glob("*.png"))[:255]


def majority_chance(scenes: Path) -> float:
    """mIoU of predicting the most frequent training class everywhere, counted here from the label files:
    that class scores its share of the test pixels, every other class present in the test labels scores 0."""
    majority = int(np.argmax(label_counts(scenes / "train" / "Segmentation_labels")))
    test = label_counts(scenes / "test" / "Segmentation_labels")
    present = set(np.flatnonzero(test)) | {majority}
    return test[majority] / test.sum() / len(present)


@pytest.mark.slow
def test_small_scale_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench"
    args = ["benchmark", "synthetic", "--scale", "small", "--out", str(out), "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    report = json.loads((out / "table.json").read_text())
    names = [r.name for r in all_rows(SMALL)]
    assert [r["row"] for r in report["rows"]] == names
    for row in report["rows"]:
        for key, value in row.items():
            if key in ("row", "kind"):
                continue
            if key == "SCD" and row["kind"] == "modality":  # SCD of a source with itself: 0 / 0
                assert value is None
            else:
                assert isinstance(value, float) and math.isfinite(value), (row["row"], key, value)
    table = (out / "table.md").read_text()
    assert all(f"| {name} |" in table for name in names)
    assert len((out / "table.csv").read_text().splitlines()) == 1 + len(names)
    page = (out / "report.html").read_text()
    assert all(f'<th scope="row">{name}</th>' in page for name in names) and "Fused test scenes by Qabf" in page

    chance = report["chance"]
    assert chance["majority"] == pytest.approx(100 * majority_chance(out / "scenes"))
    assert 0 < chance["prior"] < chance["majority"]
    fused = [r["mIoU"] for r in report["rows"] if r["kind"] != "modality"]
    assert max(fused) > max(chance["majority"], chance["prior"])
    assert set(report["verdict"]["segmentation"]["guidance"]) == set(METHODS)

    finished = {p.name: p.stat().st_mtime_ns for p in (out / "rows").glob("*.json")}
    assert sorted(finished) == sorted(f"{n}.json" for n in names)
    assert main(args) == 0
    assert main([*args[:6], "--report"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "rows").glob("*.json")} == finished
    assert main([*args, "--seed", "1"]) == 2
    assert "--out" in capsys.readouterr().err
