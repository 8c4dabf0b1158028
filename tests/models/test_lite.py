from pathlib import Path

import pytest
import torch

import taskfuse
from taskfuse import models
from taskfuse.data.io import read_ir, read_vi
from taskfuse.inference import fuse_tensors
from taskfuse.metrics.functional import qabf
from taskfuse.models.lite import LiteFusion


def test_shapes_range_and_odd_sizes() -> None:
    net = models.create("lite", width=8).eval()
    for h, w in ((64, 80), (37, 53)):
        with torch.no_grad():
            out = net(torch.rand(2, 1, h, w), torch.rand(2, 3, h, w)).fused
        assert out.shape == (2, 1, h, w)
        assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_receptive_field_fits_the_default_tile_context() -> None:
    torch.manual_seed(0)
    net = models.create("lite", width=8).eval()
    ir, vi = torch.rand(1, 160, 200), torch.rand(3, 160, 200)
    whole = fuse_tensors(net, ir, vi)
    tiled = fuse_tensors(net, ir, vi, tile=64, overlap=32)
    assert float((whole - tiled).abs().max()) < 1e-5


def test_default_is_the_shipped_lite_model() -> None:
    path = models.get(models.DEFAULT_METHOD).weights
    assert path.is_file() and path.stat().st_size < 20 * 2**20
    assert (path.parent / "MODEL_CARD.md").is_file()
    model = taskfuse.load()
    assert isinstance(model, LiteFusion) and not model.training
    assert isinstance(taskfuse.load("lite"), LiteFusion)


def test_shipped_model_keeps_edges_better_than_laplacian_on_a_real_pair(shared_data: Path) -> None:
    stem = sorted(p.stem for p in (shared_data / "roadscene" / "ir").iterdir())[0]
    ir = read_ir(next((shared_data / "roadscene" / "ir").glob(f"{stem}.*")))
    vi = read_vi(next((shared_data / "roadscene" / "vi").glob(f"{stem}.*")))
    scores = {}
    for name in ("lite", "laplacian"):
        fused = fuse_tensors(taskfuse.load(name), ir, vi)
        scores[name] = float(qabf(fused[None], ir[None], vi[None]))
    assert scores["lite"] > scores["laplacian"], scores


def test_width_must_be_positive() -> None:
    with pytest.raises(ValueError, match="width"):
        models.create("lite", width=0)
