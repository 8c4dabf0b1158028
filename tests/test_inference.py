"""Inference: loaded models never track gradients; tiled fusion reproduces the untiled output, without seams,
for networks and classical rules; the fusing API plans before it writes."""

from __future__ import annotations

import json
import multiprocessing
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from functools import partial

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

import taskfuse
from taskfuse import inference, models
from taskfuse.data.color import rgb_to_ycbcr
from taskfuse.data.deflate import deflate_literals
from taskfuse.data.io import encode_image, png_scanlines, read_image, write_image
from taskfuse.data.manifest import MANIFEST, file_sha256
from taskfuse.data.pairs import find_pairs
from taskfuse.device import EagerReplayWarning
from taskfuse.errors import TaskfuseError
from taskfuse.inference import FuseOptions, default_workers, fuse_tensors, fuse_tiled, tile_context
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.nn import sobel

H, W, TILE, OVERLAP = 200, 300, 64, 16


class Pooled(FusionModel):
    """A local network that downsamples twice (stride 4): exact tiling needs windows on the stride-4 grid."""

    stride = 4

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, 4, 3, padding=1) for c in (2, 4, 4))

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        x = torch.tanh(self.convs[0](torch.cat((ir, vi), 1)))
        x = torch.tanh(self.convs[1](F.avg_pool2d(x, 2)))
        x = self.convs[2](F.avg_pool2d(x, 2))
        return FusionOutput(torch.sigmoid(F.interpolate(x, scale_factor=4.0, mode="nearest").mean(1, keepdim=True)))


class GlobalMean(FusionModel):
    """Adds the image mean: no overlap makes tiles agree with the whole image."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        return FusionOutput((ir + vi) / 2 + self.pool(ir))


class OomAbove(FusionModel):
    """Mean fusion that raises CUDA's out-of-memory error for inputs above ``limit`` pixels, like a full GPU."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def fuse(self, ir: Tensor, vi: Tensor) -> FusionOutput:
        if ir.shape[-2] * ir.shape[-1] > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return FusionOutput((ir + vi) / 2)


def count_calls(model: FusionModel) -> list[tuple[int, ...]]:
    """Input sizes of every ``model`` call (failed ones included), recorded by a forward pre-hook."""
    sizes: list[tuple[int, ...]] = []
    model.register_forward_pre_hook(lambda m, args: sizes.append(tuple(args[0].shape[-2:])))
    return sizes


def pair(h: int, w: int, vi_channels: int = 3) -> tuple[Tensor, Tensor]:
    return torch.rand(1, h, w), torch.rand(vi_channels, h, w)


@pytest.fixture(scope="module")
def seafusion_run() -> dict[str, Tensor]:
    """Random-init SeAFusion on a 200 x 300 colour pair: untiled, tiled (64, overlap 16) and tiled without overlap."""
    torch.manual_seed(0)
    model = models.create("seafusion").eval()
    ir, vi = pair(H, W)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tiled = fuse_tensors(model, ir, vi, tile=TILE, overlap=OVERLAP)
    return {
        "untiled": fuse_tensors(model, ir, vi),
        "tiled": tiled,
        "no_overlap": fuse_tensors(model, ir, vi, tile=TILE, overlap=0),
        "vi": vi,
    }


def test_seafusion_receptive_field_fits_the_overlap() -> None:
    """A pixel changed in both inputs changes the output only within 9 pixels: 1 + 2 x 2 (GRDBs) + 4 convs."""
    model = models.create("seafusion").eval()
    ir, vi = torch.rand(1, 1, 49, 49), torch.rand(1, 1, 49, 49)
    moved_ir, moved_vi = ir.clone(), vi.clone()
    moved_ir[..., 24, 24] += 0.5
    moved_vi[..., 24, 24] -= 0.5
    with torch.inference_mode():
        diff = (model(ir, vi).fused - model(moved_ir, moved_vi).fused).abs()[0, 0]
    ys, xs = torch.nonzero(diff > 1e-6, as_tuple=True)
    assert 7 <= max((ys - 24).abs().max(), (xs - 24).abs().max()) <= 9 < OVERLAP


