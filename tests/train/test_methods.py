"""Every published method trains end to end with its own strategy on synthetic labelled scenes (tiny networks,
a fixed pair of 32 x 32 scenes, CPU): the losses fall, the weights come out loadable, and a run resumed from a
mid-run checkpoint logs the same losses step for step as the uninterrupted run (MAFS inside its multi-task
stage, where the dynamic task weighting carries state; SeAFusion across its round boundary)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.models.weights import load_model, load_weights, read_meta, save_weights
from taskfuse.tasks import segmentation
from taskfuse.train.log import read_metrics
from taskfuse.train.loop import train
from taskfuse.train.resolve import validate

DATA = {
    "train": {"name": "synthetic", "length": 2, "height": 32, "width": 32, "seed": 3},
    "flip": False,
    "workers": 0,
    "cache": True,
}
LOG = {"every": 1, "checkpoint_every": 1000, "progress": False, "tensorboard": False}
PHASE = {"batch_size": 2, "crop": "full", "warmup_iters": 0}


def run(method: str, out: Path, **sections: Any) -> tuple[Path, dict[str, dict[int, float]]]:
    cfg = validate({"method": method, "data": DATA, "log": {**LOG, **sections.pop("log", {})}, **sections})
    result = train(cfg, out, device="cpu")
    return result.run_dir, read_metrics(result.run_dir / "metrics.csv")


def resumes_exactly(
    run_dir: Path, logged: dict[str, dict[int, float]], cut: int, cfg: dict[str, Any], keys: tuple[str, ...]
) -> None:
    """Resume a copy of ``run_dir`` from its checkpoint at step ``cut`` and compare every later logged value."""
    part = run_dir.parent / "resumed" / run_dir.name
    later = {p.name for p in (run_dir / "checkpoints").iterdir() if int(p.name.split("_")[1]) > cut}
    shutil.copytree(run_dir, part, ignore=lambda folder, names: [n for n in names if n in later])
    train(validate(cfg), resume=part, device="cpu")
    resumed = read_metrics(part / "metrics.csv")
    for key in keys:
        steps = sorted(s for s in logged[key] if s > cut)
        assert steps, key
        assert [resumed[key][s] for s in steps] == pytest.approx([logged[key][s] for s in steps], rel=1e-5)
    a, b = load_weights(run_dir / "fusion.safetensors"), load_weights(part / "fusion.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def falls(curve: dict[int, float], steps: range | None = None, window: int = 3) -> bool:
    values = [curve[s] for s in (steps or sorted(curve))]
    return sum(values[-window:]) < sum(values[:window])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "model"),
    [
        ("psfusion", dict(models.get("psfusion").small)),
        ("fgfusion", dict(models.get("fgfusion").small)),
        ("dsifuse", dict(models.get("dsifuse").small)),
    ],
)
def test_single_stage_methods(tmp_path: Path, method: str, model: dict[str, Any]) -> None:
    sections = {"model": model, "train": {**PHASE, "iters": 8, "lr": 1e-2}, "log": {**LOG, "checkpoint_every": 4}}
    run_dir, logged = run(method, tmp_path, **dict(sections))
    assert falls(logged["train/total"])
    assert type(load_model(run_dir / "fusion.safetensors")).__name__.lower() == method
    resumes_exactly(run_dir, logged, 4, {"method": method, "data": DATA, **sections}, ("train/total",))


@pytest.mark.slow
def test_seafusion_alternates_fusion_and_segmenter(tmp_path: Path) -> None:
    rounds = {
        "rounds": 2,
        "seg_weight_per_round": [0, 1],
        "fusion": {**PHASE, "iters": 8, "lr": 3e-3},
        "segmentation": {**PHASE, "iters_per_round": 3},
    }
    run_dir, logged = run("seafusion", tmp_path, train=rounds, log={"checkpoint_every": 10, "keep": 5})
    assert falls(logged["train/total"], range(1, 9))  # round 0, fusion loss alone
    assert falls(logged["train/seg/total"], range(9, 12), window=1)  # round 0, segmenter
    assert set(logged["train/seg"]) == set(range(12, 20))  # the semantic term appears with λ = 1
    assert logged["train/round"][12] == 1.0
    segmentation.create("bisenet", 9).load_state_dict(load_weights(run_dir / "segmenter.safetensors"))
    load_model(run_dir / "fusion.safetensors")
    cfg = {"method": "seafusion", "data": DATA, "train": rounds, "log": {**LOG, "checkpoint_every": 10, "keep": 5}}
    resumes_exactly(run_dir, logged, 10, cfg, ("train/total", "train/seg/total", "train/seg"))


@pytest.mark.slow
def test_mafs_stages_and_exact_resume(tmp_path: Path) -> None:
    stages = {
        **PHASE,
        "iters": 6,
        "lr": 1e-2,
        "pretext": {"iters": 3},
        "teacher_segmenter": "segformer-b0",
        "teacher_training": {**PHASE, "iters": 2},
    }
    model = dict(models.get("mafs").small)
    run_dir, logged = run("mafs", tmp_path / "a", model=model, train=stages, log={"checkpoint_every": 7})
    assert set(logged["train/rec_vi"]) == {1, 2, 3} and set(logged["train/teacher/total"]) == {4, 5}
    assert falls(logged["train/total"], range(6, 12))  # stage II
    assert "train/w_fusion" in logged and "train/kd" in logged

    cfg = {"method": "mafs", "data": DATA, "log": {**LOG, "checkpoint_every": 7}, "model": model, "train": stages}
    resumes_exactly(run_dir, logged, 7, cfg, ("train/total", "train/w_fusion", "train/w_segmentation"))


@pytest.mark.slow
def test_mafs_reads_a_trained_teacher_instead_of_training_one(tmp_path: Path) -> None:
    """``train.teacher``: a segmenter file written by taskfuse names its network (here not the configured
    ``teacher_segmenter``); the teacher phase is skipped and the teacher keeps the file's weights."""
    torch.manual_seed(1)
    trained = segmentation.create("segformer-b0", 9)
    file = save_weights(trained, tmp_path / "teacher.safetensors", "segformer-b0", {"num_classes": 9})
    stages = {
        **PHASE,
        "iters": 2,
        "pretext": {"iters": 1},
        "teacher": str(file),
        "teacher_segmenter": "segnext-t",
        "teacher_training": {**PHASE, "iters": 50},
    }
    run_dir, logged = run("mafs", tmp_path / "run", model=dict(models.get("mafs").small), train=stages)
    assert "train/teacher/total" not in logged and set(logged["train/total"]) == {1, 2, 3}
    assert "train/kd" in logged
    saved, given = load_weights(run_dir / "teacher.safetensors"), load_weights(file)
    assert read_meta(run_dir / "teacher.safetensors")["method"] == "segformer-b0"
    assert all(torch.equal(saved[k], given[k]) for k in given)
    five = segmentation.create("segformer-b0", 5)
    other = save_weights(five, tmp_path / "five.safetensors", "segformer-b0", {"num_classes": 5})
    with pytest.raises(TaskfuseError, match="5 classes"):
        run("mafs", tmp_path / "bad", model=dict(models.get("mafs").small), train={**stages, "teacher": str(other)})


@pytest.mark.slow
def test_fusion_only_on_real_roadscene_pairs(shared_data: Path, tmp_path: Path) -> None:
    """The shipped RoadScene config on real pairs of varying size: crops to train, full images to validate."""
    from taskfuse.train.resolve import load_config

    model = dict(models.get("fgfusion").small)
    cfg = load_config(
        "fgfusion_roadscene",
        [
            f"data.train.root={shared_data / 'roadscene'}",
            "data.train.limit=4",
            "data.val.limit=2",
            "data.workers=0",
            "train.iters=3",
            "train.batch_size=2",
            "train.crop=64",
            "log.every=1",
            "log.val_every=3",
            "log.metrics=[EN, SD]",
            "log.progress=false",
            "log.tensorboard=false",
            *(f"model.{k}={v}" for k, v in model.items()),
        ],
    )
    result = train(cfg, tmp_path, device="cpu")
    logged = read_metrics(result.run_dir / "metrics.csv")
    assert set(logged["train/total"]) == {1, 2, 3} and "train/ex" not in logged  # no foreground without labels
    assert result.scores["EN"] > 0 and set(logged["val/SD"]) == {3}
