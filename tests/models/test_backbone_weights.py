"""``model.backbone_weights``: the methods with ResNet encoders start both encoders from a local ImageNet file,
and weights trained from it load again without that file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.models.weights import load_model, save_weights
from taskfuse.nn import ResNet

ENCODERS = {
    "psfusion": ("ir_branch.resnet", "vi_branch.resnet"),
    "mafs": ("backbone_vi", "backbone_ir"),
    "dsifuse": ("encoder_vi", "encoder_ir"),
}


def imagenet_like(tmp_path: Path, depth: int = 18) -> tuple[Path, dict[str, torch.Tensor]]:
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in ResNet(depth).state_dict().items()}
    state |= {"fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)}
    path = tmp_path / f"resnet{depth}.safetensors"
    save_file(state, str(path))
    return path, state


@pytest.mark.parametrize("method", sorted(ENCODERS))
def test_both_encoders_start_from_the_file(method: str, tmp_path: Path) -> None:
    path, state = imagenet_like(tmp_path)
    small = models.get(method).small | ({"channels": 64} if method == "mafs" else {})
    net = models.create(method, **small, backbone_weights=str(path))
    for where in ENCODERS[method]:
        encoder = net.get_submodule(where)
        for k, v in encoder.state_dict().items():
            expected = state[k]
            if k == "conv1.weight" and v.shape[1] == 1:
                expected = expected.sum(1, keepdim=True)
            torch.testing.assert_close(v, expected, msg=f"{where}.{k}")


def test_a_file_of_another_depth_or_width_is_refused(tmp_path: Path) -> None:
    path, _ = imagenet_like(tmp_path, 34)
    with pytest.raises(TaskfuseError, match="larger network"):
        models.create("psfusion", **models.get("psfusion").small, backbone_weights=str(path))
    with pytest.raises(TaskfuseError, match=r"layer1.0.conv1.weight has shape \(64, 64, 3, 3\)"):
        models.create("mafs", **(models.get("mafs").small | {"depth": 34}), backbone_weights=str(path))


def test_trained_weights_load_without_the_imagenet_file(tmp_path: Path) -> None:
    path, _ = imagenet_like(tmp_path)
    config = {**models.get("dsifuse").small, "backbone_weights": str(path)}
    net = models.create("dsifuse", **config)
    weights = save_weights(net, tmp_path / "fusion.safetensors", "dsifuse", config)
    path.unlink()
    loaded = load_model(weights)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
