from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from taskfuse.data.io import atomic_path, image_size, read_image, read_ir, read_vi, scale_ir, write_image
from taskfuse.errors import TaskfuseError


def _save(path: Path, arr: np.ndarray, **kw) -> Path:
    Image.fromarray(arr).save(path, **kw)
    return path


def test_8bit_gray_ir_is_divided_by_255(tmp_path: Path) -> None:
    arr = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ir = read_ir(_save(tmp_path / "a.png", arr))
    assert ir.shape == (1, 16, 16) and ir.dtype == torch.float32
    assert torch.allclose(ir[0], torch.from_numpy(arr).float() / 255)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_thermal_scaling_rules(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(0)
    arr = rng.integers(7000, 9000, size=(20, 30)).astype(np.uint16)
    arr[0, 0], arr[0, 1] = 7000, 9000
    path = _save(tmp_path / f"t{suffix}", arr)
    assert read_image(path).dtype == np.uint16
    auto = read_ir(path, "auto")[0].double()
    assert auto.min() == 0 and auto.max() == 1
    assert torch.allclose(auto, (torch.from_numpy(arr.astype(np.float64)) - 7000) / 2000, atol=1e-6)
    full = read_ir(path, "full")[0].double()
    assert torch.allclose(full, torch.from_numpy(arr.astype(np.float64)) / 65535, atol=1e-6)
    p = read_ir(path, "p1-p99")[0]
    lo, hi = np.percentile(arr, (1, 99))
    assert p.min() == 0 and p.max() == 1
    expected = np.clip((arr[5, 5] - lo) / (hi - lo), 0, 1)
    assert abs(float(p[5, 5]) - expected) < 1e-6


def test_scale_ir_rejects_unknown_rule() -> None:
    with pytest.raises(TaskfuseError, match="ir_range"):
        scale_ir(np.zeros((2, 2), np.uint8), "minmax")


def test_colour_ir_becomes_one_channel(tmp_path: Path) -> None:
    gray = np.random.default_rng(1).integers(0, 256, (8, 9), dtype=np.uint8)
    ir = read_ir(_save(tmp_path / "ir.png", np.stack([gray] * 3, -1)))
    assert ir.shape == (1, 8, 9)
    assert torch.equal((ir[0] * 255).round().to(torch.uint8), torch.from_numpy(gray))


def test_vi_gray_rgb_and_rgba(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((6, 7, 1), 17, np.uint8)], -1)
    assert read_vi(_save(tmp_path / "g.png", rgb[..., 0])).shape == (1, 6, 7)
    v = read_vi(_save(tmp_path / "c.png", rgb))
    assert v.shape == (3, 6, 7)
    assert torch.equal((v * 255).round().to(torch.uint8).permute(1, 2, 0), torch.from_numpy(rgb))
    assert torch.equal(read_vi(_save(tmp_path / "a.png", rgba)), v)


def test_16bit_colour_png_keeps_precision(tmp_path: Path) -> None:
    import cv2

    arr = np.random.default_rng(3).integers(0, 65536, (5, 6, 3)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), arr[..., ::-1])
    v = read_vi(tmp_path / "c16.png")
    assert torch.allclose(v.permute(1, 2, 0).double(), torch.from_numpy(arr / 65535.0), atol=1e-7)


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    arr = np.zeros((10, 20, 3), np.uint8)
    arr[0, 0] = 255
    im = Image.fromarray(arr)
    exif = im.getexif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    im.save(path, exif=exif, quality=100)
    v = read_vi(path)
    assert v.shape == (3, 20, 10)
    assert image_size(path) == (20, 10)
    assert v[:, 0, -1].mean() > 0.8


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_file_is_refused_with_its_name(tmp_path: Path, suffix: str) -> None:
    arr = np.random.default_rng(4).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = _save(tmp_path / f"cut{suffix}", arr)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TaskfuseError, match=f"cut{suffix}.*corrupt or truncated"):
        read_vi(path)


def test_empty_and_non_image_files(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    with pytest.raises(TaskfuseError, match="empty.png: the file is empty"):
        read_ir(tmp_path / "empty.png")
    with pytest.raises(TaskfuseError, match="text.png: not a readable image"):
        read_ir(tmp_path / "text.png")
    with pytest.raises(TaskfuseError, match="missing.png: cannot read"):
        read_ir(tmp_path / "missing.png")


def test_write_image_round_trip_and_atomicity(tmp_path: Path) -> None:
    img = torch.rand(3, 9, 11)
    out = write_image(tmp_path / "sub" / "x.png", img)
    back = read_vi(out)
    assert (back - img).abs().max() <= 0.5 / 255 + 1e-6
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.png"]
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert torch.equal(read_vi(out), back)
    assert sorted(p.name for p in out.parent.iterdir()) == ["x.png"]
    with pytest.raises(TaskfuseError, match="unknown image suffix"):
        write_image(tmp_path / "x.gif", img)
