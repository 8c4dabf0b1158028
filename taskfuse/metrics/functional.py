"""Fusion-quality metrics that reproduce the community MATLAB evaluation number for number.

Reference: the ``Evaluation/`` scripts shipped with SeAFusion and PSFusion (``analysis_Reference.m`` and the
helpers it calls), which papers in this field, VIF-Benchmark included, use for their tables. Each function
here names the script it follows and the conventions it inherits, including the ones that look like bugs:
those are kept on purpose, because a number is only comparable with published tables if it is computed the
same way. Every metric is a pure torch function of a batch, runs on CPU or CUDA (the device follows the
input) and returns a float64 tensor of shape (B,).

Inputs. Every metric takes ``(fused, ir, vi)``; EN, SD, SF and AG read only ``fused`` and accept
``ir=None, vi=None``. A tensor may be shaped (B, C, H, W), (C, H, W) or (H, W) with C = 1 or 3, and be
``uint8`` (levels 0..255) or floating point in [0, 1]. The reference reads 8-bit files, so inputs are first
brought to those 8-bit levels:

- float images are rounded as ``round(x * 255)`` computed in float32, ties to even: exactly the bytes that
  ``taskfuse.data.io.to_uint8`` / ``write_image`` store, so a tensor and the PNG written from it score alike;
- a 3-channel image is then turned gray like MATLAB ``rgb2gray`` on uint8:
  ``Y = 0.298936021293775 R + 0.587043074451121 G + 0.114020904255103 B`` in float64, rounded half away
  from zero (this is not the Y of ``rgb2ycbcr`` nor the BT.601 luma of ``taskfuse.data.color``).

Each metric then sees the 8-bit gray image on the scale the reference gives it: the raw levels 0..255
(EN, SD, MI, VIF, AG) or ``im2double`` levels / 255 in [0, 1] (SF, PSNR, MSE, CC, SCD, Qabf, Nabf).

Facts. Each metric is registered where it is defined (``@fusion_metric``) under the name papers use, with the
facts that code ranking results reads (``MetricInfo``: which direction is better, whether it needs the
sources, which value scales it offers); ``FUSION_METRICS`` holds them all.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.errors import TaskfuseError
from taskfuse.registry import Registry

RGB2GRAY = (0.298936021293775, 0.587043074451121, 0.114020904255103)
SF_SCALES = ("reference", "published")
VIF_MIN_SIZE = 41
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_MIN_SIZE = 161

MetricFn = Callable[..., Tensor]


@dataclass(frozen=True)
class MetricInfo:
    """A fusion metric and the facts about it that rankings and reports read."""

    name: str
    """The name papers use (``Qabf``, ``MS-SSIM``)."""
    fn: MetricFn
    """``fn(fused, ir, vi) -> (B,)`` float64."""
    higher_is_better: bool
    """Direction of a better fusion (False for error-like metrics: Nabf, MSE)."""
    sources: bool
    """Reads the IR and VIS sources (False: a property of the fused image alone, e.g. EN)."""
    scales: tuple[str, ...] = ()
    """Value scales offered through the function's ``scale`` argument, the first being the default."""


FUSION_METRICS: Registry[MetricInfo] = Registry("fusion metric")


def fusion_metric(
    name: str, higher_is_better: bool = True, sources: bool = True, scales: tuple[str, ...] = ()
) -> Callable[[MetricFn], MetricFn]:
    """Register the decorated metric function under ``name`` with its facts."""

    def wrap(fn: MetricFn) -> MetricFn:
        FUSION_METRICS.register(name)(MetricInfo(name, fn, higher_is_better, sources, scales))
        return fn

    return wrap


def _round_half_away(x: Tensor) -> Tensor:
    """MATLAB ``round``: to nearest, ties away from zero (torch.round sends ties to even)."""
    t = x.trunc()
    return torch.where((x - t).abs() == 0.5, t + x.sign(), x.round())


def _sqrt_rn(x: Tensor) -> Tensor:
    """Correctly rounded float64 square root of x >= 0, as Octave's ``sqrt`` returns it.

    torch's vectorised float64 ``sqrt`` is one unit in the last place off for about 1 % of inputs on CPU.
    Qabf and Nabf compare edge strengths for equality, so each result y is checked with the exact residual
    x - y^2 (Dekker's product with a Veltkamp split: y^2 = p + e exactly) and moved to its neighbour when
    |sqrt(x) - y| ~ |x - y^2| / 2y exceeds half the gap to that neighbour.
    """
    y = torch.sqrt(x)
    t = y * 134217729.0
    hi = t - (t - y)
    lo = y - hi
    p = y * y
    residual = (x - p) - (((hi * hi - p) + 2 * hi * lo) + lo * lo)
    neighbour = torch.nextafter(y, torch.where(residual > 0, math.inf, -math.inf).to(y.dtype))
    return torch.where(residual.abs() > y * (neighbour - y).abs(), neighbour, y)


