"""MAFS: registration and size, shapes, gradients from both stages' objectives, the masked pretext, determinism,
checkpoints, a short training run and ``taskfuse fuse`` on real pairs.

Apart from the size check the tests use ResNet-18 and narrow widths: the same modules in the same arrangement
at a cost the CPU test budget allows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from methods_helpers import fuse_roadscene, scene_batch, train_steps

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.models.mafs.loss import MAFSLoss, MAFSPretextLoss
from taskfuse.models.weights import load_model, save_weights
from taskfuse.nn.aspp import ASPP
from taskfuse.nn.invertible import CouplingBlock, HalfInstanceBlock

SMALL = {"depth": 18, "num_classes": 9, "channels": 16, "inn_blocks": 2}
AUX = {"seg": 9, "seg_aux": 9, "binary": 2, "boundary": 2}


@pytest.fixture(scope="module")
def small() -> models.FusionModel:
    torch.manual_seed(0)
    return models.create("mafs", **SMALL)


def test_registered_with_the_papers_parameter_count() -> None:
    with torch.device("meta"):
        model = models.create("mafs")
    assert model.stride == 32 and model.input_mode == "rgb" and model.output_mode == "y"
    inference = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("rec_"))
    assert inference == pytest.approx(128.69e6, rel=0.02)  # Table XIII, ResNet-152


def test_odd_sizes_give_every_output_at_input_resolution(small: models.FusionModel) -> None:
    small.eval()
    with torch.no_grad():
        out = small(torch.rand(1, 1, 37, 50), torch.rand(1, 3, 37, 50))
    assert out.fused.shape == (1, 1, 37, 50) and out.fused.min() >= 0 and out.fused.max() <= 1
    assert {k: tuple(v.shape) for k, v in out.aux.items()} == {k: (1, c, 37, 50) for k, c in AUX.items()}


def test_both_stages_reach_every_parameter(small: models.FusionModel) -> None:
    small.train()
    batch = scene_batch(b=2, h=32, w=64)
    small.zero_grad()
    MAFSLoss()(small(batch["ir"], batch["vi"]), {**batch, "teacher_logits": torch.randn(2, 9, 16, 32)}).total.backward()
    stage2 = {n for n, p in small.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    small.zero_grad()
    MAFSPretextLoss()(small.forward_pretext(batch["ir"], batch["vi"], mask_ratio=0.5), batch).total.backward()
    stage1 = {n for n, p in small.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    names = {n for n, _ in small.named_parameters()}
    assert names - stage2 == {n for n in names if n.startswith("rec_")}
    assert {n for n in names if n.startswith(("rec_", "backbone_", "sfe_", "dem.", "cam."))} <= stage1
    assert names == stage1 | stage2


def test_pretext_masks_whole_patches_at_the_asked_ratio(small: models.FusionModel) -> None:
    mask = small.random_mask(3, 128, 96, 0.25, torch.device("cpu"))
    patches = mask[:, 0, ::32, ::32]
    assert mask.shape == (3, 1, 128, 96) and torch.equal(
        mask, patches.repeat_interleave(32, 1).repeat_interleave(32, 2)[:, None]
    )
    assert patches.sum((1, 2)).tolist() == [3.0, 3.0, 3.0]  # round(0.25 * 12 patches)
    drawn = small.random_mask(64, 64, 64, None, torch.device("cpu"))[:, 0, ::32, ::32].sum((1, 2))
    assert set(drawn.tolist()) <= {1.0, 2.0, 3.0}  # ratio drawn from [0.25, 0.75] of 4 patches
    small.eval()
    with torch.no_grad():
        out = small.forward_pretext(torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64))
    assert (
        out.aux["recon_ir"].shape == (1, 1, 64, 64) and 0 <= out.aux["recon_vi"].min() <= out.aux["recon_vi"].max() <= 1
    )
    with pytest.raises(TaskfuseError, match="multiple of 32"):
        small.forward_pretext(torch.rand(1, 1, 40, 64), torch.rand(1, 3, 40, 64))


def test_eval_is_deterministic_and_weights_round_trip(small: models.FusionModel, tmp_path: Path) -> None:
    small.eval()
    ir, vi = torch.rand(1, 1, 33, 40), torch.rand(1, 1, 33, 40)
    with torch.no_grad():
        a, b = small(ir, vi), small(ir, vi)
        assert torch.equal(a.fused, b.fused) and all(torch.equal(a.aux[k], b.aux[k]) for k in AUX)
        loaded = load_model(save_weights(small, tmp_path / "mafs.safetensors", "mafs", SMALL))
        assert torch.equal(loaded(ir, vi).fused, a.fused)


def test_coupling_unit_inverts_and_aspp_keeps_the_size() -> None:
    block = CouplingBlock(3, 5, HalfInstanceBlock, scale="exp")
    a, b = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 8, 8)
    ra, rb = block.inverse(*block(a, b))
    assert torch.allclose(ra, a, atol=1e-5) and torch.allclose(rb, b, atol=1e-5)
    aspp = ASPP(8, 8, rates=(1, 2, 3, 4), image_pool=False, residual=True).eval()
    assert aspp(torch.randn(1, 8, 9, 7)).shape == (1, 8, 9, 7)


@pytest.mark.slow
def test_short_training_lowers_the_loss_and_fuse_cli_runs(shared_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = models.create("mafs", **SMALL)
    batch = scene_batch(b=2, h=32, w=64)
    loss = MAFSLoss()
    history = train_steps(model, lambda out, b: loss(out, b).total, batch, steps=4, lr=1e-3)
    assert history[-1] < history[0]
    model.eval()
    fuse_roadscene(shared_data, tmp_path, model, "mafs", SMALL)
