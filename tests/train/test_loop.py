"""The shared loop on the tiny method: losses fall, exact resume, EMA, validation and best weights, the
label-free and mixed strategies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from train_helpers import tiny_config

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.models.weights import load_model, load_weights
from taskfuse.train.log import read_metrics
from taskfuse.train.loop import init_path, train
from taskfuse.train.resolve import validate
from taskfuse.train.state import CHECKPOINTS

VAL = {"name": "synthetic", "length": 2, "height": 32, "width": 32, "seed": 9}


def smoothed_drop(curve: dict[int, float], window: int = 3) -> tuple[float, float]:
    values = [curve[k] for k in sorted(curve)]
    return sum(values[:window]) / window, sum(values[-window:]) / window


def test_losses_fall_and_the_run_folder_is_complete(tmp_path: Path) -> None:
    cfg = validate(tiny_config(steps=24, train={"lr": 1e-2}))
    result = train(cfg, tmp_path)
    first, last = smoothed_drop(read_metrics(result.run_dir / "metrics.csv")["train/total"])
    assert last < 0.8 * first
    assert (result.run_dir / "config.yaml").is_file()
    net = load_model(result.run_dir / "fusion.safetensors")
    assert type(net).__name__ == "TinyFusion"
    assert [p.name for p in sorted((result.run_dir / CHECKPOINTS).iterdir())][-1] == "step_00000024"


def test_resume_continues_exactly(tmp_path: Path) -> None:
    cfg = validate(
        tiny_config(
            steps=8,
            data={"scale": [0.8, 1.25], "rotate90": True, "val": VAL},
            train={"ema": 0.9},
            log={"val_every": 3, "metrics": ["EN", "SD"], "best": "SD"},
        )
    )
    whole = train(cfg, tmp_path / "a").run_dir
    part = tmp_path / "b" / whole.name
    shutil.copytree(whole, part)
    for step in ("step_00000006", "step_00000008"):
        shutil.rmtree(part / CHECKPOINTS / step)
    (part / "fusion.safetensors").unlink()
    train(cfg, resume=part)

    a, b = read_metrics(whole / "metrics.csv"), read_metrics(part / "metrics.csv")
    assert set(a) == set(b)
    for key in a:
        if key != "train/img_s":
            assert a[key].keys() == b[key].keys()
            assert [b[key][s] for s in sorted(b[key])] == pytest.approx([a[key][s] for s in sorted(a[key])], rel=1e-5)
    assert set(a["val/SD"]) == {3, 6, 8}
    for name in ("fusion.safetensors", "best.safetensors"):
        wa, wb = load_weights(whole / name), load_weights(part / name)
        assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)


def test_resume_needs_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(TaskfuseError, match="no complete checkpoint"):
        train(validate(tiny_config()), resume=tmp_path)


def test_fusion_only_drops_labels(tmp_path: Path) -> None:
    cfg = validate(tiny_config(steps=3, train={"strategy": "fusion_only"}))
    logged = read_metrics(train(cfg, tmp_path).run_dir / "metrics.csv")
    assert "train/int" in logged and "train/seg" not in logged


def test_mixed_interleaves_unlabelled_batches(tmp_path: Path) -> None:
    unlabelled = {"name": "synthetic", "length": 8, "height": 40, "width": 40, "seed": 4}
    cfg = validate(
        tiny_config(
            steps=6,
            train={"strategy": "mixed", "unlabelled_per_labelled": 2},
            data={"unlabelled": unlabelled},
        )
    )
    logged = read_metrics(train(cfg, tmp_path).run_dir / "metrics.csv")
    assert [logged["train/labelled"][s] for s in range(1, 7)] == [1, 0, 0, 1, 0, 0]
    assert set(logged["train/seg"]) == {1, 4} and set(logged["train/unlabelled/int"]) == {2, 3, 5, 6}
    with pytest.raises(TaskfuseError, match="data.unlabelled"):
        validate(tiny_config(train={"strategy": "mixed"}))


def test_init_starts_from_given_weights_and_checks_them(tmp_path: Path) -> None:
    first = train(validate(tiny_config(steps=4, train={"lr": 1e-2})), tmp_path / "a")
    start = first.run_dir / "fusion.safetensors"
    frozen = validate(tiny_config(steps=2, train={"lr": 0.0, "init": str(start)}))
    again = train(frozen, tmp_path / "b").run_dir / "fusion.safetensors"
    wa, wb = load_weights(start), load_weights(again)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    fresh = train(validate(tiny_config(steps=2, train={"lr": 0.0})), tmp_path / "c").run_dir / "fusion.safetensors"
    assert not all(torch.equal(wa[k], v) for k, v in load_weights(fresh).items())
    wider = validate(tiny_config(steps=2, model={"width": 6}, train={"init": str(start)}))
    with pytest.raises(TaskfuseError, match="do not fit"):
        train(wider, tmp_path / "d")
    with pytest.raises(TaskfuseError, match="do not fit"):
        load_model(start, width=6)
    with pytest.raises(TaskfuseError, match="lite"):
        train(validate(tiny_config(steps=2, train={"init": str(models.get("lite").weights)})), tmp_path / "e")
    with pytest.raises(TaskfuseError, match="no weights ship"):
        train(validate(tiny_config(steps=2, train={"init": "builtin"})), tmp_path / "f")
    assert init_path("builtin", "lite") == models.get("lite").weights


@pytest.mark.parametrize(("every", "diverges", "kept"), [(2, 5, ["step_00000004"]), (5, 3, [])])
def test_a_diverged_run_stops_before_saving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, every: int, diverges: int, kept: list[str]
) -> None:
    import train_helpers

    calls = []
    real = train_helpers.TinyLoss.__call__

    def loss(self: train_helpers.TinyLoss, out: object, batch: dict) -> object:
        calls.append(1)
        terms = real(self, out, batch)
        return terms if len(calls) < diverges else type(terms)(terms.total * float("nan"), terms.parts)

    monkeypatch.setattr(train_helpers.TinyLoss, "__call__", loss)
    cfg = validate(tiny_config(steps=8, log={"every": every, "checkpoint_every": 4}))
    with pytest.raises(TaskfuseError, match="total not finite, so the run stops"):
        train(cfg, tmp_path)
    (run,) = tmp_path.iterdir()
    assert [p.name for p in sorted((run / CHECKPOINTS).glob("step_*"))] == kept
    assert not list(run.glob("*.safetensors"))
