"""Depthwise convolutions of SegNeXt's MSCAN encoder, forward and backward, three ways: cuDNN (NCHW and NHWC),
PyTorch's own kernels (cuDNN off) and a compiled sum of the kernel's shifted taps (``taps``, which inductor fuses
into a few kernels of its own).

    python scripts/depthwise_speed.py --device cuda --out depthwise.json
    python scripts/depthwise_speed.py --device cpu --small --out /tmp/depthwise.json   # does it run?

Every depthwise convolution of an MSCAN block runs at its stage's width and stride for ``--batch`` crops of
``--crop`` pixels (bf16 on CUDA, float32 on the CPU): MSCA's 5 x 5 and its 1 x k / k x 1 strips (k = 7, 11, 21)
on the block's width, the FFN's 3 x 3 on its hidden width. Each is timed as one forward pass with the backward
pass to its input and weight: on CUDA the kernels' own time from ``torch.profiler`` (launch overheads left out,
as a CUDA graph leaves them), on the CPU the wall time. Each way's output is checked against cuDNN's (the
default). The table adds, per way, the time of one step of SegNeXt-``--size`` (every block's convolutions, by the
stage depths), the figure to set against the step's whole GPU time (docs/training.md); ``--stages`` times only
some stages.

``--msca`` times instead SegNeXt's whole MSCA module (``AttentionModule``) of each stage, compiled, in
channels_last, forward and backward to its input and weights: its strips as ``nn.Conv2d`` (which inductor lays
out as NHWC) and as shipped (``NCHWConv2d``, kept in NCHW), with the layout changes that brings. Its output is
checked against eager ``nn.Conv2d`` strips.

Results go to ``--out`` (JSON) and beside it as Markdown.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from taskfuse.metrics.table import markdown_table
from taskfuse.nn.depthwise import NCHWConv2d
from taskfuse.tasks.segmentation.segnext import MLP_RATIOS, MSCAN_SIZES, AttentionModule

STRIPS = (7, 11, 21)
KERNELS = ((5, 5), *((1, k) for k in STRIPS), *((k, 1) for k in STRIPS))
"""MSCA's depthwise kernels (on the block's width); the FFN adds a 3 x 3 on its hidden width."""
WAYS = ("cudnn-nchw", "cudnn-nhwc", "native-nchw", "native-nhwc", "taps-nhwc")
MSCA_WAYS = ("strips-nhwc", "strips-nchw")


def taps(x: Tensor, weight: Tensor) -> Tensor:
    """Depthwise convolution with 'same' zero padding as the sum over the kernel's taps of the padded input
    shifted by the tap, times the tap's weight per channel."""
    kh, kw = weight.shape[-2:]
    h, w = x.shape[-2:]
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2))
    return sum(
        padded[:, :, i : i + h, j : j + w] * weight[:, 0, i, j, None, None] for i in range(kh) for j in range(kw)
    )


def timed(step: Callable[[], None], device: torch.device, repeats: int) -> float:
    """Milliseconds per call of ``step``: its kernels' time on CUDA, the wall time on the CPU."""
    for _ in range(3):
        step()
    if device.type != "cuda":
        start = time.perf_counter()
        for _ in range(repeats):
            step()
        return (time.perf_counter() - start) / repeats * 1e3
    torch.cuda.synchronize(device)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(repeats):
            step()
        torch.cuda.synchronize(device)
    kernels = [e.device_time for e in prof.events() if e.device_type == DeviceType.CUDA]
    return sum(kernels) / repeats / 1e3


