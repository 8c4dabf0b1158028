"""Paired augmentation: each transform moves IR, VIS, label mask, boxes and keypoints together.

A transform is called as ``t(sample, generator)`` on a sample dict of ``taskfuse.data.datasets`` and returns a
new dict; ``generator`` is a ``torch.Generator``, an int seed, or None for torch's global generator, so a fixed
seed gives the same augmentation every time. Keys moved: images ``ir`` (1, H, W) and ``vi`` (3, H, W),
the mask ``label`` (H, W), ``boxes`` (N, 5) [class, x1, y1, x2, y2] and ``keypoints`` (N, K, 3) [x, y, v];
other keys pass through.

Coordinates are continuous pixels: pixel (row r, column c) covers [c, c + 1) x [r, r + 1), its centre is
(c + 0.5, r + 0.5). Boxes are clipped to the image and dropped when empty, together with their row of keypoints
when the sample has one per box (so ``boxes[i]`` and ``keypoints[i]`` stay one object); keypoints that leave the
image (or are unlabelled, v = 0) become [0, 0, 0], the COCO encoding of "not labelled".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.data.classes import IGNORE_INDEX
from taskfuse.errors import TaskfuseError

Sample = dict[str, Any]
Generator = torch.Generator | int | None
IMAGE_KEYS = ("ir", "vi")
MASK_KEYS = ("label",)


def as_generator(generator: Generator) -> torch.Generator | None:
    """A ``torch.Generator`` from a generator, a seed (a fresh generator seeded with it) or None."""
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    return generator


def _size(sample: Sample) -> tuple[int, int]:
    if "ir" not in sample:
        raise TaskfuseError("a transform needs the sample's 'ir' image to know its size; got keys " + ", ".join(sample))
    return int(sample["ir"].shape[-2]), int(sample["ir"].shape[-1])


def _map(sample: Sample, image: Callable[[Tensor], Tensor], mask: Callable[[Tensor], Tensor]) -> Sample:
    out = dict(sample)
    for k in IMAGE_KEYS:
        if k in out:
            out[k] = image(out[k])
    for k in MASK_KEYS:
        if k in out:
            out[k] = mask(out[k])
    return out


def clip_boxes(boxes: Tensor, h: int, w: int) -> Tensor:
    """Boxes clipped to [0, w] x [0, h]; those left without area are dropped."""
    b = boxes.clone()
    b[:, [1, 3]] = b[:, [1, 3]].clamp(0, w)
    b[:, [2, 4]] = b[:, [2, 4]].clamp(0, h)
    return b[(b[:, 3] > b[:, 1]) & (b[:, 4] > b[:, 2])]


def hide_keypoints(keypoints: Tensor, h: int, w: int) -> Tensor:
    """Keypoints outside [0, w) x [0, h), or with v = 0, set to [0, 0, 0]."""
    k = keypoints.clone()
    x, y, v = k[..., 0], k[..., 1], k[..., 2]
    gone = (x < 0) | (x >= w) | (y < 0) | (y >= h) | (v <= 0)
    k[gone] = 0
    return k


def _finish(sample: Sample) -> Sample:
    h, w = _size(sample)
    if "boxes" in sample:
        boxes = sample["boxes"]
        if "keypoints" in sample and len(sample["keypoints"]) == len(boxes):
            x1, x2 = boxes[:, 1].clamp(0, w), boxes[:, 3].clamp(0, w)
            y1, y2 = boxes[:, 2].clamp(0, h), boxes[:, 4].clamp(0, h)
            sample["keypoints"] = sample["keypoints"][(x2 > x1) & (y2 > y1)]
        sample["boxes"] = clip_boxes(boxes, h, w)
    if "keypoints" in sample:
        sample["keypoints"] = hide_keypoints(sample["keypoints"], h, w)
    return sample


class RandomCrop:
    """Crop a random ``size`` = (h, w) window; an image smaller than that is first padded at the bottom and
    right (images with 0, the label with IGNORE_INDEX, so padding never counts as a class)."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise TaskfuseError(f"RandomCrop size {size!r}: give a positive int or (height, width)")

    def __call__(self, sample: Sample, generator: Generator = None) -> Sample:
        g = as_generator(generator)
        h, w = _size(sample)
        ch, cw = self.size
        ph, pw = max(ch - h, 0), max(cw - w, 0)
        top = int(torch.randint(0, h + ph - ch + 1, (), generator=g))
        left = int(torch.randint(0, w + pw - cw + 1, (), generator=g))

        out = dict(sample)
        for k in IMAGE_KEYS:
            if k in out:
                out[k] = _crop_pad(out[k], top, left, ch, cw, ph, pw, 0.0)
        for k in MASK_KEYS:
            if k in out:
                out[k] = _crop_pad(out[k], top, left, ch, cw, ph, pw, IGNORE_INDEX)
        shift = torch.tensor([left, top], dtype=torch.float32)
        if "boxes" in out:
            b = out["boxes"].clone()
            b[:, 1:] -= shift.repeat(2)
            out["boxes"] = b
        if "keypoints" in out:
            k = out["keypoints"].clone()
            k[..., :2] -= shift
            out["keypoints"] = k
        return _finish(out)


