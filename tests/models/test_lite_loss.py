import pytest
import torch

from taskfuse.errors import TaskfuseError
from taskfuse.losses.fusion_terms import (
    difference_correlation_loss,
    entropy_loss,
    gradient_selection_loss,
    ssim_loss,
    vif_loss,
)
from taskfuse.metrics import functional as M
from taskfuse.models.base import FusionOutput
from taskfuse.models.lite.loss import LiteLoss


def test_gradient_selection_is_zero_for_the_stronger_source_and_sign_sensitive() -> None:
    ir = torch.rand(1, 1, 32, 32)
    flat = torch.zeros_like(ir)
    assert float(gradient_selection_loss(ir, ir, flat)) < 1e-7
    assert float(gradient_selection_loss(1 - ir, ir, flat)) > 0.1


def test_ssim_loss_is_zero_only_for_identical_sources() -> None:
    x = torch.rand(1, 1, 32, 32)
    assert abs(float(ssim_loss(x, x, x))) < 1e-6
    assert float(ssim_loss(x, x, torch.rand_like(x))) > 0.1


def test_difference_correlation_loss_is_one_minus_half_the_scd_metric() -> None:
    ir, vi = torch.rand(2, 1, 48, 48, dtype=torch.float64), torch.rand(2, 1, 48, 48, dtype=torch.float64)
    assert float(difference_correlation_loss(ir + vi - 0.3, ir, vi)) < 1e-12
    fused = torch.rand_like(ir)
    levels = [(255 * x).round() / 255 for x in (fused, ir, vi)]
    expected = 1 - float(M.scd(*levels).mean()) / 2
    assert abs(float(difference_correlation_loss(*levels)) - expected) < 1e-9


def test_vif_loss_is_zero_for_a_copy_and_rises_with_blur_and_noise() -> None:
    x = torch.rand(1, 1, 64, 64)
    ir = torch.nn.functional.avg_pool2d(x, 5, 1, 2)
    copy_of_both = vif_loss(ir, ir, ir)
    blurred = vif_loss(torch.nn.functional.avg_pool2d(ir, 5, 1, 2), ir, ir)
    noisy = vif_loss((ir + 0.2 * torch.rand_like(ir)).clamp(0, 1), ir, ir)
    assert abs(float(copy_of_both)) < 1e-5
    assert float(blurred) > 0.1 and float(noisy) > 0.05


def test_vif_loss_matches_the_unsaturated_metric_and_has_finite_gradients() -> None:
    ir, vi = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
    flat = torch.full((1, 1, 64, 64), 0.5)
    fused = ((ir + vi) / 2).requires_grad_()
    loss = vif_loss(fused, ir, vi)
    levels = [255 * t[:, 0].double() for t in (ir, vi, fused.detach())]
    assert abs(loss.item() - (1 - float(M.vifp_levels(*levels).mean()))) < 1e-6
    loss.backward()
    assert fused.grad is not None and torch.isfinite(fused.grad).all() and fused.grad.abs().sum() > 0
    flat_fused = flat.clone().requires_grad_()
    vif_loss(flat_fused, flat, vi).backward()
    assert flat_fused.grad is not None and torch.isfinite(flat_fused.grad).all()


def test_entropy_loss_tracks_the_histogram_spread() -> None:
    ramp = torch.linspace(0, 1, 64 * 64).view(1, 1, 64, 64)
    assert abs(float(entropy_loss(ramp))) < 2e-3
    assert abs(float(entropy_loss(torch.full_like(ramp, 32 / 63))) - 1) < 1e-6
    narrow = 0.4 + 0.2 * ramp
    assert float(entropy_loss(ramp)) < float(entropy_loss(narrow)) < 1
    spread = narrow.clone().requires_grad_()
    entropy_loss(spread).backward()
    assert spread.grad is not None and spread.grad.abs().sum() > 0


def test_loss_parts_weights_and_gain() -> None:
    ir, vi = torch.rand(2, 1, 32, 32), torch.rand(2, 3, 32, 32)
    fused = torch.rand(2, 1, 32, 32, requires_grad=True)
    batch = {"ir": ir, "vi": vi}
    terms = LiteLoss(ssim_weight=1.0)(FusionOutput(fused), batch)
    assert set(terms.parts) == {"int", "grad", "ssim"}
    terms.total.backward()
    assert fused.grad is not None and fused.grad.abs().sum() > 0
    plain = LiteLoss(grad_gain=1.0)(FusionOutput(ir), {"ir": ir, "vi": torch.zeros_like(vi)})
    boosted = LiteLoss(grad_gain=1.5)(FusionOutput(ir), {"ir": ir, "vi": torch.zeros_like(vi)})
    assert float(plain.parts["grad"]) < 1e-6 < float(boosted.parts["grad"])
    shipped = LiteLoss(ssim_weight=1.0, scd_weight=1.0, vif_weight=1.0, en_weight=3.0)
    big = {"ir": torch.rand(2, 1, 48, 48), "vi": torch.rand(2, 3, 48, 48)}
    terms = shipped(FusionOutput(torch.rand(2, 1, 48, 48)), big)
    assert set(terms.parts) == {"int", "grad", "ssim", "scd", "vif", "en"}
    assert abs(float(terms.total) - sum(float(v) for v in terms.parts.values())) < 1e-5


@pytest.mark.parametrize("kw", [{"target": "min"}, {"grad": "laplace"}])
def test_bad_options_name_the_key(kw: dict) -> None:
    with pytest.raises(TaskfuseError, match="loss."):
        LiteLoss(**kw)


def test_vif_loss_trains_through_the_filter_bands_a_metric_made_in_inference_mode() -> None:
    """The Gaussian bands are made once per shape and kept: one first made while a metric ran under
    ``torch.inference_mode`` (validation) must still serve a loss that back-propagates."""
    M._gaussian_band.cache_clear()
    ir, vi = torch.rand(1, 1, 72, 72), torch.rand(1, 1, 72, 72)
    with torch.inference_mode():
        M.vif(ir, ir, vi)
    fused = ((ir + vi) / 2).requires_grad_()
    vif_loss(fused, ir, vi).backward()
    assert fused.grad is not None and torch.isfinite(fused.grad).all() and fused.grad.abs().sum() > 0
