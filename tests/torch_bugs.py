"""PyTorch bugs of the machine a test runs on, probed in a process of their own, so that a test meeting one skips
with its name instead of crashing the whole run.

``strided_pointwise_backward_crashes``: with torch 2.13's CPU wheel on one AVX-512 machine (2 cores),
the backward pass of a 1 x 1 convolution of stride 2 on channels-last tensors crashed the process inside oneDNN
(a segfault; 3 x 3 of stride 2, 1 x 1 of stride 1 and the same convolution with oneDNN off did not). ResNet
blocks that downsample (FGFusion's backbones) hold such convolutions; so did the code torch.compile generated
for FGFusion's backward there.
"""

from __future__ import annotations

import functools
import subprocess
import sys

from torch import nn

PROBE = """
import torch
conv = torch.nn.Conv2d(8, 16, 1, stride=2, bias=False).to(memory_format=torch.channels_last)
x = torch.rand(2, 8, 64, 64).to(memory_format=torch.channels_last).requires_grad_()
for _ in range(20):
    conv(x).square().mean().backward()
"""


@functools.cache
def strided_pointwise_backward_crashes() -> bool:
    """Whether the probe above dies by a signal on this machine."""
    return subprocess.run([sys.executable, "-c", PROBE], capture_output=True).returncode < 0


def has_strided_pointwise(net: nn.Module) -> bool:
    """Whether ``net`` holds a 1 x 1 convolution of stride 2."""
    return any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) and m.stride == (2, 2) for m in net.modules())


REASON = "torch's oneDNN crashes on this CPU in a strided 1x1 convolution's backward (tests/torch_bugs.py)"