def test_tiled_colour_output_equals_untiled(seafusion_run: dict[str, Tensor]) -> None:
    tiled, untiled = seafusion_run["tiled"], seafusion_run["untiled"]
    assert tiled.shape == untiled.shape == (3, H, W)
    assert (tiled - untiled).abs().max() < 1e-5
    unclamped = ((tiled > 0) & (tiled < 1)).all(0)
    assert unclamped.float().mean() > 0.5
    chroma_out, chroma_vi = rgb_to_ycbcr(tiled)[1:], rgb_to_ycbcr(seafusion_run["vi"])[1:]
    assert (chroma_out - chroma_vi)[:, unclamped].abs().max() < 1e-5


def border_distance(h: int, w: int, tile: int) -> Tensor:
    """(H, W) distance of every pixel to the nearest inner tile border (the image border is none)."""

    def along(n: int) -> Tensor:
        v = torch.arange(n)
        borders = torch.arange(tile, n, tile)
        return (v.view(-1, 1) - borders.view(1, -1) + 0.5).abs().amin(1)

    return torch.minimum(along(h).view(-1, 1), along(w).view(1, -1))


def test_no_seams_along_tile_borders(seafusion_run: dict[str, Tensor]) -> None:
    """The difference to untiled within 2 pixels of tile borders is no larger than in the tile centres;
    without overlap the same check sees the seams."""
    dist = border_distance(H, W, TILE)
    seam, centre = dist < 2, dist > 16
    assert seam.any() and centre.any()

    def seamless(out: Tensor) -> bool:
        diff = (out - seafusion_run["untiled"]).abs().amax(0)
        return diff[seam].max() <= max(diff[centre].max(), 1e-6)

    assert seamless(seafusion_run["tiled"])
    assert not seamless(seafusion_run["no_overlap"])


def test_odd_sizes_gray_input_and_stride_grid() -> None:
    ir, vi = pair(101, 157, vi_channels=1)
    model = models.create("seafusion", widths=(8, 8, 8)).eval()
    out = fuse_tensors(model, ir, vi, tile=30, overlap=10)
    assert out.shape == (1, 101, 157)
    assert (out - fuse_tensors(model, ir, vi)).abs().max() < 1e-5

    pooled = Pooled().eval()
    assert tile_context(pooled, 21) == (24, 4)
    untiled = fuse_tensors(pooled, ir, vi)
    assert (fuse_tensors(pooled, ir, vi, tile=30, overlap=21) - untiled).abs().max() < 1e-5
    off_grid = fuse_tiled(pooled, ir, vi, tile=30, halo=21, align=1)
    assert (off_grid - untiled).abs().max() > 1e-4


def test_tile_covering_the_image_is_the_untiled_path() -> None:
    model = models.create("seafusion", widths=(4, 4, 4)).eval()
    sizes = count_calls(model)
    ir, vi = pair(40, 60)
    untiled = fuse_tensors(model, ir, vi)
    assert torch.equal(fuse_tensors(model, ir, vi, tile=64), untiled)
    assert sizes == [(40, 60), (40, 60)]
    wide_ir, wide_vi = pair(40, 100)
    fuse_tensors(model, wide_ir, wide_vi, tile=64, overlap=8)
    assert sizes[2:] == [(40, 72), (40, 44)]


