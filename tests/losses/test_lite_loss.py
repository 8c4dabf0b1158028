import pytest
import torch

from taskfuse.errors import TaskfuseError
from taskfuse.losses.fusion_terms import gradient_selection_loss, ssim_loss
from taskfuse.losses.lite import LiteLoss
from taskfuse.models.base import FusionOutput


def test_gradient_selection_is_zero_for_the_stronger_source_and_sign_sensitive() -> None:
    ir = torch.rand(1, 1, 32, 32)
    flat = torch.zeros_like(ir)
    assert float(gradient_selection_loss(ir, ir, flat)) < 1e-7
    assert float(gradient_selection_loss(1 - ir, ir, flat)) > 0.1


def test_ssim_loss_is_zero_only_for_identical_sources() -> None:
    x = torch.rand(1, 1, 32, 32)
    assert abs(float(ssim_loss(x, x, x))) < 1e-6
    assert float(ssim_loss(x, x, torch.rand_like(x))) > 0.1


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


@pytest.mark.parametrize("kw", [{"target": "min"}, {"grad": "laplace"}])
def test_bad_options_name_the_key(kw: dict) -> None:
    with pytest.raises(TaskfuseError, match="loss."):
        LiteLoss(**kw)
