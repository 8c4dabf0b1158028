from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskfuse import models
from taskfuse.cli.main import main
from taskfuse.data.io import read_vi, write_image


def _pairs(root: Path, names: list[str], size: tuple[int, int] = (24, 32)) -> tuple[Path, Path]:
    for n in names:
        write_image(root / "ir" / f"{n}.png", torch.rand(1, *size))
        write_image(root / "vi" / f"{n}.jpg", torch.rand(3, *size))
    return root / "ir", root / "vi"


def _outputs(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def test_folder_fuse_writes_colour_then_skips_then_overwrites(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b", "c"])
    out = tmp_path / "out"
    assert main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out)]) == 0
    assert _outputs(out) == ["a.png", "b.png", "c.png"]
    assert read_vi(out / "a.png").shape == (3, 24, 32)
    assert "fused 3 image(s), skipped 0" in capsys.readouterr().out
    stamp = (out / "a.png").stat().st_mtime_ns
    assert main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out)]) == 0
    assert "fused 0 image(s), skipped 3" in capsys.readouterr().out
    assert (out / "a.png").stat().st_mtime_ns == stamp
    assert main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out), "--overwrite", "--ext", "jpg"]) == 0
    assert "fused 3 image(s)" in capsys.readouterr().out


def test_gray_visible_gives_gray_output(tmp_path: Path) -> None:
    write_image(tmp_path / "ir.png", torch.rand(1, 16, 16))
    write_image(tmp_path / "vi.png", torch.rand(1, 16, 16))
    assert (
        main(["fuse", "--ir", str(tmp_path / "ir.png"), "--vi", str(tmp_path / "vi.png"), "--out", str(tmp_path)]) == 0
    )
    assert Image.open(tmp_path / "ir.png").mode == "L"


def test_size_mismatch_fails_before_writing_and_resize_fixes_it(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b"])
    write_image(vi / "b.jpg", torch.rand(3, 48, 64))
    out = tmp_path / "out"
    assert main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "b (ir 32x24, vi 64x48)" in err and "--resize vi" in err
    assert _outputs(out) == []
    assert main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out), "--resize", "vi"]) == 0
    assert read_vi(out / "b.png").shape == (3, 24, 32)


def test_missing_partner_is_named_and_skip_unpaired_works(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b"])
    (vi / "b.jpg").unlink()
    out = tmp_path / "out"
    assert main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out)]) == 2
    assert "no visible partner" in capsys.readouterr().err
    assert main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out), "--skip-unpaired"]) == 0
    assert _outputs(out) == ["a.png"]


def test_corrupt_file_stops_with_its_name_and_leaves_only_whole_outputs(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a", "b", "c"])
    data = (vi / "b.jpg").read_bytes()
    (vi / "b.jpg").write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out)]) == 2
    assert "b.jpg: not a readable image" in capsys.readouterr().err
    assert _outputs(out) == ["a.png"]
    write_image(vi / "b.jpg", torch.rand(3, 24, 32))
    assert main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out)]) == 0
    assert "fused 2 image(s), skipped 1" in capsys.readouterr().out


def test_bad_method_device_and_missing_weights(tmp_path: Path, capsys) -> None:
    ir, vi = _pairs(tmp_path, ["a"])
    base = ["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(tmp_path / "o")]
    assert main([*base, "--method", "laplacain"]) == 2
    assert "did you mean 'laplacian'" in capsys.readouterr().err
    assert main([*base, "--weights", str(tmp_path / "none.safetensors")]) == 2
    assert "none.safetensors" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main([*base, "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err


def test_16bit_thermal_ir_fuses(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(7000, 9000, (20, 24)).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "t.tif")
    write_image(tmp_path / "v.png", torch.rand(3, 20, 24))
    out = tmp_path / "o"
    assert main(["fuse", "--ir", str(tmp_path / "t.tif"), "--vi", str(tmp_path / "v.png"), "--out", str(out)]) == 0
    assert _outputs(out) == ["t.png"]


@pytest.mark.parametrize("method", ["mean", "max", "laplacian", "gff"])
def test_roadscene_pairs_fuse_with_every_classical_method(shared_data: Path, tmp_path: Path, method: str) -> None:
    names = sorted(p.name for p in (shared_data / "roadscene" / "ir").iterdir())[:2]
    for side in ("ir", "vi"):
        (tmp_path / side).mkdir()
        for n in names:
            shutil.copy(shared_data / "roadscene" / side / n, tmp_path / side / n)
    out = tmp_path / "out"
    assert (
        main(
            ["fuse", "--ir", str(tmp_path / "ir"), "--vi", str(tmp_path / "vi"), "--out", str(out), "--method", method]
        )
        == 0
    )
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