@pytest.mark.parametrize(("name", "context"), [("laplacian", (64, 16)), ("gff", (96, 1))])
def test_classical_multiscale_rules_tile_exactly_with_their_own_context(name: str, context: tuple[int, int]) -> None:
    model = models.create(name)
    assert tile_context(model, 0) == context
    assert tile_context(model, 100)[0] >= 100
    ir, vi = pair(H, W)
    untiled = fuse_tensors(model, ir, vi)
    assert (fuse_tensors(model, ir, vi, tile=TILE, overlap=0) - untiled).abs().max() < 1e-5
    short = fuse_tiled(model, ir, vi, TILE, halo=context[0] // 4, align=context[1])
    assert (short - untiled).abs().max() > 1e-4


def test_the_default_network_declares_its_receptive_field() -> None:
    """A head that is not zero (as trained weights are not) makes the output depend on the whole receptive
    field: within the declared context tiling is exact, with a quarter of it, it is not."""
    torch.manual_seed(0)
    model = models.create("lite").eval()
    torch.nn.init.normal_(model.head.weight, 0.0, 0.1)
    assert tile_context(model, 0) == (64, 8) and tile_context(model, 32) == (64, 8)
    ir, vi = pair(H, W)
    untiled = fuse_tensors(model, ir, vi)
    assert (fuse_tensors(model, ir, vi, tile=TILE, overlap=0) - untiled).abs().max() < 1e-5
    assert (fuse_tiled(model, ir, vi, TILE, halo=16, align=8) - untiled).abs().max() > 1e-4


def test_global_pooling_warns_when_tiled() -> None:
    ir, vi = pair(64, 64)
    ir[..., 32:] += 1
    model = GlobalMean()
    with pytest.warns(UserWarning, match="statistics of the whole image"):
        tiled = fuse_tensors(model, ir / 2, vi, tile=32, overlap=0)
    assert (tiled - fuse_tensors(model, ir / 2, vi)).abs().max() > 0.1


def test_auto_tiles_above_the_pixel_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "AUTO_PIXELS", 100 * 100)
    monkeypatch.setattr(inference, "AUTO_TILE", 64)
    model = models.create("mean")
    sizes = count_calls(model)
    small, large = pair(100, 100), pair(120, 130)
    assert torch.equal(fuse_tensors(model, *small, tile="auto"), fuse_tensors(model, *small))
    assert sizes == [(100, 100), (100, 100)]
    assert torch.equal(fuse_tensors(model, *large, tile="auto", overlap=8), fuse_tensors(model, *large))
    assert sizes[2:] == [(72, 72), (72, 74), (72, 10), (64, 72), (64, 74), (64, 10), (120, 130)]


def test_auto_retries_in_tiles_after_out_of_memory() -> None:
    ir, vi = pair(300, 300)
    model = OomAbove(limit=200 * 200)
    sizes = count_calls(model)
    out = fuse_tensors(model, ir, vi, tile="auto")
    assert torch.allclose(out, fuse_tensors(models.create("mean"), ir, vi), atol=1e-6)
    assert sizes[:2] == [(300, 300), (182, 182)]
    with pytest.raises(TaskfuseError, match=r"out of memory .* 75-pixel tiles; .*--device cpu"):
        fuse_tensors(OomAbove(limit=50 * 50), ir, vi, tile="auto")


@pytest.mark.parametrize(
    ("tile", "overlap", "flag"), [(0, 32, "--tile"), ("big", 32, "--tile"), (64, -1, "--tile-overlap")]
)
def test_bad_tile_settings_name_the_option(tile: object, overlap: int, flag: str) -> None:
    ir, vi = pair(8, 8)
    with pytest.raises(TaskfuseError, match=flag):
        fuse_tensors(models.create("mean"), ir, vi, tile=tile, overlap=overlap)


def test_loaded_models_fuse_under_inference_mode() -> None:
    """``taskfuse.load()`` as in the README: no autograd graph, even for inputs that ask for gradients."""
    model = taskfuse.load()
    seen: list[bool] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(torch.is_inference_mode_enabled()))
    ir, vi = torch.rand(1, 1, 16, 16, requires_grad=True), torch.rand(1, 3, 16, 16)
    rgb = model.fuse_color(ir, vi)
    assert not rgb.requires_grad and torch.is_inference(rgb) and seen == [True]
    assert not model(ir, vi).fused.requires_grad
    assert model.source == {
        "method": "lite",
        "weights": str(models.get("lite").weights.resolve()),
        "weights_sha256": file_sha256(models.get("lite").weights),
        "config": {},
    }
    assert taskfuse.load("gff", r1=10).source["config"] == {"r1": 10}


def test_created_models_still_train() -> None:
    model = models.create("lite")
    out = model.fuse_color(torch.rand(1, 1, 16, 16), torch.rand(1, 3, 16, 16))
    assert out.requires_grad and not torch.is_inference(out)
    out.mean().backward()


