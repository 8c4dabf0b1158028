"""Fusion metrics on synthetic images: input rules, reference quirks, batching, devices, the accumulator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from taskfuse.data.io import to_uint8
from taskfuse.errors import TaskfuseError
from taskfuse.metrics import DEFAULT_METRICS, HIGHER_IS_BETTER, METRICS, FusionMetrics
from taskfuse.metrics import functional as fm
from taskfuse.metrics.fusion import metric_info


def _smooth(batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    """uint8 (B, 1, H, W) images with structure at several scales, like natural images."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 1, h // 8 + 1, w // 8 + 1, generator=g)
    x = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    x = 0.8 * x + 0.2 * torch.rand(batch, 1, h, w, generator=g)
    return (x * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def triple() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    ir, vi = _smooth(2, 168, 176, 1), _smooth(2, 168, 176, 2)
    fused = ((ir.int() + vi.int() + 1) // 2).to(torch.uint8)
    return fused, ir, vi


def test_metrics_that_read_only_the_fused_image_accept_no_sources(triple) -> None:
    fused, ir, vi = triple
    for name in METRICS:
        info = metric_info(name)
        assert info.name == name and metric_info(name.lower()) is info
        if not info.sources:
            assert torch.equal(info.fn(fused), info.fn(fused, ir, vi))


def test_names_and_directions() -> None:
    assert set(HIGHER_IS_BETTER) == set(METRICS)
    assert {n for n, up in HIGHER_IS_BETTER.items() if not up} == {"Nabf", "MSE"}
    assert set(DEFAULT_METRICS) == {"EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM"}


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((8, 8), np.uint8), "torch.Tensor"),
        (torch.zeros(4, 8, 8, dtype=torch.uint8), "expected"),
        (torch.zeros(1, 2, 8, 8, dtype=torch.uint8), "expected"),
        (torch.zeros(1, 1, 1, 8, 8), "expected"),
        (torch.zeros(1, 8), "too small"),
        (torch.full((8, 8), 1.5), "lie in"),
        (torch.full((8, 8), -0.1), "lie in"),
        (torch.full((8, 8), math.nan), "lie in"),
        (torch.zeros(8, 8, dtype=torch.int32), "dtype"),
    ],
)
def test_bad_inputs_raise(bad: object, match: str) -> None:
    with pytest.raises(TaskfuseError, match=match):
        fm.en(bad)


def test_mismatched_sources_raise() -> None:
    a = torch.zeros(1, 1, 16, 16, dtype=torch.uint8)
    with pytest.raises(TaskfuseError, match="ir: shape"):
        fm.mse(a, torch.zeros(1, 1, 16, 17, dtype=torch.uint8), a)
    with pytest.raises(TaskfuseError, match="vi: shape"):
        fm.mse(a, a, torch.zeros(2, 1, 16, 16, dtype=torch.uint8))
    with pytest.raises(TaskfuseError, match="both sources"):
        fm.mi(a, a, None)


def test_multiscale_metrics_need_large_images() -> None:
    a = torch.zeros(1, 1, 40, 64, dtype=torch.uint8)
    with pytest.raises(TaskfuseError, match="VIF needs images of at least 41x41"):
        fm.vif(a, a, a)
    with pytest.raises(TaskfuseError, match="MS-SSIM needs images of at least 161x161"):
        fm.ms_ssim(a, a, a)


def test_float_and_uint8_inputs_agree(triple) -> None:
    fused, ir, vi = triple
    as_float = [t.float() / 255 for t in triple]
    for name, fn in METRICS.items():
        assert torch.equal(fn(fused, ir, vi), fn(*as_float)), name


def test_float_rounding_matches_written_files() -> None:
    x = torch.rand(3, 37, 41)
    x[0, 0, :4] = torch.tensor([0.5 / 255, 1.5 / 255, 0.5, 1.0])
    assert torch.equal(fm.to_gray_uint8(x[:1])[0, 0], torch.from_numpy(to_uint8(x[:1])))


