"""CPU latency of an exported fusion network: onnxruntime next to PyTorch, one 480 x 640 pair.

    python scripts/onnx_speed.py                                   # the built-in default, exported on the fly
    python scripts/onnx_speed.py --weights psfusion.safetensors --color --threads 2
    python scripts/onnx_speed.py --onnx lite.onnx --out onnx_speed.json

Both runtimes compute the same graph (``taskfuse.export.FusionGraph``: padding to the stride, the network, the
crop, and with ``--color`` the BT.601 recombination) on the same random pair, with the same number of intra-op
threads; each is timed ``--repeats`` times after ``--warmup`` runs and the median and minimum are reported in
milliseconds, with the largest absolute difference between their outputs. A learned ``--method`` without
``--weights`` (other than the default) runs at random initialisation: fine for timing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from taskfuse import models
from taskfuse.export import FusionGraph, export_onnx, read_metadata
from taskfuse.inference import load
from taskfuse.metrics.table import markdown_table
from taskfuse.models.base import FusionModel
from taskfuse.models.weights import read_meta

HEIGHT, WIDTH = 480, 640


def build(method: str | None, weights: Path | None) -> tuple[FusionModel, str, Path | None]:
    """The model in eval mode on the CPU, its method name, and the weights file it came from (None: random)."""
    name = (method or models.DEFAULT_METHOD).lower()
    if weights is not None:
        return load(method, weights, "cpu"), read_meta(weights)["method"], weights
    if models.get(name).weights is not None or not models.get(name).learned:
        return load(name, None, "cpu"), name, models.get(name).weights
    return models.create(name).eval(), name, None


def timed(run: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Milliseconds of ``repeats`` calls of ``run`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", help=f"fusion method (default: {models.DEFAULT_METHOD})")
    p.add_argument("--weights", type=Path, help="trained weights (.safetensors)")
    p.add_argument("--onnx", type=Path, help="an exported model of the same method and weights (default: export)")
    p.add_argument("--color", action="store_true", help="time the RGB-in, RGB-out graph")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="intra-op threads (default: all)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args()
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise SystemExit("onnx_speed.py runs onnxruntime: pip install 'taskfuse[onnx]'") from e

    torch.set_num_threads(args.threads)
    model, method, weights = build(args.method, args.weights)
    graph = FusionGraph(model, args.color).eval()
    with tempfile.TemporaryDirectory() as tmp:
        config = read_meta(weights)["config"] if weights else {}
        path = args.onnx or export_onnx(model, Path(tmp) / "model.onnx", method, config, weights, args.color)
        inputs = read_metadata(path)["inputs"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    rgb = args.color or model.input_mode == "rgb"
    generator = torch.Generator().manual_seed(0)
    ir = torch.rand(1, 1, HEIGHT, WIDTH, generator=generator)
    vi = torch.rand(1, 3 if rgb else 1, HEIGHT, WIDTH, generator=generator)
    feed = {"ir": ir.numpy(), "vi": vi.numpy()}
    with torch.inference_mode():
        expected = graph(ir, vi).numpy()
        torch_ms = timed(lambda: graph(ir, vi), args.warmup, args.repeats)
    got = session.run(None, feed)[0]
    ort_ms = timed(lambda: session.run(None, feed), args.warmup, args.repeats)

    result = {
        "method": method,
        "weights": str(weights) if weights else None,
        "inputs": inputs,
        "size": [HEIGHT, WIDTH],
        "threads": args.threads,
        "torch": torch.__version__,
        "onnxruntime": ort.__version__,
        "max_abs_diff": float(np.abs(got - expected).max()),
        "ms": {
            name: {"median": statistics.median(t), "min": min(t)}
            for name, t in (("pytorch", torch_ms), ("onnxruntime", ort_ms))
        },
    }
    rows = [[name, f"{v['median']:.1f}", f"{v['min']:.1f}"] for name, v in result["ms"].items()]
    diff = f"max |onnxruntime - pytorch| {result['max_abs_diff']:.2e}"
    print(f"{method} at {HEIGHT}x{WIDTH}, {args.threads} threads, {diff}\n")
    print(markdown_table(["runtime", "median ms", "min ms"], rows), end="")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
