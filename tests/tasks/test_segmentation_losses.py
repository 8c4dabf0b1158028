"""OHEM cross-entropy and the main + auxiliary semantic loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from taskfuse.errors import TaskfuseError
from taskfuse.tasks.segmentation.base import SegmentationOutput
from taskfuse.tasks.segmentation.loss import OhemCrossEntropy, main_aux_loss, ohem_cross_entropy


def _two_class_logits(p_true: list[float]) -> torch.Tensor:
    """(1, 2, 1, N) logits whose softmax gives class 0 the probabilities ``p_true``."""
    p = torch.tensor(p_true)
    return torch.stack((p.log(), (1 - p).log())).view(1, 2, 1, -1)


def test_ohem_keeps_pixels_below_the_probability_threshold() -> None:
    logits, target = _two_class_logits([0.9, 0.6, 0.2, 0.8]), torch.zeros(1, 1, 4, dtype=torch.long)
    got = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=1)
    assert got.item() == pytest.approx((-math.log(0.6) - math.log(0.2)) / 2, rel=1e-5)


def test_ohem_keeps_the_min_kept_hardest_when_too_few_are_hard() -> None:
    logits, target = _two_class_logits([0.9, 0.6, 0.2, 0.8]), torch.zeros(1, 1, 4, dtype=torch.long)
    got = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=3)
    assert got.item() == pytest.approx((-math.log(0.2) - math.log(0.6) - math.log(0.8)) / 3, rel=1e-5)


def test_ohem_drops_ignored_pixels_before_ranking() -> None:
    logits = _two_class_logits([0.9, 0.6, 0.2, 0.8])
    target = torch.tensor([[[0, 0, 255, 0]]])
    assert ohem_cross_entropy(logits, target, min_kept=1).item() == pytest.approx(-math.log(0.6), rel=1e-5)
    assert OhemCrossEntropy(min_kept=1)(logits, target).item() == pytest.approx(-math.log(0.6), rel=1e-5)


def test_ohem_without_labelled_pixels_is_zero_and_differentiable() -> None:
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = ohem_cross_entropy(logits, torch.full((1, 4, 4), 255))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_ohem_rejects_mismatched_or_float_targets() -> None:
    logits = torch.randn(2, 3, 4, 4)
    with pytest.raises(TaskfuseError, match="does not match"):
        ohem_cross_entropy(logits, torch.zeros(2, 5, 4, dtype=torch.long))
    with pytest.raises(TaskfuseError, match="integer"):
        ohem_cross_entropy(logits, torch.zeros(2, 4, 4))
    assert ohem_cross_entropy(logits, torch.zeros(2, 1, 4, 4, dtype=torch.long)).dim() == 0


def _seafusion_ohem(logits: torch.Tensor, target: torch.Tensor, thresh: float, n_min: int) -> torch.Tensor:
    """The sort-based rule of SeAFusion's OhemCELoss, for a target without ignored pixels."""
    loss = F.cross_entropy(logits, target, reduction="none").flatten().sort(descending=True).values
    return loss[loss > -math.log(thresh)].mean() if loss[n_min] > -math.log(thresh) else loss[:n_min].mean()


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_min=st.integers(1, 40), scale=st.floats(0.1, 5.0))
def test_ohem_matches_the_seafusion_rule(seed: int, n_min: int, scale: float) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 5, 6, generator=g) * scale
    target = torch.randint(0, 4, (2, 5, 6), generator=g)
    got = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=n_min)
    torch.testing.assert_close(got, _seafusion_ohem(logits, target, 0.7, n_min))


def test_default_min_kept_is_a_sixteenth_of_the_labelled_pixels() -> None:
    logits = _two_class_logits([0.99] * 30 + [0.5, 0.4])
    target = torch.zeros(1, 1, 32, dtype=torch.long)
    assert ohem_cross_entropy(logits, target).item() == pytest.approx((-math.log(0.5) - math.log(0.4)) / 2, rel=1e-5)
    easy = _two_class_logits([0.99] * 31 + [0.4])
    assert ohem_cross_entropy(easy, target).item() == pytest.approx((-math.log(0.4) - math.log(0.99)) / 2, rel=1e-5)


def test_main_aux_loss_weights_the_auxiliary_terms() -> None:
    main, aux1, aux2 = torch.full((1, 2, 2, 2), 3.0), torch.full((1, 2, 2, 2), 5.0), torch.full((1, 2, 2, 2), 7.0)
    target = torch.zeros(1, 2, 2, dtype=torch.long)
    terms = main_aux_loss(SegmentationOutput(main, [aux1, aux2]), target, criterion=lambda x, t: x.mean())
    assert terms.total.item() == pytest.approx(3.0 + 0.1 * (5.0 + 7.0))
    assert terms.parts["seg_main"].item() == pytest.approx(3.0)
    assert terms.parts["seg_aux"].item() == pytest.approx(1.2)
    alone = main_aux_loss(SegmentationOutput(main), target, aux_weight=0.5, criterion=lambda x, t: x.mean())
    assert alone.total.item() == pytest.approx(3.0) and "seg_aux" not in alone.parts


def test_main_aux_loss_defaults_to_ohem_on_both_heads() -> None:
    g = torch.Generator().manual_seed(3)
    logits, aux = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    target = torch.randint(0, 4, (2, 8, 8), generator=g)
    terms = main_aux_loss(SegmentationOutput(logits, [aux]), target)
    expected = ohem_cross_entropy(logits, target) + 0.1 * ohem_cross_entropy(aux, target)
    torch.testing.assert_close(terms.total, expected)
