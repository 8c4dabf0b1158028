from pathlib import Path

import numpy as np
import pytest
import torch

import taskfuse
from taskfuse import models
from taskfuse.data.color import luminance
from taskfuse.data.io import read_ir, read_vi
from taskfuse.data.synthetic import render_scene
from taskfuse.errors import TaskfuseError
from taskfuse.inference import fuse_tensors
from taskfuse.metrics.functional import qabf
from taskfuse.models.lite import LiteFusion
from taskfuse.models.lite.network import stretch_percentiles


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


def test_shipped_network_keeps_edges_better_than_laplacian_on_a_real_pair(shared_data: Path) -> None:
    """The network's own output (``display="none"``): the default's stretch trades some Qabf on RoadScene for
    contrast (MODEL_CARD.md, "The stretched display")."""
    stem = sorted(p.stem for p in (shared_data / "roadscene" / "ir").iterdir())[0]
    ir = read_ir(next((shared_data / "roadscene" / "ir").glob(f"{stem}.*")))
    vi = read_vi(next((shared_data / "roadscene" / "vi").glob(f"{stem}.*")))
    scores = {}
    for name, model in (("lite", taskfuse.load(display="none")), ("laplacian", taskfuse.load("laplacian"))):
        fused = fuse_tensors(model, ir, vi)
        scores[name] = float(qabf(fused[None], ir[None], vi[None]))
    assert scores["lite"] > scores["laplacian"], scores


@pytest.mark.parametrize("percent", [0.0, 0.5, 2.0])
def test_the_stretch_maps_each_images_percentiles_to_black_and_white(percent: float) -> None:
    torch.manual_seed(0)
    images = torch.rand(3, 3, 23, 31) * torch.tensor([0.4, 0.7, 1.0]).view(3, 1, 1, 1)
    stretched = stretch_percentiles(images, percent)
    for image, out in zip(images.numpy(), stretched.numpy(), strict=True):
        lo, hi = np.percentile(image, [percent, 100 - percent])
        expected = np.floor(255 * np.clip((image.astype(np.float64) - lo) / (hi - lo), 0, 1))
        levels = np.round(out * 255)
        assert np.abs(levels - expected).max() <= 1 and (levels == expected).mean() > 0.999
        assert out.min() == 0 and out.max() == 1
    flat = torch.full((1, 1, 4, 4), 0.3)
    assert torch.equal(stretch_percentiles(flat, percent), flat)
    for level in (0.05, 0.5, 0.9):
        foggy = level + 0.01 * torch.rand(1, 1, 40, 40)
        out = stretch_percentiles(foggy, percent)
        assert 0.03 < float(out.max() - out.min()) <= 0.04 + 1 / 255
        assert abs(float(out.mean()) - float(foggy.mean())) < 0.03


def test_the_default_display_is_the_shipped_network_stretched_and_tiles_alike() -> None:
    torch.manual_seed(0)
    stretched, plain = taskfuse.load(), taskfuse.load(display="none")
    assert stretched.display == "stretch" and plain.display == "none"
    assert stretched.source["weights_sha256"] == plain.source["weights_sha256"]
    assert plain.source["config"] == {"display": "none"}
    ir, vi = torch.rand(1, 1, 96, 120) * 0.2, torch.rand(1, 3, 96, 120) * 0.3
    shown = stretched.fuse_color(ir, vi)
    assert torch.equal(shown, stretch_percentiles(plain.fuse_color(ir, vi), 0.5))
    assert float(plain.fuse_color(ir, vi).max()) < 0.5 and shown.min() == 0 and shown.max() == 1
    assert torch.equal(stretched(ir, vi).fused, plain(ir, vi).fused)
    tiled = fuse_tensors(stretched, ir[0], vi[0], tile=32, overlap=64)
    assert (tiled - shown[0]).abs().max() <= 1 / 255 + 1e-6 and (tiled == shown[0]).float().mean() > 0.99
    with pytest.raises(TaskfuseError, match="display"):
        models.create("lite", display="equalise")
    with pytest.raises(TaskfuseError, match="stretch_percent"):
        models.create("lite", stretch_percent=50)
    with pytest.raises(TaskfuseError, match="stretch_max_gain"):
        models.create("lite", stretch_max_gain=0.5)


def test_width_must_be_positive() -> None:
    with pytest.raises(ValueError, match="width"):
        models.create("lite", width=0)


@pytest.mark.parametrize(("ir_level", "vi_level"), [(0.0, 1.0), (0.3, 0.7), (0.7, 0.3), (1.0, 1.0)])
def test_flat_pairs_give_flat_outputs_up_to_the_border(ir_level: float, vi_level: float) -> None:
    """No rim: the first default network, zero-padded, drew a bright line one pixel inside the top and left edges."""
    model = taskfuse.load()
    fused = model(torch.full((1, 1, 96, 128), ir_level), torch.full((1, 3, 96, 128), vi_level)).fused
    assert float(fused.max() - fused.min()) < 1e-5


def test_a_black_infrared_image_keeps_the_visible_image() -> None:
    """The first default network returned an almost black image for a black IR image and a bright VIS one."""
    vi = render_scene(seed=1, height=96, width=128)["vi"][None]
    fused = taskfuse.load()(torch.zeros_like(vi[:, :1]), vi).fused
    assert float(fused.mean()) > 0.9 * float(luminance(vi).mean())


def test_night_scenes_are_not_darker_than_their_brighter_source(shared_data: Path) -> None:
    """On MSRS night pairs the first default network came out darker than both sources (mean grey 16.7 against
    IR 24.1 and VIS 57.7)."""
    root = shared_data / "msrs_det"
    model = taskfuse.load()
    for name in ("00008N", "00028N", "00750N"):
        ir, vi = read_ir(root / "ir" / f"{name}.png")[None], read_vi(root / "vi" / f"{name}.png")[None]
        fused = model(ir, vi).fused
        assert float(fused.mean()) > 0.9 * max(float(ir.mean()), float(luminance(vi).mean())), name
