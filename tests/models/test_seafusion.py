"""SeAFusion: registration, shapes, the learned Sobel kernels, the authors' post-processing, gradients through the
segmenter, determinism, checkpoints, a short training run."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import yaml
from methods_helpers import fuse_roadscene, scene_batch, train_steps

import taskfuse
from taskfuse import models
from taskfuse.data.color import recombine
from taskfuse.errors import TaskfuseError
from taskfuse.inference import fuse_tensors
from taskfuse.models.seafusion.loss import SeAFusionLoss
from taskfuse.models.seafusion.network import stretch_to_levels
from taskfuse.models.weights import load_model, save_weights
from taskfuse.nn.sobel import LearnedSobel, sobel_abs
from taskfuse.tasks import segmentation

CONFIG = Path(taskfuse.__file__).parent / "configs" / "seafusion.yaml"


def test_create_and_fuse_odd_sizes() -> None:
    model = models.create("seafusion").eval()
    ir = torch.rand(1, 1, 45, 67)
    with torch.no_grad():
        for vi in (torch.rand(1, 3, 45, 67), torch.rand(1, 1, 45, 67)):
            out = model(ir, vi)
            assert out.fused.shape == (1, 1, 45, 67)
            assert out.fused.min() >= 0 and out.fused.max() <= 1
    assert 0.16e6 < sum(p.numel() for p in model.parameters()) < 0.17e6
    with pytest.raises(ValueError, match="widths"):
        models.create("seafusion", widths=[16, 32])


def test_gradient_kernels_start_as_sobel_and_are_trained() -> None:
    sobel = LearnedSobel(3)
    x = torch.rand(2, 3, 9, 11)
    assert torch.allclose(sobel(x), sobel_abs(x), atol=1e-6)
    assert sum(p.numel() for p in sobel.parameters()) == 2 * 3 * 9
    model = models.create("seafusion")
    kernels = [n for n, _ in model.named_parameters() if ".sobel." in n]
    assert len(kernels) == 8 and sum(model.get_parameter(n).numel() for n in kernels) == 1728


def test_official_postprocess_stretches_each_image_to_whole_levels() -> None:
    x = torch.tensor([0.2, 0.4, 0.6]).view(1, 1, 1, 3)
    assert torch.equal(
        stretch_to_levels(torch.cat((x, x / 2))),
        torch.tensor([0.0, 127, 255]).view(1, 1, 1, 3).expand(2, 1, 1, 3) / 255,
    )
    assert torch.equal(
        stretch_to_levels(torch.full((1, 3, 2, 2), 0.3)), torch.floor(torch.full((1, 3, 2, 2), 0.3) * 255) / 255
    )
    plain = models.create("seafusion", widths=[4, 8, 8]).eval()
    official = models.create("seafusion", widths=[4, 8, 8], postprocess="official").eval()
    official.load_state_dict(plain.state_dict())
    ir, vi = torch.rand(2, 1, 12, 10), torch.rand(2, 3, 12, 10)
    with torch.no_grad():
        assert torch.equal(plain(ir, vi).fused, official(ir, vi).fused)
        shown = official.fuse_color(ir, vi)
        assert torch.allclose(plain.fuse_color(ir, vi), recombine(plain(ir, vi).fused, vi))
    for img in shown:
        assert img.min() == 0 and img.max() == 1
    assert torch.equal((shown * 255).round() / 255, shown)
    ir1, vi1 = torch.rand(1, 40, 40), torch.rand(3, 40, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiled = fuse_tensors(official, ir1, vi1, tile=16)
    whole = fuse_tensors(official, ir1, vi1)
    assert tiled.min() == 0 and tiled.max() == 1 and (tiled - whole).abs().max() <= 1 / 255 + 1e-6
    assert (tiled == whole).float().mean() > 0.99
    with pytest.raises(TaskfuseError, match="postprocess"):
        models.create("seafusion", postprocess="stretch")


def test_every_parameter_gets_a_gradient_through_the_segmenter() -> None:
    model = models.create("seafusion").train()
    seg = segmentation.create("bisenet", num_classes=9).eval().requires_grad_(False)
    batch = scene_batch(b=2, h=32, w=32)
    out = model(batch["ir"], batch["vi"])
    seg_out = seg(recombine(out.fused, batch["vi"]))
    terms = SeAFusionLoss("agf", seg_weight=1.0)(out, batch, seg_out)
    assert "seg" in terms.parts
    terms.total.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_eval_is_deterministic_and_weights_round_trip(tmp_path: Path) -> None:
    model = models.create("seafusion", widths=[8, 16, 24]).eval()
    ir, vi = torch.rand(1, 1, 20, 23), torch.rand(1, 3, 20, 23)
    with torch.no_grad():
        a, b = model(ir, vi).fused, model(ir, vi).fused
        assert torch.equal(a, b)
        path = save_weights(model, tmp_path / "sea.safetensors", "seafusion", {"widths": [8, 16, 24]})
        loaded = load_model(path)
        assert torch.equal(loaded(ir, vi).fused, a)


def test_yaml_config_builds_model_and_loss() -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    model = models.create("seafusion", **cfg["model"])
    loss = SeAFusionLoss(**cfg["loss"])
    assert loss.variant == "agf" and model.stride == 1
    assert cfg["train"]["seg_weight_per_round"] == [0, 1, 2, 3]


@pytest.mark.slow
def test_short_training_run_then_fuse_roadscene(shared_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = {"widths": [8, 16, 24]}
    model = models.create("seafusion", **cfg)
    loss = SeAFusionLoss("agf")
    history = train_steps(model, lambda out, batch: loss(out, batch).total, scene_batch(2, 32, 32), 25, 2e-3)
    assert sum(history[-2:]) / 2 < 0.7 * sum(history[:2]) / 2
    fuse_roadscene(shared_data, tmp_path, model.eval(), "seafusion", cfg)