def test_fuse_pairs_api_plans_before_writing_and_never_resumes_an_unknown_model(tmp_path) -> None:
    for n in ("a", "b"):
        write_image(tmp_path / "ir" / f"{n}.png", torch.rand(1, 8, 8))
        write_image(tmp_path / "vi" / f"{n}.png", torch.rand(3, 8, 8))
    pairs = find_pairs(tmp_path / "ir", tmp_path / "vi")
    job = inference.plan_fuse(models.create("mean"), pairs, tmp_path / "out", FuseOptions(gray=True))
    assert not (tmp_path / "out").exists() and [p.name for p in job.pairs] == ["a", "b"]
    job.start()
    assert job.run(progress=False).written == 2
    with pytest.raises(TaskfuseError, match="holds results of a model not loaded with taskfuse.load"):
        inference.fuse_pairs(models.create("mean"), pairs, tmp_path / "out", gray=True, progress=False)
    summary = inference.fuse_pairs(taskfuse.load("mean"), pairs, tmp_path / "out", gray=True, overwrite=True)
    assert (summary.written, summary.skipped) == (2, 0)
    assert inference.fuse_pairs(taskfuse.load("mean"), pairs, tmp_path / "out", gray=True).skipped == 2


def _smooth_pairs(root, sizes: list[tuple[int, int]]) -> list:
    """Pairs of blurred noise (compressible and with edges, as photographs are), of the given sizes in turn."""
    gen = torch.Generator().manual_seed(1)
    for i, (h, w) in enumerate(sizes):
        ir, vi = torch.rand(1, 1, h // 4, w // 4, generator=gen), torch.rand(1, 3, h // 4, w // 4, generator=gen)
        write_image(root / "ir" / f"{i:02d}.png", F.interpolate(ir, size=(h, w), mode="bicubic")[0].clamp(0, 1))
        write_image(root / "vi" / f"{i:02d}.png", F.interpolate(vi, size=(h, w), mode="bicubic")[0].clamp(0, 1))
    return find_pairs(root / "ir", root / "vi")


@pytest.mark.parametrize("name", ["mean", "max", "laplacian", "gff", "lite"])
def test_batch_size_and_threads_do_not_change_the_bytes(tmp_path, name: str) -> None:
    """Batches of 8 (two sizes interleaved, so groups fill out of order) give the bytes of batches of 1 and of
    the pair-by-pair path (``read_pair`` -> ``fuse_pair`` -> ``write_image``)."""
    pairs = _smooth_pairs(tmp_path, [(96, 128), (64, 80)] * 6)
    model = taskfuse.load(name)
    one = inference.fuse_pairs(model, pairs, tmp_path / "one", batch=1, workers=1, png_level=6, progress=False)
    eight = inference.fuse_pairs(model, pairs, tmp_path / "eight", batch=8, workers=3, png_level=6, progress=False)
    assert one.written == eight.written == 12
    options = FuseOptions()
    for pair in pairs:
        direct = inference.fuse_pair(model, *inference.read_pair(pair, options), options)
        write_image(tmp_path / "direct.png", direct, png_level=6)
        expected = (tmp_path / "direct.png").read_bytes()
        assert (tmp_path / "one" / f"{pair.name}.png").read_bytes() == expected, pair.name
        assert (tmp_path / "eight" / f"{pair.name}.png").read_bytes() == expected, pair.name


def _run(job: inference.FuseJob, processes: bool) -> inference.FuseSummary:
    job = replace(job, processes=processes)
    job.start()
    return job.run(progress=False)


@pytest.mark.skipif(not inference.FORK, reason="worker processes are forked")
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_worker_processes_write_the_bytes_of_threads(tmp_path, monkeypatch, ext: str) -> None:
    """Pairs decoded, and images encoded and written, in forked worker processes (as on a GPU) give the files of
    the same run in threads, for two sizes in batches."""
    pairs = _smooth_pairs(tmp_path, [(96, 128), (64, 80)] * 3)
    model = taskfuse.load("lite")
    handed: list[str] = []
    forked = inference.worker_processes

    @contextmanager
    def counted(count: int, *slots: int | bool) -> Iterator[Executor]:
        with forked(count, *slots) as pool:
            submit = pool.submit
            pool.submit = lambda fn, *args: (handed.append(fn.__name__), submit(fn, *args))[1]  # type: ignore[method-assign]
            yield pool

    monkeypatch.setattr(inference, "worker_processes", counted)
    for processes in (False, True):
        job = inference.plan_fuse(model, pairs, tmp_path / str(processes), FuseOptions(ext), batch=2, workers=2)
        assert _run(job, processes).written == 6
    assert sorted(handed) == ["decoded_arrays"] * 6 + ["write_output"] * 6
    assert not multiprocessing.active_children(), "a run ends its worker processes before it returns"
    for pair in pairs:
        threads, workers = (tmp_path / run / f"{pair.name}{ext}" for run in ("False", "True"))
        assert workers.read_bytes() == threads.read_bytes(), pair.name


@pytest.mark.skipif(not inference.FORK, reason="worker processes are forked")
def test_errors_in_worker_processes_name_the_file(tmp_path) -> None:
    """An unreadable pair fails in its worker as in a thread (listed under ``keep_going``), and an output that
    cannot be written raises with its path."""
    pairs = _smooth_pairs(tmp_path, [(64, 80)] * 3)
    pairs[1].vi.write_bytes(b"not an image")
    model = taskfuse.load("lite")
    job = inference.plan_fuse(model, pairs, tmp_path / "kept", keep_going=True, workers=2)
    summary = _run(job, processes=True)
    assert summary.written == 2 and [name for name, _ in summary.failed] == [pairs[1].name]
    assert str(pairs[1].vi) in summary.failed[0][1]
    del pairs[1]
    job = replace(inference.plan_fuse(model, pairs, tmp_path / "blocked", workers=2), processes=True)
    job.start()
    (tmp_path / "blocked" / f"{pairs[0].name}.png").mkdir()
    with pytest.raises(TaskfuseError, match=f"{pairs[0].name}.png: cannot write the fused image"):
        job.run(progress=False)


def test_worker_processes_are_asked_for_and_refused_where_fork_is_missing(tmp_path, monkeypatch) -> None:
    pairs = _smooth_pairs(tmp_path, [(64, 80)])
    model = taskfuse.load("lite")
    assert not inference.plan_fuse(model, pairs, tmp_path / "out").processes
    assert inference.plan_fuse(model, pairs, tmp_path / "out", processes=True).processes
    monkeypatch.setattr(inference, "default_processes", lambda device, count: count == 1)
    assert inference.plan_fuse(model, pairs, tmp_path / "out").processes, "left to default_processes"
    assert not inference.plan_fuse(model, pairs, tmp_path / "out", processes=False).processes
    monkeypatch.setattr(inference, "FORK", False)
    with pytest.raises(TaskfuseError, match="--worker-processes: this platform cannot fork processes"):
        inference.plan_fuse(model, pairs, tmp_path / "out", processes=True)
    assert not (tmp_path / "out").exists()


def test_worker_processes_are_the_default_for_long_runs_on_a_gpu(monkeypatch) -> None:
    cuda, cpu, many = torch.device("cuda"), torch.device("cpu"), inference.PROCESS_PAIRS
    assert inference.default_processes(cuda, many) and not inference.default_processes(cuda, many - 1)
    assert not inference.default_processes(cpu, 10 * many)
    monkeypatch.setattr(inference, "FORK", False)
    assert not inference.default_processes(cuda, many)


def test_pngs_deflated_on_a_gpu_are_written_by_two_encoding_threads(tmp_path) -> None:
    pairs = _smooth_pairs(tmp_path, [(64, 80)] * 2)
    job = inference.plan_fuse(taskfuse.load("mean"), pairs, tmp_path / "out", workers=8)
    on_gpu = replace(job, device=torch.device("cuda"))
    assert not job.deflates and job.encoding_threads == 8
    assert on_gpu.deflates and on_gpu.encoding_threads == inference.DEFLATED_WRITERS == 2
    assert replace(on_gpu, workers=1).encoding_threads == 1
    zlib_level = replace(on_gpu, options=replace(on_gpu.options, png_level=6))
    assert not zlib_level.deflates and zlib_level.encoding_threads == 8
    assert replace(on_gpu, encoders=5).encoding_threads == 5


def test_a_run_says_where_the_calling_thread_spent_its_time(tmp_path) -> None:
    pairs = _smooth_pairs(tmp_path, [(64, 80)] * 4)
    summary = inference.fuse_pairs(taskfuse.load("lite"), pairs, tmp_path / "out", batch=2, progress=False)
    assert list(summary.main) == ["decode", "fuse", "encode", "write"]
    assert summary.main["fuse"] > 0 and summary.main["write"] == 0, "image files are written by the encoding threads"
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [f"{pair.name}.png" for pair in pairs]
    assert all(v >= 0 for v in summary.main.values()) and sum(summary.main.values()) <= summary.seconds
    assert list(summary.main_cpu) == [*summary.main, "run"]
    assert summary.main_cpu["fuse"] > 0, "the network ran in the calling thread"
    assert sum(summary.main_cpu.values()) - summary.main_cpu["run"] <= summary.main_cpu["run"] + 1e-6
    assert summary.gpu is None, "no batch ran on a GPU"


def test_an_interrupted_run_still_waits_for_every_thread_before_it_returns() -> None:
    """A second interruption while the first pool is joined neither stops that wait nor skips the next pool."""

    class InterruptedOnce(ThreadPoolExecutor):
        interrupted = False

        def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
            if wait and not InterruptedOnce.interrupted:
                InterruptedOnce.interrupted = True
                raise KeyboardInterrupt
            super().shutdown(wait, cancel_futures=cancel_futures)

    finished: list[str] = []
    readers, encoders = InterruptedOnce(1), ThreadPoolExecutor(1)
    for pool, name in ((readers, "decoded"), (encoders, "written")):
        pool.submit(lambda name=name: (time.sleep(0.2), finished.append(name)))
    with pytest.raises(KeyboardInterrupt):
        inference._drain(readers, encoders)
    assert sorted(finished) == ["decoded", "written"]


def test_real_pairs_fuse_alike_in_batches_of_one_and_eight(shared_data, tmp_path) -> None:
    """Eight 640 x 480 MSRS pairs: the shipped network and the Laplacian pyramid, whose depthwise blur once
    rounded differently in batches of 8 (a few pixels one level off)."""
    names = sorted(p.stem for p in (shared_data / "msrs_det" / "ir").glob("*.png"))[:8]
    root = shared_data / "msrs_det"
    pairs = [inference.Pair(n, root / "ir" / f"{n}.png", root / "vi" / f"{n}.png") for n in names]
    for name in ("laplacian", "lite"):
        model = taskfuse.load(name)
        for batch in (1, 8):
            inference.fuse_pairs(model, pairs, tmp_path / f"{name}{batch}", batch=batch, workers=2, progress=False)
        for n in names:
            one, eight = (tmp_path / f"{name}{b}" / f"{n}.png" for b in (1, 8))
            assert one.read_bytes() == eight.read_bytes(), (name, n)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="PNG scanlines are filtered on a GPU only")
