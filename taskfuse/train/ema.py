"""Exponential moving average of a network's weights (Polyak averaging), used for validation and export.

After every optimisation step ``avg = decay * avg + (1 - decay) * w`` for floating-point parameters and
buffers; integer buffers (BatchNorm's batch counter) are copied. The average is a full copy of the network
in eval mode, so it runs and saves like the network itself.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, net: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        """One averaging step towards ``net``'s current weights, in a few multi-tensor kernels rather than one
        per tensor (a network of hundreds of small tensors would otherwise launch hundreds of kernels)."""
        current = net.state_dict()
        floats: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        others: tuple[list[torch.Tensor], list[torch.Tensor]] = ([], [])
        for name, avg in self.module.state_dict().items():
            pair = floats if avg.dtype.is_floating_point else others
            pair[0].append(avg)
            pair[1].append(current[name].detach().to(avg.dtype))
        if floats[0]:
            torch._foreach_lerp_(floats[0], floats[1], 1.0 - self.decay)
        if others[0]:
            torch._foreach_copy_(others[0], others[1])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