def to_gray_uint8(x: Tensor, name: str = "image") -> Tensor:
    """Validate one input and return its 8-bit gray levels as a (B, 1, H, W) uint8 tensor on its device.

    Float inputs must lie in [0, 1] and are rounded to levels as ``io.to_uint8`` does; 3-channel inputs go
    through MATLAB ``rgb2gray`` (see the module docstring). ``name`` is used in error messages.
    """
    if not isinstance(x, Tensor):
        raise TaskfuseError(f"{name}: expected a torch.Tensor, got {type(x).__name__}; convert it with torch.as_tensor")
    if x.dim() == 2:
        x = x[None, None]
    elif x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise TaskfuseError(
            f"{name}: expected (B, 1|3, H, W), (1|3, H, W) or (H, W), got shape {tuple(x.shape)}; "
            "drop any alpha channel and put channels first"
        )
    if x.shape[-1] < 2 or x.shape[-2] < 2 or x.shape[0] == 0:
        raise TaskfuseError(f"{name}: image of shape {tuple(x.shape)} is too small; metrics need at least 2x2")
    x = x.detach()
    if x.dtype == torch.uint8:
        levels = x
    elif x.is_floating_point():
        lo, hi = torch.aminmax(x)
        if not (lo.item() >= 0.0 and hi.item() <= 1.0):
            raise TaskfuseError(
                f"{name}: float values must lie in [0, 1], found min {lo.item():.4g} and max {hi.item():.4g}; "
                "clamp the image to [0, 1] or pass uint8 levels 0..255"
            )
        levels = (x.float() * 255.0).round().to(torch.uint8)
    else:
        raise TaskfuseError(f"{name}: dtype {x.dtype} is not supported; pass uint8 levels or float in [0, 1]")
    if levels.shape[1] == 1:
        return levels
    r, g, b = levels.double().unbind(1)
    y = RGB2GRAY[0] * r + RGB2GRAY[1] * g + RGB2GRAY[2] * b
    return _round_half_away(y).clamp(0, 255).to(torch.uint8).unsqueeze(1)


def prepare(fused: Tensor, ir: Tensor | None = None, vi: Tensor | None = None) -> tuple[Tensor, ...]:
    """Validate a triple and return its uint8 gray levels, each (B, 1, H, W); absent sources are skipped.

    All given images must share batch size, height, width and device.
    """
    named = [("fused", fused)] + [(n, t) for n, t in (("ir", ir), ("vi", vi)) if t is not None]
    out = tuple(to_gray_uint8(t, n) for n, t in named)
    ref_name, ref = named[0][0], out[0]
    for (n, _), t in zip(named[1:], out[1:], strict=True):
        if t.shape != ref.shape:
            raise TaskfuseError(
                f"{n}: shape {tuple(t.shape)} (as B, 1, H, W) differs from {ref_name} {tuple(ref.shape)}; "
                "metrics compare images of the same batch size and size"
            )
        if t.device != ref.device:
            raise TaskfuseError(f"{n}: on {t.device} but {ref_name} is on {ref.device}; move them to one device")
    return out


IM2DOUBLE = tuple(k / 255 for k in range(256))


def _levels(
    fused: Tensor, ir: Tensor | None, vi: Tensor | None, sources: bool, unit: bool = False
) -> tuple[Tensor, ...]:
    """(B, H, W) float64 fused (and ir, vi when ``sources``): levels 0..255, or ``im2double`` with ``unit``.

    ``im2double`` reads a table of correctly rounded k / 255: CUDA divides by a Python number as a product
    with its reciprocal, which is one bit off for some levels, and Qabf and Nabf test exact equalities.
    """
    if sources and (ir is None or vi is None):
        raise TaskfuseError("this metric compares the fused image with both sources; pass ir and vi")
    out = prepare(fused, ir, vi) if sources else prepare(fused)
    if unit:
        table = torch.tensor(IM2DOUBLE, dtype=torch.float64, device=out[0].device)
        return tuple(table[t[:, 0].long()] for t in out)
    return tuple(t[:, 0].double() for t in out)


def _entropy_of_counts(counts: Tensor, total: int) -> Tensor:
    """Shannon entropy in bits of histograms ``counts`` (..., bins) over ``total`` samples."""
    p = counts.double() / total
    return -torch.where(p > 0, p * torch.log2(p), torch.zeros_like(p)).sum(-1)


def _histograms(x: Tensor, bins: int = 256) -> Tensor:
    """Per-image histograms (B, bins) of integer levels (B, H, W), with one bincount over flat indices."""
    b = x.shape[0]
    idx = x.long().reshape(b, -1) + bins * torch.arange(b, device=x.device)[:, None]
    return torch.bincount(idx.reshape(-1), minlength=b * bins).reshape(b, bins)


@fusion_metric("EN", sources=False)
def en(fused: Tensor, ir: Tensor | None = None, vi: Tensor | None = None) -> Tensor:
    """Entropy EN = -sum_l p_l log2 p_l of the fused image's 256-bin gray histogram.

    Reference: MATLAB/Octave ``entropy(image_f)`` in ``analysis_Reference.m`` on the uint8 image (256 bins,
    log base 2, empty bins skipped). Roberts et al., J. Appl. Remote Sens. 2008.
    """
    (f,) = _levels(fused, ir, vi, sources=False)
    return _entropy_of_counts(_histograms(f), f[0].numel())


