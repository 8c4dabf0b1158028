"""ONNX export of a fusion network, for deployment without Python or PyTorch.

The exported graph (``FusionGraph``) is what ``FusionModel.forward`` computes, made traceable for any size: the
infrared image and the visible image are padded together at the bottom and right to a multiple of the network's
``stride`` by reflection, fused by the network, and the fused image is cropped back to (H, W). Batch, height and
width are dynamic; height and width must be at least ``stride`` (reflection needs more rows and columns than it
adds; ``FusionModel.forward`` replicates the edge below that, the graph does not).

Inputs and outputs, all float32 in [0, 1]:

* ``ir`` (B, 1, H, W), the infrared image;
* ``vi`` (B, 1, H, W) visible luminance for networks with ``input_mode = "y"``, (B, 3, H, W) RGB for
  ``input_mode = "rgb"``; with ``color=True`` always RGB;
* ``fused``: what the network returns (``FusionOutput.fused``: luminance (B, 1, H, W), or RGB (B, 3, H, W) for
  ``output_mode = "rgb"``); with ``color=True`` the display image of ``FusionModel.fuse_color``: RGB, the fused
  luminance recombined with the visible chroma, clamped to [0, 1], then the model's display step
  (``FusionModel.finish``: the default's contrast stretch, which rounds down to 8-bit levels, so a value on the
  edge of a level may land one level apart from PyTorch's: ``COLOR_TOLERANCE``).

The luminance and the recombination are those of ``taskfuse.data.color``: full-range ITU-R BT.601 YCbCr,
``Y = 0.299 R + 0.587 G + 0.114 B``, and ``RGB = VIS + (fused - Y(VIS))`` per channel, clamped.

The graph is captured with ``torch.export`` (``torch.onnx.export(dynamo=True)``, which needs ``onnxscript``)
in ONNX opset ``OPSET``. Sizes are left to ``torch.export.Dim.AUTO`` rather than declared dynamic, which would
make the export fail on the guards the networks place on sizes (a resize skipped when the sizes already match,
padding that is not empty at the example's size); the operations traced compute the same values at the other
sizes, which ``tests/test_export.py`` checks against PyTorch on sizes with and without padding, at the minimum
size and on real pairs. The taskfuse facts travel in the model's ``metadata_props`` (``METADATA``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskfuse.data.color import luminance, recombine
from taskfuse.data.io import atomic_path
from taskfuse.errors import TaskfuseError
from taskfuse.models.base import FusionModel
from taskfuse.version import __version__

OPSET = 21
"""ONNX opset of the exported graphs: runs on onnxruntime 1.20 and newer."""
COLOR_CONVENTION = (
    "full-range ITU-R BT.601 YCbCr: Y = 0.299 R + 0.587 G + 0.114 B; colour output = VIS + (fused - Y(VIS)) per "
    "RGB channel, clamped to [0, 1]"
)
METADATA = ("method", "config", "weights_sha256", "opset", "color", "inputs", "outputs", "min_size", "version")
"""Keys of the ``metadata_props`` written with every model, each prefixed ``taskfuse.``."""
TOLERANCE = 1e-4
"""Largest absolute difference allowed between onnxruntime and PyTorch on the export's check pair."""
COLOR_TOLERANCE = 1 / 255 + TOLERANCE
"""The same for ``color=True`` graphs, whose display step may round to 8-bit levels (``FusionModel.finish``)."""
AXES = {0: "batch", 2: "height", 3: "width"}
"""Names given to the dynamic axes of the inputs and the output."""


class FusionGraph(nn.Module):
    """The computation exported to ONNX (module docstring): pad to ``stride``, fuse, crop; colour optionally."""

    def __init__(self, model: FusionModel, color: bool = False) -> None:
        super().__init__()
        self.model = model
        self.color = color

    def forward(self, ir: Tensor, vi: Tensor) -> Tensor:
        h, w = ir.shape[-2:]
        stride = self.model.stride
        source = vi
        if self.model.input_mode == "y":
            source = luminance(vi)
        elif vi.shape[1] == 1:
            source = vi.expand(-1, 3, -1, -1)
        x = F.pad(torch.cat((ir, source), 1), (0, (-w) % stride, 0, (-h) % stride), mode="reflect")
        fused = self.model.fuse(x[:, :1], x[:, 1:]).fused[..., :h, :w]
        if not self.color:
            return fused
        return self.model.finish(fused.clamp(0, 1) if self.model.output_mode == "rgb" else recombine(fused, vi))

    def inputs(self) -> dict[str, str]:
        """The shapes of the graph's inputs, as written to its metadata."""
        vi = "RGB (B,3,H,W)" if self.color or self.model.input_mode == "rgb" else "luminance Y (B,1,H,W)"
        return {"ir": "infrared (B,1,H,W)", "vi": f"visible {vi}"}

    def output(self) -> str:
        """The shape of the graph's output, as written to its metadata."""
        if self.color or self.model.output_mode == "rgb":
            return "fused RGB (B,3,H,W)"
        return "fused luminance Y (B,1,H,W)"


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (the weights a model was exported from)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _example(graph: FusionGraph) -> tuple[Tensor, Tensor]:
    """Example inputs for tracing: batch 2 and sizes off the stride grid, so that no size is taken for a
    constant (``torch.export`` fixes dimensions of 0 or 1) and padding is traced."""
    s = graph.model.stride
    h, w = 2 * s + 3 if s > 1 else 37, 3 * s + 5 if s > 1 else 53
    channels = 3 if graph.color or graph.model.input_mode == "rgb" else 1
    return torch.rand(2, 1, h, w), torch.rand(2, channels, h, w)


