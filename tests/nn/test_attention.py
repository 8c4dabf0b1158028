"""``max_over`` and the attention blocks that pool with it: the values of ``amax``, the gradient through one
index, and finite gradients when compiled under bf16 autocast (where ``amax``'s gave NaN)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_bugs import REASON, has_strided_pointwise, strided_pointwise_backward_crashes

from taskfuse import models
from taskfuse.nn.attention import ChannelAttention, SpatialAttention, max_over


@pytest.mark.parametrize("dims", [1, -1, (2, 3), (1, 2, 3), (0, 2)])
@pytest.mark.parametrize("keepdim", [False, True])
def test_max_over_has_the_values_of_amax(dims: int | tuple[int, ...], keepdim: bool) -> None:
    x = torch.randn(2, 5, 6, 7).to(memory_format=torch.channels_last)
    assert torch.equal(max_over(x, dims, keepdim), x.amax(dims, keepdim))


def test_max_over_sends_the_gradient_to_one_maximum_per_slice() -> None:
    x = torch.zeros(3, 4, 5, 6, requires_grad=True)
    max_over(x, (2, 3)).sum().backward()
    assert x.grad is not None
    assert torch.equal(x.grad.flatten(2).sum(2), torch.ones(3, 4))
    assert torch.equal((x.grad != 0).flatten(2).sum(2), torch.ones(3, 4, dtype=torch.long))


@pytest.mark.slow
@pytest.mark.parametrize("block", [SpatialAttention(3), ChannelAttention(16)], ids=["spatial", "channel"])
def test_compiled_attention_has_finite_gradients_under_bf16_autocast(block: nn.Module) -> None:
    torch.manual_seed(0)
    a, b = nn.Conv2d(3, 16, 3, padding=1), nn.Conv2d(3, 16, 3, padding=1)

    def run(x: torch.Tensor) -> torch.Tensor:
        y = a(x) * b(x)
        return block(y) * y

    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch.compile(run)(x)
    out.float().square().mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.slow
def test_a_compiled_mafs_step_under_bf16_autocast_has_finite_gradients() -> None:
    torch.manual_seed(0)
    net = models.create("mafs", **models.get("mafs").small).train()
    if has_strided_pointwise(net) and strided_pointwise_backward_crashes():
        pytest.skip(REASON)
    ir, vi = torch.rand(2, 1, 64, 64), torch.rand(2, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = torch.compile(net)(ir, vi)
    loss = out.fused.float().mean() + sum(v.float().square().mean() for v in out.aux.values())
    loss.backward()
    bad = [n for n, p in net.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients in {len(bad)} parameters, e.g. {bad[:3]}"
