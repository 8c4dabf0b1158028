"""ONNX export: onnxruntime reproduces PyTorch for every learned method, at several sizes from one file.

The default network (``lite``, shipped weights) and every other learned method, narrowed to its spec's ``small``
size with random weights, are exported through ``taskfuse export onnx`` once each and run with onnxruntime on
random pairs of two odd sizes (batch 2 and 1), at the minimum size (the stride) and on real RoadScene pairs.
Exporting the large networks takes minutes on a small CPU, so all but the default run in the slow lane.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("onnx", reason="ONNX export needs onnx: pip install 'taskfuse[onnx]'")
pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript: pip install 'taskfuse[onnx]'")
ort = pytest.importorskip("onnxruntime", reason="the parity tests run onnxruntime: pip install 'taskfuse[onnx]'")

import taskfuse  # noqa: E402
from taskfuse import models  # noqa: E402
from taskfuse.cli.main import main  # noqa: E402
from taskfuse.data.color import luminance  # noqa: E402
from taskfuse.data.io import read_ir, read_vi, write_image  # noqa: E402
from taskfuse.errors import TaskfuseError  # noqa: E402
from taskfuse.export import METADATA, OPSET, export_onnx, read_metadata, sha256  # noqa: E402
from taskfuse.models.base import FusionModel  # noqa: E402
from taskfuse.models.weights import load_model, read_meta, save_weights  # noqa: E402

TOLERANCE = 1e-4
COLOR_TOLERANCE = 1 / 255 + TOLERANCE
DOCS = Path(__file__).resolve().parents[1] / "docs" / "deployment.md"


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _export(method: str, folder: Path, color: bool = False) -> tuple[FusionModel, Path, Path]:
    """Export ``method`` through the command line: the default from its shipped weights, any other method from
    its ``small`` network with random weights saved to a file. Returns (PyTorch model, .onnx, weights)."""
    out = folder / f"{method}{'-rgb' if color else ''}.onnx"
    argv = ["export", "onnx", "--out", str(out), *(["--color"] if color else [])]
    if method == models.DEFAULT_METHOD:
        weights = models.get(method).weights
        assert main(argv) == 0
        return taskfuse.load(), out, weights
    torch.manual_seed(0)
    small = dict(models.get(method).small)
    weights = save_weights(models.create(method, **small), folder / f"{method}.safetensors", method, small)
    assert main([*argv, "--weights", str(weights)]) == 0
    return load_model(weights), out, weights


@pytest.fixture(
    scope="module",
    params=[
        pytest.param(m, marks=() if m == models.DEFAULT_METHOD else pytest.mark.slow)
        for m in models.names(learned=True)
    ],
)
def exported(request, tmp_path_factory) -> tuple[str, FusionModel, Path, Path]:
    model, path, weights = _export(request.param, tmp_path_factory.mktemp(request.param))
    return request.param, model, path, weights


def _feed(model: FusionModel, ir: torch.Tensor, vi: torch.Tensor) -> dict[str, np.ndarray]:
    vi = luminance(vi) if model.input_mode == "y" else vi
    return {"ir": ir.numpy(), "vi": vi.numpy()}


def _roadscene(shared: Path, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    folder = shared / "roadscene"
    names = sorted(p.name for p in (folder / "ir").iterdir())[:count]
    return [(read_ir(folder / "ir" / n)[None], read_vi(folder / "vi" / n)[None]) for n in names]


def test_random_pairs_of_two_sizes_and_the_minimum_size(exported) -> None:
    method, model, path, _ = exported
    session = _session(path)
    s = model.stride
    for b, h, w in ((2, 2 * s + 7, 3 * s + 5), (1, 5 * s + 3, 4 * s + 9), (1, s, s)):
        ir, vi = torch.rand(b, 1, h, w), torch.rand(b, 3, h, w)
        with torch.no_grad():
            expected = model(ir, vi).fused.numpy()
        got = session.run(None, _feed(model, ir, vi))[0]
        assert got.shape == expected.shape == (b, 3 if model.output_mode == "rgb" else 1, h, w)
        assert np.abs(got - expected).max() <= TOLERANCE, (method, (b, h, w))


def test_real_pairs(exported, shared_data: Path) -> None:
    method, model, path, _ = exported
    session = _session(path)
    for i, (ir, vi) in enumerate(_roadscene(shared_data, 2)):
        if i:
            ir, vi = ir[..., 5:-8, 3:-6], vi[..., 5:-8, 3:-6]  # an odd size of the same scene
        with torch.no_grad():
            expected = model(ir, vi).fused.numpy()
        got = session.run(None, _feed(model, ir, vi))[0]
        assert np.abs(got - expected).max() <= TOLERANCE, (method, tuple(ir.shape))


def test_metadata(exported) -> None:
    method, model, path, weights = exported
    meta = read_metadata(path)
    assert set(meta) == set(METADATA)
    assert meta["method"] == method and meta["weights_sha256"] == sha256(weights) and meta["opset"] == str(OPSET)
    assert meta["min_size"] == str(model.stride) and ("BT.601" in meta["color"]) == (model.output_mode == "y")
    assert json.loads(meta["config"]) == read_meta(weights)["config"]
    session = _session(path)
    assert session.get_modelmeta().custom_metadata_map["taskfuse.method"] == method
    dims = [[d.param if hasattr(d, "param") else d for d in i.shape] for i in session.get_inputs()]
    assert [i.name for i in session.get_inputs()] == ["ir", "vi"]
    assert dims[0] == ["batch", 1, "height", "width"]


@pytest.fixture(scope="module")
def color_model(tmp_path_factory) -> tuple[FusionModel, Path]:
    model, path, _ = _export(models.DEFAULT_METHOD, tmp_path_factory.mktemp("color"), color=True)
    return model, path


def test_color_graph_matches_fuse_color(color_model, shared_data: Path) -> None:
    """The display image, the default's contrast stretch included: the same up to a rare value on the edge of an
    8-bit level, which the stretch's rounding may put one level apart."""
    model, path = color_model
    assert model.display == "stretch"
    session = _session(path)
    pairs = [(torch.rand(2, 1, 37, 61), torch.rand(2, 3, 37, 61)), *_roadscene(shared_data, 1)]
    for ir, vi in pairs:
        with torch.no_grad():
            expected = model.fuse_color(ir, vi).numpy()
        got = session.run(None, {"ir": ir.numpy(), "vi": vi.numpy()})[0]
        assert got.shape == expected.shape and got.shape[1] == 3
        diff = np.abs(got - expected)
        assert diff.max() <= COLOR_TOLERANCE and (diff > TOLERANCE).mean() < 1e-3, (diff.max(), (diff > 0).mean())
        assert expected.min() == 0 and expected.max() == 1


