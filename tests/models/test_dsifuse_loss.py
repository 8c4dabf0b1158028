"""DSIFuse objective (Sec. 3.5) and its contrast masks, against values worked out by hand; how many target pixels
the label mask acts on as written and with compared contrast masks; the RGB-vs-infrared comparison."""

from __future__ import annotations

import pytest
import torch

from taskfuse.data.color import luminance
from taskfuse.data.synthetic import render_scene
from taskfuse.errors import TaskfuseError
from taskfuse.losses.fusion_terms import minmax_local_variance
from taskfuse.losses.masks import foreground_from_labels
from taskfuse.models.base import FusionOutput
from taskfuse.models.dsifuse.loss import DSIFuseLoss, semantic_prior_loss

SOBEL_ONES_MEAN = 3.5
"""Mean |Gx| + |Gy| of a 4 x 4 image of ones with zero padding (corners 6, edges 4, interior 0)."""


def test_minmax_local_variance_of_one_bright_corner() -> None:
    x = torch.zeros(1, 1, 4, 4)
    x[..., 0, 0] = 1.0
    # 3 x 3 box with replicated borders: the corner value appears 4 times around (0, 0), twice around (0, 1)
    # and (1, 0), once around (1, 1): variances n/9 - (n/9)^2 = 20/81, 14/81, 8/81; 0 farther away.
    expected = torch.zeros(4, 4)
    expected[0, 0], expected[0, 1], expected[1, 0], expected[1, 1] = 1.0, 14 / 20, 14 / 20, 8 / 20
    assert torch.allclose(minmax_local_variance(x, 3)[0, 0], expected, atol=1e-6)
    assert minmax_local_variance(torch.full((1, 1, 3, 3), 0.4)).abs().max() == 0


def _out(value: float, k: int = 3) -> FusionOutput:
    priors = {
        "prior_vi": torch.zeros(1, k, 1, 1),
        "prior_ir": torch.zeros(1, k, 1, 1),
        "prior_global": torch.zeros(1, k, 1, 1),
    }
    return FusionOutput(torch.full((1, 3, 4, 4), value), priors)


def test_intensity_masks_and_gradient_on_flat_images() -> None:
    ir = torch.full((1, 1, 4, 4), 0.9)
    vi = torch.tensor([0.2, 0.3, 0.4]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    boxes = [torch.tensor([[1.0, 0.0, 0.0, 2.0, 1.0]])]  # salient pixels (0, 0) and (0, 1)
    terms = DSIFuseLoss()(_out(0.5), {"ir": ir, "vi": vi, "boxes": boxes})
    # Flat sources: M_R = M_V = 0, so the infrared term covers the 2 salient pixels and the visible term the 14
    # others. |0.5 - 0.9| = 0.4; mean |0.5 - (0.2, 0.3, 0.4)| = 0.2.
    assert terms.parts["int"].item() == pytest.approx(155 * (0.4 * 2 / 16 + 0.2 * 14 / 16), rel=1e-5)
    # Gradient per channel: |0.5 - max(0.9, v)| * S = 0.4 * S in every channel.
    assert terms.parts["gra"].item() == pytest.approx(10 * 0.4 * SOBEL_ONES_MEAN, rel=1e-5)
    assert "sem" not in terms.parts
    no_mask = DSIFuseLoss()(_out(0.5), {"ir": ir, "vi": vi})
    assert no_mask.parts["int"].item() == pytest.approx(155 * 0.2, rel=1e-5)


def test_semantic_prior_loss_with_uniform_priors() -> None:
    label = torch.zeros(1, 64, 64, dtype=torch.long)
    label[0, :32] = 2
    label[0, 0, 0] = 255
    priors = [torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)]
    # Uniform probabilities 1/K against a one-hot target: (K-1)/K^2 + (1-1/K)^2 = (K-1)/K = 2/3 per pixel,
    # for 2 priors at 3 scales.
    assert semantic_prior_loss(priors, label).item() == pytest.approx(6 * 2 / 3, rel=1e-5)
    ir, vi = torch.zeros(1, 1, 64, 64), torch.zeros(1, 3, 64, 64)
    out = FusionOutput(torch.zeros(1, 3, 64, 64), {"prior_vi": priors[0], "prior_ir": priors[1]})
    terms = DSIFuseLoss()(out, {"ir": ir, "vi": vi, "label": label})
    assert terms.parts["sem"].item() == pytest.approx(7 * 4.0, rel=1e-5)
    confident = [torch.tensor([20.0, -20.0, -20.0]).view(1, 3, 1, 1).expand(1, 3, 2, 2)] * 2
    assert semantic_prior_loss(confident, torch.zeros(1, 16, 16, dtype=torch.long)).item() < 1e-6
    with pytest.raises(TaskfuseError, match="num_classes"):
        semantic_prior_loss(priors, torch.full((1, 8, 8), 5))


def test_gray_visible_is_refused() -> None:
    with pytest.raises(TaskfuseError, match="RGB"):
        DSIFuseLoss()(_out(0.5), {"ir": torch.zeros(1, 1, 4, 4), "vi": torch.zeros(1, 1, 4, 4)})


def _scenes() -> dict[str, torch.Tensor]:
    scenes = [render_scene(i, 64, 80) for i in range(2)]
    return {k: torch.stack([s[k] for s in scenes]) for k in ("ir", "vi", "label")}


@pytest.mark.parametrize(("masks", "low", "high"), [("written", 0.0, 0.01), ("compared", 1.0, 1.0)])
def test_share_of_target_pixels_whose_weights_the_label_mask_changes(masks: str, low: float, high: float) -> None:
    batch = _scenes()
    loss = DSIFuseLoss(object_classes=[1, 2, 3], masks=masks)
    m_label = foreground_from_labels(batch["label"], [1, 2, 3])
    with_label = loss.intensity_weights(batch["ir"], batch["vi"], m_label)
    without = loss.intensity_weights(batch["ir"], batch["vi"], torch.zeros_like(m_label))
    changed = (with_label[0] != without[0]) | (with_label[1] != without[1])
    target = m_label > 0
    assert target.sum() > 100
    assert low <= changed[target].float().mean().item() <= high
    assert not changed[~target].any()


def test_infrared_is_compared_with_the_fused_luminance_or_with_every_channel() -> None:
    ir = torch.full((1, 1, 4, 4), 0.5)
    vi = torch.tensor([0.7, 0.4, 0.6]).view(1, 3, 1, 1).expand(1, 3, 4, 4)
    coloured = vi - luminance(vi) + 0.5  # the visible colour at the infrared's luminance
    boxes = [torch.tensor([[1.0, 0.0, 0.0, 4.0, 4.0]])]  # every pixel salient: only the infrared term acts
    batch = {"ir": ir, "vi": vi, "boxes": boxes}
    out = FusionOutput(coloured, {})
    assert DSIFuseLoss(ir_compare="luminance").terms(out, batch)["int"].item() == pytest.approx(0.0, abs=1e-4)
    literal = DSIFuseLoss(ir_compare="channels").terms(out, batch)["int"].item()
    assert literal == pytest.approx(155 * (coloured - 0.5).abs().mean().item(), rel=1e-5)
    with pytest.raises(TaskfuseError, match="ir_compare"):
        DSIFuseLoss(ir_compare="rgb")
    with pytest.raises(TaskfuseError, match="masks"):
        DSIFuseLoss(masks="soft")
