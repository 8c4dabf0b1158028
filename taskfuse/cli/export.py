"""``taskfuse export``: a fusion network in a format other runtimes read (docs/deployment.md).

taskfuse export onnx --out lite.onnx                                    # the built-in default
taskfuse export onnx --weights psfusion.safetensors --color --out psfusion.onnx
taskfuse export onnx --color --set display=none --out lite-rgb.onnx       # the default without its stretch
"""

from __future__ import annotations

import argparse
from pathlib import Path

from taskfuse import models
from taskfuse.cli.fuse import model_config
from taskfuse.export import OPSET, export_onnx
from taskfuse.inference import load
from taskfuse.models.weights import read_meta


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a fusion network for deployment (ONNX)",
        description="Export a fusion network for runtimes without Python; choose the format with a sub-command.",
    )
    formats = p.add_subparsers(dest="format", required=True, metavar="FORMAT")
    o = formats.add_parser(
        "onnx",
        help="ONNX model with dynamic batch, height and width",
        description="Export the fusion network (padding to its stride and cropping back inside the graph) to "
        "ONNX. Inputs ir (B,1,H,W) and vi (luminance or RGB, as the network takes it), output the fused "
        "luminance; with --color, RGB visible in and RGB out. The method, config, weights SHA-256, opset and "
        "colour convention are stored in the model's metadata. Needs pip install 'taskfuse[onnx]'.",
    )
    o.add_argument("--method", help=f"fusion method (default: {models.DEFAULT_METHOD} with its shipped weights)")
    o.add_argument("--weights", type=Path, help="trained weights (.safetensors) of a learned method")
    o.add_argument("--color", action="store_true", help="RGB visible in, RGB out (BT.601 chroma recombined)")
    o.add_argument(
        "--set",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="model config keys that leave the weights alone, as taskfuse fuse --set (stored in the metadata)",
    )
    o.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset (default: {OPSET})")
    o.add_argument("--out", type=Path, required=True, help="output file (.onnx)")
    o.set_defaults(run=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    overrides = model_config(args.set)
    model = load(args.method, args.weights, **overrides)
    weights = args.weights or models.get(args.method or models.DEFAULT_METHOD).weights
    meta = read_meta(weights) if weights is not None else {}
    method = meta.get("method") or (args.method or models.DEFAULT_METHOD).lower()
    config = {**meta.get("config", {}), **overrides}
    path = export_onnx(model, args.out, method, config, weights, args.color, args.opset)
    vi = "RGB" if args.color or model.input_mode == "rgb" else "luminance"
    out = "RGB" if args.color or model.output_mode == "rgb" else "luminance"
    sizes = f"H and W >= {model.stride}"
    print(f"exported {method} (opset {args.opset}, ir + {vi} visible in, {out} out, {sizes}) -> {path}")
    return 0