def test_rgb_is_converted_like_matlab_rgb2gray() -> None:
    rgb = torch.randint(0, 256, (1, 3, 9, 11), dtype=torch.uint8)
    r, g, b = rgb.double().unbind(1)
    y = 0.298936021293775 * r + 0.587043074451121 * g + 0.114020904255103 * b
    assert torch.equal(fm.to_gray_uint8(rgb)[:, 0], torch.floor(y + 0.5).to(torch.uint8))
    flat = torch.full((3, 4, 4), 200, dtype=torch.uint8)
    assert torch.equal(fm.to_gray_uint8(flat), torch.full((1, 1, 4, 4), 200, dtype=torch.uint8))
    assert fm.en(rgb) == fm.en(fm.to_gray_uint8(rgb))


def test_batch_equals_single_images(triple) -> None:
    fused, ir, vi = triple
    for name, fn in METRICS.items():
        batched = fn(fused, ir, vi)
        assert batched.shape == (2,) and batched.dtype == torch.float64, name
        singles = torch.cat([fn(fused[i], ir[i], vi[i]) for i in range(2)])
        torch.testing.assert_close(batched, singles, rtol=1e-12, atol=1e-12, msg=name)


def test_identical_images(triple) -> None:
    x = triple[1][:1]
    assert fm.mse(x, x, x).item() == 0
    assert fm.psnr(x, x, x).item() == math.inf
    assert fm.cc(x, x, x).item() == pytest.approx(1, abs=1e-12)
    assert fm.ssim(x, x, x).item() == pytest.approx(2, abs=1e-12)
    assert fm.ms_ssim(x, x, x).item() == pytest.approx(2, abs=1e-12)
    assert fm.vif(x, x, x).item() == pytest.approx(2, rel=1e-6)
    assert fm.nabf(x, x, x).item() == 0
    assert fm.mi(x, x, x).item() == pytest.approx(2 * fm.en(x).item(), abs=1e-12)


def test_flat_image_scores_zero() -> None:
    flat = torch.full((1, 1, 50, 60), 90, dtype=torch.uint8)
    for fn in (fm.en, fm.sd, fm.sf, fm.ag):
        assert fn(flat).item() == 0


def test_hand_computed_values() -> None:
    halves = torch.tensor([[0, 0], [255, 255]], dtype=torch.uint8)
    assert fm.en(halves).item() == pytest.approx(1.0)
    # uint8 arithmetic of SD_evaluation.m: (F - 127.5) rounds to 128 or saturates to 0; 128^2 saturates to 255
    assert fm.sd(halves).item() == pytest.approx(math.sqrt(2 * 255 / 4))
    ramp = torch.arange(30, dtype=torch.uint8).repeat(20, 1)
    assert fm.sf(ramp).item() == pytest.approx(1 / 255)
    assert fm.sf(ramp, scale="published").item() == pytest.approx(1.0)
    assert fm.ag(ramp).item() == pytest.approx(20 * 30 * math.sqrt(0.5) / (19 * 29))


def test_mi_merges_the_top_two_levels_like_hab() -> None:
    x = torch.tensor([[254, 255], [255, 254]], dtype=torch.uint8)
    # H(A) = H(F) = 1 bit, but Hab's uint8 "+1" puts 254 and 255 in one joint bin: joint entropy 0
    assert fm.mi(x, x, x).item() == pytest.approx(4.0)


def test_qabf_convolution_and_sqrt_are_exact() -> None:
    from scipy.signal import convolve2d

    x = _smooth(1, 40, 50, 3).double() / 255
    for kernel in (fm.QABF_H1, fm.QABF_H3):
        ours = fm._conv2_octave(F.pad(x, (1, 1, 1, 1)), kernel)[0, 0].numpy()
        np.testing.assert_allclose(ours, convolve2d(x[0, 0].numpy(), np.array(kernel), mode="same"), atol=1e-13)
    s = torch.rand(200_000, dtype=torch.float64) * 8
    assert torch.equal(fm._sqrt_rn(s), torch.from_numpy(np.sqrt(s.numpy())))