def test_set_exports_the_default_without_its_stretch(tmp_path: Path) -> None:
    out = tmp_path / "plain.onnx"
    assert main(["export", "onnx", "--color", "--set", "display=none", "--out", str(out)]) == 0
    assert json.loads(read_metadata(out)["config"]) == {"width": 32, "display": "none"}
    ir, vi = torch.rand(1, 1, 40, 56) * 0.3, torch.rand(1, 3, 40, 56) * 0.3
    expected = taskfuse.load(display="none").fuse_color(ir, vi).numpy()
    got = _session(out).run(None, {"ir": ir.numpy(), "vi": vi.numpy()})[0]
    assert np.abs(got - expected).max() <= TOLERANCE and expected.max() < 0.5


def test_deployment_snippet_runs(color_model, tmp_path: Path) -> None:
    """The five lines of docs/deployment.md, run as written, give the image ``taskfuse fuse`` writes."""
    _, path = color_model
    code = re.search(r"## Running it with onnxruntime.*?```python\n(.*?)```", DOCS.read_text(), re.S).group(1)
    assert len([line for line in code.splitlines() if line.strip()]) == 5
    ir, vi = torch.rand(1, 45, 71), torch.rand(3, 45, 71)
    write_image(tmp_path / "ir.png", ir)
    write_image(tmp_path / "vi.png", vi)
    (tmp_path / "model.onnx").write_bytes(path.read_bytes())
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
    assert main(["fuse", "--ir", str(tmp_path / "ir.png"), "--vi", str(tmp_path / "vi.png"),
                 "--out", str(tmp_path / "torch"), "--device", "cpu"]) == 0  # fmt: skip
    with Image.open(tmp_path / "fused.png") as a, Image.open(tmp_path / "torch" / "ir.png") as b:
        diff = np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16))
    assert a.size == (71, 45) and diff.max() <= 1


def test_methods_that_cannot_export_say_why(tmp_path: Path, capsys) -> None:
    assert main(["export", "onnx", "--method", "laplacian", "--out", str(tmp_path / "lap.onnx")]) == 2
    err = capsys.readouterr().err
    assert "'laplacian' cannot be exported to ONNX" in err and "value read back from a tensor" in err
    assert main(["export", "onnx", "--method", "gff", "--out", str(tmp_path / "gff.onnx")]) == 2
    err = capsys.readouterr().err
    assert "'gff' exports to ONNX but onnxruntime cannot run it" in err and "Conv" in err
    assert not list(tmp_path.iterdir())


def test_bad_output_names(tmp_path: Path) -> None:
    weights = models.get(models.DEFAULT_METHOD).weights
    with pytest.raises(TaskfuseError, match=r"ending in \.onnx"):
        export_onnx(taskfuse.load(), tmp_path / "model.safetensors", "lite", {}, weights)
    (tmp_path / "folder.onnx").mkdir()
    with pytest.raises(TaskfuseError, match="is a folder"):
        export_onnx(taskfuse.load(), tmp_path / "folder.onnx", "lite", {}, weights)
