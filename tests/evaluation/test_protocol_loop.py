from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from taskfuse.errors import TaskfuseError
from taskfuse.evaluation import loop
from taskfuse.evaluation.inputs import InputSpec
from taskfuse.evaluation.loop import ProtocolConfig, channel_stats, evaluate, lr_factor
from taskfuse.evaluation.report import grid_indices

IR, VI = InputSpec("ir", "ir"), InputSpec("vi", "vi")


def _cfg(**kw: object) -> ProtocolConfig:
    base = {"epochs": 2, "batch_size": 4, "lr": 0.05, "crop": 32, "device": "cpu", "grid": 2}
    return ProtocolConfig(**{**base, **kw})  # type: ignore[arg-type]


def _weights(out: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(out / name / "checkpoint" / "model.safetensors"))


def test_channel_stats_match_torch_for_uint8_and_float() -> None:
    images = [torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8), torch.randint(0, 256, (3, 4, 6), dtype=torch.uint8)]
    pixels = torch.cat([im.flatten(1).double() / 255 for im in images], dim=1)
    mean, std = channel_stats(images)
    assert torch.allclose(mean.double(), pixels.mean(1), atol=1e-6)
    assert torch.allclose(std.double(), pixels.std(1, unbiased=False), atol=1e-6)
    fmean, fstd = channel_stats([im.float() / 255 for im in images])
    assert torch.allclose(fmean, mean, atol=1e-6) and torch.allclose(fstd, std, atol=1e-6)
    assert channel_stats([torch.zeros(1, 2, 2)])[1].item() == pytest.approx(1e-6)


def test_lr_warms_up_then_decays_to_zero() -> None:
    factors = [lr_factor(s, 100) for s in range(100)]
    assert factors[0] == pytest.approx(0.2) and factors[4] == pytest.approx((1 - 4 / 100) ** 0.9)
    assert all(a >= b for a, b in itertools.pairwise(factors[4:])) and factors[-1] < 0.02


def test_grid_indices_are_spread() -> None:
    assert grid_indices(10, 4) == [0, 3, 6, 9] and grid_indices(3, 5) == [0, 1, 2]
    assert grid_indices(7, 1) == [0] and grid_indices(7, 0) == []


@pytest.mark.parametrize(("key", "value"), [("epochs", 0), ("optimizer", "adam"), ("crop", 0), ("grid", -1)])
def test_config_refuses_bad_values(key: str, value: object) -> None:
    with pytest.raises(TaskfuseError):
        _cfg(**{key: value})


def test_outputs_and_own_statistics(scenes, tiny_task, tmp_path: Path) -> None:
    train, test = scenes
    results = evaluate(tiny_task, train, test, [IR, VI], tmp_path, _cfg(epochs=1), progress=False)
    assert list(results) == ["ir", "vi"] and all(0 <= r["mIoU"] <= 1 for r in results.values())
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["task"] == "segmentation" and saved["headline"] == "mIoU" and saved["results"] == results
    table = (tmp_path / "table.md").read_text().splitlines()
    assert table[0].startswith("| Method | unlabelled | car |") and table[0].endswith("| mIoU |")
    assert [line.split(" | ")[0] for line in table[2:]] == ["| ir", "| vi"]
    ir, vi = (json.loads((tmp_path / n / "result.json").read_text()) for n in ("ir", "vi"))
    assert ir["mean"][0] == ir["mean"][1] == ir["mean"][2] and ir["mean"] != vi["mean"] and ir["std"] != vi["std"]
    assert (tmp_path / "grid.png").is_file() and len(list((tmp_path / "vi" / "samples").glob("*.png"))) == 6
    page = (tmp_path / "report.html").read_text()
    assert '<th scope="row">ir</th>' in page and '<th scope="row">vi</th>' in page and "mIoU" in page
    assert page.count("data:image/png;base64,") == 2 * (2 + 2 * 2 + 1)  # 2 test images: IR, VIS, 2 x 2, GT


