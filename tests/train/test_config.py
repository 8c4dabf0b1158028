"""Configs: extends, overrides, defaults, validation with suggestions, provenance, every shipped config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from train_helpers import tiny_config, write_config

from taskfuse.errors import TaskfuseError
from taskfuse.train.config import save_config
from taskfuse.train.resolve import QUICK, load_config, shipped_configs, validate
from taskfuse.train.strategies import STRATEGIES


def test_extends_overrides_and_defaults(tmp_path: Path) -> None:
    base = tiny_config(steps=10, train={"lr": 0.01, "momentum": 0.5})
    write_config(tmp_path / "base.yaml", base)
    (tmp_path / "child.yaml").write_text("extends: base.yaml\ntrain:\n  lr: 2.0e-3\nlog:\n  every: 5\n")
    cfg = load_config(tmp_path / "child.yaml", ["train.batch_size=2", "data.train.length=8", "train.lr=1e-4"])
    assert cfg.train.lr == 1e-4  # --set wins over the child, which wins over the base
    assert cfg.train.momentum == 0.5  # inherited from the base
    assert cfg.train.batch_size == 2 and cfg.data.train.length == 8
    assert cfg.log.every == 5
    assert cfg.data.train.height == 48  # merged key by key, not replaced
    assert cfg.train.weight_decay == 0.0 and cfg.log.keep == 5 and cfg.data.flip is True  # defaults / base
    assert cfg.strategy == "single_stage"  # the method's own strategy


def test_yaml_number_strings_become_numbers(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", tiny_config())
    cfg = load_config(path, ["train.lr=1e-4", "train.crop=[24, 32]", "train.ema=0"])
    assert cfg.train.lr == pytest.approx(1e-4) and isinstance(cfg.train.lr, float)
    assert cfg.train.crop == (24, 32)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.weight_decy=1", "did you mean 'weight_decay'"),
        ("train.batchsize=2", "did you mean 'batch_size'"),
        ("data.wokers=2", "did you mean 'workers'"),
        ("data.train.lenght=3", "did you mean 'length'"),
        ("log.chekpoint_every=3", "did you mean 'checkpoint_every'"),
        ("model.widht=3", "did you mean 'width'"),
        ("loss.seg_wieght=1", "did you mean 'seg_weight'"),
        ("train.strategy=singel_stage", "did you mean 'single_stage'"),
        ("method=tiny_fushion", "did you mean 'tiny_fusion'"),
        ("data.train.name=msrss", "did you mean 'msrs'"),
        ("train.lr_schedule=polly", "did you mean 'poly'"),
        ("train.lr=fast", "train.lr: expected a number"),
        ("train.amp=3", "train.amp: expected true or false"),
        ("log.metrics=[Qabff]", "did you mean 'qabf'"),
    ],
)
def test_misspelt_keys_and_bad_values_fail_with_a_suggestion(tmp_path: Path, override: str, expected: str) -> None:
    path = write_config(tmp_path / "c.yaml", tiny_config())
    with pytest.raises(TaskfuseError, match=expected):
        load_config(path, [override])


def test_unknown_top_level_section(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.yaml", {**tiny_config(), "trian": {}})
    with pytest.raises(TaskfuseError, match="did you mean 'train'"):
        load_config(path)


def test_extends_cycle_and_missing_config(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(TaskfuseError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    with pytest.raises(TaskfuseError, match="did you mean 'psfusion_synthetic'"):
        load_config("psfusion_synthtic")


def test_phase_sections_start_from_the_train_keys() -> None:
    cfg = load_config("seafusion_synthetic", ["train.momentum=0.5", "train.iters=7", "train.fusion.lr=5e-4"])
    fusion, seg = cfg.options.fusion, cfg.options.segmentation
    assert fusion.momentum == 0.5 and seg.momentum == 0.9  # the segmentation section states its own
    assert fusion.lr == 5e-4 and fusion.lr_schedule == "step" and fusion.epochs == 10
    assert fusion.iters == 0  # lengths are not inherited
    assert seg.crop == "full" and seg.iters_per_round == 20000


def test_strategy_options_are_checked() -> None:
    with pytest.raises(TaskfuseError, match="one λ per round"):
        load_config("seafusion_synthetic", ["train.rounds=3"])
    with pytest.raises(TaskfuseError, match="did you mean 'rounds'"):
        load_config("seafusion_synthetic", ["train.round=3"])


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_every_shipped_config_validates(name: str) -> None:
    path, description = shipped_configs()[name]
    cfg = load_config(name)
    assert description and cfg.method
    assert yaml.safe_load(path.read_text())  # not empty


@pytest.mark.parametrize("name", sorted(shipped_configs()))
def test_quick_makes_every_shipped_config_a_few_small_steps(name: str) -> None:
    cfg = load_config(name, quick=True)
    phases = STRATEGIES.get(cfg.strategy).phases(cfg)
    assert all(p.iters <= QUICK.fusion_steps and p.batch_size <= 2 for _, p in phases.values())
    assert all(d.limit <= 8 for d, _ in phases.values()) and (cfg.data.val is None or cfg.data.val.limit == 2)
    assert cfg.data.workers == 0 and load_config(name).data.workers == "auto"
    assert load_config(name, ["train.crop=32"], quick=True).train.crop == 32


def test_validation_follows_the_training_folder_and_its_reader_options() -> None:
    cfg = load_config("lite", ["data.train.root=/x/mine", "data.train.options.ir_dir=Ir"])
    assert (cfg.data.val.root, cfg.data.val.split, cfg.data.val.options) == ("/x/mine", "val", {"ir_dir": "Ir"})


def test_saved_config_reloads_identically_with_provenance(tmp_path: Path) -> None:
    cfg = load_config("psfusion_synthetic", ["train.iters=5"])
    path = save_config(cfg, tmp_path / "config.yaml")
    data = yaml.safe_load(path.read_text())
    assert data["provenance"]["taskfuse_version"]
    commit = data["provenance"]["git_commit"]
    assert commit == "unknown" or len(commit.split("-")[0]) == 40
    again = load_config(path)
    assert again.to_dict() == cfg.to_dict()
    assert validate(data).train.iters == 5
