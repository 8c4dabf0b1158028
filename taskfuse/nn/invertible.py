"""Affine coupling units (NICE/RealNVP, Dinh et al. 2015/2017) and a densely connected stack of them.

One coupling unit maps a pair of feature maps ``(a, b)`` to ``(a', b')`` with::

    a' = a + psi(b)
    b' = b * g(rho(a')) + phi(a')

where ``psi``, ``rho``, ``phi`` are small convolutional sub-networks and ``g`` keeps the scale positive, so the
unit is exactly invertible (``inverse``) and loses no information. Two methods build on it:

* MAFS (seed 002, eqs. 6-7, Fig. 3): ``(a, b)`` are the two halves of the fused feature map,
  ``g(s) = exp(s)`` and the sub-networks are conv + half-instance-norm blocks (``HalfInstanceSubnet``). The
  exponent is bounded as ``clamp * (2 sigmoid(s) - 1)`` (clamp 0.8), as in the authors' ``INN_block.py``, to
  keep training stable.
* FGFusion (seed 003, eq. 2, Fig. 4): ``a`` is the visible and ``b`` the infrared shallow feature,
  ``g = sigmoid`` and the sub-networks are residual blocks (ReB). Eq. 2 writes the infrared update with
  the visible input ``I_vi^s``; it is computed from the updated ``I_vi^s'`` here, which is what makes the
  unit invertible (the same ordering as eqs. 6-7).

``DenseCouplingStack`` chains units and concatenates the outputs of all of them ("dense connections link the
invertible units", MAFS Fig. 3; FGFusion's dense reconstruction module), fused by a 1 x 1 convolution.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor, nn

Subnet = Callable[[int, int], nn.Module]


class HalfInstanceBlock(nn.Module):
    """Two 3 x 3 convs with LeakyReLU(0.1); instance norm on half the channels after the first (HINet,
    Chen et al. 2021), plus a 1 x 1 identity projection. MAFS's scale and reverse functions (Fig. 3)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm = nn.InstanceNorm2d(cout // 2, affine=True) if cout >= 2 else None
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.act = nn.LeakyReLU(0.1)
        self.identity = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        if self.norm is not None:
            half = out.shape[1] // 2
            out = torch.cat((self.norm(out[:, :half]), out[:, half:]), 1)
        out = self.act(self.conv2(self.act(out)))
        return out + self.identity(x)


class HalfInstanceSubnet(nn.Module):
    """Two half-instance-norm blocks through ``hidden`` channels, each followed by LeakyReLU(0.2): the
    sub-network of MAFS's invertible units (the ``DenseBlock`` of the authors' ``INN_block.py``, gc = 16)."""

    def __init__(self, cin: int, cout: int, hidden: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(
            HalfInstanceBlock(cin, hidden), nn.LeakyReLU(0.2), HalfInstanceBlock(hidden, cout), nn.LeakyReLU(0.2)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class ResidualBlock(nn.Module):
    """3 x 3 conv, ReLU, 3 x 3 conv, plus a 1 x 1 projection of the input (FGFusion's ReB, eq. 2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, padding=1)
        )
        self.identity = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.identity(x)


class CouplingBlock(nn.Module):
    """One invertible coupling unit on ``(a, b)`` with ``a_channels`` and ``b_channels`` channels.

    ``scale="exp"`` is the RealNVP form ``exp(clamp * (2 sigmoid(s) - 1))`` (MAFS); ``scale="sigmoid"`` is
    FGFusion's gate ``sigmoid(s)``. Both are strictly positive, so ``inverse(*forward(a, b)) == (a, b)``.
    """

    def __init__(
        self,
        a_channels: int,
        b_channels: int,
        subnet: Subnet = HalfInstanceBlock,
        scale: Literal["exp", "sigmoid"] = "exp",
        clamp: float = 0.8,
    ) -> None:
        super().__init__()
        if scale not in ("exp", "sigmoid"):
            raise ValueError(f"CouplingBlock: scale must be 'exp' or 'sigmoid', got {scale!r}")
        self.psi = subnet(b_channels, a_channels)
        self.rho = subnet(a_channels, b_channels)
        self.phi = subnet(a_channels, b_channels)
        self.scale = scale
        self.clamp = clamp

    def _gain(self, a: Tensor) -> Tensor:
        s = self.rho(a)
        if self.scale == "exp":
            return torch.exp(self.clamp * (2 * torch.sigmoid(s) - 1))
        return torch.sigmoid(s)

    def forward(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        a = a + self.psi(b)
        return a, b * self._gain(a) + self.phi(a)

    def inverse(self, a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
        b = (b - self.phi(a)) / self._gain(a)
        return a - self.psi(b), b


class DenseCouplingStack(nn.Module):
    """``num_blocks`` coupling units in sequence; the outputs ``[a_i, b_i]`` of every unit are concatenated
    and a 1 x 1 convolution maps them to ``out_channels``."""

    def __init__(
        self,
        a_channels: int,
        b_channels: int,
        out_channels: int,
        num_blocks: int = 3,
        subnet: Subnet = HalfInstanceBlock,
        scale: Literal["exp", "sigmoid"] = "exp",
        clamp: float = 0.8,
    ) -> None:
        super().__init__()
        if num_blocks < 1:
            raise ValueError(f"DenseCouplingStack: num_blocks must be at least 1, got {num_blocks}")
        self.blocks = nn.ModuleList(
            CouplingBlock(a_channels, b_channels, subnet, scale, clamp) for _ in range(num_blocks)
        )
        self.fuse = nn.Conv2d(num_blocks * (a_channels + b_channels), out_channels, 1)

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        outs = []
        for block in self.blocks:
            a, b = block(a, b)
            outs.extend((a, b))
        return self.fuse(torch.cat(outs, 1))
