"""TarDAL's content loss: the visual saliency map and the saliency-weighted SSIM + L1 terms by hand."""

from __future__ import annotations

import pytest
import torch

from taskfuse.models.base import FusionOutput
from taskfuse.models.tardal.loss import TarDALLoss, visual_saliency

C1 = 0.01**2


def test_saliency_is_histogram_contrast_stretched_to_one() -> None:
    # levels 0, 0, 255, 255, 255, 128: S(0) = 3*255 + 128, S(255) = 2*255 + 127, S(128) = 2*128 + 3*127
    x = torch.tensor([0, 0, 255, 255, 255, 128], dtype=torch.float).view(1, 1, 2, 3) / 255
    s = {0: 3 * 255 + 128, 255: 2 * 255 + 127, 128: 2 * 128 + 3 * 127}
    lo, hi = min(s.values()), max(s.values())
    want = torch.tensor([(s[int(v)] - lo) / (hi - lo) for v in (0, 0, 255, 255, 255, 128)]).view(1, 1, 2, 3)
    assert torch.allclose(visual_saliency(x), want)
    assert torch.equal(visual_saliency(torch.full((2, 1, 3, 3), 0.4)), torch.zeros(2, 1, 3, 3))


def test_constant_images_by_hand() -> None:
    # Constant sources have no salient pixel (S = 0), so w_ir = w_vi = 1/2; on constant windows SSIM reduces to
    # its luminance term (2 a f + C1) / (a^2 + f^2 + C1). Float64: in float32 E[x^2] - E[x]^2 is off by ~1e-7,
    # which C2 = 9e-4 turns into 1e-4 of SSIM.
    a, b, f = 0.3, 0.7, 0.5
    shape = (1, 1, 15, 15)
    batch = {"ir": torch.full(shape, a, dtype=torch.float64), "vi": torch.full(shape, b, dtype=torch.float64)}
    terms = TarDALLoss()(FusionOutput(torch.full(shape, f, dtype=torch.float64)), batch)

    def ssim_term(s: float) -> float:
        return (1 - (2 * s * f + C1) / (s * s + f * f + C1)) / 2

    assert terms.parts["ssim"].item() == pytest.approx(0.5 * ssim_term(a) + 0.5 * ssim_term(b), rel=1e-9)
    assert terms.parts["pixel"].item() == pytest.approx(20 * (0.5 * abs(f - a) + 0.5 * abs(f - b)), rel=1e-5)
    assert terms.total.item() == pytest.approx(sum(v.item() for v in terms.parts.values()))


def test_the_more_salient_source_weighs_more() -> None:
    ir = torch.zeros(1, 1, 16, 16)
    ir[..., 6:10, 6:10] = 1.0  # a small hot target: its pixels are the most salient of the IR image
    vi = torch.full((1, 1, 16, 16), 0.5)
    loss = TarDALLoss(ssim_weight=0.0)
    to_ir = loss(FusionOutput(ir.clone()), {"ir": ir, "vi": vi}).total
    to_vi = loss(FusionOutput(vi.clone()), {"ir": ir, "vi": vi}).total
    # w_ir = 1 on the target, 1/2 elsewhere: copying IR leaves only the background's 1/2 * |0 - 0.5| * 20
    assert to_ir.item() == pytest.approx(20 * 0.5 * 0.5 * (256 - 16) / 256, rel=1e-5)
    assert to_vi.item() > to_ir.item()