@pytest.mark.parametrize(("gray", "png_level"), [(False, 1), (True, 1), (False, 6)])
def test_png_files_filtered_on_the_gpu_hold_the_pixels_of_the_cpu_encoder(tmp_path, gray, png_level) -> None:
    """On a GPU a PNG's scanlines are filtered where it is fused (``png_scanlines``), and at level 1 deflated there
    (``taskfuse.data.deflate``); the files hold the pixels of the same run written as BMP, and, above level 1 and
    16 KiB of scanlines (the 136 x 160 outputs), the bytes ``encode_image`` writes; at level 1 at most a tenth
    more bytes than it, plus 200 for the fixed header of a block deflated on the GPU (153 bytes)."""
    pairs = _smooth_pairs(tmp_path, [(136, 160), (40, 56)] * 3)
    model = taskfuse.load("lite", device="cuda")
    for ext in (".png", ".bmp"):
        out = tmp_path / ext[1:]
        inference.fuse_pairs(model, pairs, out, ext, gray=gray, png_level=png_level, batch=3, progress=False)
    for pair in pairs:
        levels = read_image(tmp_path / "bmp" / f"{pair.name}.bmp")
        levels = levels[..., 0] if gray and levels.ndim == 3 else levels
        png = (tmp_path / "png" / f"{pair.name}.png").read_bytes()
        assert np.array_equal(read_image(tmp_path / "png" / f"{pair.name}.png"), levels), pair.name
        if levels.shape[0] == 136 and png_level > 1:
            assert png == encode_image(levels, ".png", png_level), pair.name
        assert len(png) <= 1.1 * len(encode_image(levels, ".png", png_level)) + 200, pair.name