def test_same_init_for_every_input(scenes, tiny_task, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = loop.train_input

    def record(task, model, *args, **kw):
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return real(task, model, *args, **kw)

    monkeypatch.setattr(loop, "train_input", record)
    evaluate(tiny_task, *scenes, [IR, VI], tmp_path, _cfg(epochs=1, grid=0), progress=False)
    assert len(seen) == 2 and all(torch.equal(seen[0][k], seen[1][k]) for k in seen[0])


def test_interrupted_run_resumes_exactly(scenes, tiny_task, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    full = evaluate(tiny_task, *scenes, [IR], tmp_path / "a", _cfg(), progress=False)

    real = loop.save_checkpoint

    def crash(*args, **kw):
        real(*args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        evaluate(tiny_task, *scenes, [IR], tmp_path / "b", _cfg(), progress=False)
    assert json.loads((tmp_path / "b" / "ir" / "checkpoint" / "state.json").read_text())["epoch"] == 1
    assert not (tmp_path / "b" / "ir" / "result.json").exists()
    monkeypatch.setattr(loop, "save_checkpoint", real)

    resumed = evaluate(tiny_task, *scenes, [IR], tmp_path / "b", _cfg(), progress=False)
    assert resumed == full
    a, b = _weights(tmp_path / "a", "ir"), _weights(tmp_path / "b", "ir")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rerun_skips_and_more_epochs_continue(
    scenes, tiny_task, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = evaluate(tiny_task, *scenes, [IR], tmp_path, _cfg(epochs=1), progress=False)
    losses = json.loads((tmp_path / "ir" / "result.json").read_text())["losses"]
    calls = []
    real = loop.train_input
    monkeypatch.setattr(loop, "train_input", lambda *a, **k: calls.append(1) or real(*a, **k))

    assert evaluate(tiny_task, *scenes, [IR], tmp_path, _cfg(epochs=1), progress=False) == first
    assert calls == []
    evaluate(tiny_task, *scenes, [IR], tmp_path, _cfg(epochs=2), progress=False)
    record = json.loads((tmp_path / "ir" / "result.json").read_text())
    assert calls == [1] and record["epochs"] == 2 and record["losses"][:1] == losses and len(record["losses"]) == 2

    with pytest.raises(TaskfuseError, match=r"other settings \(differing: lr\)"):
        evaluate(tiny_task, *scenes, [IR], tmp_path, _cfg(epochs=2, lr=0.01), progress=False)
    with pytest.raises(TaskfuseError, match="more than --epochs 1"):
        evaluate(tiny_task, *scenes, [VI, IR], tmp_path, _cfg(epochs=1), progress=False)


def test_checkpoint_left_by_a_crash_between_renames_is_used(tiny_task, tmp_path: Path) -> None:
    model = tiny_task.build(3)
    opt = loop.make_optimizer(model, _cfg())
    loop.save_checkpoint(tmp_path / "checkpoint", model, opt, {"epoch": 3, "fingerprint": {"a": 1}})
    (tmp_path / "checkpoint").rename(tmp_path / "checkpoint.old")
    fresh = tiny_task.build(3)
    state = loop.load_checkpoint(tmp_path / "checkpoint", fresh, loop.make_optimizer(fresh, _cfg()), {"a": 1})
    assert state is not None and state["epoch"] == 3
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True))


def test_another_class_subset_rescores_without_training(
    scenes, tiny_task, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = evaluate(tiny_task, *scenes, [IR], tmp_path, _cfg(epochs=1, grid=0), progress=False)["ir"]
    calls = []
    real = loop.train_input
    monkeypatch.setattr(loop, "train_input", lambda *a, **k: calls.append(1) or real(*a, **k))
    subset = type(tiny_task)(tiny_task.classes, model="segformer-b0", aux_weight=0.0, scored=["car", "person"])
    again = evaluate(subset, *scenes, [IR], tmp_path, _cfg(epochs=1, grid=0), progress=False)["ir"]
    assert calls == [] and again["classes"] == ["car", "person"] and again["iou"] == first["iou"]
    assert (tmp_path / "table.md").read_text().splitlines()[0] == "| Method | car | person | mIoU |"


def test_minmax_input_norm_stretches_fused_images_only(scenes, tiny_task, tmp_path: Path) -> None:
    dim = InputSpec("mean", "method")
    plain = loop.InputSource(dim, "train", tmp_path / "inputs", torch.device("cpu"))
    samples = [loop._pack(scenes[0][i]) for i in range(2)]
    stretched = loop._items(plain, samples, "minmax")
    kept = loop._items(plain, samples)
    assert all(int(item["ir"].min()) == 0 and int(item["ir"].max()) == 255 for item in stretched)
    assert any(int(item["ir"].max()) < 255 or int(item["ir"].min()) > 0 for item in kept)
    ir = loop.InputSource(IR, "train", tmp_path / "inputs", torch.device("cpu"))
    pairs = zip(loop._items(ir, samples, "minmax"), loop._items(ir, samples), strict=True)
    assert all(torch.equal(a["ir"], b["ir"]) for a, b in pairs)
    assert "input_norm" not in loop.fingerprint(tiny_task, dim, _cfg(), ["a"])
    assert loop.fingerprint(tiny_task, dim, _cfg(input_norm="minmax"), ["a"])["input_norm"] == "minmax"
    with pytest.raises(TaskfuseError, match="input-norm"):
        _cfg(input_norm="zscore")
