"""Released weights of published methods: conversion, refusal of wrong files, and output parity with the authors'
own inference on the 12 VIFB pairs (``../shared/checkpoints/official/reference_outputs``).

Parity bar per pair: |fused - reference| <= 1 grey level on at least 99.9 % of the values and <= 2 everywhere,
fusing through ``taskfuse fuse --weights`` as users do. Two small pairs per release run by default; all 12 are
``slow``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import taskfuse
from taskfuse import models
from taskfuse.cli.main import main
from taskfuse.errors import TaskfuseError
from taskfuse.models.official import read_state_dict
from taskfuse.models.seafusion.network import SeAFusion
from taskfuse.models.weights import read_meta, save_weights

RELEASES = {
    "seafusion-official": ("SeAFusion.pth", "SeAFusion"),
    "tardal-official": ("tardal.pt", "TarDAL"),
    "tardalpp-official": ("tardal++.pt", "TarDALpp"),
}
QUICK = ("36", "175")


def convert(official: Path, converter: str, out: Path) -> Path:
    assert main(["convert", converter, str(official / RELEASES[converter][0]), "--out", str(out)]) == 0
    return out


def differences(out: Path, reference: Path, names: list[str]) -> dict[str, tuple[int, float, float]]:
    """Per pair: max |diff|, mean |diff| and the fraction of values within one grey level."""
    stats = {}
    for name in names:
        ours = np.asarray(Image.open(out / f"{name}.png"), dtype=np.int16)
        theirs = np.asarray(Image.open(reference / f"{name}.png"), dtype=np.int16)
        assert ours.shape == theirs.shape, name
        diff = np.abs(ours - theirs)
        stats[name] = (int(diff.max()), float(diff.mean()), float((diff <= 1).mean()))
    return stats


def check_parity(stats: dict[str, tuple[int, float, float]]) -> None:
    failing = {n: s for n, s in stats.items() if s[0] > 2 or s[2] < 0.999}
    assert not failing, f"pairs off the authors' output (max, mean, within 1): {failing}"


@pytest.mark.parametrize("converter", list(RELEASES))
def test_two_pairs_match_the_authors_output(
    converter: str, official_checkpoints: Path, shared_data: Path, tmp_path: Path
) -> None:
    weights = convert(official_checkpoints, converter, tmp_path / "w.safetensors")
    golden = shared_data / "golden" / "vifb12"
    for name in QUICK:
        argv = ["fuse", "--ir", str(golden / "ir" / f"{name}.png"), "--vi", str(golden / "vi" / f"{name}.png")]
        assert main([*argv, "--weights", str(weights), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    check_parity(
        differences(tmp_path / "out", official_checkpoints / "reference_outputs" / RELEASES[converter][1], list(QUICK))
    )


@pytest.mark.slow
@pytest.mark.parametrize("converter", list(RELEASES))
def test_all_twelve_pairs_match_the_authors_output(
    converter: str, official_checkpoints: Path, shared_data: Path, tmp_path: Path
) -> None:
    weights = convert(official_checkpoints, converter, tmp_path / "w.safetensors")
    golden = shared_data / "golden" / "vifb12"
    argv = ["fuse", "--ir", str(golden / "ir"), "--vi", str(golden / "vi"), "--weights", str(weights)]
    assert main([*argv, "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    names = sorted(p.stem for p in (golden / "ir").glob("*.png"))
    assert len(names) == 12
    reference = official_checkpoints / "reference_outputs" / RELEASES[converter][1]
    check_parity(differences(tmp_path / "out", reference, names))


def test_converted_seafusion_round_trips_through_load(official_checkpoints: Path, tmp_path: Path) -> None:
    src = official_checkpoints / "SeAFusion.pth"
    weights = convert(official_checkpoints, "seafusion-official", tmp_path / "sea.safetensors")
    meta = read_meta(weights)
    origin = meta["provenance"]
    assert meta["method"] == "seafusion" and meta["config"]["postprocess"] == "official"
    assert origin["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest() and origin["source_file"] == src.name
    assert origin["trained_on"].startswith("MSRS") and origin["licence"].startswith("MIT")
    model = taskfuse.load(weights=weights)
    assert isinstance(model, SeAFusion) and model.postprocess == "official" and not model.training
    official = read_state_dict(src, "SeAFusion.pth")
    learned = official["inf_rgbd2.sobelconv.convy.weight"]
    assert torch.equal(model.ir_encoder[2].sobel.gy.weight, learned)
    assert torch.equal(model.decoder[0][0].weight, official["decode4.conv.weight"])
    # 72 tensors in the file, of which the 20 BatchNorm ones are never applied by the authors' forward
    assert len(official) == 72 and len(model.state_dict()) == 52
    sobel_x = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    assert 0.05 < (official["vis_rgbd1.sobelconv.convx.weight"][:, 0] - sobel_x).abs().max() < 0.3


def test_the_other_release_and_unknown_files_are_told_apart(official_checkpoints: Path, tmp_path: Path) -> None:
    with pytest.raises(TaskfuseError, match="tardalpp-official"):
        models.get("tardal").converters[0].read(official_checkpoints / "tardal++.pt")
    state = torch.load(official_checkpoints / "tardal.pt", weights_only=True)
    state["fuse.3.0.bias"] = state["fuse.3.0.bias"] + 0.01
    torch.save(state, tmp_path / "mine.pt")
    assert (
        main(["convert", "tardal-official", str(tmp_path / "mine.pt"), "--out", str(tmp_path / "m.safetensors")]) == 0
    )
    origin = read_meta(tmp_path / "m.safetensors")["provenance"]
    assert origin["release"].startswith("not a known release") and origin["licence"] == "unknown"
    assert read_meta(tmp_path / "m.safetensors")["config"]["batchnorm"] == "batch"


@pytest.mark.parametrize("converter", list(RELEASES))
def test_wrong_files_are_refused_naming_the_file(
    converter: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = models.create("lite").state_dict()
    torch.save(other, tmp_path / "other_network.pt")
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    torch.save(models.create("tardal", dim=4, depth=1), tmp_path / "module.pt")
    data = (tmp_path / "other_network.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    reasons = {
        "other_network.pt": "unexpected",
        "random.pt": "not a readable PyTorch checkpoint",
        "module.pt": "pickles Python objects",
        "truncated.pt": "truncated",
        "missing.pt": "no such file",
    }
    for name, reason in reasons.items():
        out = tmp_path / f"{name}.safetensors"
        assert main(["convert", converter, str(tmp_path / name), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert str(tmp_path / name) in err and reason in err and "pass " in err, err
        assert not out.exists()


def test_convert_refuses_a_bad_destination_and_lists_converters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "w.pt"
    torch.save({}, src)
    assert main(["convert", "seafusion-official", str(src), "--out", str(tmp_path / "w.pt")]) == 2
    assert "safetensors" in capsys.readouterr().err
    torch.save({}, tmp_path / "w.safetensors")
    same = str(tmp_path / "w.safetensors")
    assert main(["convert", "seafusion-official", same, "--out", same]) == 2
    assert "is the source file" in capsys.readouterr().err
    assert main(["convert", "nope", str(src), "--out", str(tmp_path / "x.safetensors")]) == 2
    assert "seafusion-official" in capsys.readouterr().err
    assert main(["convert", "--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in RELEASES)


def test_converted_weights_load_like_trained_ones(tmp_path: Path) -> None:
    model = models.create("tardal", dim=4, depth=1, batchnorm="batch", color="official").eval()
    path = save_weights(
        model,
        tmp_path / "t.safetensors",
        "tardal",
        {"dim": 4, "depth": 1, "batchnorm": "batch", "color": "official"},
        extra={"provenance": {"sha256": "0" * 64}},
    )
    loaded = taskfuse.load(weights=path)
    ir, vi = torch.rand(1, 1, 12, 14), torch.rand(1, 3, 12, 14)
    assert loaded.whole_image and torch.equal(loaded.fuse_color(ir, vi), model.fuse_color(ir, vi))
    assert read_meta(path)["provenance"] == {"sha256": "0" * 64}