@pytest.mark.parametrize("channels", [1, 3])
def test_a_batch_deflated_where_it_was_fused_gives_png_files_of_its_pixels(channels) -> None:
    """What the encoding threads make of a batch deflated on a GPU (``FuseJob.deflates``), here made on the CPU."""
    levels = torch.randint(0, 256, (2, 24, 40, channels), generator=torch.Generator().manual_seed(5)).byte()
    fused = inference._Fused([], deflate_literals(png_scanlines(levels)), deflated=(24, 40))
    for i in range(2):
        png = inference._png(fused, i)
        decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(decoded.reshape(24, 40, channels)[..., ::-1], levels[i].numpy())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
@pytest.mark.parametrize("name", models.names(learned=True))
def test_batches_replayed_from_cuda_graphs_write_the_bytes_of_eager_batches(tmp_path, monkeypatch, name) -> None:
    """Every network (the default with its weights, the others as initialised): a run's later batches of one
    shape are replayed from a captured graph (or run eagerly where capture fails), with the bytes of batches run
    eagerly. The default network's batches, PNG deflate included, must replay: a host copy in them once made every
    ``taskfuse fuse`` batch run eagerly without a word."""
    pairs = _smooth_pairs(tmp_path, [(96, 128)] * 6)
    model = taskfuse.load(name, device="cuda") if models.get(name).weights else models.create(name).cuda().eval()
    with warnings.catch_warnings():
        if name == models.DEFAULT_METHOD:
            warnings.simplefilter("error", EagerReplayWarning)
        summary = inference.fuse_pairs(model, pairs, tmp_path / "replayed", batch=2, progress=False)
    assert summary.gpu is not None and 0 < summary.gpu <= summary.seconds
    monkeypatch.setattr(inference, "GraphReplay", lambda fn: fn)
    inference.fuse_pairs(model, pairs, tmp_path / "eager", batch=2, progress=False)
    for pair in pairs:
        replayed, eager = (tmp_path / run / f"{pair.name}.png" for run in ("replayed", "eager"))
        assert replayed.read_bytes() == eager.read_bytes(), pair.name