@fusion_metric("MI")
def mi(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """Mutual information MI = MI(IR, F) + MI(VI, F), in bits (``mi_sources``)."""
    return mi_sources(fused, ir, vi).sum(1)


@fusion_metric("MI_ir")
def mi_ir(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """MI(IR, F), the infrared half of MI: how much of the infrared image the fused one keeps."""
    return mi_sources(fused, ir, vi)[:, 0]


@fusion_metric("MI_vi")
def mi_vi(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """MI(VI, F), the visible half of MI."""
    return mi_sources(fused, ir, vi)[:, 1]


_SHARED: ContextVar[dict | None] = ContextVar("taskfuse_shared_sources", default=None)


@contextlib.contextmanager
def shared_sources() -> Iterator[dict]:
    """Within the block, the per-source values of MI, VIF and SSIM are computed once per three input tensors and
    shared by every metric that reads them: MI, MI_ir and MI_vi of one batch cost one MI (``FusionMetrics``
    scores a batch inside one such block)."""
    memo: dict = {}
    token = _SHARED.set(memo)
    try:
        yield memo
    finally:
        _SHARED.reset(token)


def _shared(fn: MetricFn) -> MetricFn:
    """``fn(fused, ir, vi)``, remembered inside ``shared_sources`` for the same three tensors."""

    @functools.wraps(fn)
    def remembered(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
        memo = _SHARED.get()
        if memo is None:
            return fn(fused, ir, vi)
        key = (fn.__name__, id(fused), id(ir), id(vi))
        if key not in memo:
            memo[key] = fn(fused, ir, vi)
        return memo[key]

    return remembered


@_shared
def mi_sources(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """(B, 2): MI(IR, F) and MI(VI, F) in bits, with MI(A, F) = H(A) + H(F) - H(A, F).

    Reference: ``MI_evaluation.m`` (grey_level 256) of the SeAFusion ``Evaluation/`` scripts on uint8 images:
    H(A) and H(F) are ``entropy`` of each image, the joint entropy comes from ``Hab.m`` (Qu Xiao-bo, 2006),
    which indexes its 256x256 joint histogram with ``grey_matrix + 1`` computed in uint8. That sum saturates,
    so levels 254 and 255 share one bin of the joint histogram (not of the marginals); this is reproduced
    (and is what matches the reference outputs to 1e-12; without it MI is off by up to 1e-2).
    """
    f, a, b = _levels(fused, ir, vi, sources=True)
    n = f[0].numel()
    batch = f.shape[0]
    h_f = _entropy_of_counts(_histograms(f), n)
    f_joint = f.clamp(max=254).long().reshape(batch, -1)
    offsets = 65536 * torch.arange(batch, device=f.device)[:, None]
    halves = []
    for src in (a, b):
        joint_idx = src.clamp(max=254).long().reshape(batch, -1) * 256 + f_joint + offsets
        joint = torch.bincount(joint_idx.reshape(-1), minlength=batch * 65536).reshape(batch, 65536)
        halves.append(_entropy_of_counts(_histograms(src), n) + h_f - _entropy_of_counts(joint, n))
    return torch.stack(halves, 1)


@fusion_metric("SD", sources=False)
def sd(fused: Tensor, ir: Tensor | None = None, vi: Tensor | None = None) -> Tensor:
    """Standard deviation as ``SD_evaluation.m`` computes it: sqrt(sum((F - mean F)^2) / (M N)) in uint8.

    The reference receives the uint8 image, so ``F - u`` (u the double mean) is rounded half away from zero
    and saturated to 0..255 (pixels darker than the mean count as 0) and ``.^2`` saturates at 255. The
    result is therefore not the textbook standard deviation (about 10 instead of 40 on typical images), but
    it is the number the reference prints and papers tabulate; it is reproduced exactly. The mean is
    divided by a tensor, not a Python number, so that CUDA rounds it exactly (ties of F - u matter).
    """
    (f,) = _levels(fused, ir, vi, sources=False)
    count = torch.tensor(float(f[0].numel()), dtype=torch.float64, device=f.device)
    u = f.sum((-2, -1), keepdim=True) / count
    d = _round_half_away(f - u).clamp(0, 255)
    return torch.sqrt((d * d).clamp(max=255).sum((-2, -1)) / f[0].numel())


@fusion_metric("SF", sources=False, scales=SF_SCALES)
def sf(fused: Tensor, ir: Tensor | None = None, vi: Tensor | None = None, scale: str = "reference") -> Tensor:
    """Spatial frequency SF = sqrt(RF^2 + CF^2), RF / CF the RMS of the row / column first differences.

    Reference: ``SF_evaluation.m`` (``diff`` along each axis, mean over the M-1 x N or M x N-1 differences).
    ``scale="reference"`` (default) feeds it the ``im2double`` image as ``analysis_Reference.m`` does, so
    values are about 0.02-0.05; ``scale="published"`` uses levels 0..255 as the PSFusion / MAFS tables do,
    which is exactly 255 times larger.
    """
    if scale not in SF_SCALES:
        raise TaskfuseError(f"sf scale {scale!r} is not one of {', '.join(SF_SCALES)}")
    (f,) = _levels(fused, ir, vi, sources=False, unit=scale == "reference")
    rf = torch.sqrt((f[:, 1:, :] - f[:, :-1, :]).square().mean((-2, -1)))
    cf = torch.sqrt((f[:, :, 1:] - f[:, :, :-1]).square().mean((-2, -1)))
    return torch.sqrt(rf * rf + cf * cf)


def _gradient(x: Tensor, dim: int) -> Tensor:
    """MATLAB ``gradient`` along ``dim``: central differences inside, one-sided at the two borders."""
    n = x.shape[dim]
    inner = (x.narrow(dim, 2, n - 2) - x.narrow(dim, 0, n - 2)) / 2
    first = x.narrow(dim, 1, 1) - x.narrow(dim, 0, 1)
    last = x.narrow(dim, n - 1, 1) - x.narrow(dim, n - 2, 1)
    return torch.cat((first, inner, last), dim)


@fusion_metric("AG", sources=False)
def ag(fused: Tensor, ir: Tensor | None = None, vi: Tensor | None = None) -> Tensor:
    """Average gradient AG = sum(sqrt((Gx^2 + Gy^2) / 2)) / ((M - 1)(N - 1)) on levels 0..255.

    Reference: ``AG_evaluation.m`` (``gradient`` with unit spacing over the whole M x N image, divided by
    (M-1)(N-1) as written there).
    """
    (f,) = _levels(fused, ir, vi, sources=False)
    gx, gy = _gradient(f, -1), _gradient(f, -2)
    m, n = f.shape[-2:]
    return torch.sqrt((gx * gx + gy * gy) / 2).sum((-2, -1)) / ((m - 1) * (n - 1))


def _corr2(a: Tensor, b: Tensor) -> Tensor:
    """MATLAB ``corr2`` per image of (B, H, W) tensors."""
    a = a - a.mean((-2, -1), keepdim=True)
    b = b - b.mean((-2, -1), keepdim=True)
    return (a * b).sum((-2, -1)) / torch.sqrt((a * a).sum((-2, -1)) * (b * b).sum((-2, -1)))


@fusion_metric("CC")
def cc(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """Correlation coefficient CC = (r(IR, F) + r(VI, F)) / 2 on ``im2double`` images.

    Reference: ``CC_evaluation.m``. Its second numerator centres VI with the mean of IR; since the centred
    F sums to zero this changes nothing but rounding, and it is kept as written.
    """
    f, a, b = _levels(fused, ir, vi, sources=True, unit=True)
    fc = f - f.mean((-2, -1), keepdim=True)
    ac = a - a.mean((-2, -1), keepdim=True)
    bc = b - b.mean((-2, -1), keepdim=True)
    ff = (fc * fc).sum((-2, -1))
    r_af = (ac * fc).sum((-2, -1)) / torch.sqrt((ac * ac).sum((-2, -1)) * ff)
    r_bf = ((b - a.mean((-2, -1), keepdim=True)) * fc).sum((-2, -1)) / torch.sqrt((bc * bc).sum((-2, -1)) * ff)
    return (r_af + r_bf) / 2


@fusion_metric("MSE", higher_is_better=False)
def mse(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """MSE = (mean((F - IR)^2) + mean((F - VI)^2)) / 2 on ``im2double`` images (``MSE_evaluation.m``)."""
    f, a, b = _levels(fused, ir, vi, sources=True, unit=True)
    return 0.5 * (f - a).square().mean((-2, -1)) + 0.5 * (f - b).square().mean((-2, -1))


@fusion_metric("PSNR")
def psnr(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """PSNR = 20 log10(255 / sqrt(MSE)) with the ``im2double`` MSE above (``PSNR_evaluation.m``).

    The reference pairs a peak of 255 with an MSE measured on [0, 1] images, so its PSNR is the 8-bit PSNR
    plus 20 log10(255) = 48.13 dB (typical values near 60-70 dB). Reproduced as is; identical images give inf.
    """
    return 20 * torch.log10(255.0 / torch.sqrt(mse(fused, ir, vi)))


@fusion_metric("SCD")
def scd(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """Sum of the correlations of differences SCD = corr2(F - VI, IR) + corr2(F - IR, VI), ``im2double``.

    Reference: ``analysis_SCD.m``; Aslantas and Bendes, AEU Int. J. Electron. Commun. 69(12), 2015.
    """
    f, a, b = _levels(fused, ir, vi, sources=True, unit=True)
    return _corr2(f - b, a) + _corr2(f - a, b)


def _fspecial_gaussian_1d(size: int, sigma: float, device: torch.device) -> Tensor:
    """1-D factor g of MATLAB ``fspecial('gaussian', size, sigma)`` = outer(g, g), g summing to 1.

    fspecial also zeroes taps below eps * max; in the windows used here the smallest 2-D tap is at least
    1e-5 of the largest (11x11, sigma 1.5), so that step never applies.
    """
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


FIR_BLOCK = 64
SSIM_WINDOW = (11, 1.5)
"""Size and sigma of the Gaussian window of SSIM and MS-SSIM (Wang et al.'s ``ssim.m``, ``msssim.m``)."""


@functools.lru_cache(maxsize=128)
def _gaussian_band(size: int, sigma: float, step: int, block: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """The banded (Toeplitz) matrix of ``_fir_valid`` for ``fspecial``'s Gaussian taps (``_fspecial_gaussian_1d``):
    column j holds the taps from row ``j * step`` on. Made once per shape, type and device, and outside inference
    mode, so that a loss can train through a band first made for a metric: on a GPU each of the operations
    that build it is a launch, and VIF's loss used to build 22 bands per step, one assignment per tap."""
    with torch.inference_mode(False):
        g = _fspecial_gaussian_1d(size, sigma, device).to(dtype)
        tap = torch.arange((block - 1) * step + size, device=device)[:, None]
        tap = tap - torch.arange(block, device=device) * step
        return torch.where((tap >= 0) & (tap < size), g[tap.clamp(0, size - 1)], 0)


def _fir_valid(x: Tensor, window: tuple[int, float], dim: int, step: int) -> Tensor:
    """'valid' correlation of x with the Gaussian taps of ``window`` (size, sigma) along ``dim`` (-1 or -2),
    keeping every ``step``-th output.

    Outputs are made ``FIR_BLOCK`` at a time, each block as one matrix product of a slice of x with a small
    banded matrix (``_gaussian_band``). The slices are views, so there is no im2col copy: several times faster
    than float64 ``conv2d`` on CPU, and plain batched GEMMs on CUDA.
    """
    k, n = window[0], x.shape[dim]
    out_len = (n - k) // step + 1
    block = min(FIR_BLOCK, out_len)
    band = _gaussian_band(*window, step, block, x.dtype, x.device)
    pieces = []
    for start in range(0, out_len, block):
        m = min(block, out_len - start)
        rows = (m - 1) * step + k
        seg = x.narrow(dim, start * step, rows)
        taps = band[:rows, :m]
        pieces.append(seg @ taps if dim == -1 else taps.T @ seg)
    return torch.cat(pieces, dim)


def _filter_valid(x: Tensor, window: tuple[int, float], step: int = 1) -> Tensor:
    """``filter2(fspecial('gaussian', size, sigma), x, 'valid')`` for ``window`` (size, sigma) on every plane of x
    (..., H, W), then ``(1:step:end, 1:step:end)``."""
    return _fir_valid(_fir_valid(x, window, -2, step), window, -1, step)


CPU_CHUNK_PIXELS = 10_000


def _chunked_sums(fn: Callable[..., tuple[Tensor, ...]], *maps: Tensor, halo: int = 0) -> tuple[Tensor, ...]:
    """Sum the per-image sums that ``fn`` returns over row bands of ``maps`` (all (..., H + 2 halo, W)).

    Each band covers ``rows`` output rows and reaches ``halo`` rows beyond them on both sides, for a
    ``fn`` that filters with a (2 halo + 1)-row window. The long per-pixel chains of VIF, Qabf, Nabf and
    SSIM are memory-bound: on CPU, bands of about ``CPU_CHUNK_PIXELS`` pixels keep their temporaries in
    cache (about 1.7x faster); CUDA takes the whole image at once.
    """
    h, w = maps[0].shape[-2] - 2 * halo, maps[0].shape[-1]
    rows = h if maps[0].device.type == "cuda" else max(1, CPU_CHUNK_PIXELS // w)
    parts = [fn(*(m[..., r : r + rows + 2 * halo, :] for m in maps)) for r in range(0, h, rows)]
    return tuple(torch.stack(p).sum(0) for p in zip(*parts, strict=True))


def _check_min_size(x: Tensor, minimum: int, metric: str) -> None:
    if min(x.shape[-2:]) < minimum:
        raise TaskfuseError(
            f"{metric} needs images of at least {minimum}x{minimum} pixels (its multi-scale windows), got "
            f"{tuple(x.shape[-2:])}; leave {metric} out of the metric list for images this small"
        )


def _vif_terms(mu: Tensor, stats: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image sums of the VIF numerator and denominator terms of one scale, clipped as ``vifp_mscale.m``.

    ``mu`` holds the local means of (IR, VI, F), ``stats`` those of (IR^2, VI^2, F^2, IR F, VI F).
    """
    mu1, mu2 = mu[:, :2], mu[:, 2:]
    s1 = (stats[:, :2] - mu1 * mu1).clamp(min=0)
    s2 = (stats[:, 2:3] - mu2 * mu2).clamp(min=0).expand_as(s1)
    s12 = stats[:, 3:] - mu1 * mu2
    gain = s12 / (s1 + 1e-10)
    sv = s2 - gain * s12
    low1 = s1 < 1e-10
    gain = torch.where(low1, 0.0, gain)
    sv = torch.where(low1, s2, sv)
    s1 = torch.where(low1, 0.0, s1)
    low2 = s2 < 1e-10
    gain = torch.where(low2, 0.0, gain)
    sv = torch.where(low2, 0.0, sv)
    neg = gain < 0
    sv = torch.where(neg, s2, sv)
    gain = torch.where(neg, 0.0, gain)
    sv = sv.clamp(min=1e-10)
    num = torch.log10(1 + gain * gain * s1 / (sv + 2)).sum((-2, -1))
    return num, torch.log10(1 + s1 / 2).sum((-2, -1))


@fusion_metric("VIF")
def vif(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """Visual information fidelity VIF = vifp(IR, F) + vifp(VI, F), pixel-domain, 4 scales, sigma_n^2 = 2.

    Reference: ``vifp_mscale.m`` (Sheikh and Bovik, LIVE, 2005) called as in ``analysis_Reference.m`` with
    the uint8 images. Per scale s = 1..4 the window is ``fspecial('gaussian', N, N/5)``, N = 2^(5-s) + 1;
    scales > 1 first filter 'valid' and keep every second row and column; every statistic is a 'valid'
    ``filter2``. With g = s12 / s1 and sv = s2 - g s12 (clipped as in the script),
    vifp = sum_s sum log10(1 + g^2 s1 / (sv + 2)) / sum_s sum log10(1 + s1 / 2).
    Because the script receives uint8 images, at the first scale ``ref.*ref``, ``dist.*dist`` and
    ``ref.*dist`` are uint8 products that saturate at 255; that is what produces the published numbers and
    is reproduced here. Images must be at least 41x41.
    """
    return vif_sources(fused, ir, vi).sum(1)


@fusion_metric("VIF_ir")
def vif_ir(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """vifp(IR, F), the infrared half of VIF."""
    return vif_sources(fused, ir, vi)[:, 0]


@fusion_metric("VIF_vi")
def vif_vi(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """vifp(VI, F), the visible half of VIF: how much of the visible image's information the fused one keeps."""
    return vif_sources(fused, ir, vi)[:, 1]


@_shared
def vif_sources(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """(B, 2): vifp(IR, F) and vifp(VI, F) as ``vif`` computes them."""
    f, a, b = _levels(fused, ir, vi, sources=True)
    _check_min_size(f, VIF_MIN_SIZE, "VIF")
    return vifp_levels(a, b, f, saturate=True)


def vifp_levels(ir: Tensor, vi: Tensor, fused: Tensor, saturate: bool = False) -> Tensor:
    """(B, 2): vifp(IR, F) and vifp(VI, F) of (B, H, W) gray levels 0..255, differentiable in every input.

    The computation of ``vif``; ``saturate`` applies the script's uint8 product saturation at the first scale
    (the metric), without it this is Sheikh and Bovik's pixel-domain VIF (what ``losses.fusion_terms.vif_loss``
    trains on). Images must be at least 41x41.
    """
    x = torch.stack((ir, vi, fused), 1)
    num = torch.zeros(x.shape[0], 2, dtype=x.dtype, device=x.device)
    den = torch.zeros_like(num)
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        window = (n, n / 5)
        if scale > 1:
            x = _filter_valid(x, window, step=2)
        refs, dist = x[:, :2], x[:, 2:]
        products = torch.cat((refs * refs, dist * dist, refs * dist), 1)
        if saturate and scale == 1:
            products = products.clamp(max=255)
        mu = _filter_valid(x, window)
        stats = _filter_valid(products, window)
        scale_num, scale_den = _chunked_sums(_vif_terms, mu, stats)
        num, den = num + scale_num, den + scale_den
    return num / den


def _conv2_octave(xp: Tensor, kernel: tuple[tuple[float, ...], ...]) -> Tensor:
    """``conv2(x, kernel, 'same')`` for xp = x zero-padded by half the kernel, summed in Octave's order.

    Octave accumulates the full convolution kernel column by kernel column, top to bottom within a column
    (``dconv2o``; of the eight orders tried, the only one that reproduces the reference Qabf to 1e-15,
    the others and exact integer sums are off by up to 1e-3). Qabf tests ``SAx == 0`` and ``gA == gF``
    exactly, so the same order of float additions is kept here to get the same zeros and ties. Zero taps
    are skipped (adding 0 changes no nonzero value) and the integer taps make every product exact, so
    ``add(alpha=tap)`` gives the same sums with or without FMA.
    """
    kh, kw = len(kernel), len(kernel[0])
    h, w = xp.shape[-2] - kh + 1, xp.shape[-1] - kw + 1
    out = None
    for j in range(kw):
        for i in range(kh):
            if kernel[i][j] != 0:
                tap = xp[..., kh - 1 - i : kh - 1 - i + h, kw - 1 - j : kw - 1 - j + w]
                out = tap * kernel[i][j] if out is None else out.add(tap, alpha=kernel[i][j])
    return out


QABF_H1 = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))
QABF_H3 = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))


def _qabf_terms(xp: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image sums of Q_XF gX (X = IR, VI) and of gX over a band of zero-padded (IR, VI, F)."""
    sx = _conv2_octave(xp, QABF_H3)
    sy = _conv2_octave(xp, QABF_H1)
    g = _sqrt_rn(sx * sx + sy * sy)
    alpha = torch.where(sx == 0, math.pi / 2, torch.atan(sy / sx))
    g_src, g_f = g[:, :2], g[:, 2:]
    a_src, a_f = alpha[:, :2], alpha[:, 2:]
    ratio = torch.where(g_src > g_f, g_f / g_src, torch.where(g_src == g_f, g_f, g_src / g_f))
    ang = 1 - (a_src - a_f).abs() / (math.pi / 2)
    q = 0.9994 / (1 + torch.exp(-15 * (ratio - 0.5))) * (0.9879 / (1 + torch.exp(-22 * (ang - 0.8))))
    return (q * g_src).sum((1, 2, 3)), g_src.sum((1, 2, 3))


@fusion_metric("Qabf")
def qabf(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """Edge-information transfer Q^{AB/F} (Xydeas and Petrovic, Electron. Lett. 36(4), 2000).

    Reference: ``analysis_Qabf.m`` (edit by Richang Hong, 2007) on ``im2double`` images. Sobel responses
    SX = conv2(I, h3, 'same'), SY = conv2(I, h1, 'same') (zero borders); g = sqrt(SX^2 + SY^2) and
    alpha = atan(SY / SX), or pi/2 where SX == 0. For A in {IR, VI}: G = gF/gA if gA > gF, gA/gF if
    gA < gF and, as written in the script, gF (not 1) if gA == gF; Aang = 1 - |alpha_A - alpha_F| / (pi/2);
    Q_AF = 0.9994 / (1 + exp(-15 (G - 0.5))) * 0.9879 / (1 + exp(-22 (Aang - 0.8))), and
    Qabf = sum(Q_AF gA + Q_BF gB) / sum(gA + gB). The equality and zero tests make the value depend on
    the exact float sums, so the convolution follows Octave's summation order (``_conv2_octave``).
    """
    f, a, b = _levels(fused, ir, vi, sources=True, unit=True)
    xp = F.pad(torch.stack((a, b, f), 1), (1, 1, 1, 1))
    num, den = _chunked_sums(_qabf_terms, xp, halo=1)
    return num / den


def _sobel_nabf(xp: Tensor) -> tuple[Tensor, Tensor]:
    """``sobel_fn.m`` on xp, the image extended by one pixel on each side: (gv, gh).

    Kernels [-1 0 1; -2 0 2; -1 0 1] / 8 and [-1 -2 -1; 0 0 0; 1 2 1] / 8. The script sums each 3x3
    product with ``sum(sum(.))``: down each column, then across the columns. Scaling by 1/8 and 2 is
    exact, so gv = (right column sum) - (left column sum) and gh = ((c0 + c1) + c2) with
    c_j = w_j (bottom_j - top_j) reproduce those sums bit for bit.
    """
    xp = xp / 8
    h, w = xp.shape[-2] - 2, xp.shape[-1] - 2

    def at(i: int, j: int) -> Tensor:
        return xp[..., i : i + h, j : j + w]

    left = (at(0, 0) + 2 * at(1, 0)) + at(2, 0)
    right = (at(0, 2) + 2 * at(1, 2)) + at(2, 2)
    gh = ((at(2, 0) - at(0, 0)) + 2 * (at(2, 1) - at(0, 1))) + (at(2, 2) - at(0, 2))
    return right - left, gh


def _nabf_terms(xp: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image sums of the artifact term and of the weights of ``analysis_nabf.m`` over a band.

    xp is (IR, VI, F) extended by ``per_extn_im_fn.m`` (mirror without repeating the edge, torch 'reflect').
    """
    gv, gh = _sobel_nabf(xp)
    g = _sqrt_rn(gh * gh + gv * gv)
    alpha = torch.where((gv == 0) & (gh == 0), 0.0, torch.atan(gv / gh))
    g_src, g_f = g[:, :2], g[:, 2:]
    ratio = torch.where((g_src == 0) | (g_f == 0), 0.0, torch.where(g_src > g_f, g_f / g_src, g_src / g_f))
    ang = ((alpha[:, :2] - alpha[:, 2:]).abs() - math.pi / 2).abs() * 2 / math.pi
    qg = 0.9999 / (1 + torch.exp(-19 * (ratio - 0.5)))
    qa = 0.9995 / (1 + torch.exp(-22 * (ang - 0.5)))
    q = torch.sqrt(qg * qa)
    wt = torch.where(g_src >= 2, g_src.pow(1.5), 0.001)
    artifact = ((g_f > g_src[:, :1]) & (g_f > g_src[:, 1:])).double()
    return (artifact * ((1 - q) * wt).sum(1, keepdim=True)).sum((1, 2, 3)), wt.sum((1, 2, 3))


@fusion_metric("Nabf", higher_is_better=False)
def nabf(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """Modified fusion-artifact measure N^{AB/F} of B. K. Shreyamsha Kumar (SIViP 2013), lower is better.

    Reference: ``analysis_nabf.m`` (with ``sobel_fn.m`` and ``per_extn_im_fn.m``), called in the
    ``easy == 0`` branch of ``analysis_Reference.m`` as ``analysis_nabf(image_fused, image1, image2)`` on
    ``im2double`` images. With Petrovic's parameters (Td = 2, wt_min = 0.001, L = 1.5, Nrg = 0.9999,
    kg = 19, sigma_g = 0.5, Nra = 0.9995, ka = 22, sigma_a = 0.5):
    Q_AF = sqrt(Qg Qa), Qg = Nrg / (1 + exp(-kg (gAF - 0.5))), Qa = Nra / (1 + exp(-ka (aAF - 0.5))),
    gAF the min/max ratio of edge strengths (0 where either is 0), aAF = ||alpha_A - alpha_F| - pi/2| 2/pi;
    weights w_A = gA^1.5 where gA >= Td else wt_min; artifacts where gF > gA and gF > gB:
    Nabf = sum(na ((1 - Q_AF) w_A + (1 - Q_BF) w_B)) / sum(w_A + w_B).
    On [0, 1] images the Sobel/8 strength never reaches Td = 2, so every weight is wt_min and Nabf is the
    plain mean of the artifact term; that is how the reference scores it, and it is kept.
    """
    f, a, b = _levels(fused, ir, vi, sources=True, unit=True)
    xp = F.pad(torch.stack((a, b, f), 1), (1, 1, 1, 1), mode="reflect")
    num, den = _chunked_sums(_nabf_terms, xp, halo=1)
    return num / den


def _ssim_inputs(x: Tensor, y: Tensor) -> Tensor:
    """(x, y, x^2, y^2, x y) stacked on channels for x (B, N, H, W) and y (B, 1, H, W), to be blurred."""
    return torch.cat((x, y, x * x, y * y, x * y), 1)


def _ssim_terms(stats: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image sums (B, N) of the SSIM map and of its contrast-structure part, K = (0.01, 0.03), L = 255.

    ``stats`` are the local means of ``_ssim_inputs`` (3N + 2 channels).
    """
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    n = (stats.shape[1] - 2) // 3
    mx, my = stats[:, :n], stats[:, n : n + 1]
    sxx = stats[:, n + 1 : 2 * n + 1] - mx * mx
    syy = stats[:, 2 * n + 1 : 2 * n + 2] - my * my
    sxy = stats[:, 2 * n + 2 :] - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    lum = (2 * mx * my + c1) / (mx * mx + my * my + c1)
    return (lum * cs).sum((-2, -1)), cs.sum((-2, -1))


@fusion_metric("SSIM")
def ssim(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """SSIM = SSIM(F, IR) + SSIM(F, VI), each the mean of MATLAB ``ssim``'s map with its defaults.

    Convention: the commented-out ``ssim(image_fused, image1)`` / ``ssim(image_fused, image2)`` lines of
    ``analysis_Reference.m``, summed over the two sources as fusion papers tabulate SSIM (values near
    1-1.5). MATLAB ``ssim`` defaults: Gaussian window 11x11, sigma 1.5 (``fspecial``), K = (0.01, 0.03),
    dynamic range 1 on ``im2double`` images (identical to L = 255 on levels), exponents 1, replicate
    borders, same-size map (Wang et al., IEEE TIP 13(4), 2004).
    """
    return ssim_sources(fused, ir, vi).sum(1)


@fusion_metric("SSIM_ir")
def ssim_ir(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """SSIM(F, IR), the infrared half of SSIM."""
    return ssim_sources(fused, ir, vi)[:, 0]


@fusion_metric("SSIM_vi")
def ssim_vi(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """SSIM(F, VI), the visible half of SSIM."""
    return ssim_sources(fused, ir, vi)[:, 1]


@_shared
def ssim_sources(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """(B, 2): SSIM(F, IR) and SSIM(F, VI) as ``ssim`` computes them."""
    f, a, b = _levels(fused, ir, vi, sources=True)
    padded = F.pad(torch.stack((a, b, f), 1), (5, 5, 5, 5), mode="replicate")
    stats = _filter_valid(_ssim_inputs(padded[:, :2], padded[:, 2:]), SSIM_WINDOW)
    ssim_sum, _ = _chunked_sums(_ssim_terms, stats)
    return ssim_sum / f[0].numel()


@fusion_metric("MS-SSIM")
def ms_ssim(fused: Tensor, ir: Tensor, vi: Tensor) -> Tensor:
    """Multi-scale SSIM (Wang, Simoncelli and Bovik, Asilomar 2003) summed over the sources like SSIM.

    MS-SSIM(X, F) = prod_{j<5} mean(cs_j)^w_j * mean(l_5 cs_5)^w_5 with w = (0.0448, 0.2856, 0.3001,
    0.2363, 0.1333), the 11x11 sigma 1.5 Gaussian window applied 'valid', K = (0.01, 0.03), L = 255 on
    levels, and between scales a 2x2 mean (``imfilter(ones(2)/4, 'symmetric')``) keeping every second pixel,
    as in Wang's ``msssim.m``. Negative scale means (where MATLAB would return a complex number) are clamped
    to 0. Result: MS-SSIM(IR, F) + MS-SSIM(VI, F). Images must be at least 161x161 (five scales).
    """
    f, a, b = _levels(fused, ir, vi, sources=True)
    _check_min_size(f, MS_SSIM_MIN_SIZE, "MS-SSIM")
    x, y = torch.stack((a, b), 1), f[:, None]
    score = torch.ones(f.shape[0], 2, dtype=torch.float64, device=f.device)
    last = len(MS_SSIM_WEIGHTS) - 1
    for level, weight in enumerate(MS_SSIM_WEIGHTS):
        stats = _filter_valid(_ssim_inputs(x, y), SSIM_WINDOW)
        ssim_sum, cs_sum = _chunked_sums(_ssim_terms, stats)
        mean = (ssim_sum if level == last else cs_sum) / stats[0, 0].numel()
        score = score * mean.clamp(min=0).pow(weight)
        if level < last:
            x, y = (F.avg_pool2d(F.pad(t, (0, 1, 0, 1), mode="replicate"), 2) for t in (x, y))
    return score.sum(1)
