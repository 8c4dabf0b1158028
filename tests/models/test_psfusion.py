"""PSFusion: registration, shapes, gradients from the full objective, determinism, checkpoints, a short training run.

Apart from the default-size checks the tests use a reduced configuration (ResNet-18, narrow widths): the same
modules in the same arrangement, at a cost the CPU test budget allows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from methods_helpers import fuse_roadscene, scene_batch, train_steps

import taskfuse
from taskfuse import models
from taskfuse.models.psfusion.loss import PSFusionLoss
from taskfuse.models.weights import load_model, save_weights

CONFIG = Path(taskfuse.__file__).parent / "configs" / "psfusion.yaml"
SMALL = {"num_classes": 9, "backbone_depth": 18, "width": 32, "rec_width": 16}
AUX = {"semantic": 9, "boundary": 2, "binary": 2, "ir_rec": 1, "vi_rec": 1}


def test_default_model_has_the_papers_size() -> None:
    model = models.create("psfusion")
    assert model.stride == 32 and model.input_mode == "rgb" and model.output_mode == "y"
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(45.9e6, rel=0.01)


def test_odd_sizes_give_every_output_at_input_resolution() -> None:
    model = models.create("psfusion", **SMALL).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, 45, 67), torch.rand(1, 3, 45, 67))
    assert out.fused.shape == (1, 1, 45, 67)
    assert {k: v.shape for k, v in out.aux.items()} == {k: (1, c, 45, 67) for k, c in AUX.items()}
    for t in (out.fused, out.aux["ir_rec"], out.aux["vi_rec"]):
        assert t.min() >= 0 and t.max() <= 1


def test_every_parameter_gets_a_gradient_from_the_full_objective() -> None:
    model = models.create("psfusion", **SMALL).train()
    batch = scene_batch(b=2, h=64, w=32)  # two tokens at stride 32: a single one gets no attention gradient
    terms = PSFusionLoss()(model(batch["ir"], batch["vi"]), batch)
    terms.total.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_gray_visible_reduced_attention_eval_determinism_and_round_trip(tmp_path: Path) -> None:
    cfg = {**SMALL, "attn_reduction": 2}
    model = models.create("psfusion", **cfg).eval()
    ir, vi = torch.rand(1, 1, 33, 40), torch.rand(1, 1, 33, 40)
    with torch.no_grad():
        a, b = model(ir, vi), model(ir, vi)
        assert a.fused.shape == (1, 1, 33, 40) and torch.equal(a.fused, b.fused)
        assert all(torch.equal(a.aux[k], b.aux[k]) for k in AUX)
        loaded = load_model(save_weights(model, tmp_path / "psf.safetensors", "psfusion", cfg))
        assert torch.equal(loaded(ir, vi).fused, a.fused)


def test_yaml_config_builds_model_and_loss() -> None:
    cfg = yaml.safe_load(CONFIG.read_text())
    assert cfg["model"] == {
        "num_classes": 9,
        "backbone_depth": 34,
        "width": 64,
        "rec_width": 32,
        "attn_reduction": 1,
        "backbone_weights": None,
    }
    loss = PSFusionLoss(**cfg["loss"])
    assert (loss.lambda_f, loss.lambda_sf, loss.lambda_se, loss.alpha) == (10, 5, 10, 0.1)
    assert cfg["train"]["crop"] == 256 and cfg["train"]["optimizer"] == "sgd"


@pytest.mark.slow
def test_short_training_run_then_fuse_roadscene(shared_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = {**SMALL, "width": 16, "rec_width": 8}
    model = models.create("psfusion", **cfg)
    loss = PSFusionLoss()
    history = train_steps(model, lambda out, batch: loss(out, batch).total, scene_batch(2, 32, 32), 8, 2e-3)
    assert sum(history[-2:]) / 2 < 0.7 * sum(history[:2]) / 2
    fuse_roadscene(shared_data, tmp_path, model.eval(), "psfusion", cfg)
