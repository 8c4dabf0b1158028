"""Convolution building blocks shared by the fusion networks."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.nn.resample import replicate_pad


def make_act(name: str | None) -> nn.Module:
    """Activation by name: relu, lrelu (slope 0.2, as in SeAFusion/PSFusion), gelu, tanh, sigmoid, or None."""
    acts = {
        "relu": lambda: nn.ReLU(inplace=True),
        "lrelu": lambda: nn.LeakyReLU(0.2, inplace=True),
        "gelu": nn.GELU,
        "tanh": nn.Tanh,
        "sigmoid": nn.Sigmoid,
        None: nn.Identity,
    }
    if name not in acts:
        raise ValueError(f"unknown activation {name!r}; use one of {[k for k in acts if k]}")
    return acts[name]()


class ReplicateConv2d(nn.Conv2d):
    """``nn.Conv2d`` with ``padding_mode="replicate"``, its padding done by ``replicate_pad`` (the same values;
    a compiled backward that works on torch 2.13). The parameters and their names are ``nn.Conv2d``'s."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "padding_mode": "replicate"})

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        padded = replicate_pad(input, tuple(self._reversed_padding_repeated_twice))
        return F.conv2d(padded, weight, bias, self.stride, 0, self.dilation, self.groups)


class ConvBNAct(nn.Sequential):
    """k x k convolution (same padding: ``padding_mode`` zeros, or replicate/reflect to keep borders free of
    the bright or dark rims zero padding teaches a network), optional BatchNorm, activation."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 3,
        stride: int = 1,
        act: str | None = "relu",
        bn: bool = True,
        dilation: int = 1,
        groups: int = 1,
        padding_mode: str = "zeros",
    ) -> None:
        pad = dilation * (k // 2)
        if padding_mode == "replicate":
            conv = ReplicateConv2d(cin, cout, k, stride, pad, dilation, groups, bias=not bn)
        else:
            conv = nn.Conv2d(cin, cout, k, stride, pad, dilation, groups, bias=not bn, padding_mode=padding_mode)
        layers: list[nn.Module] = [conv]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(make_act(act))
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x)
