"""Any task in the loop: SeAFusion's rounds with a detector (warm-started by steps or from a file, resumable), the
λ = 0 twin that trains the fusion network alone, boxes guiding FGFusion and DSIFuse, and PSFusion / MAFS refusing
detection guidance with a clear error."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from taskfuse import models
from taskfuse.data.synthetic.msrs_det import write_msrs_det_scenes
from taskfuse.errors import TaskfuseError
from taskfuse.models.weights import load_model, load_weights, read_meta
from taskfuse.train.log import read_metrics
from taskfuse.train.loop import train
from taskfuse.train.resolve import load_config, validate
from taskfuse.train.strategies import STRATEGIES
from taskfuse.train.strategies.base import Budget, keep_annotations

LOG = {"every": 1, "checkpoint_every": 1000, "progress": False, "tensorboard": False}
PHASE = {"batch_size": 2, "crop": "full", "warmup_iters": 0}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("msrs_det")
    write_msrs_det_scenes(root, 4, 1, height=64, width=64)
    return root


def data(root: Path, labels: bool = True) -> dict[str, Any]:
    train = {"name": "msrs_det", "root": str(root), "split": "train", "options": {} if labels else {"labels": False}}
    return {"train": train, "flip": False, "workers": 0, "cache": True}


def seafusion(root: Path, **train_keys: Any) -> dict[str, Any]:
    keys = {
        "task": "detection",
        "task_model": "yolox-nano",
        "num_classes": 3,
        "rounds": 2,
        "seg_weight_per_round": [1, 2],
        "task_warmup": 2,
        "fusion": {**PHASE, "iters": 2, "lr": 3e-3, "lr_schedule": "constant"},
        "detection": {**PHASE, "iters_per_round": 2},
        **train_keys,
    }
    model = dict(models.get("seafusion").small)
    return {"method": "seafusion", "model": model, "data": data(root), "train": keys, "log": dict(LOG)}


@pytest.mark.parametrize("method", [m for m in models.names() if models.get(m).strategy == "iterative_joint"])
def test_rounds_without_the_task_train_the_fusion_network_alone(method: str, scenes: Path, tmp_path: Path) -> None:
    """The fusion-only twin of a guided run (λ = 0 in every round), for every method of the iterative scheme,
    whatever its loss takes: no task network, no task steps."""
    raw = seafusion(scenes, rounds=2, seg_weight_per_round=[0, 0], task_warmup=0)
    raw |= {"method": method, "model": dict(models.get(method).small)}
    raw["data"]["train"]["options"] = {"labels": False}
    result = train(validate(raw), tmp_path, device="cpu")
    logged = read_metrics(result.run_dir / "metrics.csv")
    assert result.steps == 4 and sorted(logged["train/total"]) == [1, 2, 3, 4]
    assert not any(key.startswith("train/detection") for key in logged)
    assert not (result.run_dir / "detector.safetensors").exists()


def test_seafusion_rounds_with_a_warm_started_detector(scenes: Path, tmp_path: Path) -> None:
    raw = seafusion(scenes, rounds=2)
    raw["log"]["checkpoint_every"] = 5
    result = train(validate(raw), tmp_path, device="cpu")
    logged = read_metrics(result.run_dir / "metrics.csv")
    assert result.steps == 2 + 2 * (2 + 2)
    assert set(logged["train/detection/total"]) == {1, 2, 5, 6, 9, 10}  # warm-up, then each round's phase
    assert set(logged["train/detection"]) == {3, 4, 7, 8}  # λ L_det in every fusion phase
    assert [logged["train/round"][s] for s in (1, 3, 5, 7)] == [-1.0, 0.0, 0.0, 1.0]
    detector = result.run_dir / "detector.safetensors"
    assert read_meta(detector)["method"] == "yolox-nano"
    load_model(result.run_dir / "fusion.safetensors")

    part = tmp_path / "resumed" / result.run_dir.name
    shutil.copytree(result.run_dir, part, ignore=lambda folder, names: [n for n in names if n == "step_10"])
    train(validate(raw), resume=part, device="cpu")
    resumed = read_metrics(part / "metrics.csv")
    for key in ("train/total", "train/detection/total"):
        steps = sorted(s for s in logged[key] if s > 5)
        assert [resumed[key][s] for s in steps] == pytest.approx([logged[key][s] for s in steps], rel=1e-5)

    frozen = seafusion(scenes, rounds=1, seg_weight_per_round=[1], task_warmup=0, task_init=str(detector))
    frozen["train"]["detection"]["iters_per_round"] = 0
    again = train(validate(frozen), tmp_path / "init", device="cpu")
    start, end = load_weights(detector), load_weights(again.run_dir / "detector.safetensors")
    assert all(torch.equal(start[k], end[k]) for k in start)

    wrong = seafusion(scenes, task_init=str(result.run_dir / "fusion.safetensors"))
    with pytest.raises(TaskfuseError, match="holds a 'seafusion' network; this run's task network is 'yolox-nano'"):
        train(validate(wrong), tmp_path / "wrong", device="cpu")


def test_all_zero_weights_train_the_fusion_network_alone(scenes: Path, tmp_path: Path) -> None:
    raw = seafusion(scenes, seg_weight_per_round=[0, 0])
    raw["data"] = data(scenes, labels=False)
    result = train(validate(raw), tmp_path, device="cpu")
    logged = read_metrics(result.run_dir / "metrics.csv")
    assert result.steps == 4 and set(logged["train/round"]) == {1, 2, 3, 4}
    assert not any(k.startswith("train/detection") for k in logged)
    assert sorted(p.name for p in result.run_dir.glob("*.safetensors")) == ["fusion.safetensors"]

    budget = Budget(fusion_steps=8, batch_size=2, crop=64, rounds=2, task_steps=3, task="detection", task_warmup=5)
    guided = STRATEGIES.get("iterative_joint").budget(budget, models.get("seafusion"))
    twin = STRATEGIES.get("iterative_joint").without_task(budget, models.get("seafusion"))
    assert "train.seg_weight_per_round=[0, 1]" in guided and "train.task_warmup=5" in guided
    assert "train.seg_weight_per_round=[0.0, 0.0]" in twin and "train.task_warmup=0" in twin
    assert [o for o in guided if o.startswith("train.fusion")] == [o for o in twin if o.startswith("train.fusion")]
    assert STRATEGIES.get("single_stage").without_task(budget, models.get("fgfusion")) is None


@pytest.mark.parametrize("method", ["fgfusion", "dsifuse"])
def test_boxes_guide_the_foreground_methods(scenes: Path, tmp_path: Path, method: str) -> None:
    cfg = load_config(
        f"{method}_msrs_det",
        [
            f"data.train.root={scenes}",
            "data.val=null",
            "data.workers=0",
            "train.iters=2",
            "train.batch_size=2",
            "train.crop=64",
            "log.best=null",
            "log.progress=false",
            "log.tensorboard=false",
            *(f"model.{k}={v}" for k, v in models.get(method).small.items()),
        ],
    )
    assert cfg.options.task == "detection"
    logged = read_metrics(train(cfg, tmp_path, device="cpu").run_dir / "metrics.csv")
    assert "train/total" in logged and "train/sem" not in logged


def test_annotations_not_read_by_the_task_are_dropped() -> None:
    batch = {"ir": 0, "vi": 0, "label": 1, "boxes": 2, "keypoints": 3, "name": ["a"]}
    assert set(keep_annotations(batch, "detection")) == {"ir", "vi", "boxes", "name"}
    assert set(keep_annotations(batch, "keypoints")) == {"ir", "vi", "boxes", "keypoints", "name"}
    assert set(keep_annotations(batch, "segmentation")) == {"ir", "vi", "label", "name"}


def test_segmentation_only_methods_refuse_boxes(scenes: Path, tmp_path: Path) -> None:
    for method in ("psfusion", "mafs"):
        with pytest.raises(TaskfuseError, match=rf"{method} learns only from segmentation.*detection guidance trains"):
            load_config(method, ["train.task=detection"])
    with pytest.raises(TaskfuseError, match="not a task family; choose from detection, keypoints, segmentation"):
        load_config("seafusion", ["train.task=depth"])
    cfg = validate(
        {
            "method": "psfusion",
            "model": dict(models.get("psfusion").small),
            "data": data(scenes),
            "train": {"iters": 1, "batch_size": 2, "crop": 64},
            "log": LOG,
        }
    )
    with pytest.raises(TaskfuseError, match="psfusion learns segmentation from label, but data.train gives boxes"):
        train(cfg, tmp_path, device="cpu")


def test_a_keypoint_network_in_the_loop(tmp_path: Path) -> None:
    synthetic = {"name": "synthetic", "length": 4, "height": 64, "width": 64, "seed": 3}
    keys = {
        "task": "keypoints",
        "task_options": {"keypoint_names": ["top", "bottom", "left", "right"], "input_size": [32, 32]},
        "rounds": 1,
        "seg_weight_per_round": [1],
        "task_warmup": 1,
        "fusion": {**PHASE, "iters": 2},
        "keypoints": {**PHASE, "iters_per_round": 1},
    }
    raw = {
        "method": "seafusion",
        "model": dict(models.get("seafusion").small),
        "data": {"train": synthetic, "flip": False, "workers": 0, "cache": True},
        "train": keys,
        "log": LOG,
    }
    result = train(validate(raw), tmp_path, device="cpu")
    logged = read_metrics(result.run_dir / "metrics.csv")
    assert set(logged["train/keypoints/total"]) == {1, 4} and set(logged["train/keypoints"]) == {2, 3}
    assert read_meta(result.run_dir / "keypoint_net.safetensors")["method"] == "simplebaseline-r18"
