"""``taskfuse fuse``: outputs, resuming under a run manifest, interruptions, and the options for awkward data."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskfuse import inference, models
from taskfuse.cli.main import main
from taskfuse.data.io import atomic_path, read_image, read_vi, write_image
from taskfuse.data.manifest import MANIFEST, file_sha256
from taskfuse.models.weights import save_weights


def _pairs(root: Path, names: list[str], size: tuple[int, int] = (24, 32)) -> tuple[Path, Path]:
    for n in names:
        write_image(root / "ir" / f"{n}.png", torch.rand(1, *size))
        write_image(root / "vi" / f"{n}.jpg", torch.rand(3, *size))
    return root / "ir", root / "vi"


def _outputs(out: Path) -> list[str]:
    """Every entry of ``out`` but the run manifest, hidden ones included."""
    return sorted(p.name for p in out.iterdir() if p.name != MANIFEST) if out.exists() else []


def _fuse(ir: Path, vi: Path, out: Path, *extra: str) -> int:
    return main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out), *extra])


def test_folder_fuse_writes_colour_then_skips_then_overwrites(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b", "c"])
    out = tmp_path / "out"
    assert _fuse(ir, vi, out) == 0
    assert _outputs(out) == ["a.png", "b.png", "c.png"]
    assert read_vi(out / "a.png").shape == (3, 24, 32)
    assert "fused 3 image(s), skipped 0" in capsys.readouterr().out
    stamp = (out / "a.png").stat().st_mtime_ns
    assert _fuse(ir, vi, out) == 0
    assert "fused 0 image(s), skipped 3" in capsys.readouterr().out
    assert (out / "a.png").stat().st_mtime_ns == stamp
    assert _fuse(ir, vi, out, "--overwrite", "--ext", "jpg") == 0
    assert "fused 3 image(s)" in capsys.readouterr().out
    assert _outputs(out) == ["a.jpg", "b.jpg", "c.jpg"]


def test_manifest_records_model_options_and_outputs(tmp_path: Path) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    assert _fuse(ir, vi, out, "--ir-range", "p1-p99") == 0
    manifest = json.loads((out / MANIFEST).read_text())
    shipped = models.get(models.DEFAULT_METHOD).weights
    assert manifest["settings"]["method"] == "lite"
    assert manifest["settings"]["weights_sha256"] == file_sha256(shipped)
    assert manifest["settings"]["ir_range"] == "p1-p99" and manifest["settings"]["ext"] == ".png"
    assert manifest["info"]["weights"] == str(Path(shipped).resolve())
    assert manifest["outputs"] == ["a.png", "b.png"]


@pytest.mark.parametrize(
    ("second", "was"),
    [
        (["--method", "mean"], "--method lite"),
        (["--ir-range", "p1-p99"], "--ir-range auto"),
        (["--resize", "vi"], "no --resize"),
        (["--gray"], "colour output"),
        (["--tile", "off"], "--tile auto"),
        (["--weights", "WEIGHTS"], "--weights lite.safetensors (SHA-256"),
        (["--set", "display=none"], "no --set"),
    ],
)
def test_rerun_with_other_settings_refuses_to_mix(tmp_path: Path, capsys, second: list[str], was: str) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    weights = save_weights(models.create("lite"), tmp_path / "retrained.safetensors", "lite")
    second = [str(weights) if a == "WEIGHTS" else a for a in second]
    assert _fuse(ir, vi, out) == 0
    before = {n: (out / n).read_bytes() for n in _outputs(out)}
    capsys.readouterr()
    assert _fuse(ir, vi, out, *second) == 2
    err = capsys.readouterr().err
    assert f"holds results of {was}" in err and "use a new folder, or --overwrite" in err
    assert {n: (out / n).read_bytes() for n in _outputs(out)} == before
    assert _fuse(ir, vi, out, *second, "--overwrite") == 0
    assert "fused 2 image(s), skipped 0" in capsys.readouterr().out
    assert _fuse(ir, vi, out, *second) == 0
    assert "fused 0 image(s), skipped 2" in capsys.readouterr().out


def test_the_default_is_shown_stretched_set_shows_it_as_fused_and_a_wrong_key_is_named(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a"], size=(48, 64))
    write_image(ir / "a.png", torch.rand(1, 48, 64) * 0.2)
    write_image(vi / "a.jpg", torch.rand(3, 48, 64) * 0.3)
    assert _fuse(ir, vi, tmp_path / "shown") == 0 and _fuse(ir, vi, tmp_path / "plain", "--set", "display=none") == 0
    plain, shown = read_image(tmp_path / "plain" / "a.png"), read_image(tmp_path / "shown" / "a.png")
    assert plain.max() < 128 and shown.min() == 0 and shown.max() == 255
    manifest = json.loads((tmp_path / "plain" / MANIFEST).read_text())
    assert manifest["settings"]["config"] == {"display": "none"}
    capsys.readouterr()
    assert _fuse(ir, vi, tmp_path / "bad", "--set", "displya=stretch") == 2
    err = capsys.readouterr().err
    assert "no config key displya" in err and "display" in err and not (tmp_path / "bad").exists()


def test_overwrite_with_other_settings_removes_the_old_results(tmp_path: Path) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b", "c"])
    out = tmp_path / "out"
    assert _fuse(ir, vi, out, "--method", "mean") == 0
    (ir / "c.png").unlink()
    (vi / "c.jpg").unlink()
    assert _fuse(ir, vi, out, "--method", "max", "--overwrite") == 0
    assert _outputs(out) == ["a.png", "b.png"]
    assert json.loads((out / MANIFEST).read_text())["outputs"] == ["a.png", "b.png"]


def test_an_interrupted_replacement_leaves_no_old_image_under_the_new_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    assert _fuse(ir, vi, out, "--method", "mean") == 0
    real = inference.write_image

    def stop_after_a(path: Path, img: torch.Tensor) -> Path:
        if path.stem == "b":
            raise KeyboardInterrupt
        return real(path, img)

    monkeypatch.setattr(inference, "write_image", stop_after_a)
    assert _fuse(ir, vi, out, "--method", "max", "--overwrite") == 130
    assert _outputs(out) == ["a.png"]
    monkeypatch.setattr(inference, "write_image", real)
    assert _fuse(ir, vi, out, "--method", "max") == 0
    assert _fuse(ir, vi, tmp_path / "max", "--method", "max") == 0
    assert (out / "b.png").read_bytes() == (tmp_path / "max" / "b.png").read_bytes()


def test_images_without_manifest_are_not_taken_for_finished(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    write_image(out / "a.png", torch.zeros(3, 24, 32))
    assert _fuse(ir, vi, out) == 2
    assert f"holds 1 of this run's outputs (a.png) that no {MANIFEST} accounts for" in capsys.readouterr().err
    assert _fuse(ir, vi, out, "--overwrite") == 0
    assert read_vi(out / "a.png").max() > 0


def test_gray_visible_gives_gray_output(tmp_path: Path) -> None:
    write_image(tmp_path / "ir.png", torch.rand(1, 16, 16))
    write_image(tmp_path / "vi.png", torch.rand(1, 16, 16))
    assert _fuse(tmp_path / "ir.png", tmp_path / "vi.png", tmp_path / "out") == 0
    assert Image.open(tmp_path / "out" / "ir.png").mode == "L"


def test_gray_option_writes_the_fused_luminance(tmp_path: Path) -> None:
    ir, vi = _pairs(tmp_path, ["a"])
    assert _fuse(ir, vi, tmp_path / "colour") == 0
    assert _fuse(ir, vi, tmp_path / "gray", "--gray") == 0
    gray, colour = read_image(tmp_path / "gray" / "a.png"), read_image(tmp_path / "colour" / "a.png")
    assert gray.shape == (24, 32)
    luma = 0.299 * colour[..., 0] + 0.587 * colour[..., 1] + 0.114 * colour[..., 2]
    assert np.abs(gray - luma).max() <= 1.0


def test_size_mismatch_fails_before_writing_and_resize_fixes_it(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b"])
    write_image(vi / "b.jpg", torch.rand(3, 48, 64))
    out = tmp_path / "out"
    assert _fuse(ir, vi, out) == 2
    err = capsys.readouterr().err
    assert "b (ir 32x24, vi 64x48)" in err and "--resize vi" in err
    assert not out.exists()
    assert _fuse(ir, vi, out, "--resize", "vi") == 0
    assert read_vi(out / "b.png").shape == (3, 24, 32)


def test_missing_partner_is_named_and_skip_unpaired_works(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b"])
    (vi / "b.jpg").unlink()
    out = tmp_path / "out"
    assert _fuse(ir, vi, out) == 2
    assert "no visible partner" in capsys.readouterr().err
    assert _fuse(ir, vi, out, "--skip-unpaired") == 0
    assert _outputs(out) == ["a.png"]


def test_corrupt_file_stops_with_its_name_and_leaves_only_whole_outputs(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b", "c"])
    data = (vi / "b.jpg").read_bytes()
    (vi / "b.jpg").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert _fuse(ir, vi, out) == 2
    assert "b.jpg: not a readable image" in capsys.readouterr().err
    assert _outputs(out) == ["a.png"]
    write_image(vi / "b.jpg", torch.rand(3, 24, 32))
    assert _fuse(ir, vi, out) == 0
    assert "fused 2 image(s), skipped 1" in capsys.readouterr().out


def test_keep_going_fuses_the_rest_and_lists_the_failures(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b", "c", "d"])
    data = (vi / "b.jpg").read_bytes()
    (vi / "b.jpg").write_bytes(data[: len(data) // 2])
    (ir / "c.png").write_bytes(b"")
    write_image(vi / "d.jpg", torch.rand(3, 30, 32))
    out = tmp_path / "out"
    assert _fuse(ir, vi, out, "--keep-going") == 1
    captured = capsys.readouterr()
    assert "fused 1 image(s), skipped 0 already done, 3 failed" in captured.out
    assert "failed b: " in captured.err and "b.jpg: not a readable image" in captured.err
    assert "failed c: " in captured.err and "c.png: the file is empty" in captured.err
    assert "failed d: sizes differ: d (ir 32x24, vi 32x30)" in captured.err
    assert "3 pair(s) failed" in captured.err
    assert _outputs(out) == ["a.png"]


def test_single_pair_output_file(tmp_path: Path, capsys) -> None:
    write_image(tmp_path / "ir.png", torch.rand(1, 16, 16))
    write_image(tmp_path / "vi.png", torch.rand(3, 16, 16))
    ir, vi, result = tmp_path / "ir.png", tmp_path / "vi.png", tmp_path / "fused" / "result.jpg"
    assert _fuse(ir, vi, result) == 0
    assert result.is_file() and Image.open(result).format == "JPEG"
    assert sorted(p.name for p in result.parent.iterdir()) == ["result.jpg"]
    assert _fuse(ir, vi, result) == 2
    assert "result.jpg exists; pass --overwrite" in capsys.readouterr().err
    assert _fuse(ir, vi, result, "--overwrite") == 0
    assert _fuse(ir, vi, tmp_path / "r.png", "--ext", "jpg") == 2
    assert "disagree on the format" in capsys.readouterr().err


def test_several_methods_fuse_into_one_folder_each(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    assert _fuse(ir, vi, out, "--method", "mean", "max", "laplacian") == 0
    assert sorted(p.name for p in out.iterdir()) == ["laplacian", "max", "mean"]
    for method in ("mean", "max", "laplacian"):
        assert _outputs(out / method) == ["a.png", "b.png"]
        assert json.loads((out / method / MANIFEST).read_text())["settings"]["method"] == method
    assert not (read_image(out / "mean" / "a.png") == read_image(out / "max" / "a.png")).all()
    assert capsys.readouterr().out.count("fused 2 image(s)") == 3
    assert _fuse(ir, vi, out, "--method", "mean", "gff") == 0
    assert "fused 0 image(s), skipped 2" in capsys.readouterr().out


def test_name_patterns_pair_tno_style_files_in_one_folder(tmp_path: Path) -> None:
    scene = tmp_path / "tno"
    for n in ("1", "2"):
        write_image(scene / f"IR{n}.png", torch.rand(1, 12, 14))
        write_image(scene / f"VIS{n}.bmp", torch.rand(1, 12, 14))
    out = tmp_path / "fused"
    assert _fuse(scene, scene, out) == 2
    args = ["--ir-pattern", "IR*", "--vi-pattern", "VIS*", "--out-pattern", "Fuse*", "--method", "mean"]
    assert _fuse(scene, scene, out, *args) == 0
    assert _outputs(out) == ["Fuse1.png", "Fuse2.png"]


def test_recursive_pairs_sub_folders_and_mirrors_the_tree(tmp_path: Path) -> None:
    for sub in ("day", "night/city"):
        write_image(tmp_path / "ir" / sub / "a.png", torch.rand(1, 8, 8))
        write_image(tmp_path / "vi" / sub / "a.jpg", torch.rand(3, 8, 8))
    out = tmp_path / "out"
    assert _fuse(tmp_path / "ir", tmp_path / "vi", out, "--recursive", "--method", "mean") == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["day/a.png", "night/city/a.png"]
    assert json.loads((out / MANIFEST).read_text())["outputs"] == ["day/a.png", "night/city/a.png"]
    assert _fuse(tmp_path / "ir", tmp_path / "vi", tmp_path / "flat") == 2


def test_sigterm_is_handled_like_sigint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """The signal stops the run; a thread that was writing an output finishes it (here the mock first renames a
    half image into place), and the run returns only then, leaving whole outputs and no temporary files."""
    ir, vi = _pairs(tmp_path, ["a", "b", "c"])
    out = tmp_path / "out"
    assert _fuse(ir, vi, tmp_path / "whole") == 0
    real = inference.write_image

    def killed_while_writing(path: Path, img: torch.Tensor) -> Path:
        if path.stem == "b":
            with atomic_path(path) as tmp:
                tmp.write_bytes(b"half an image")
                os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
        return real(path, img)

    monkeypatch.setattr(inference, "write_image", killed_while_writing)
    assert _fuse(ir, vi, out) == 128 + signal.SIGTERM
    assert "interrupted; finished outputs are kept" in capsys.readouterr().err
    kept = _outputs(out)
    assert kept[:2] == ["a.png", "b.png"] and set(kept) <= {"a.png", "b.png", "c.png"}
    assert all((out / name).read_bytes() == (tmp_path / "whole" / name).read_bytes() for name in kept)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    monkeypatch.setattr(inference, "write_image", real)
    assert _fuse(ir, vi, out) == 0
    assert f"fused {3 - len(kept)} image(s), skipped {len(kept)}" in capsys.readouterr().out


@pytest.mark.skipif(not inference.FORK, reason="worker processes are forked")
def test_worker_processes_write_the_files_of_threads(tmp_path: Path) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b", "c"])
    assert _fuse(ir, vi, tmp_path / "threads", "--no-worker-processes") == 0
    assert _fuse(ir, vi, tmp_path / "processes", "--worker-processes", "--workers", "2") == 0
    assert _outputs(tmp_path / "processes") == ["a.png", "b.png", "c.png"]
    for name in _outputs(tmp_path / "processes"):
        assert (tmp_path / "processes" / name).read_bytes() == (tmp_path / "threads" / name).read_bytes()


def test_leftovers_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    ir, vi = _pairs(tmp_path, ["a"])
    out = tmp_path / "out"
    assert _fuse(ir, vi, out) == 0
    leftovers = [out / ".b.k3j_x9ab.part.png", out / "sub" / ".c.0f3a9b2c.part.jpg", out / ".x.8a7b6c5d.part.json"]
    kept = [out / ".b.png", out / "b.part.png", out / ".notes.part.png", out / ".hidden"]
    for p in leftovers + kept:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
    assert _fuse(ir, vi, out) == 0
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in kept)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_outputs_get_the_umask_permissions(tmp_path: Path, umask: int) -> None:
    ir, vi = _pairs(tmp_path, ["a"])
    previous = os.umask(umask)
    try:
        assert _fuse(ir, vi, tmp_path / "out", "--method", "mean") == 0
    finally:
        os.umask(previous)
    for name in ("a.png", MANIFEST):
        assert (tmp_path / "out" / name).stat().st_mode & 0o777 == 0o666 & ~umask


def test_16bit_thermal_with_a_hot_spot_fuses_like_its_8bit_rendering(tmp_path: Path) -> None:
    """A 3x3 hot spot at 30000 in a 7000..9000 scene: ``auto`` leaves it out of the range (it saturates), so the
    fused image matches the fusion of the scene rendered to 8 bits; ``p1-p99`` was the old workaround."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:350, :470]
    scene = np.clip(7000 + 1000 * (1 + np.sin(xx / 30) * np.cos(yy / 40)) + rng.normal(0, 50, (350, 470)), 7000, 9000)
    scene = scene.round().astype(np.uint16)
    hot = scene.copy()
    hot[100:103, 200:203] = 30000
    reference = np.round((scene - scene.min()) / (int(scene.max()) - int(scene.min())) * 255).astype(np.uint8)
    (tmp_path / "16").mkdir()
    (tmp_path / "8").mkdir()
    Image.fromarray(hot).save(tmp_path / "16" / "t.png")
    Image.fromarray(reference).save(tmp_path / "8" / "t.png")
    write_image(tmp_path / "vi" / "t.png", torch.rand(3, 350, 470))
    for bits in ("16", "8"):
        assert _fuse(tmp_path / bits / "t.png", tmp_path / "vi" / "t.png", tmp_path / f"out{bits}.png") == 0
    fused16 = read_image(tmp_path / "out16.png").astype(float)
    fused8 = read_image(tmp_path / "out8.png").astype(float)
    away = np.ones((350, 470), bool)
    away[90:113, 190:213] = False
    assert np.abs(fused16 - fused8)[away].mean() < 0.5