def _name_axes(proto: Any) -> None:
    """Name the dynamic axes of the inputs and the output as in ``AXES`` instead of by the tracer's symbols
    (the output is cropped to the input's size, so its axes are the same), wherever those symbols appear. An axis
    the network fixed to the example's size (none of taskfuse's do) keeps its number."""
    names = {}
    for axis, name in AXES.items():
        dim = proto.graph.input[0].type.tensor_type.shape.dim[axis]
        if dim.dim_param:
            names[dim.dim_param] = name
    for value in (*proto.graph.input, *proto.graph.value_info):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]
    for output in proto.graph.output:
        for axis, name in AXES.items():
            if name in names.values():
                output.type.tensor_type.shape.dim[axis].dim_param = name


def _cause(error: BaseException) -> str:
    """Why an export failed, in a line: the innermost exception of the chain, named after what it means."""
    while error.__cause__ is not None:
        error = error.__cause__
    line = next((t for t in str(error).splitlines() if t.strip()), "")
    if "DataDependent" in type(error).__name__:
        return (
            f"its control flow depends on a value read back from a tensor at run time ({line.strip()}); one graph "
            "for every input size cannot hold that: fuse with taskfuse instead"
        )
    return f"{type(error).__name__}: {line.strip()}"


def export_onnx(
    model: FusionModel,
    out: str | os.PathLike,
    method: str,
    config: Mapping[str, Any] | None = None,
    weights: str | os.PathLike | None = None,
    color: bool = False,
    opset: int = OPSET,
) -> Path:
    """Export ``model`` (module docstring) to ``out`` (.onnx), atomically; returns the path.

    ``method``, ``config`` and the SHA-256 of ``weights`` (the file the model was loaded from; none for an
    untrained network) are stored in the metadata with the opset, the colour convention, the inputs and output,
    the minimum size and the taskfuse version. Before it is written, the model is run with onnxruntime on the
    random pair it was traced with and compared with PyTorch (``TOLERANCE``). Raises ``TaskfuseError`` when
    onnx, onnxscript or onnxruntime is missing, when ``out`` is not a .onnx file path, and when the network
    cannot be exported, or exports to a graph onnxruntime cannot run or runs differently (naming the cause).
    """
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise TaskfuseError(f"--out {out}: give a file name ending in .onnx")
    if weights is not None and out.resolve() == Path(weights).resolve():
        raise TaskfuseError(f"--out {out} is the weights file itself; choose another output name")
    if out.is_dir():
        raise TaskfuseError(f"--out {out} is a folder; give a file name ending in .onnx")
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx.export(dynamo=True) translates with it)
    except ImportError as e:
        raise TaskfuseError(
            f"ONNX export needs onnx, onnxscript and onnxruntime ({e}); pip install 'taskfuse[onnx]'"
        ) from e
    graph = FusionGraph(model.eval(), color).eval()
    example = _example(graph)
    auto = {0: torch.export.Dim.AUTO, 2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO}
    try:
        program = torch.onnx.export(
            graph,
            example,
            dynamo=True,
            dynamic_shapes={"ir": auto, "vi": auto},
            input_names=["ir", "vi"],
            output_names=["fused"],
            opset_version=opset,
            external_data=False,
            verbose=False,
        )
    except Exception as e:
        raise TaskfuseError(f"method {method!r} cannot be exported to ONNX: {_cause(e)}") from e
    proto = program.model_proto
    _name_axes(proto)
    facts = {
        "method": method,
        "config": json.dumps(dict(config or {}), sort_keys=True),
        "weights_sha256": sha256(weights) if weights is not None else "",
        "opset": str(opset),
        "color": COLOR_CONVENTION if model.output_mode == "y" else "none: the network outputs RGB",
        "inputs": json.dumps(graph.inputs()),
        "outputs": json.dumps({"fused": graph.output()}),
        "min_size": str(model.stride),
        "version": __version__,
    }
    onnx.helper.set_model_props(proto, {f"taskfuse.{k}": facts[k] for k in METADATA})
    onnx.checker.check_model(proto)
    try:
        session = onnxruntime.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        got = session.run(None, {"ir": example[0].numpy(), "vi": example[1].numpy()})[0]
    except Exception as e:
        raise TaskfuseError(f"method {method!r} exports to ONNX but onnxruntime cannot run it: {_cause(e)}") from e
    with torch.inference_mode():
        error = float((torch.from_numpy(got) - graph(*example)).abs().max())
    tolerance = COLOR_TOLERANCE if color else TOLERANCE
    if not error <= tolerance:
        raise TaskfuseError(
            f"method {method!r} exports to ONNX but onnxruntime computes it differently (largest difference "
            f"{error:.3g} > {tolerance:.3g} on a random pair); fuse with taskfuse instead"
        )
    with atomic_path(out) as tmp:
        onnx.save_model(proto, str(tmp))
    return out


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``taskfuse.*`` metadata of an exported model, keys without the prefix."""
    try:
        import onnx
    except ImportError as e:
        raise TaskfuseError(f"reading ONNX metadata needs onnx ({e}); pip install 'taskfuse[onnx]'") from e
    proto = onnx.load_model(str(path), load_external_data=False)
    return {p.key.removeprefix("taskfuse."): p.value for p in proto.metadata_props if p.key.startswith("taskfuse.")}
