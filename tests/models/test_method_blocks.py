"""Dense blocks, GRDB, cross-attention and semantic injection, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from taskfuse.nn.cross_attention import CrossAttention, attend
from taskfuse.nn.dense import GRDB, DenseBlock
from taskfuse.nn.injection import SemanticInjection


def test_dense_block_concatenates_and_optionally_squeezes() -> None:
    x = torch.rand(2, 4, 9, 7)
    block = DenseBlock(4, growth=3, layers=2)
    y = block(x)
    assert block.out_channels == 10 and y.shape == (2, 10, 9, 7)
    assert torch.equal(y[:, :4], x)
    squeezed = DenseBlock(4, growth=3, layers=3, bn=True, act="relu", out_channels=5)
    assert squeezed(x).shape == (2, 5, 9, 7) and squeezed.out_channels == 5


def test_grdb_gradient_branch_is_the_sobel_magnitude() -> None:
    grdb = GRDB(1, 1)
    with torch.no_grad():
        nn.init.zeros_(grdb.squeeze.weight)
        nn.init.zeros_(grdb.squeeze.bias)
        grdb.grad.weight.fill_(1.0)
        nn.init.zeros_(grdb.grad.bias)
        x = torch.zeros(1, 1, 3, 3)
        x[0, 0, 1, 1] = 1.0
        # |Gx| + |Gy| of a centred unit impulse, zero padding
        assert torch.equal(grdb(x)[0, 0], torch.tensor([[2.0, 2, 2], [2, 0, 2], [2, 2, 2]]))
    assert GRDB(16, 32)(torch.rand(1, 16, 5, 6)).shape == (1, 32, 5, 6)


def test_attend_by_hand() -> None:
    q = torch.ones(1, 2, 1, 1)
    k = torch.tensor([[0.0, math.log(3.0)], [math.log(3.0), 0.0]]).view(1, 2, 1, 2)
    v = torch.tensor([[10.0, 20.0], [10.0, 20.0]]).view(1, 2, 1, 2)
    # one head over both channels: logits 0 + ln 3 and ln 3 + 0 are equal -> plain average
    assert attend(q, k, v, heads=1, scale=1.0).flatten().tolist() == pytest.approx([15.0, 15.0])
    # two heads: weights (1/4, 3/4) and (3/4, 1/4)
    assert attend(q, k, v, heads=2, scale=1.0).flatten().tolist() == pytest.approx([17.5, 12.5])


def test_attention_runs_without_the_cudnn_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    from taskfuse.nn import cross_attention
    from taskfuse.tasks.segmentation.segformer import EfficientSelfAttention

    seen: list[bool] = []
    real = cross_attention.F.scaled_dot_product_attention

    def spy(*args: object, **kwargs: object) -> torch.Tensor:
        seen.append(torch.backends.cuda.cudnn_sdp_enabled())
        return real(*args, **kwargs)

    before = torch.backends.cuda.cudnn_sdp_enabled()
    monkeypatch.setattr(cross_attention.F, "scaled_dot_product_attention", spy)
    CrossAttention(3, 4, 8)(torch.rand(1, 3, 4, 4), torch.rand(1, 4, 4, 4))
    EfficientSelfAttention(8, heads=2, sr_ratio=1)(torch.rand(1, 16, 8), 4, 4)
    assert seen == [False, False]
    assert torch.backends.cuda.cudnn_sdp_enabled() == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the cuDNN attention kernel needs a CUDA GPU")
def test_bf16_attention_backward_stays_finite_where_cudnn_did_not() -> None:
    """One H100 (PyTorch 2.11): with one query channel at 1 and the keys' at -120 sqrt(d), cuDNN's attention gave
    4,194,304 non-finite query gradients of 4,194,304; ``sdpa`` gave none (``docs/benchmark.md``, ninth run)."""
    from taskfuse.nn.cross_attention import sdpa

    torch.manual_seed(0)
    q, k = (torch.randn(16, 1, n, 256, device="cuda") * 0.1 for n in (1024, 64))
    v = torch.randn(16, 1, 64, 256, device="cuda")
    q[..., 0], k[..., 0] = 1.0, -120.0 * 256**0.5
    q, k, v = (t.bfloat16().requires_grad_() for t in (q, k, v))
    out = sdpa(q, k, v)
    out.backward(torch.randn_like(out))
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_cross_attention_shapes_heads_and_reduction() -> None:
    query, context = torch.rand(2, 6, 8, 10), torch.rand(2, 5, 8, 10)
    att = CrossAttention(6, 5, 8, heads=2, reduction=2)
    assert att(query, context).shape == (2, 8, 8, 10)
    assert att(query, context[..., :1, :3]).shape == (2, 8, 8, 10)  # context smaller than the reduction
    shared = CrossAttention(8, 5, 8, kernel_size=3, norm_act=True, project_query=False, scale=1.0)
    assert shared(torch.rand(2, 8, 4, 4), context).shape == (2, 8, 4, 4)
    with pytest.raises(ValueError, match="heads"):
        CrossAttention(6, 5, 8, heads=3)


def test_semantic_injection_without_semantics_is_instance_normalisation() -> None:
    sim = SemanticInjection(1, 3, hidden=4, pre_conv=False)
    with torch.no_grad():
        for conv in (sim.gamma, sim.beta):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        x = torch.tensor([1.0, 2.0, 3.0, 6.0]).view(1, 1, 2, 2)
        # mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5
        expected = (x - 3) / math.sqrt(3.5 + 1e-5)
        assert torch.allclose(sim(x, torch.rand(1, 3, 1, 1)), expected)
    assert SemanticInjection(4, 6)(torch.rand(2, 4, 8, 8), torch.rand(2, 6, 2, 2)).shape == (2, 4, 8, 8)
