"""``taskfuse convert backbone``: a pickled ImageNet backbone checkpoint becomes safetensors with its names kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from taskfuse.cli.main import main
from taskfuse.nn.resnet import ResNet


def test_backbone_pth_converts_next_to_its_source_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = ResNet(18).state_dict()
    src = tmp_path / "resnet18.pth"
    torch.save({"state_dict": state, "epoch": 90}, src)
    assert main(["convert", "backbone", str(src)]) == 0
    out = load_file(str(tmp_path / "resnet18.safetensors"))
    assert out.keys() == state.keys() and all(torch.equal(out[k], v) for k, v in state.items())
    assert "the weights under 'state_dict'" in capsys.readouterr().out
    assert main(["convert", "backbone", str(src)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["convert", "backbone", str(src), "--overwrite"]) == 0
    assert main(["convert", "backbone", str(src), "--out", str(src)]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err


def test_convert_list_names_the_backbone_converter(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "backbone" in listing and "seafusion-official" in listing