def test_nabf_sees_artifacts(triple) -> None:
    fused, ir, vi = triple
    noisy = (fused.int() + torch.randint(-40, 41, fused.shape)).clamp(0, 255).to(torch.uint8)
    assert (fm.nabf(noisy, ir, vi) > fm.nabf(fused, ir, vi)).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("rule", ["mean", "max"])
def test_cuda_matches_cpu(triple, rule: str) -> None:
    _, ir, vi = triple
    fused = triple[0] if rule == "mean" else torch.maximum(ir, vi)
    for name, fn in METRICS.items():
        cpu = fn(fused, ir, vi)
        gpu = fn(fused.cuda(), ir.cuda(), vi.cuda())
        assert gpu.device.type == "cuda", name
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=1e-12, msg=name)


def test_accumulator(triple) -> None:
    fused, ir, vi = triple
    metrics = FusionMetrics(names=["qabf", "sf", "MS-ssim"])
    assert metrics.names == ["Qabf", "SF", "MS-SSIM"]
    metrics.update(fused, ir, vi)
    metrics.update(fused[:1], ir[:1], vi[:1])
    values = metrics.compute()
    assert len(metrics) == 3 and list(values) == ["Qabf", "SF", "MS-SSIM"]
    torch.testing.assert_close(values["Qabf"], torch.cat([fm.qabf(fused, ir, vi), fm.qabf(fused[:1], ir[:1], vi[:1])]))
    assert metrics.mean()["SF"] == pytest.approx(values["SF"].mean().item())
    published = FusionMetrics(names=["SF"], sf_scale="published")
    published.update(fused, ir, vi)
    torch.testing.assert_close(published.compute()["SF"], 255 * fm.sf(fused))
    metrics.reset()
    assert len(metrics) == 0
    with pytest.raises(TaskfuseError, match="before any update"):
        metrics.compute()


def test_accumulator_rejects_bad_options() -> None:
    with pytest.raises(TaskfuseError, match="did you mean 'qabf'"):
        FusionMetrics(names=["Qabff"])
    with pytest.raises(TaskfuseError, match="repeat"):
        FusionMetrics(names=["EN", "en"])
    with pytest.raises(TaskfuseError, match="sf_scale"):
        FusionMetrics(sf_scale="0-255")
    assert FusionMetrics().names == list(DEFAULT_METRICS)


@pytest.mark.parametrize("name", ["MI", "VIF", "SSIM"])
def test_per_source_halves_add_up_to_the_metric(triple, name: str) -> None:
    fused, ir, vi = triple
    halves = METRICS[f"{name}_ir"](fused, ir, vi) + METRICS[f"{name}_vi"](fused, ir, vi)
    torch.testing.assert_close(halves, METRICS[name](fused, ir, vi), rtol=1e-12, atol=1e-12)
    assert not torch.equal(METRICS[f"{name}_ir"](fused, ir, vi), METRICS[f"{name}_vi"](fused, ir, vi))


def test_a_metric_and_its_halves_share_one_computation_per_batch(triple) -> None:
    """Inside ``shared_sources`` MI, MI_ir and MI_vi (and VIF's, SSIM's) compute their per-source values once,
    and give the values they give alone."""
    fused, ir, vi = triple
    names = ["MI", "MI_ir", "MI_vi", "VIF", "VIF_ir", "VIF_vi", "SSIM", "SSIM_ir", "SSIM_vi"]
    alone = {n: METRICS[n](fused, ir, vi) for n in names}
    with fm.shared_sources() as memo:
        shared = {n: METRICS[n](fused, ir, vi) for n in names}
        assert len(memo) == 3
    for n in names:
        torch.testing.assert_close(shared[n], alone[n], rtol=0, atol=0)
    meter = FusionMetrics(names)
    meter.update(fused, ir, vi)
    for n in names:
        torch.testing.assert_close(meter.compute()[n], alone[n], rtol=1e-12, atol=1e-12)
