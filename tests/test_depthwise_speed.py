"""``scripts/depthwise_speed.py``: its sum of shifted taps is a depthwise convolution, and the script runs on the
CPU."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from script_runs import ROOT, run_script


@pytest.mark.parametrize("kernel", [(5, 5), (1, 7), (21, 1), (3, 3)])
def test_taps_are_a_depthwise_convolution_and_its_gradients(kernel: tuple[int, int]) -> None:
    taps = runpy.run_path(str(ROOT / "scripts" / "depthwise_speed.py"))["taps"]
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 6, 9, 11, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 1, *kernel, generator=gen, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 6, 9, 11, generator=gen, dtype=torch.float64)
    ours = torch.autograd.grad(taps(x, weight), (x, weight), grad)
    out = F.conv2d(x, weight, padding=(kernel[0] // 2, kernel[1] // 2), groups=6)
    torch.testing.assert_close(taps(x, weight), out)
    for a, b in zip(ours, torch.autograd.grad(out, (x, weight), grad), strict=True):
        torch.testing.assert_close(a, b)


def test_plain_strips_keep_the_modules_tensors() -> None:
    """The NHWC side of ``--msca`` holds the very weights of the module it is compared with, in its dtype and
    layout: built afresh, they were fp32 on the CPU beside a bf16 module on the GPU."""
    from taskfuse.tasks.segmentation.segnext import AttentionModule

    plain_strips = runpy.run_path(str(ROOT / "scripts" / "depthwise_speed.py"))["plain_strips"]
    module = AttentionModule(8).to(torch.bfloat16, memory_format=torch.channels_last)
    weight = module.conv1_2.weight
    plain = plain_strips(module)
    assert type(plain.conv1_2) is torch.nn.Conv2d
    assert plain.conv1_2.weight.data_ptr() == weight.data_ptr()
    assert plain.conv1_2.weight.stride() == weight.stride()
    assert plain.conv1_2.weight.dtype == plain.conv1_2.bias.dtype == torch.bfloat16


@pytest.mark.slow
def test_depthwise_speed_times_every_way_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "depthwise.json"
    run_script("depthwise_speed.py", ["--device", "cpu", "--small", "--repeats", "1", "--out", str(out)], tmp_path)
    report = json.loads(out.read_text())
    assert [c["kernel"] for c in report["convolutions"]] == [[1, 7], [3, 3]]
    assert list(report["step_ms"]) == ["cudnn-nchw", "cudnn-nhwc", "native-nchw", "native-nhwc", "taps-nhwc"]
    assert min(report["step_ms"].values()) > 0
    assert "| the convolutions above, by blocks |" in out.with_suffix(".md").read_text()


@pytest.mark.slow
def test_depthwise_speed_times_msca_both_ways_on_the_cpu(tmp_path: Path) -> None:
    out = tmp_path / "msca.json"
    run_script(
        "depthwise_speed.py", ["--device", "cpu", "--small", "--msca", "--repeats", "1", "--out", str(out)], tmp_path
    )
    report = json.loads(out.read_text())
    assert [(m["channels"], m["size"]) for m in report["msca"]] == [(8, 16)]
    assert list(report["blocks_ms"]) == ["strips-nhwc", "strips-nchw"]
    assert min(report["blocks_ms"].values()) > 0