def test_png_level_changes_the_size_not_the_pixels_and_is_no_setting(tmp_path) -> None:
    pairs = _smooth_pairs(tmp_path, [(96, 128)] * 2)
    model = taskfuse.load("mean")
    inference.fuse_pairs(model, pairs, tmp_path / "fast", png_level=0, progress=False)
    inference.fuse_pairs(model, pairs, tmp_path / "small", png_level=9, progress=False)
    fast, small = tmp_path / "fast" / "00.png", tmp_path / "small" / "00.png"
    assert fast.stat().st_size > small.stat().st_size
    assert np.array_equal(read_image(fast), read_image(small))
    manifest = json.loads((tmp_path / "small" / MANIFEST).read_text())
    assert manifest["info"]["png_level"] == 9 and "png_level" not in manifest["settings"]
    assert inference.fuse_pairs(model, pairs, tmp_path / "small", png_level=1, progress=False).skipped == 2


def test_quality_is_a_setting_of_lossy_formats(tmp_path) -> None:
    pairs = _smooth_pairs(tmp_path, [(96, 128)] * 2)
    model = taskfuse.load("mean")
    for ext in (".jpg", ".webp"):
        out = tmp_path / ext[1:]
        inference.fuse_pairs(model, pairs, out, ext=ext, quality=60, progress=False)
        assert Image.open(out / f"00{ext}").format == {".jpg": "JPEG", ".webp": "WEBP"}[ext]
        assert json.loads((out / MANIFEST).read_text())["settings"]["quality"] == 60
        with pytest.raises(TaskfuseError, match=r"--quality 60 \(this run: --quality 95\)"):
            inference.fuse_pairs(model, pairs, out, ext=ext, progress=False)
    inference.fuse_pairs(model, pairs, tmp_path / "png", progress=False)
    assert "quality" not in json.loads((tmp_path / "png" / MANIFEST).read_text())["settings"]
    with pytest.raises(TaskfuseError, match="quality must be 1..100"):
        inference.fuse_pairs(model, pairs, tmp_path / "bad", ext=".jpg", quality=0, progress=False)


def test_jpeg_folders_of_earlier_versions_resume_at_quality_95(tmp_path) -> None:
    """Manifests from before ``quality`` was a setting hold JPEG outputs of quality 95."""
    pairs = _smooth_pairs(tmp_path, [(96, 128)] * 2)
    model, out = taskfuse.load("mean"), tmp_path / "out"
    inference.fuse_pairs(model, pairs[:1], out, ext=".jpg", progress=False)
    manifest = json.loads((out / MANIFEST).read_text())
    del manifest["settings"]["quality"]
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert inference.fuse_pairs(model, pairs, out, ext=".jpg", progress=False).skipped == 1
    with pytest.raises(TaskfuseError, match="holds results of --quality 95"):
        inference.fuse_pairs(model, pairs, out, ext=".jpg", quality=80, progress=False)


