"""DSIFuse: registration, shapes, gradients from the full objective, determinism, checkpoints, calibration and
FiLM blocks, the feedback of the refined features into the encoder, a short training run and ``taskfuse fuse``
on real pairs (narrow decoder, ResNet-18)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from methods_helpers import fuse_roadscene, scene_batch, train_steps

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.models.dsifuse.loss import DSIFuseLoss
from taskfuse.models.dsifuse.network import CrossModalCalibration
from taskfuse.models.weights import load_model, save_weights
from taskfuse.nn.film import FiLM

SMALL = {"depth": 18, "num_classes": 9, "decoder_channels": [8, 8, 16, 16, 16], "cfc_reduction": 8}


@pytest.fixture(scope="module")
def small() -> models.FusionModel:
    torch.manual_seed(0)
    return models.create("dsifuse", **SMALL)


def test_registered_as_rgb_to_rgb() -> None:
    cls = models.get("dsifuse").network
    assert cls.stride == 32 and cls.input_mode == "rgb" and cls.output_mode == "rgb"


def test_odd_sizes_give_rgb_and_priors_in_proportion(small: models.FusionModel) -> None:
    small.eval()
    with torch.no_grad():
        out = small(torch.rand(1, 1, 45, 70), torch.rand(1, 3, 45, 70))
        gray = small(torch.rand(1, 1, 32, 32), torch.rand(1, 1, 32, 32))
    assert out.fused.shape == (1, 3, 45, 70) and out.fused.min() >= 0 and out.fused.max() <= 1
    assert out.aux["prior_vi"].shape == (1, 9, 1, 2) and out.aux["prior_global"].shape == (1, 9, 6, 9)
    assert gray.fused.shape == (1, 3, 32, 32)


def test_every_parameter_gets_a_gradient_from_the_full_objective(small: models.FusionModel) -> None:
    small.train()
    small.zero_grad()
    batch = scene_batch(b=2, h=64, w=64)
    DSIFuseLoss(object_classes=[1, 2, 3])(small(batch["ir"], batch["vi"]), batch).total.backward()
    dead = [n for n, p in small.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead


def test_eval_is_deterministic_and_weights_round_trip(small: models.FusionModel, tmp_path: Path) -> None:
    small.eval()
    ir, vi = torch.rand(1, 1, 40, 33), torch.rand(1, 3, 40, 33)
    with torch.no_grad():
        a, b = small(ir, vi), small(ir, vi)
        assert torch.equal(a.fused, b.fused) and torch.equal(a.aux["prior_ir"], b.aux["prior_ir"])
        loaded = load_model(save_weights(small, tmp_path / "dsi.safetensors", "dsifuse", SMALL))
        assert torch.equal(loaded(ir, vi).fused, a.fused)


def test_calibration_mixes_the_other_modality_and_film_starts_near_identity() -> None:
    cfc = CrossModalCalibration(8, reduction=2)
    v, r = torch.randn(2, 8, 5, 5), torch.randn(2, 8, 5, 5)
    v_out, _ = cfc(v, r)
    v_other, _ = cfc(v, 2 * r)
    assert not torch.allclose(v_out, v) and not torch.allclose(v_other, v_out)
    film = FiLM(4, 3)
    torch.nn.init.zeros_(film.affine.weight)
    torch.nn.init.zeros_(film.affine.bias)
    x = torch.randn(1, 4, 6, 6)
    assert torch.equal(film(x, torch.randn(1, 3, 3, 3)), x)


@pytest.mark.parametrize("feedback", ["encoder", "decoder"])
def test_refined_features_reach_the_encoder_blocks_that_follow(feedback: str) -> None:
    torch.manual_seed(0)
    model = models.create("dsifuse", **SMALL, feedback=feedback).eval()
    seen: dict[str, list] = {"block4": [], "cfc3": [], "cfb": []}
    hooks = [
        model.encoder_vi.layer3.register_forward_pre_hook(lambda m, args: seen["block4"].append(args[0])),
        model.cfc[2].register_forward_hook(lambda m, args, out: seen["cfc3"].append(out[0])),
        model.cfb.register_forward_hook(lambda m, args, out: seen["cfb"].append(out[0])),
    ]
    with torch.no_grad():
        model(torch.rand(1, 1, 64, 64), torch.rand(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    first_f3, m1 = seen["cfc3"][0], seen["cfb"][0]
    assert torch.equal(seen["block4"][0], first_f3)
    if feedback == "encoder":
        # the second pass of block 4 reads F~3 = F3 + M1 (Sec. 3.1: M^1 residually added to F^3)
        assert len(seen["block4"]) == 2 and torch.allclose(seen["block4"][1], first_f3 + m1)
    else:
        assert len(seen["block4"]) == 1
    with pytest.raises(TaskfuseError, match="feedback"):
        models.create("dsifuse", **SMALL, feedback="both")


@pytest.mark.slow
def test_short_training_lowers_the_loss_and_fuse_cli_runs(shared_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = models.create("dsifuse", **SMALL)
    batch = scene_batch(b=2, h=64, w=64)
    loss = DSIFuseLoss(object_classes=[1, 2, 3])
    history = train_steps(model, lambda out, b: loss(out, b).total, batch, steps=4, lr=1e-3)
    assert history[-1] < history[0]
    model.eval()
    fuse_roadscene(shared_data, tmp_path, model, "dsifuse", SMALL)
