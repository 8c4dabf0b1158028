"""Replicate padding built from edge slices: the values of ``F.pad(mode="replicate")``, and a training step that
``torch.compile`` can differentiate for the networks that use it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_bugs import REASON, has_strided_pointwise, strided_pointwise_backward_crashes

from taskfuse import models
from taskfuse.nn.conv import ConvBNAct, ReplicateConv2d
from taskfuse.nn.resample import pad_to_multiple, replicate_pad


@pytest.mark.parametrize("pad", [(0, 0, 0, 0), (1, 1, 1, 1), (0, 3, 0, 2), (2, 0, 5, 1)])
def test_replicate_pad_gives_the_values_of_f_pad(pad: tuple[int, int, int, int]) -> None:
    x = torch.rand(2, 3, 5, 7)
    assert torch.equal(replicate_pad(x, pad), F.pad(x, pad, mode="replicate"))
    assert torch.equal(replicate_pad(x[0, 0], pad), F.pad(x[:1, :1], pad, mode="replicate")[0, 0])
    assert torch.equal(torch.compile(replicate_pad)(x, pad), F.pad(x, pad, mode="replicate"))
    tiny = torch.rand(1, 1, 2, 9)
    assert torch.equal(pad_to_multiple(tiny, 8), F.pad(tiny, (0, 7, 0, 6), mode="replicate"))


def test_eager_gradients_are_f_pads_bit_for_bit() -> None:
    """What lets ``taskfuse train lite`` reproduce the shipped weights exactly (MODEL_CARD.md, Training)."""
    torch.manual_seed(0)
    ours = ConvBNAct(3, 4, 3, bn=False, act=None, padding_mode="replicate")[0]
    plain = torch.nn.Conv2d(3, 4, 3, 1, 1, padding_mode="replicate")
    plain.load_state_dict(ours.state_dict())
    w = torch.rand(2, 4, 11, 13)
    grads = []
    for conv in (ours, plain):
        x = torch.rand(2, 3, 11, 13, generator=torch.Generator().manual_seed(1), requires_grad=True)
        (conv(x) * w).sum().backward()
        grads.append(x.grad)
    assert torch.equal(*grads)


def test_replicate_conv_is_nn_conv2d_with_the_same_parameters_and_output() -> None:
    torch.manual_seed(0)
    ours = ConvBNAct(3, 4, 3, stride=2, bn=False, act=None, padding_mode="replicate")[0]
    plain = torch.nn.Conv2d(3, 4, 3, 2, 1, padding_mode="replicate")
    assert isinstance(ours, ReplicateConv2d) and ours.state_dict().keys() == plain.state_dict().keys()
    plain.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, 11, 13)
    assert torch.allclose(ours(x), plain(x), atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lite", "fgfusion"])
def test_a_compiled_training_step_matches_eager(method: str) -> None:
    torch.manual_seed(0)
    net = models.create(method, **models.get(method).small).train()
    if has_strided_pointwise(net) and strided_pointwise_backward_crashes():
        pytest.skip(REASON)
    ir, vi = torch.rand(2, 1, 64, 64), torch.rand(2, 3, 64, 64)
    grads = []
    for run in (net, torch.compile(net)):
        net.zero_grad()
        run(ir, vi).fused.square().mean().backward()
        grads.append([torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in net.parameters()])
    assert any(g.abs().sum() > 0 for g in grads[0])
    assert all(torch.allclose(a, b, rtol=1e-3, atol=1e-5) for a, b in zip(*grads, strict=True))
