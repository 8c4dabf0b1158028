"""``taskfuse benchmark claim``: the paired continuation's variants differ only in the task term (or the seed),
the plateau rule, the design record, and a tiny end-to-end run on synthetic pairs in the msrs_det layout whose
cells, predictions and report agree."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from taskfuse import models
from taskfuse.benchmark.claim import TINY, Claim, cell_name, parse_released, reuse_cells, settle_design
from taskfuse.benchmark.claim_report import loss_balance, pairs, verdict, write_report
from taskfuse.benchmark.continuation import (
    RESEED,
    claim_methods,
    continue_variant,
    plateau_step,
    pretrain_config,
    variant_config,
    warm_head,
)
from taskfuse.benchmark.stats import Difference, image_matches, scores_on
from taskfuse.cli.main import main
from taskfuse.data.datasets import open_dataset
from taskfuse.data.manifest import file_sha256
from taskfuse.data.synthetic.msrs_det import write_msrs_det_scenes
from taskfuse.errors import TaskfuseError
from taskfuse.models.weights import save_weights
from taskfuse.train.config import RunConfig
from taskfuse.train.loop import stored_config
from taskfuse.train.strategies.single_stage import freeze_except

DESIGN = replace(TINY.fusion, steps=4, rounds=2)
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "claim_full.sh"
PACK = SCRIPT.with_name("claim_pack.sh")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("msrs_det")
    write_msrs_det_scenes(root, 6, 3, height=64, width=64)
    return root


def fusion_steps(cfg: RunConfig) -> int:
    o = cfg.options
    return o.rounds * o.fusion.iters if cfg.strategy == "iterative_joint" else cfg.train.iters


@pytest.mark.parametrize("method", claim_methods())
def test_variants_differ_only_in_the_task_term_or_the_seed(method: str, data: Path) -> None:
    init = Path("/runs/pretrain/x.safetensors")
    guided, plain, reseed = (
        variant_config(DESIGN, method, v, 3, data, init) for v in ("task-guided", "fusion-only", "reseed")
    )
    for cfg in (guided, plain, reseed):
        assert fusion_steps(cfg) == DESIGN.steps and cfg.train.init == str(init)
        assert (cfg.data.train.name, cfg.data.train.split, cfg.data.val) == ("msrs_det", "train", None)
    assert guided.train.seed == plain.train.seed == 3 and reseed.train.seed == 3 + RESEED
    imagenet = replace(DESIGN, task_pretrained="imagenet", task_model="yolox-s-effnet-lite0")
    backbone, twin = (variant_config(imagenet, method, v, 3, data, init) for v in ("task-guided", "fusion-only"))
    assert guided.data.train.options == {} and plain.data.train.options == {"labels": False}
    assert plain.to_dict()["train"] == {**reseed.to_dict()["train"], "seed": 3}
    if guided.strategy == "iterative_joint":
        assert plain.strategy == "iterative_joint" and guided.options.task == "detection"
        assert guided.options.seg_weight_per_round == [1.0, 2.0] and plain.options.seg_weight_per_round == [0.0, 0.0]
        assert guided.options.task_warmup == DESIGN.task_warmup and guided.options.task_model == DESIGN.task_model
        assert guided.options.fusion == plain.options.fusion
        scaled = variant_config(replace(DESIGN, task_weight=0.2), method, "task-guided", 3, data, init)
        assert scaled.options.seg_weight_per_round == pytest.approx([0.2, 0.4])
        assert backbone.options.task_options == {"pretrained": "imagenet"} and twin.options.task_options == {}
    else:
        assert not hasattr(backbone.options, "task_options") and backbone.to_dict()["train"]["task"] == "detection"
        assert (guided.strategy, plain.strategy, guided.options.task) == ("single_stage", "fusion_only", "detection")
        keys = ("optimizer", "lr", "momentum", "weight_decay", "lr_schedule", "warmup_iters", "batch_size", "crop")
        assert all(getattr(guided.train, k) == getattr(plain.train, k) for k in keys)
        assert guided.train.lr_schedule == "constant"


def test_fast_trainings_are_compiled_in_channels_last_in_every_phase(data: Path) -> None:
    init = Path("/runs/pretrain/x.safetensors")
    for method in claim_methods():
        for fast in (False, True):
            design = replace(DESIGN, fast=fast)
            configs = [variant_config(design, method, v, 3, data, init) for v in ("task-guided", "fusion-only")]
            configs.append(pretrain_config(design, method, data, 3, 8, progress=False))
            assert all((c.train.channels_last, c.train.compile) == (fast, fast) for c in configs)


def test_plateau_rule() -> None:
    rising = {s: {"Qabf": 0.1 * s, "SSIM": 0.5} for s in (1, 2, 3, 4)}
    assert plateau_step(rising, ("Qabf", "SSIM"), 1, 0.01, 0) is None
    flat = {1: {"Qabf": 0.40, "SSIM": 0.5}, 2: {"Qabf": 0.401, "SSIM": 0.6}, 3: {"Qabf": 0.402, "SSIM": 0.601}}
    assert plateau_step(flat, ("Qabf", "SSIM"), 1, 0.01, 0) == 3
    assert plateau_step(flat, ("Qabf",), 1, 0.01, 0) == 2 and plateau_step(flat, ("Qabf",), 1, 0.01, 3) == 3
    assert plateau_step(flat, ("Qabf",), 2, 0.01, 0) == 3


def test_design_is_recorded_and_other_settings_refused(data: Path, tmp_path: Path) -> None:
    design = settle_design(tmp_path, {"root": data, "scale": "tiny", "methods": ["seafusion"]})
    assert design.fusion_seeds == TINY.fusion_seeds and design.detector == TINY.detector
    again = settle_design(tmp_path, {})
    assert again == design
    with pytest.raises(TaskfuseError, match="made with fusion_seeds"):
        settle_design(tmp_path, {"fusion_seeds": [5]})
    with pytest.raises(TaskfuseError, match="made with task_weight 1.0"):
        settle_design(tmp_path, {"task_weight": 0.2})
    weighed = settle_design(tmp_path / "weighed", {"root": data, "scale": "tiny", "task_weight": 0.2})
    assert Claim(tmp_path / "weighed", weighed).fusion("seafusion").task_weight == 0.2
    record = json.loads((tmp_path / "claim.json").read_text())
    del record["design"]["fast"]
    (tmp_path / "claim.json").write_text(json.dumps(record))
    assert settle_design(tmp_path, {}) == design
    with pytest.raises(TaskfuseError, match="made with fast False"):
        settle_design(tmp_path, {"fast": True})
    assert design.head_warmup == TINY.fusion.head_warmup > 0
    del record["design"]["head_warmup"]
    (tmp_path / "claim.json").write_text(json.dumps(record))
    assert settle_design(tmp_path, {}).head_warmup == 0
    with pytest.raises(TaskfuseError, match="made with head_warmup 0"):
        settle_design(tmp_path, {"head_warmup": 5})
    with pytest.raises(TaskfuseError, match="detection guides only"):
        settle_design(tmp_path / "other", {"root": data, "methods": ["psfusion"]})
    with pytest.raises(TaskfuseError, match="not a file"):
        parse_released([f"sf={tmp_path / 'none.safetensors'}"])
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"")
    released = parse_released([f"sf={weights}"])
    assert [r.kind for r in Claim(tmp_path, replace(design, released=released)).rows].count("released") == 1
    with pytest.raises(TaskfuseError, match="a row of that name exists"):
        Claim(tmp_path, replace(design, released={"max": str(weights)}))
    claim = Claim(tmp_path, design)
    rows = [r.name for r in claim.rows]
    assert rows[:4] == ["ir", "vi", "max", "lite"] and rows[-1] == "oracle"
    plan = claim.plan(claim.rows)
    assert plan[:2] == ["pretrain:seafusion:f0", "pretrain:seafusion:f1"] and "cell:ir:-:d0" in plan
    assert not any(u.startswith(("train:", "fuse:oracle")) for u in plan)
    with pytest.raises(TaskfuseError, match="not a unit of this benchmark"):
        claim.run("cell:nowhere:-:d0")


def test_scored_rows_are_not_fused_again(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    claim = Claim(tmp_path, settle_design(tmp_path, {"root": data, "scale": "tiny", "methods": ["seafusion"]}))
    rows = [r for r in claim.rows if r.name in ("ir", "max")]
    assert "fuse:max" in claim.plan(rows)
    for cell in claim.cells(claim.by_name["max"]):
        path = tmp_path / "cells" / "max" / f"{cell.split(':')[-1]}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert "fuse:max" not in claim.plan(rows) and "cell:ir:-:d0" in claim.plan(rows)
    assert claim.todo(rows) == ["cell:ir:-:d0", "cell:ir:-:d1"]
    capsys.readouterr()
    assert main(["benchmark", "claim", "--out", str(tmp_path), "--rows", "ir", "max", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "skip  fuse:max" in listed and "done  cell:max:-:d0" in listed and "todo  cell:ir:-:d0" in listed


def test_a_row_name_selects_that_row_and_a_method_name_its_variants(data: Path, tmp_path: Path) -> None:
    design = settle_design(tmp_path, {"root": data, "scale": "tiny", "methods": ["lite", "seafusion"]})
    claim = Claim(tmp_path, design)
    assert [r.name for r in claim.select(["lite"])] == ["lite"]
    variants = [r.name for r in claim.select(["seafusion", "ir"])]
    assert variants == ["ir", "seafusion-fusion-only", "seafusion-task-guided", "seafusion-reseed"]
    assert not any(u.startswith("pretrain:") for u in claim.plan(claim.select(["lite", "ir"])))


def test_the_oracle_waits_for_every_cell_then_for_the_images_of_its_base_alone(data: Path, tmp_path: Path) -> None:
    claim = Claim(tmp_path, settle_design(tmp_path, {"root": data, "scale": "tiny", "methods": ["seafusion"]}))
    oracle = [claim.by_name["oracle"]]
    assert claim.plan(oracle) == [] and claim.oracle_base() is None
    for row in claim.rows[:-1]:
        for f, d in claim.cell_keys(row):
            path = tmp_path / "cells" / row.name / f"{cell_name(f, d)}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"result": {"mAP50": 0.6 if row.name == "max" else 0.5}}))
    assert not any(u.startswith(("fuse:", "cell:")) for u in claim.plan(claim.rows[:-1]))
    assert claim.plan(oracle) == ["fuse:max"] and claim.oracle_base() is claim.by_name["max"]
    (tmp_path / "fused" / "max").mkdir(parents=True)
    (tmp_path / "fused" / "max" / "done.json").write_text("{}")
    assert claim.plan(oracle) == ["fuse:oracle"] and claim.seeds(oracle[0]) == [None]


def test_cells_of_rows_without_weights_are_reused_from_a_folder_of_the_same_data(data: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    settle_design(first, {"root": data, "scale": "tiny", "methods": ["seafusion"]})
    for row in ("ir", "vi", "lite"):
        for d in TINY.downstream_seeds:
            (first / "cells" / row).mkdir(parents=True, exist_ok=True)
            (first / "cells" / row / f"d{d}.json").write_text("{}")
            (first / "downstream" / row / f"d{d}").mkdir(parents=True, exist_ok=True)
            (first / "downstream" / row / f"d{d}" / "predictions.json").write_text("[]")
    design = settle_design(second, {"root": data, "scale": "tiny", "methods": ["lite"]})
    assert reuse_cells(second, design, first) == ["ir", "vi"]
    assert (second / "downstream" / "vi" / "d0" / "predictions.json").is_file()
    assert not (second / "cells" / "lite").exists()
    claim = Claim(second, design)
    assert not any(u.startswith(("cell:ir:", "cell:vi:")) for u in claim.plan(claim.rows))
    assert reuse_cells(second, design, first) == []
    other = settle_design(tmp_path / "third", {"root": data, "scale": "tiny", "downstream_seeds": [7]})
    with pytest.raises(TaskfuseError, match="made with other downstream_seeds"):
        reuse_cells(tmp_path / "third", other, first)
    with pytest.raises(TaskfuseError, match="no claim.json"):
        reuse_cells(second, design, tmp_path)


def test_cells_of_the_default_and_released_rows_are_reused_only_with_the_same_weights(
    data: Path, tmp_path: Path
) -> None:
    peer, other = tmp_path / "peer.safetensors", tmp_path / "other.safetensors"
    peer.write_bytes(b"released weights")
    other.write_bytes(b"other weights")
    first = tmp_path / "first"
    design = settle_design(first, {"root": data, "scale": "tiny", "methods": ["lite"], "released": {"peer": str(peer)}})
    shipped = Claim(first, design).weights_sha256(Claim(first, design).by_name["lite"])
    assert shipped == file_sha256(models.get("lite").weights)
    for row, record in (("lite", {"weights_sha256": shipped}), ("peer", {})):
        for d in TINY.downstream_seeds:
            (first / "cells" / row).mkdir(parents=True, exist_ok=True)
            (first / "cells" / row / f"d{d}.json").write_text(json.dumps(record))
    same = settle_design(tmp_path / "same", {"root": data, "scale": "tiny", "released": {"peer": str(peer)}})
    assert reuse_cells(tmp_path / "same", same, first) == ["lite", "peer"]
    changed = settle_design(tmp_path / "changed", {"root": data, "scale": "tiny", "released": {"peer": str(other)}})
    assert reuse_cells(tmp_path / "changed", changed, first) == ["lite"]
    (first / "cells" / "lite" / "d0.json").write_text(json.dumps({"weights_sha256": "0" * 64}))
    fresh = settle_design(tmp_path / "fresh", {"root": data, "scale": "tiny", "released": {"peer": str(peer)}})
    assert reuse_cells(tmp_path / "fresh", fresh, first) == ["peer"]


def test_verdicts() -> None:
    def diff(observed: float, low: float, high: float) -> Difference:
        return Difference(pairs=3, observed=observed, low=low, high=high, boot_sd=1.0, pair_sd=1.0)

    assert verdict(diff(4.0, 1.0, 7.0), 3.0).startswith("an effect beyond the noise floor (better")
    assert verdict(diff(-4.0, -7.0, -1.0), 3.0).startswith("an effect beyond the noise floor (worse")
    assert verdict(diff(2.0, 0.5, 3.5), 3.0).startswith("inconclusive: the interval excludes 0")
    assert verdict(diff(0.5, -1.0, 2.0), 3.0) == "no effect of 3.00 points or more (interval holds 0)"
    assert verdict(diff(0.5, -1.0, 2.0), math.nan).startswith("inconclusive: one pair")
    assert verdict(diff(0.0, 0.0, 0.0), 0.0).startswith("inconclusive: the noise floor has no spread")


def test_cells_pair_by_seeds() -> None:
    learned, fixed = [(0, 0), (0, 1), (1, 0), (1, 1)], [(None, 0), (None, 1)]
    assert pairs(learned, learned[:3]) == [((0, 0), (0, 0)), ((0, 1), (0, 1)), ((1, 0), (1, 0))]
    assert pairs(fixed, learned) == [((None, 0), (0, 0)), ((None, 1), (0, 1)), ((None, 0), (1, 0)), ((None, 1), (1, 1))]
    assert pairs(fixed, fixed) == [((None, 0), (None, 0)), ((None, 1), (None, 1))]


def test_the_task_term_is_weighed_against_the_fusion_loss_and_the_twins(tmp_path: Path) -> None:
    logs = {
        "task-guided": [(20, "total", 5.0), (20, "detection", 4.0), (40, "total", 7.0), (40, "detection", 6.0)],
        "fusion-only": [(20, "total", 0.8), (40, "total", 0.6)],
    }
    for variant, values in logs.items():
        run = tmp_path / "runs" / f"m-{variant}-f0-1"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text("train:\n  task: detection\n")
        rounds = [(step, "round", float(step // 40)) for step in (20, 40)]
        lines = [f"{s},train/{n},{v}" for s, n, v in [*values, *rounds, (20, "lr", 1e-3)]]
        (run / "metrics.csv").write_text("step,name,value\n" + "\n".join(lines) + "\n")
        record = {"weights": f"runs/m-{variant}-f0-1/fusion.safetensors"}
        (tmp_path / "runs" / f"m-{variant}-f0.json").write_text(json.dumps(record))
    masks = {  # s: the task reweights terms both variants log; t: it adds a term of its own (FGFusion's L_ex)
        "s": {
            "task-guided": "20,train/total,0.5\n20,train/int,0.2\n",
            "fusion-only": "20,train/total,0.4\n20,train/int,0.1\n",
        },
        "t": {"task-guided": "20,train/total,2.5\n20,train/ex,2.0\n", "fusion-only": "20,train/total,0.4\n"},
    }
    for method, variants in masks.items():
        for variant, lines in variants.items():
            run = tmp_path / "runs" / f"{method}-{variant}-f0-1"
            run.mkdir(parents=True)
            (run / "metrics.csv").write_text(f"step,name,value\n20,train/lr,0.001\n{lines}")
            record = json.dumps({"weights": f"runs/{method}-{variant}-f0-1/w"})
            (tmp_path / "runs" / f"{method}-{variant}-f0.json").write_text(record)
    found = loss_balance(tmp_path)
    assert [(r["run"], r["round"], r["task"]) for r in found] == [
        ("m-task-guided-f0", 0, "detection"),
        ("m-task-guided-f0", 1, "detection"),
        ("t-task-guided-f0", 0, "ex"),
    ]
    assert [(r["task_term"], r["twin_fusion"]) for r in found] == [(4.0, 0.8), (6.0, 0.6), (2.0, 0.4)]
    assert [r["fusion"] for r in found] == pytest.approx([1.0, 1.0, 0.5])


@pytest.mark.slow
def test_tiny_claim_end_to_end(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "claim"
    args = ["benchmark", "claim", "--root", str(data), "--out", str(out), "--scale", "tiny", "--methods", "seafusion"]
    args += ["--downstream-seeds", "0", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "| seafusion | " in table and "## Pre-training" in table
    claim = Claim(out, settle_design(out, {}))
    assert all(claim.done(u) for u in claim.units(claim.rows)) and claim.plan(claim.rows) == []
    report = json.loads((out / "table.json").read_text())
    assert [r["row"] for r in report["rows"]] == [r.name for r in claim.rows]
    guidance = {c["what"]: c for c in report["comparisons"]}
    assert guidance["task guidance"]["mAP50"]["pairs"] == 2 and guidance["noise floor"]["mAP50"]["pairs"] == 2
    assert report["methods"][0]["verdict"]
    base = json.loads((out / "oracle.json").read_text())["base"]
    assert guidance["room: oracle over its base"]["a"] == base
    assert (out / "rows" / "seafusion-task-guided.json").is_file()
    lite = json.loads((out / "cells" / "lite" / "d0.json").read_text())
    assert lite["weights_sha256"] == file_sha256(models.get("lite").weights)
    capsys.readouterr()
    assert main(["benchmark", "claim", "--out", str(out), "--compare", "ir", "max", "--compare", "vi", "max"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("max - ir: mAP50 ") and "(1 pairs of cells)" in lines[0]
    assert main(["benchmark", "claim", "--out", str(out), "--compare", "ir", "absent"]) == 2

    val = open_dataset("msrs_det", data, "val")
    targets = [val.read_boxes(r).boxes for r in val.records]
    for path in sorted((out / "cells").glob("*/*.json")):
        cell = json.loads(path.read_text())
        stored = json.loads((out / cell["predictions"]).read_text())
        assert stored["names"] == [r.name for r in val.records]
        scores = scores_on(
            image_matches([np.asarray(p) for p in stored["predictions"]], targets, 3), range(len(targets))
        )
        assert scores.map50 == pytest.approx(cell["result"]["mAP50"], abs=1e-9)
        assert not (out / "downstream" / cell["row"] / path.stem / cell["row"] / "checkpoint").exists()
    stamp = (out / "cells" / "ir" / "d0.json").stat().st_mtime_ns
    assert main([*args[:6], "--device", "cpu", "--no-progress"]) == 0
    assert (out / "cells" / "ir" / "d0.json").stat().st_mtime_ns == stamp
    write_report(out)


def test_pretraining_from_init_waits_for_its_file(data: Path, tmp_path: Path) -> None:
    out, init = tmp_path / "claim", tmp_path / "stage_a.safetensors"
    given = {"root": str(data), "scale": "tiny", "methods": ["seafusion"], "init": {"seafusion": str(init)}}
    claim = Claim(out, settle_design(out, given))
    assert not any(u.startswith("pretrain:") for u in claim.plan(claim.rows))
    init.write_bytes(b"")
    assert any(u.startswith("pretrain:") for u in claim.plan(claim.rows))


def test_synthetic_scenes_stand_in_for_the_real_pairs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "claim"
    args = ["benchmark", "claim", "--out", str(out), "--scale", "tiny", "--methods", "seafusion", "--list"]
    assert main([*args, "--synthetic", "4", "2", "--synthetic-size", "48", "64"]) == 0
    assert "todo  cell:seafusion-task-guided:f0:d0" in capsys.readouterr().out
    design = json.loads((out / "claim.json").read_text())["design"]
    assert design["root"] == str((out / "scenes").resolve())
    train, val = (open_dataset("msrs_det", out / "scenes", split) for split in ("train", "val"))
    assert (len(train), len(val)) == (4, 2) and train[0]["ir"].shape[-2:] == (48, 64)
    assert main([*args, "--synthetic", "4", "3", "--synthetic-size", "48", "64"]) == 2
    assert "written with other settings" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args[:-1], "--root", str(tmp_path), "--synthetic", "4", "2"])
    with pytest.raises(TaskfuseError, match="not empty"):
        write_msrs_det_scenes(tmp_path, 4, 2)


def run_script(out: Path, data: Path, **env: str) -> subprocess.CompletedProcess:
    """``scripts/claim_full.sh`` on the tiny preset on the CPU, polling every second."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "SCALE": "tiny", "DEVICE": "cpu", "POLL": "1", "PRETRAINED": "", "PATH": path, **env}
    return subprocess.run(
        ["bash", str(SCRIPT), str(out), str(data), "600", "2"], env=env, capture_output=True, text=True
    )