def test_fuse_batch_precisions_layouts_and_uint8_input() -> None:
    model = taskfuse.load()
    gen = torch.Generator().manual_seed(0)
    ir = torch.randint(0, 256, (3, 1, 40, 56), dtype=torch.uint8, generator=gen)
    vi = torch.randint(0, 256, (3, 3, 40, 56), dtype=torch.uint8, generator=gen)
    reference = model.fuse_color(ir.float() / 255, vi.float() / 255)
    assert torch.equal(model.fuse_batch(ir, vi), reference)
    assert torch.allclose(model.fuse_batch(ir, vi, channels_last=True), reference, atol=1e-5)
    for dtype, atol in (("bf16", 8 / 255), ("fp16", 2 / 255)):
        out = model.fuse_batch(ir, vi, dtype=dtype)
        assert out.dtype == torch.float32 and (out - reference).abs().max() < atol
    with pytest.raises(ValueError, match="dtype must be one of fp32, bf16, fp16"):
        model.fuse_batch(ir, vi, dtype="int8")
    assert not models.create("lite").fuse_batch(ir, vi).requires_grad


@pytest.mark.slow
def test_fuse_batch_compiled_equals_eager() -> None:
    model = taskfuse.load()
    ir, vi = torch.rand(2, 1, 32, 48), torch.rand(2, 3, 32, 48)
    assert torch.allclose(model.fuse_batch(ir, vi, compile=True), model.fuse_batch(ir, vi), atol=1e-5)
    assert "_compiled" not in model.state_dict() and len(model.state_dict()) == len(taskfuse.load().state_dict())


def test_sobel_kernels_are_made_once_per_device_and_dtype_and_still_train() -> None:
    with torch.inference_mode():
        first = sobel._kernels(torch.device("cpu"), torch.float32)
    assert sobel._kernels(torch.device("cpu"), torch.float32)[0] is first[0]
    assert sobel._kernels(torch.device("cpu"), torch.float64)[0].dtype == torch.float64
    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    sobel.sobel_abs(x).sum().backward()
    assert x.grad is not None and not torch.is_inference(first[0])


def test_gpu_pipelines_cap_torch_host_threads_and_restore_them() -> None:
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        with inference.host_threads(torch.device("cuda")):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
        with pytest.raises(RuntimeError), inference.host_threads(torch.device("cuda")):
            raise RuntimeError("a failing run")
        assert torch.get_num_threads() == 3
        with inference.host_threads(torch.device("cpu")):
            assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_default_workers_is_one_per_cpu_up_to_eight(monkeypatch: pytest.MonkeyPatch) -> None:
    for cpus, workers in ((1, 1), (2, 2), (8, 8), (16, 8), (64, 8)):
        monkeypatch.setattr("taskfuse.inference.available_cpus", lambda cpus=cpus: cpus)
        assert default_workers() == workers


def test_processes_decoding_for_a_deflating_gpu_take_the_cpus_the_writers_leave(monkeypatch, tmp_path) -> None:
    for cpus, workers in ((1, 1), (2, 2), (8, 8), (12, 8), (13, 9), (16, 12), (64, 12)):
        monkeypatch.setattr("taskfuse.inference.available_cpus", lambda cpus=cpus: cpus)
        assert default_workers(deflating_processes=True) == workers
    monkeypatch.setattr("taskfuse.inference.available_cpus", lambda: 16)
    pairs = _smooth_pairs(tmp_path, [(64, 80)] * 2)
    plan = partial(inference.plan_fuse, taskfuse.load("mean"), pairs, device=torch.device("cuda"))
    assert plan(tmp_path / "a", processes=True).workers == 12
    assert plan(tmp_path / "b", processes=False).workers == 8
    assert plan(tmp_path / "c", FuseOptions(png_level=6), processes=True).workers == 8
    assert plan(tmp_path / "d", processes=True, workers=3).workers == 3