def _crop_pad(x: Tensor, top: int, left: int, ch: int, cw: int, ph: int, pw: int, fill: float) -> Tensor:
    if ph or pw:
        flat = x.unsqueeze(0) if x.dim() == 2 else x
        padded = F.pad(flat.float(), (0, pw, 0, ph), value=fill).to(x.dtype)
        x = padded.squeeze(0) if x.dim() == 2 else padded
    return x[..., top : top + ch, left : left + cw]


class HorizontalFlip:
    """Mirror left-right with probability ``p``; ``flip_pairs`` lists keypoint index pairs to swap
    (left/right wing tips, eyes, ...), e.g. ``CocoKeypointsDataset.flip_pairs``."""

    def __init__(self, p: float = 0.5, flip_pairs: Sequence[tuple[int, int]] = ()) -> None:
        self.p = p
        self.flip_pairs = [tuple(pair) for pair in flip_pairs]

    def __call__(self, sample: Sample, generator: Generator = None) -> Sample:
        g = as_generator(generator)
        if float(torch.rand((), generator=g)) >= self.p:
            return dict(sample)
        _, w = _size(sample)
        out = _map(sample, lambda x: x.flip(-1), lambda x: x.flip(-1))
        if "boxes" in out:
            b = out["boxes"].clone()
            b[:, 1], b[:, 3] = w - out["boxes"][:, 3], w - out["boxes"][:, 1]
            out["boxes"] = b
        if "keypoints" in out:
            k = out["keypoints"].clone()
            k[..., 0] = w - k[..., 0]
            for a, b in self.flip_pairs:
                k[:, [a, b]] = k[:, [b, a]]
            out["keypoints"] = k
        return _finish(out)


class RandomRotate90:
    """Rotate by k x 90 degrees (k drawn from ``ks``), counter-clockwise as ``torch.rot90``; H and W swap
    for odd k."""

    def __init__(self, ks: Sequence[int] = (0, 1, 2, 3)) -> None:
        if not ks or any(k not in (0, 1, 2, 3) for k in ks):
            raise TaskfuseError(f"RandomRotate90 ks {ks!r}: choose from 0, 1, 2, 3")
        self.ks = tuple(ks)

    def __call__(self, sample: Sample, generator: Generator = None) -> Sample:
        g = as_generator(generator)
        k = self.ks[int(torch.randint(0, len(self.ks), (), generator=g))]
        out = dict(sample)
        for _ in range(k):
            out = self._once(out)
        return _finish(out)

    @staticmethod
    def _once(sample: Sample) -> Sample:
        """One quarter turn: pixel (r, c) goes to (W - 1 - c, r), a point (x, y) to (y, W - x)."""
        _, w = _size(sample)
        out = _map(sample, lambda x: x.rot90(1, (-2, -1)), lambda x: x.rot90(1, (-2, -1)))
        if "boxes" in out:
            b = out["boxes"]
            out["boxes"] = torch.stack([b[:, 0], b[:, 2], w - b[:, 3], b[:, 4], w - b[:, 1]], dim=1)
        if "keypoints" in out:
            k = out["keypoints"]
            out["keypoints"] = torch.stack([k[..., 1], w - k[..., 0], k[..., 2]], dim=-1)
        return out


class RandomScale:
    """Resize by a factor drawn uniformly from [low, high]: bilinear for images, nearest for the label
    (``nearest-exact``: each output pixel takes the label under its centre), boxes and keypoints scaled by the
    exact ratio of the new to the old size."""

    def __init__(self, low: float = 0.5, high: float = 2.0) -> None:
        if not 0 < low <= high:
            raise TaskfuseError(f"RandomScale({low}, {high}): give 0 < low <= high")
        self.low, self.high = low, high

    def __call__(self, sample: Sample, generator: Generator = None) -> Sample:
        g = as_generator(generator)
        s = self.low + (self.high - self.low) * float(torch.rand((), generator=g))
        h, w = _size(sample)
        nh, nw = max(1, round(h * s)), max(1, round(w * s))

        def image(x: Tensor) -> Tensor:
            return F.interpolate(x.unsqueeze(0), size=(nh, nw), mode="bilinear", align_corners=False)[0]

        def mask(x: Tensor) -> Tensor:
            y = F.interpolate(x[None, None].float(), size=(nh, nw), mode="nearest-exact")[0, 0]
            return y.to(x.dtype)

        out = _map(sample, image, mask)
        scale = torch.tensor([nw / w, nh / h], dtype=torch.float32)
        if "boxes" in out:
            b = out["boxes"].clone()
            b[:, 1:] *= scale.repeat(2)
            out["boxes"] = b
        if "keypoints" in out:
            k = out["keypoints"].clone()
            k[..., :2] *= scale
            out["keypoints"] = k
        return _finish(out)


class Compose:
    """Apply transforms in order, all drawing from one generator (so one seed fixes the whole chain)."""

    def __init__(self, transforms: Sequence[Callable[[Sample, Generator], Sample]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, generator: Generator = None) -> Sample:
        g = as_generator(generator)
        for t in self.transforms:
            sample = t(sample, g)
        return sample