@pytest.mark.slow
def test_the_script_runs_the_units_side_by_side_until_the_table(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "claim"
    done = run_script(out, data, METHODS="seafusion", ROWS="ir seafusion-fusion-only")
    assert done.returncode == 0, done.stderr
    assert "units left: 0" in done.stdout and "| seafusion-fusion-only |" in done.stdout
    claim = Claim(out, settle_design(out, {}))
    rows = [claim.by_name["ir"], claim.by_name["seafusion-fusion-only"]]
    assert all(claim.done(u) for u in claim.units(rows))
    assert not any(claim.done(u) for u in claim.units([claim.by_name["vi"]]))
    started = [line.split()[1] for line in Path(f"{out}-logs/started.log").read_text().splitlines()]
    first_cell = min(i for i, unit in enumerate(started) if unit.startswith("cell:"))
    assert all(not unit.startswith(("pretrain:", "train:")) for unit in started[first_cell:]), started


@pytest.mark.slow
def test_the_script_stops_at_a_failing_unit_and_names_it(data: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    done = run_script(
        tmp_path / "claim", data, METHODS="seafusion", ROWS="seafusion-fusion-only", INIT=f"seafusion={broken}"
    )
    assert done.returncode == 1
    assert "unit pretrain:seafusion:f0 failed" in done.stderr and "units left: " in done.stdout


def test_the_script_records_every_released_row_and_stops_when_the_plan_fails(data: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"")
    weights = " ".join(f"{n}-released={tmp_path / n}.safetensors" for n in ("a", "b"))
    done = run_script(tmp_path / "claim", data, METHODS="seafusion", WEIGHTS=weights, ROWS="a-released nowhere")
    assert done.returncode == 1 and "--plan failed" in done.stderr and "'nowhere': not a row" in done.stderr
    assert list(settle_design(tmp_path / "claim", {}).released) == ["a-released", "b-released"]


def test_a_folder_packs_into_small_parts_without_images_or_checkpoints(tmp_path: Path) -> None:
    out = tmp_path / "runs" / "claim"
    files = {
        "claim.json": b"{}",
        "cells/m-task-guided/f0-d0.json": b"{}",
        "downstream/m-task-guided/f0-d0/predictions.json": b"[]",
        "downstream/m-task-guided/f0-d0/report.html": b"<html>",
        "downstream/m-task-guided/f0-d0/samples/a_ir.png": b"png",
        "fused/m-task-guided/f0/val/a.png": b"png",
        "pretrain/m-f0.json": b"{}",
        "pretrain/m-f0.safetensors": os.urandom(300_000),
        "pretrain/m-f0-1/fusion.safetensors": b"the last step",
        "pretrain/m-f0-1/checkpoint.pt": b"optimiser",
        "runs/m-task-guided-f0.json": b"{}",
        "runs/m-task-guided-f0-1/fusion.safetensors": os.urandom(300_000),
        "runs/m-task-guided-f0-1/metrics.csv": b"step,name,value",
    }
    for name, data in files.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    (tmp_path / "runs" / "claim-logs").mkdir()
    (tmp_path / "runs" / "claim-logs" / "started.log").write_text("unit\n")
    done = subprocess.run(["bash", str(PACK), str(out), str(tmp_path / "moved"), "256K"], capture_output=True)
    assert done.returncode == 0, done.stderr
    parts = sorted(p.name for p in (tmp_path / "moved").iterdir())
    assert "weights.tgz.01" in parts and all(p.stat().st_size <= 262_144 for p in (tmp_path / "moved").iterdir())
    (tmp_path / "back").mkdir()
    for kind in ("state", "weights"):
        joined = b"".join((tmp_path / "moved" / p).read_bytes() for p in parts if p.startswith(kind))
        subprocess.run(["tar", "xz", "-C", str(tmp_path / "back")], input=joined, check=True)
    back = {str(p.relative_to(tmp_path / "back" / "claim")) for p in (tmp_path / "back" / "claim").rglob("*.*")}
    left = {"report.html", "a_ir.png", "a.png", "checkpoint.pt", "m-f0-1/fusion.safetensors"}
    assert back == {n for n in files if not any(n.endswith(x) for x in left)}
    assert (tmp_path / "back" / "claim-logs" / "started.log").is_file()
    for name in ("pretrain/m-f0.safetensors", "runs/m-task-guided-f0-1/fusion.safetensors"):
        assert (tmp_path / "back" / "claim" / name).read_bytes() == files[name]


def test_the_head_warm_up_trains_the_task_head_alone(data: Path, tmp_path: Path) -> None:
    design = replace(DESIGN, head_warmup=3)
    init = tmp_path / "pre.safetensors"
    save_weights(models.create("fgfusion", **models.get("fgfusion").small), init, "fgfusion")
    warmed = warm_head(design, "fgfusion", 0, data, tmp_path, "cpu", False, init)
    assert warmed != init and (tmp_path / "runs" / "fgfusion-head-f0.json").is_file()
    before, after = load_file(init), load_file(warmed)
    changed = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"foreground"}
    assert warm_head(design, "fgfusion", 0, data, tmp_path, "cpu", False, init) == warmed
    assert warm_head(design, "seafusion", 0, data, tmp_path, "cpu", False, init) == init
    assert warm_head(replace(design, head_warmup=0), "fgfusion", 1, data, tmp_path, "cpu", False, init) == init
    with pytest.raises(TaskfuseError, match="train_only: head is not a module of the fgfusion network"):
        freeze_except(models.create("fgfusion", **models.get("fgfusion").small), ["head"], "fgfusion")


def test_only_the_task_guided_continuation_starts_from_the_warmed_head(data: Path, tmp_path: Path) -> None:
    design = replace(DESIGN, head_warmup=2, steps=2)
    guided = continue_variant(design, "fgfusion", "task-guided", 0, data, tmp_path, "cpu", False)
    plain = continue_variant(design, "fgfusion", "fusion-only", 0, data, tmp_path, "cpu", False)
    head = json.loads((tmp_path / "runs" / "fgfusion-head-f0.json").read_text())["weights"]
    starts = [stored_config(t.weights.parent)["train"]["init"] for t in (guided, plain)]
    assert starts == [str(tmp_path / head), str(tmp_path / "pretrain" / "fgfusion-f0.safetensors")]
