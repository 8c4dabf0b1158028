"""Depthwise convolutions kept in NCHW inside channels_last networks.

cuDNN's depthwise kernels for strips (1 x k, k x 1) took about twice as long on NHWC tensors as on NCHW ones for
SegNeXt-L's third stage on one H100 (`scripts/depthwise_speed.py`, docs/training.md), while its 3 x 3 and 5 x 5
kernels were faster on NHWC. Under ``torch.compile`` inductor lays every convolution out as NHWC once a graph
holds convolutions it deems suited (its "layout optimisation"), whatever the tensors' layout was; an operator it
treats as opaque (``taskfuse::conv2d_nchw``, with its backward ``taskfuse::conv2d_nchw_backward``) keeps one
convolution in NCHW there without turning that optimisation off for the whole graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def _nchw(t: Tensor) -> Tensor:
    """``t`` with NCHW strides, also where its strides are ambiguous: a (C, 1, 1, k) weight in channels_last passes
    ``is_contiguous()``, yet a convolution given it chooses NHWC (its output is NHWC, seen on the CPU)."""
    strides, step = [], 1
    for size in reversed(t.shape):
        strides.insert(0, step)
        step *= size
    return t if list(t.stride()) == strides else t.clone(memory_format=torch.contiguous_format)


def _conv2d(x: Tensor, weight: Tensor, bias: Tensor, padding: Sequence[int], groups: int) -> Tensor:
    return F.conv2d(_nchw(x), _nchw(weight), bias, padding=padding, groups=groups)


@torch.library.custom_op("taskfuse::conv2d_nchw", mutates_args=())
def conv2d_nchw(x: Tensor, weight: Tensor, bias: Tensor, padding: list[int], groups: int) -> Tensor:
    """``F.conv2d`` (stride 1) of ``x`` and ``weight`` laid out as NCHW; the result is NCHW. ``NCHWConv2d`` copies
    ``x`` to NCHW before the call, in the compiled graph, so the input saved for the backward pass is not copied
    again there."""
    return _conv2d(x, weight, bias, padding, groups)


@conv2d_nchw.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor, padding: list[int], groups: int) -> Tensor:
    n, _, h, w = x.shape
    kh, kw = weight.shape[-2:]
    return x.new_empty(n, weight.shape[0], h + 2 * padding[0] - kh + 1, w + 2 * padding[1] - kw + 1)


@torch.library.custom_op("taskfuse::conv2d_nchw_backward", mutates_args=())
def conv2d_nchw_backward(
    grad: Tensor, x: Tensor, weight: Tensor, padding: list[int], groups: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of ``conv2d_nchw`` to its input, weight and bias, computed in NCHW."""
    return torch.ops.aten.convolution_backward(
        _nchw(grad),
        _nchw(x),
        _nchw(weight),
        [weight.shape[0]],
        [1, 1],
        padding,
        [1, 1],
        False,
        [0, 0],
        groups,
        [True, True, True],
    )


@conv2d_nchw_backward.register_fake
def _(grad: Tensor, x: Tensor, weight: Tensor, padding: list[int], groups: int) -> tuple[Tensor, Tensor, Tensor]:
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format),
        weight.new_empty(weight.shape),
        grad.new_empty(weight.shape[0]),
    )


def _setup(ctx: torch.autograd.function.FunctionCtx, inputs: tuple, output: Tensor) -> None:
    x, weight, _, padding, groups = inputs
    ctx.save_for_backward(x, weight)
    ctx.padding, ctx.groups = padding, groups


def _backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> tuple[Tensor, Tensor, Tensor, None, None]:
    x, weight = ctx.saved_tensors
    return *conv2d_nchw_backward(grad, x, weight, ctx.padding, ctx.groups), None, None


conv2d_nchw.register_autograd(_backward, setup_context=_setup)


def autocast_inputs(*tensors: Tensor) -> tuple[Tensor, ...]:
    """``tensors`` in autocast's dtype where autocast is on for their device, as ``F.conv2d`` would take them:
    autocast does not see into ``conv2d_nchw``, which given a bf16 input and an fp32 weight would fail."""
    kind = tensors[0].device.type
    if not torch.is_autocast_enabled(kind):
        return tensors
    dtype = torch.get_autocast_dtype(kind)
    return tuple(t.to(dtype) for t in tensors)


class NCHWConv2d(nn.Conv2d):
    """``nn.Conv2d`` (stride 1, no dilation, a bias) whose convolution runs in NCHW on CUDA, whatever the layout of
    its input and weight; its output is NCHW there. Off CUDA it is ``nn.Conv2d``; the parameters and their names
    are the same everywhere."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain = self.stride == (1, 1) and self.dilation == (1, 1) and self.bias is not None
        if not plain or isinstance(self.padding, str) or self.padding_mode != "zeros":
            raise ValueError("NCHWConv2d takes stride 1, no dilation, a bias and zero padding given as numbers")

    def forward(self, x: Tensor) -> Tensor:
        if not x.is_cuda:
            return super().forward(x)
        if torch.compiler.is_compiling():
            x, weight, bias = autocast_inputs(x, self.weight, self.bias)
            return conv2d_nchw(x.contiguous(), weight, bias, list(self.padding), self.groups)
        return _conv2d(x, self.weight, self.bias, self.padding, self.groups)
