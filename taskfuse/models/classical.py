"""Classical (non-learned) fusion rules that papers compare against, registered like the learned methods.

All operate on luminance: IR and VIS Y in [0, 1], batched, on any device; colour comes back through
``taskfuse.data.color.recombine`` like every other method.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.models.spec import MethodSpec, register


class MeanFusion(FusionModel):
    """Pixel average ``(IR + VIS) / 2``."""

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        return FusionOutput((ir + vi) / 2)


class MaxFusion(FusionModel):
    """Pixel maximum ``max(IR, VIS)``, the target of the max-selection intensity losses."""

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        return FusionOutput(torch.maximum(ir, vi))


def _binomial(x: Tensor, gain: float = 1.0) -> Tensor:
    """Separable 5-tap binomial blur [1 4 6 4 1] / 16 (Burt & Adelson 1983) with reflected borders.

    The taps are summed as shifted copies, in one fixed order for every pixel: a depthwise convolution lets
    the backend pick its summation order by batch size (on the CPU, batches of 1 and 8 differed in the last
    bit, enough to move a few pixels by one grey level), so an image's result would depend on its batch.
    """
    k = [v / 16.0 * gain**0.5 for v in (1.0, 4.0, 6.0, 4.0, 1.0)]
    h, w = x.shape[-2:]
    x = F.pad(x, (2, 2, 2, 2), mode="reflect" if min(h, w) > 2 else "replicate")
    rows = k[0] * x[..., 0:w] + k[1] * x[..., 1 : w + 1] + k[2] * x[..., 2 : w + 2]
    rows = rows + k[3] * x[..., 3 : w + 3] + k[4] * x[..., 4 : w + 4]
    out = k[0] * rows[..., 0:h, :] + k[1] * rows[..., 1 : h + 1, :] + k[2] * rows[..., 2 : h + 2, :]
    return out + k[3] * rows[..., 3 : h + 3, :] + k[4] * rows[..., 4 : h + 4, :]


def _reduce(x: Tensor) -> Tensor:
    return _binomial(x)[..., ::2, ::2]


def _expand(x: Tensor, size: tuple[int, int]) -> Tensor:
    up = torch.zeros(*x.shape[:2], 2 * x.shape[-2], 2 * x.shape[-1], dtype=x.dtype, device=x.device)
    up[..., ::2, ::2] = x
    return _binomial(up, gain=4.0)[..., : size[0], : size[1]]


def laplacian_pyramid(x: Tensor, levels: int) -> list[Tensor]:
    """Band-pass levels L_0..L_{n-2} and the low-pass residual G_{n-1} as the last entry."""
    pyr = []
    for _ in range(levels - 1):
        low = _reduce(x)
        pyr.append(x - _expand(low, x.shape[-2:]))
        x = low
    pyr.append(x)
    return pyr


def reconstruct(pyr: list[Tensor]) -> Tensor:
    """Inverse of ``laplacian_pyramid``: exact up to float rounding."""
    x = pyr[-1]
    for band in reversed(pyr[:-1]):
        x = band + _expand(x, band.shape[-2:])
    return x


class LaplacianPyramidFusion(FusionModel):
    """Laplacian-pyramid fusion (Burt & Adelson 1985; Toet 1989 for IR/VIS).

    Band-pass levels take the coefficient of larger magnitude (choose-max), the low-pass residual is averaged.
    ``levels`` is capped so the coarsest level keeps at least 4 pixels per side.
    """

    def __init__(self, levels: int = 5) -> None:
        super().__init__()
        self.levels = levels

    @property
    def context(self) -> tuple[int, int]:
        """Level l+1 blurs level l with a 5-tap kernel (radius 2 * 2^l input pixels) and expanding back blurs
        again, so the output depends on input within 4 * 2^(n-1) - 4 pixels (60 for n = 5); the pyramid
        subsamples from pixel 0, so tiles align to 2^(n-1)."""
        return 4 * 2 ** (self.levels - 1) - 4, 2 ** (self.levels - 1)

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        n = max(1, min(self.levels, int(torch.log2(torch.tensor(min(ir.shape[-2:]) / 4.0)).floor()) + 1))
        pa, pb = laplacian_pyramid(ir, n), laplacian_pyramid(vi, n)
        fused = [torch.where(a.abs() >= b.abs(), a, b) for a, b in zip(pa[:-1], pb[:-1], strict=True)]
        fused.append((pa[-1] + pb[-1]) / 2)
        return FusionOutput(reconstruct(fused).clamp(0, 1))


def box_filter(x: Tensor, r: int) -> Tensor:
    """Mean over the (2r+1)^2 window around each pixel, windows clipped at the border (He et al. 2013).

    Computed from integral images, so the cost does not depend on ``r``.
    """
    h, w = x.shape[-2:]
    dt = torch.float64 if x.dtype != torch.float64 else x.dtype
    s = F.pad(x.to(dt).cumsum(-2).cumsum(-1), (1, 0, 1, 0))
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    y0, y1 = (ys - r).clamp(0, h), (ys + r + 1).clamp(0, h)
    x0, x1 = (xs - r).clamp(0, w), (xs + r + 1).clamp(0, w)
    rows = s[..., y1, :] - s[..., y0, :]
    win = rows[..., x1] - rows[..., x0]
    count = (y1 - y0).to(dt).view(-1, 1) * (x1 - x0).to(dt).view(1, -1)
    return (win / count).to(x.dtype)


def guided_filter(p: Tensor, guide: Tensor, r: int, eps: float) -> Tensor:
    """Gray-guide guided filter (He, Sun & Tang 2013, Algorithm 1): q = mean(a) I + mean(b)."""
    mean_i = box_filter(guide, r)
    mean_p = box_filter(p, r)
    cov_ip = box_filter(guide * p, r) - mean_i * mean_p
    var_i = box_filter(guide * guide, r) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, r) * guide + box_filter(b, r)


class GuidedFilterFusion(FusionModel):
    """Guided filtering based fusion, GFF (Li, Kang & Hu, IEEE TIP 2013), with the paper's parameters.

    1. Two-scale decomposition: base B = mean filter (31x31) of each source, detail D = I - B.
    2. Saliency S = |Laplacian(I)| smoothed by a Gaussian (11x11, sigma 5); binary weight P_n = 1 where source
       n is the most salient.
    3. Weights refined by guided filtering with the source as guide: W^B = G(P, I; r1=45, eps1=0.3),
       W^D = G(P, I; r2=7, eps2=1e-6), normalised to sum to one per pixel.
    4. F = sum_n W^B_n B_n + W^D_n D_n.

    Borders: the mean and guided filters average over windows clipped at the image edge; the Laplacian and
    Gaussian replicate the edge.
    """

    def __init__(self, r1: int = 45, eps1: float = 0.3, r2: int = 7, eps2: float = 1e-6) -> None:
        super().__init__()
        self.r1, self.eps1, self.r2, self.eps2 = r1, eps1, r2, eps2

    @property
    def context(self) -> tuple[int, int]:
        """The base weights W^B = G(P, I; r1) filter the saliency masks (3 x 3 Laplacian and 11 x 11 Gaussian:
        radius 6) with two box filters of radius r1 (a, b, then their means): 2 r1 + 6 pixels (96 with the
        paper's r1 = 45); the detail weights need 2 r2 + 6, the base layer 15."""
        return max(2 * self.r1 + 6, 2 * self.r2 + 6, 15), self.stride

    @staticmethod
    def _saliency(x: Tensor) -> Tensor:
        lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=x.dtype, device=x.device)
        h = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), lap.view(1, 1, 3, 3)).abs()
        t = torch.arange(-5, 6, dtype=x.dtype, device=x.device)
        g = torch.exp(-(t**2) / (2 * 5.0**2))
        g = g / g.sum()
        h = F.conv2d(F.pad(h, (5, 5, 0, 0), mode="replicate"), g.view(1, 1, 1, 11))
        return F.conv2d(F.pad(h, (0, 0, 5, 5), mode="replicate"), g.view(1, 1, 11, 1))

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        srcs = (ir.double(), vi.double())
        bases = [box_filter(s, 15) for s in srcs]
        details = [s - b for s, b in zip(srcs, bases, strict=True)]
        s_ir, s_vi = (self._saliency(s) for s in srcs)
        masks = ((s_ir >= s_vi).double(), (s_ir < s_vi).double())
        wb = [guided_filter(m, s, self.r1, self.eps1) for m, s in zip(masks, srcs, strict=True)]
        wd = [guided_filter(m, s, self.r2, self.eps2) for m, s in zip(masks, srcs, strict=True)]
        eps = 1e-12
        sb, sd = wb[0] + wb[1] + eps, wd[0] + wd[1] + eps
        fused = sum(w / sb * b for w, b in zip(wb, bases, strict=True)) + sum(
            w / sd * d for w, d in zip(wd, details, strict=True)
        )
        return FusionOutput(fused.clamp(0, 1).to(ir.dtype))


for _name, _network in (
    ("mean", MeanFusion),
    ("max", MaxFusion),
    ("laplacian", LaplacianPyramidFusion),
    ("gff", GuidedFilterFusion),
):
    register(MethodSpec(name=_name, network=_network, source="classical rule"))