def measure(
    way: str, channels: int, size: int, kernel: tuple[int, int], args: argparse.Namespace, device: torch.device
) -> float:
    """Milliseconds of one forward and backward pass of one depthwise convolution, ``way``; its output checked
    against cuDNN's."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    layout = torch.channels_last if way.endswith("nhwc") else torch.contiguous_format
    x = torch.randn(args.batch, channels, size, size, device=device, dtype=dtype).to(memory_format=layout)
    x.requires_grad_()
    weight = torch.randn(channels, 1, *kernel, device=device, dtype=dtype, requires_grad=True)
    padding = (kernel[0] // 2, kernel[1] // 2)
    if way.startswith("taps"):
        conv = torch.compile(taps, dynamic=False)
    else:

        def conv(x: Tensor, weight: Tensor) -> Tensor:
            return F.conv2d(x, weight, padding=padding, groups=channels)

    def step() -> None:
        conv(x, weight).sum().backward()

    with torch.backends.cudnn.flags(enabled=not way.startswith("native")):
        ms = timed(step, device, args.repeats)
        with torch.no_grad():
            out = conv(x, weight).float()
    with torch.no_grad():
        expected = F.conv2d(x, weight, padding=padding, groups=channels).float()
    torch.testing.assert_close(out, expected, atol=0.05 * float(weight.abs().sum(dim=(1, 2, 3)).max()), rtol=0.05)
    return ms


def plain_strips(module: AttentionModule) -> AttentionModule:
    """``module`` with its NCHW strips replaced by ``nn.Conv2d`` holding the same weight and bias tensors (their
    device, dtype and layout kept)."""
    for name, child in list(module.named_children()):
        if isinstance(child, NCHWConv2d):
            plain = nn.Conv2d(
                child.in_channels, child.out_channels, child.kernel_size, padding=child.padding, groups=child.groups
            )
            plain.load_state_dict(child.state_dict(), assign=True)
            setattr(module, name, plain)
    return module


def measure_msca(way: str, channels: int, size: int, args: argparse.Namespace, device: torch.device) -> float:
    """Milliseconds of one compiled forward and backward pass of MSCA in channels_last, its strips ``way``; its
    output checked against the eager module with ``nn.Conv2d`` strips."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    module = AttentionModule(channels).to(device, dtype, memory_format=torch.channels_last)
    reference = plain_strips(copy.deepcopy(module))
    if way == "strips-nhwc":
        module = plain_strips(module)
    x = torch.randn(args.batch, channels, size, size, device=device, dtype=dtype)
    x = x.to(memory_format=torch.channels_last).requires_grad_()
    compiled = torch.compile(module, dynamic=False)

    def step() -> None:
        compiled(x).sum().backward()

    ms = timed(step, device, args.repeats)
    with torch.no_grad():
        out, expected = compiled(x).float(), reference(x).float()
    torch.testing.assert_close(out, expected, atol=0.05 * float(expected.abs().max()), rtol=0.05)
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="l", choices=sorted(MSCAN_SIZES), help="SegNeXt size (MAFS's teacher: l)")
    parser.add_argument("--batch", type=int, default=4, help="crops per batch (MAFS: 4)")
    parser.add_argument("--crop", type=int, default=256, help="crop side (MAFS: 256)")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS)
    parser.add_argument("--stages", nargs="+", type=int, default=[1, 2, 3, 4], choices=[1, 2, 3, 4])
    parser.add_argument("--small", action="store_true", help="two narrow stages, one kernel each: does it run?")
    parser.add_argument("--msca", action="store_true", help="time whole MSCA modules, strips NHWC against NCHW")
    parser.add_argument("--out", type=Path, default=Path("depthwise.json"))
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch._dynamo.config.cache_size_limit = 64
    mscan = MSCAN_SIZES[args.size]
    stages = [
        (mscan.widths[i - 1], args.crop // 2 ** (i + 1), MLP_RATIOS[i - 1], mscan.depths[i - 1]) for i in args.stages
    ]
    convs = [(w, s, k, d) for w, s, _, d in stages for k in KERNELS] + [(w * r, s, (3, 3), d) for w, s, r, d in stages]
    if args.small:
        convs = [(8, 16, (1, 7), 1), (16, 8, (3, 3), 1)]
        stages = [(8, 16, 1, 1)]
    if args.msca:
        msca_main(stages, args, device)
        return
    rows, results = [], []
    for channels, size, kernel, depth in convs:
        ms = {way: measure(way, channels, size, kernel, args, device) for way in args.ways}
        results.append({"channels": channels, "size": size, "kernel": list(kernel), "blocks": depth, "ms": ms})
        shape = f"{channels} x {size} x {size}, {kernel[0]} x {kernel[1]}"
        rows.append([shape, str(depth), *(f"{v:.3f}" for v in ms.values())])
        print(" | ".join(rows[-1]), flush=True)
    step = {way: sum(r["ms"][way] * r["blocks"] for r in results) for way in args.ways}
    whole = not args.small and len(args.stages) == 4
    total = f"one SegNeXt-{args.size} step" if whole else "the convolutions above, by blocks"
    rows.append([total, "", *(f"{v:.2f}" for v in step.values())])
    table = markdown_table(["convolution (channels x size, kernel)", "blocks", *(f"{w} ms" for w in args.ways)], rows)
    report = {"device": str(device), "torch": torch.__version__, "batch": args.batch, "crop": args.crop}
    report |= {"size": args.size, "convolutions": results, "step_ms": step}
    write(report, table, args.out)


def msca_main(stages: list[tuple[int, int, int, int]], args: argparse.Namespace, device: torch.device) -> None:
    """``--msca``: every stage's MSCA module timed each way, and the sum over the stages' blocks."""
    rows, results = [], []
    for channels, size, _, depth in stages:
        ms = {way: measure_msca(way, channels, size, args, device) for way in MSCA_WAYS}
        results.append({"channels": channels, "size": size, "blocks": depth, "ms": ms})
        rows.append([f"{channels} x {size} x {size}", str(depth), *(f"{v:.3f}" for v in ms.values())])
        print(" | ".join(rows[-1]), flush=True)
    total = {way: sum(r["ms"][way] * r["blocks"] for r in results) for way in MSCA_WAYS}
    rows.append(["the modules above, by blocks", "", *(f"{v:.2f}" for v in total.values())])
    table = markdown_table(["MSCA (channels x size)", "blocks", *(f"{w} ms" for w in MSCA_WAYS)], rows)
    report = {"device": str(device), "torch": torch.__version__, "batch": args.batch, "crop": args.crop}
    report |= {"size": args.size, "msca": results, "blocks_ms": total}
    write(report, table, args.out)


def write(report: dict, table: str, out: Path) -> None:
    """The report as JSON at ``out``, its table beside it as Markdown, and the table printed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
