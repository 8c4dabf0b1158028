"""Parameters and compute of every registered fusion method and segmenter at one input size (default 640 x 480).

Counts come from ``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device (shapes only, nothing is
computed, so even the large networks take a second). FlopCounterMode counts 2 FLOPs per multiply-add; the
tables print GMACs, i.e. half of that, because the "GFLOPs" of most fusion and segmentation papers are thop
multiply-add counts. Attention runs through the math backend of ``scaled_dot_product_attention`` so that its
matrix products are counted; batched matrix products (``bmm``, attention) are also shown on their own, since
thop's module hooks do not see functional matrix products and papers' figures usually leave them out. Only
convolutions and matrix products are counted, not normalisation, activations or interpolation, which thop
adds as a small share.

    python scripts/model_complexity.py [--height 480 --width 640 --classes 9]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from taskfuse import models
from taskfuse.tasks import segmentation


def measure(build: Callable[[], nn.Module], shapes: Sequence[tuple[int, ...]]) -> tuple[float, float, float]:
    """(parameters in M, GMACs, of which bmm GMACs) of one eval-mode forward on zero inputs."""
    with torch.device("meta"):
        model = build().eval()
        inputs = [torch.zeros(s) for s in shapes]
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(*inputs)
    counts = counter.get_flop_counts().get("Global", {})
    bmm = sum(v for k, v in counts.items() if str(k) == "aten.bmm")
    params = sum(p.numel() for p in model.parameters())
    return params / 1e6, counter.get_total_flops() / 2e9, bmm / 2e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--classes", type=int, default=9, help="segmentation classes (9: MSRS / MFNet)")
    args = parser.parse_args()
    h, w = args.height, args.width
    pair, image = ((1, 1, h, w), (1, 3, h, w)), ((1, 3, h, w),)
    jobs = [("fusion", n, partial(models.create, n), pair) for n in models.names()]
    jobs += [
        ("segmenter", n, partial(segmentation.create, n, num_classes=args.classes), image) for n in segmentation.names()
    ]

    print(f"input {w} x {h}; GMACs = multiply-adds / 1e9 (GFLOPs as thop reports them; FlopCounterMode FLOPs = 2 x)")
    print(f"{'kind':<10} {'name':<22} {'params (M)':>11} {'GMACs':>9} {'bmm GMACs':>11} {'GFLOPs (2/MAC)':>15}")
    for kind, name, build, shapes in jobs:
        try:
            params, gmacs, bmm = measure(build, shapes)
        except (RuntimeError, NotImplementedError, TypeError, ValueError) as e:
            print(f"{kind:<10} {name:<22} not measurable on the meta device: {type(e).__name__}: {e}")
            continue
        print(f"{kind:<10} {name:<22} {params:>11.3f} {gmacs:>9.2f} {bmm:>11.2f} {2 * gmacs:>15.2f}")


if __name__ == "__main__":
    main()
