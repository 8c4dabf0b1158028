"""Paired augmentation keeps IR, VIS, label, boxes and keypoints aligned: a marker pixel put at the same place
in every modality must stay co-located through each transform."""

from __future__ import annotations

import pytest
import torch

from taskfuse.data.classes import IGNORE_INDEX
from taskfuse.data.transforms import (
    Compose,
    HorizontalFlip,
    RandomCrop,
    RandomRotate90,
    RandomScale,
    clip_boxes,
    hide_keypoints,
)
from taskfuse.errors import TaskfuseError

H, W = 10, 14
MARK = 3


def marked(r: int = 2, c: int = 9, size: int = 1) -> dict:
    """A sample with a size x size marker at (r, c) in IR, VIS (green only) and label, a box around it,
    keypoint 0 at its centre and keypoint 1 (unlabelled) elsewhere."""
    ir, vi = torch.zeros(1, H, W), torch.zeros(3, H, W)
    label = torch.zeros(H, W, dtype=torch.int64)
    ir[0, r : r + size, c : c + size] = 1
    vi[1, r : r + size, c : c + size] = 1
    label[r : r + size, c : c + size] = MARK
    boxes = torch.tensor([[2.0, c, r, c + size, r + size]])
    keypoints = torch.tensor([[[c + size / 2, r + size / 2, 2.0], [1.0, 1.0, 0.0]]])
    return {"ir": ir, "vi": vi, "vi_gray": False, "name": "m", "label": label, "boxes": boxes, "keypoints": keypoints}


def assert_colocated(s: dict) -> None:
    """The IR peak, the VIS peak and the label marker coincide; the box and the keypoint sit on them."""
    h, w = s["ir"].shape[-2:]
    assert s["vi"].shape[-2:] == (h, w) and s["label"].shape == (h, w)
    where = s["label"] == MARK
    assert where.any()
    r, c = divmod(int(s["ir"][0].argmax()), w)
    assert where[r, c]
    rv, cv = divmod(int(s["vi"][1].argmax()), w)
    assert where[rv, cv] and s["vi"][0].abs().max() == 0
    rows, cols = torch.nonzero(where, as_tuple=True)
    assert len(s["boxes"]) == 1
    _, x1, y1, x2, y2 = s["boxes"][0].tolist()
    assert x1 <= cols.min() + 0.5 and cols.max() + 0.5 <= x2 and y1 <= rows.min() + 0.5 and rows.max() + 0.5 <= y2
    x, y, v = s["keypoints"][0, 0].tolist()
    assert v == 2 and where[int(y), int(x)]
    assert s["keypoints"][0, 1].tolist() == [0, 0, 0]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rotate90_keeps_alignment(k: int) -> None:
    s = RandomRotate90(ks=(k,))(marked(), 0)
    assert s["ir"].shape[-2:] == ((W, H) if k % 2 else (H, W))
    assert_colocated(s)


def test_rotate90_box_of_asymmetric_marker() -> None:
    s = RandomRotate90(ks=(1,))(marked(r=2, c=9, size=2), 0)
    rows, cols = torch.nonzero(s["label"] == MARK, as_tuple=True)
    assert s["boxes"][0, 1:].tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]


def test_flip_keeps_alignment() -> None:
    s = HorizontalFlip(p=1.0)(marked(), 0)
    assert s["boxes"][0, 1:].tolist() == [W - 10, 2, W - 9, 3]
    assert_colocated(s)
    same = HorizontalFlip(p=0.0)(marked(), 0)
    assert torch.equal(same["ir"], marked()["ir"]) and torch.equal(same["boxes"], marked()["boxes"])


def test_flip_swaps_left_right_keypoints() -> None:
    s = marked()
    s["keypoints"] = torch.tensor([[[9.5, 2.5, 2.0], [3.5, 7.5, 1.0]]])
    out = HorizontalFlip(p=1.0, flip_pairs=[(0, 1)])(s, 0)
    assert out["keypoints"][0].tolist() == [[W - 3.5, 7.5, 1.0], [W - 9.5, 2.5, 2.0]]
    x, y, _ = out["keypoints"][0, 1].tolist()
    assert out["label"][int(y), int(x)] == MARK


def test_crop_keeps_alignment_or_drops_everything_together() -> None:
    seen = set()
    for seed in range(12):
        s = RandomCrop((5, 6))(marked(), seed)
        assert s["ir"].shape == (1, 5, 6) and s["label"].shape == (5, 6)
        inside = bool((s["label"] == MARK).any())
        seen.add(inside)
        if inside:
            assert_colocated(s)
        else:
            assert s["ir"].max() == 0 and len(s["boxes"]) == 0 and len(s["keypoints"]) == 0
    assert seen == {True, False}


def test_crop_larger_than_image_pads_label_with_ignore() -> None:
    s = RandomCrop(16)(marked(), 1)
    assert s["ir"].shape == (1, 16, 16) and s["vi"].shape == (3, 16, 16)
    assert (s["label"][H:] == IGNORE_INDEX).all() and (s["label"][:, W:] == IGNORE_INDEX).all()
    assert s["ir"][:, H:].abs().max() == 0
    assert_colocated(s)


@pytest.mark.parametrize("seed", range(4))
def test_scale_up_keeps_alignment(seed: int) -> None:
    s = RandomScale(1.0, 3.0)(marked(), seed)
    assert s["ir"].shape[-1] >= W and s["label"].dtype == torch.int64
    assert_colocated(s)


def test_scale_down_block_marker() -> None:
    s = RandomScale(0.5, 0.5)(marked(r=4, c=8, size=4), 0)
    assert s["ir"].shape == (1, H // 2, W // 2)
    assert s["boxes"][0, 1:].tolist() == [4, 2, 6, 4]
    assert torch.equal(torch.nonzero(s["label"] == MARK), torch.tensor([[2, 4], [2, 5], [3, 4], [3, 5]]))
    assert_colocated(s)


def test_compose_is_deterministic_per_seed() -> None:
    t = Compose([RandomScale(0.8, 1.6), RandomRotate90(), HorizontalFlip(), RandomCrop(8)])
    a, b = t(marked(), 7), t(marked(), torch.Generator().manual_seed(7))
    for key in ("ir", "vi", "label", "boxes", "keypoints"):
        assert torch.equal(a[key], b[key])
    outs = [t(marked(), seed)["ir"] for seed in range(6)]
    assert any(not torch.equal(outs[0], o) for o in outs[1:])


def test_clip_and_hide_helpers() -> None:
    boxes = torch.tensor([[1.0, -2, 1, 4, 3], [0.0, 5, 5, 9, 9], [0.0, 1, 1, 1, 4]])
    assert clip_boxes(boxes, 6, 6).tolist() == [[1, 0, 1, 4, 3], [0, 5, 5, 6, 6]]
    kps = torch.tensor([[[1.0, 1.0, 2.0], [6.0, 1.0, 2.0], [2.0, 2.0, 0.0]]])
    assert hide_keypoints(kps, 6, 6).tolist() == [[[1, 1, 2], [0, 0, 0], [0, 0, 0]]]


def test_bad_parameters() -> None:
    with pytest.raises(TaskfuseError):
        RandomCrop(0)
    with pytest.raises(TaskfuseError):
        RandomScale(2.0, 1.0)
    with pytest.raises(TaskfuseError):
        RandomRotate90(ks=(4,))
    with pytest.raises(TaskfuseError, match="'ir' image"):
        HorizontalFlip(p=1.0)({"vi": torch.zeros(3, 2, 2)}, 0)
