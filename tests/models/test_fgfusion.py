"""FGFusion: registration, shapes, gradients from the full objective, determinism, checkpoints, the invertible
coupling, a short training run and ``taskfuse fuse`` on real pairs (narrow widths except where noted)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from methods_helpers import fuse_roadscene, scene_batch, train_steps

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.models.fgfusion.loss import FGFusionLoss
from taskfuse.models.weights import load_model, save_weights
from taskfuse.nn.invertible import CouplingBlock, ResidualBlock

SMALL = {"shallow_channels": 8, "deep_channels": 16, "coupling_blocks": 2, "dense_layers": 2, "dense_growth": 8}


def test_registered_with_its_layout() -> None:
    model = models.create("fgfusion")
    assert model.stride == 16 and model.input_mode == "y" and model.output_mode == "y"
    assert len(model.drm.blocks) == 3 and model.sem.cross_s.norm_kv is not None
    with pytest.raises(TaskfuseError, match="reduction"):
        models.create("fgfusion", reduction=3)


def test_odd_sizes_and_gray_visible_give_outputs_at_input_resolution() -> None:
    model = models.create("fgfusion", **SMALL).eval()
    with torch.no_grad():
        rgb = model(torch.rand(1, 1, 29, 43), torch.rand(1, 3, 29, 43))
        gray = model(torch.rand(2, 1, 17, 18), torch.rand(2, 1, 17, 18))
    assert rgb.fused.shape == (1, 1, 29, 43) and rgb.aux["foreground"].shape == (1, 1, 29, 43)
    assert gray.fused.shape == (2, 1, 17, 18) and gray.fused.min() >= 0 and gray.fused.max() <= 1


def test_every_parameter_gets_a_gradient_from_the_full_objective() -> None:
    model = models.create("fgfusion", **SMALL).train()
    batch = scene_batch(b=2, h=32, w=32)
    FGFusionLoss(object_classes=[1, 2, 3])(model(batch["ir"], batch["vi"]), batch).total.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_eval_is_deterministic_and_weights_round_trip(tmp_path: Path) -> None:
    model = models.create("fgfusion", **SMALL).eval()
    ir, vi = torch.rand(1, 1, 21, 30), torch.rand(1, 3, 21, 30)
    with torch.no_grad():
        a, b = model(ir, vi), model(ir, vi)
        assert torch.equal(a.fused, b.fused) and torch.equal(a.aux["foreground"], b.aux["foreground"])
        loaded = load_model(save_weights(model, tmp_path / "fg.safetensors", "fgfusion", SMALL))
        assert torch.equal(loaded(ir, vi).fused, a.fused)


def test_cross_modal_coupling_is_invertible() -> None:
    block = CouplingBlock(4, 4, ResidualBlock, scale="sigmoid")
    vi, ir = torch.randn(1, 4, 6, 5), torch.randn(1, 4, 6, 5)
    vi2, ir2 = block(vi, ir)
    assert not torch.allclose(ir2, ir)
    back = block.inverse(vi2, ir2)
    assert torch.allclose(back[0], vi, atol=1e-5) and torch.allclose(back[1], ir, atol=1e-4)


@pytest.mark.slow
def test_short_training_lowers_the_loss_and_fuse_cli_runs(shared_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = models.create("fgfusion", **SMALL)
    batch = scene_batch(b=2, h=32, w=48)
    loss = FGFusionLoss(object_classes=[1, 2, 3])
    history = train_steps(model, lambda out, b: loss(out, b).total, batch, steps=5, lr=2e-3)
    assert history[-1] < history[0]
    model.eval()
    fuse_roadscene(shared_data, tmp_path, model, "fgfusion", SMALL)
