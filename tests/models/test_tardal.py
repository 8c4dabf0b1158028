"""TarDAL generator: registration and size, BatchNorm and colour modes against BatchNorm and OpenCV themselves,
gradients, checkpoints, the config, and a short training run with its content loss."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from methods_helpers import fuse_roadscene, scene_batch, train_steps
from torch import nn

import taskfuse
from taskfuse import models
from taskfuse.data.color import recombine
from taskfuse.errors import TaskfuseError
from taskfuse.inference import fuse_tensors
from taskfuse.models.tardal.loss import TarDALLoss
from taskfuse.models.tardal.network import ImageStatsNorm2d, opencv_gray
from taskfuse.models.weights import load_model, save_weights

CONFIG = Path(taskfuse.__file__).parent / "configs" / "tardal.yaml"
SMALL = dict(models.get("tardal").small)


def levels(shape: tuple[int, ...]) -> torch.Tensor:
    """A random image of 8-bit levels in [0, 1], as read from an 8-bit file."""
    return torch.randint(0, 256, shape).float() / 255


def test_default_generator_has_the_authors_layout() -> None:
    model = models.create("tardal")
    assert sum(p.numel() for p in model.parameters()) == 296577
    assert [m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [2, 32, 64, 96, 128, 128, 64, 32]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 6
    with pytest.raises(TaskfuseError, match="batchnorm"):
        models.create("tardal", batchnorm="eval")
    with pytest.raises(TaskfuseError, match="color"):
        models.create("tardal", color="rgb")


def test_odd_sizes_and_gray_visible() -> None:
    model = models.create("tardal", **SMALL).eval()
    ir = torch.rand(1, 1, 19, 23)
    with torch.no_grad():
        for vi in (torch.rand(1, 3, 19, 23), torch.rand(1, 1, 19, 23)):
            out = model(ir, vi)
            assert out.fused.shape == (1, 1, 19, 23) and out.fused.abs().max() <= 1
            shown = model.fuse_color(ir, vi)
            assert shown.shape == vi.shape and shown.min() >= 0 and shown.max() <= 1


def test_batch_mode_normalises_each_image_like_batchnorm_in_training_mode() -> None:
    norm = ImageStatsNorm2d(3)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    reference = nn.BatchNorm2d(3).train()
    reference.load_state_dict(norm.state_dict())
    x = torch.randn(2, 3, 8, 9) * 3 + 1
    norm.eval()
    with torch.no_grad():
        one_by_one = torch.cat([reference(x[i : i + 1]) for i in range(2)])
        assert torch.allclose(norm(x), one_by_one, atol=1e-5)
        running = norm.running_mean.clone()
        norm(x)
    assert torch.equal(norm.running_mean, running)
    batch = models.create("tardal", **SMALL, batchnorm="batch").eval()
    running_model = models.create("tardal", **SMALL, batchnorm="running").eval()
    running_model.load_state_dict(batch.state_dict())
    ir, vi = torch.rand(2, 1, 16, 16), torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        alone = batch(ir[:1], vi[:1]).fused
        assert torch.allclose(batch(ir, vi).fused[:1], alone, atol=1e-6)
        assert not torch.allclose(running_model(ir[:1], vi[:1]).fused, alone, atol=1e-3)
    assert batch.whole_image and not running_model.whole_image


def test_official_colour_path_is_opencvs() -> None:
    rgb = levels((2, 3, 10, 12))
    bgr = [(im.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)[..., ::-1] for im in rgb]
    gray = opencv_gray(rgb)
    expected = np.stack([cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_BGR2GRAY) for im in bgr])
    assert torch.equal((gray[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(expected))

    model = models.create("tardal", **SMALL, color="official").eval()
    ir = levels((2, 1, 10, 12))
    with torch.no_grad():
        y = model(ir, rgb).fused.clamp(0, 1)
        shown = model.fuse_color(ir, rgb)
    y8 = (y[:, 0] * 255).to(torch.uint8).numpy()
    for i, im in enumerate(bgr):
        ycrcb = cv2.cvtColor(np.ascontiguousarray(im), cv2.COLOR_BGR2YCrCb)
        ycrcb[..., 0] = y8[i]
        want = cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2BGR)[..., ::-1]
        got = (shown[i].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
        assert np.array_equal(got, want)
    ycbcr = models.create("tardal", **SMALL).eval()
    ycbcr.load_state_dict(model.state_dict())
    with torch.no_grad():
        assert torch.equal(ycbcr.fuse_color(ir, rgb), recombine(ycbcr(ir, rgb).fused.clamp(0, 1), rgb))


def test_every_parameter_gets_a_gradient_from_the_content_loss() -> None:
    model = models.create("tardal", **SMALL).train()
    batch = scene_batch(b=2, h=24, w=24)
    TarDALLoss()(model(batch["ir"], batch["vi"]), batch).total.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_eval_is_deterministic_and_weights_round_trip(tmp_path: Path) -> None:
    cfg = {**SMALL, "batchnorm": "batch", "color": "official"}
    model = models.create("tardal", **cfg).eval()
    ir, vi = torch.rand(1, 1, 20, 23), levels((1, 3, 20, 23))
    with torch.no_grad():
        a = model(ir, vi).fused
        assert torch.equal(a, model(ir, vi).fused)
        loaded = load_model(save_weights(model, tmp_path / "t.safetensors", "tardal", cfg))
        assert loaded.batchnorm == "batch" and loaded.color == "official"
        assert torch.equal(loaded(ir, vi).fused, a)


def test_tiling_a_whole_image_model_warns() -> None:
    model = models.create("tardal", **SMALL, batchnorm="batch").eval()
    with pytest.warns(UserWarning, match="statistics of the whole image"):
        fuse_tensors(model, torch.rand(1, 40, 40), torch.rand(3, 40, 40), tile=16)


def test_yaml_config_builds_model_and_loss() -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    model = models.create("tardal", **cfg["model"])
    loss = TarDALLoss(**cfg["loss"])
    assert (model.batchnorm, model.color) == ("running", "ycbcr") and loss.pixel_weight == 20.0
    assert models.get("tardal").strategy == cfg["train"]["strategy"] == "fusion_only"


@pytest.mark.slow
def test_short_training_run_then_fuse_roadscene(shared_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = models.create("tardal", **SMALL)
    loss = TarDALLoss()
    history = train_steps(model, lambda out, batch: loss(out, batch).total, scene_batch(2, 32, 32), 25, 2e-3)
    assert sum(history[-2:]) / 2 < 0.7 * sum(history[:2]) / 2
    fuse_roadscene(shared_data, tmp_path, model.eval(), "tardal", SMALL)
