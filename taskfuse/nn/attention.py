"""Channel and spatial attention (CBAM style, Woo et al. 2018) used across the methods."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def max_over(x: Tensor, dims: int | tuple[int, ...], keepdim: bool = False) -> Tensor:
    """``x.amax(dims, keepdim)``, with the gradient routed through the index of one maximum (``Tensor.max``).

    Under ``torch.compile`` with bf16 autocast, the backward of ``amax`` over a fused expression (the product of
    two feature maps, say) gave NaN gradients everywhere upstream (torch 2.11 on CUDA, 2.13 on the CPU; MAFS's
    multi-task training diverged from its second step, ``docs/training.md``). ``amax``'s backward divides by
    the number of elements equal to the maximum; presumably the compiled backward, recomputing its input at
    another precision than the forward's, finds none (the generated code was not read). ``Tensor.max`` keeps the
    index, so its backward compares nothing. The values are ``amax``'s; where elements tie for the maximum the
    gradient goes to one of them, where ``amax`` splits it among them.

        >>> x = torch.tensor([[[[1.0, 5.0], [3.0, 2.0]]]], requires_grad=True)
        >>> max_over(x, (2, 3)).sum().backward()
        >>> max_over(x, (2, 3)), x.grad.flatten().tolist()
        (tensor([[5.]], grad_fn=<MaxBackward0>), [0.0, 1.0, 0.0, 0.0])
    """
    dims = tuple(sorted(d % x.dim() for d in ((dims,) if isinstance(dims, int) else dims)))
    kept = [d for d in range(x.dim()) if d not in dims]
    out = x.permute(*kept, *dims).flatten(len(kept)).max(-1).values
    return out.reshape([1 if d in dims else n for d, n in enumerate(x.shape)]) if keepdim else out


class ChannelAttention(nn.Module):
    """Channel weights from global average and max pooling through a shared bottleneck MLP, then sigmoid.

    Returns the weights (B, C, 1, 1); multiply them onto the features where the method says.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: Tensor) -> Tensor:
        avg = self.mlp(x.mean((2, 3), keepdim=True))
        mx = self.mlp(max_over(x, (2, 3), keepdim=True))
        return torch.sigmoid(avg + mx)


class SpatialAttention(nn.Module):
    """A (B, 1, H, W) weight map from channel-wise mean and max through a k x k convolution and sigmoid."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.conv(torch.cat((x.mean(1, keepdim=True), max_over(x, 1, keepdim=True)), 1)))