def test_false_colour_infrared_is_refused_unless_luma_is_asked_for(tmp_path: Path, capsys) -> None:
    gray = np.tile(np.linspace(0, 1, 32), (24, 1))
    palette = np.stack([gray, np.abs(np.sin(6 * gray)), 1 - gray], -1)
    write_image(tmp_path / "ir" / "a.png", (palette * 255).round().astype(np.uint8))
    write_image(tmp_path / "vi" / "a.png", torch.rand(3, 24, 32))
    out = tmp_path / "out"
    assert _fuse(tmp_path / "ir", tmp_path / "vi", out) == 2
    assert "a.png: a false-colour infrared image" in capsys.readouterr().err
    assert _fuse(tmp_path / "ir", tmp_path / "vi", out, "--ir-colour", "luma") == 0


def test_unwritable_output_folder_is_refused_before_fusing(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a"])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        (locked / "probe").touch()
    except PermissionError:
        pass
    else:
        pytest.skip("this user writes into read-only folders (root without dropped capabilities)")
    assert _fuse(ir, vi, locked) == 2
    assert f"--out {locked}: cannot write there (Permission denied)" in capsys.readouterr().err
    assert _fuse(ir, vi, locked / "out") == 2
    assert "cannot write there (Permission denied)" in capsys.readouterr().err
    assert list(locked.iterdir()) == []


def test_unreadable_input_folder_is_an_error(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a"])
    (ir / "sub").mkdir()
    (ir / "sub").chmod(0)
    try:
        list((ir / "sub").iterdir())
    except PermissionError:
        pass
    else:
        pytest.skip("this user reads unreadable folders (root without dropped capabilities)")
    try:
        assert _fuse(ir, vi, tmp_path / "out", "--recursive") == 2
        assert "sub: cannot list the folder (Permission denied)" in capsys.readouterr().err
    finally:
        (ir / "sub").chmod(0o755)


@pytest.mark.parametrize("method", ["mean", "max", "laplacian", "gff"])
def test_roadscene_pairs_fuse_with_every_classical_method(shared_data: Path, tmp_path: Path, method: str) -> None:
    names = sorted(p.name for p in (shared_data / "roadscene" / "ir").iterdir())[:2]
    for side in ("ir", "vi"):
        (tmp_path / side).mkdir()
        for n in names:
            shutil.copy(shared_data / "roadscene" / side / n, tmp_path / side / n)
    out = tmp_path / "out"
    assert _fuse(tmp_path / "ir", tmp_path / "vi", out, "--method", method) == 0
    for n in names:
        fused = read_vi(out / f"{Path(n).stem}.png")
        vi = read_vi(tmp_path / "vi" / n)
        assert fused.shape == vi.shape
        assert 0.02 < fused.mean() < 0.98


def test_list_says_where_every_methods_weights_come_from(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuse", "--list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert set(lines) == set(models.names())
    assert "shipped in the package (the default)" in lines[models.DEFAULT_METHOD]
    assert "taskfuse convert seafusion-official" in lines["seafusion"] and "train your own" in lines["seafusion"]
    assert "tardal-official | tardalpp-official" in lines["tardal"]
    assert "convert" not in lines["psfusion"] and "train your own" in lines["psfusion"]
    assert "no weights" in lines["gff"]


def test_output_speed_options_keep_the_pixels(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b", "c"])
    assert _fuse(ir, vi, tmp_path / "plain") == 0
    assert _fuse(ir, vi, tmp_path / "fast", "--batch", "2", "--workers", "3", "--png-level", "9") == 0
    for name in ("a", "b", "c"):
        plain, fast = (read_image(tmp_path / d / f"{name}.png") for d in ("plain", "fast"))
        assert np.array_equal(plain, fast)
    manifest = json.loads((tmp_path / "fast" / MANIFEST).read_text())
    assert manifest["info"]["batch"] == 2 and manifest["info"]["png_level"] == 9
    assert _fuse(ir, vi, tmp_path / "webp", "--ext", "webp", "--quality", "70") == 0
    assert Image.open(tmp_path / "webp" / "a.webp").format == "WEBP"
    capsys.readouterr()
    assert _fuse(ir, vi, tmp_path / "bad", "--ext", "jpg", "--quality", "101") == 2
    assert "quality must be 1..100 (--quality), got 101" in capsys.readouterr().err
    assert _fuse(ir, vi, tmp_path / "bad", "--batch", "0") == 2
    assert "--batch and --workers must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
