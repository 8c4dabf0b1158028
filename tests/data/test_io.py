from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, PngImagePlugin
from PIL.PngImagePlugin import PngImageFile

import taskfuse.data.io as io_module
from taskfuse.data.io import (
    PART,
    _decode_plain_png,
    atomic_path,
    decode_ir,
    decode_vi,
    encode_image,
    image_size,
    png_from_scanlines,
    png_scanlines,
    read_image,
    read_ir,
    read_vi,
    remove_parts,
    scale_ir,
    to_unit,
    writable_folder,
    write_image,
)
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


def test_auto_range_leaves_out_a_handful_of_outliers() -> None:
    rng = np.random.default_rng(5)
    scene = rng.integers(7000, 9001, (350, 470)).astype(np.uint16)
    scene[0, :2] = 7000, 9000
    hot = scene.copy()
    hot[100:103, 200:203] = 30000
    hot[300, 5] = 0
    auto = scale_ir(hot)
    expected = (scene.astype(np.float64) - 7000) / 2000
    keep = np.ones(hot.shape, bool)
    keep[100:103, 200:203] = keep[300, 5] = False
    assert np.allclose(auto[keep], expected[keep], atol=1e-6)
    assert (auto[100:103, 200:203] == 1).all() and auto[300, 5] == 0
    assert np.array_equal(scale_ir(scene), ((scene - 7000.0) / 2000).astype(np.float32))


def test_auto_range_keeps_min_max_without_outliers_and_for_a_lone_pixel() -> None:
    ramp = np.linspace(-3.0, 40.0, 1000, dtype=np.float32).reshape(20, 50)
    assert np.array_equal(scale_ir(ramp), ((ramp.astype(np.float64) + 3) / 43).astype(np.float32))
    flat = np.full((100, 100), 500, np.uint16)
    flat[50, 50] = 900
    out = scale_ir(flat)
    assert out[50, 50] == 1 and out.sum() == 1
    eight = np.array([[0, 3], [200, 255]], np.uint8)
    assert np.array_equal(scale_ir(eight), (eight / 255).astype(np.float32))


def test_false_colour_ir_is_refused_and_gray_stored_as_colour_is_not(tmp_path: Path) -> None:
    from matplotlib import colormaps

    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (16, 1))
    inferno = (colormaps["inferno"](gray)[..., :3] * 255).round().astype(np.uint8)
    path = _save(tmp_path / "inferno.png", inferno)
    with pytest.raises(TaskfuseError, match=r"inferno.png: a false-colour infrared image .*--ir-colour luma"):
        read_ir(path)
    luma = read_ir(path, colour="luma")[0].numpy() * 255
    assert np.abs(luma - gray).mean() > 10
    Image.fromarray(inferno).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "palette.png")
    with pytest.raises(TaskfuseError, match="palette.png: a false-colour"):
        read_ir(tmp_path / "palette.png")
    jpeg = tmp_path / "gray_rgb.jpg"
    Image.fromarray(np.stack([gray] * 3, -1)).save(jpeg, quality=70)
    assert read_ir(jpeg).shape == (1, 16, 64)
    Image.fromarray(gray).convert("P").save(tmp_path / "gray_palette.png")
    assert torch.equal(read_ir(tmp_path / "gray_palette.png"), read_ir(_save(tmp_path / "gray.png", gray)))
    with pytest.raises(TaskfuseError, match="--ir-colour"):
        read_ir(jpeg, colour="guess")


def test_non_finite_float_images_are_refused(tmp_path: Path) -> None:
    arr = np.ones((4, 4), np.float32)
    arr[1, 1] = np.inf
    with pytest.raises(TaskfuseError, match="f.tif: the image holds NaN or infinite values"):
        read_ir(_save(tmp_path / "f.tif", arr))


def test_atomic_writes_respect_the_umask_and_name_their_temporary_file(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "x.png") as tmp:
            assert PART.fullmatch(tmp.name) and tmp.name.startswith(".x.") and tmp.name.endswith(".part.png")
            tmp.write_bytes(b"data")
    finally:
        os.umask(previous)
    assert (tmp_path / "x.png").stat().st_mode & 0o777 == 0o640


def test_remove_parts_removes_only_our_leftovers(tmp_path: Path) -> None:
    ours = [tmp_path / ".a.0123abcd.part.png", tmp_path / ".a b.zz_9yx8w.part.tif", tmp_path / "s" / ".c.12345678.part"]
    others = [tmp_path / ".a.png", tmp_path / "a.part.png", tmp_path / ".a.123.part.png", tmp_path / ".a.0123abcd.png"]
    for p in ours + others:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
    assert remove_parts(tmp_path, name="b.png") == 0
    assert remove_parts(tmp_path) == 2
    assert remove_parts(tmp_path, recursive=True) == 1
    assert not any(p.exists() for p in ours) and all(p.exists() for p in others)


def test_writable_folder_names_the_option(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(TaskfuseError, match=r"--out .*file/sub: cannot write there"):
        writable_folder(tmp_path / "file" / "sub")
    assert writable_folder(tmp_path / "new" / "deep").is_dir()
    assert list((tmp_path / "new" / "deep").iterdir()) == []


def test_empty_file_header(tmp_path: Path) -> None:
    (tmp_path / "e.png").write_bytes(b"")
    with pytest.raises(TaskfuseError, match="e.png: the file is empty"):
        image_size(tmp_path / "e.png")


def _chunk_data(path: Path) -> list[tuple[bytes, bytes]]:
    with open(path, "rb") as f:
        return [(kind, f.read(length)) for kind, length in io_module._png_chunks(f)]


def _png_bytes(chunks: list[tuple[bytes, bytes]]) -> bytes:
    body = b"".join(struct.pack(">I", len(v)) + k + v + struct.pack(">I", zlib.crc32(k + v)) for k, v in chunks)
    return io_module.PNG_SIGNATURE + body


def _png_with_late_exif(path: Path, arr: np.ndarray, orientation: int) -> Path:
    """A PNG whose eXIf chunk follows the image data (allowed by the PNG spec, written by some cameras)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    body = exif.tobytes()[6:] if exif.tobytes().startswith(b"Exif") else exif.tobytes()
    chunks = _chunk_data(_save(path, arr))
    path.write_bytes(_png_bytes([*chunks[:-1], (b"eXIf", body), chunks[-1]]))
    return path


def test_image_size_reads_headers_only_and_finds_a_late_exif_orientation(tmp_path: Path, monkeypatch) -> None:
    arr = np.arange(12 * 20, dtype=np.uint8).reshape(12, 20)
    late = _png_with_late_exif(tmp_path / "late.png", arr, 6)
    plain = _save(tmp_path / "plain.png", arr)
    assert read_image(late).shape == (20, 12)

    def decode(self: Image.Image) -> None:
        raise AssertionError("image data decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", decode)
    assert image_size(late) == (20, 12) and image_size(plain) == (12, 20)


def test_decoding_keeps_8bit_levels_for_the_device_and_reading_divides_them(tmp_path: Path) -> None:
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16)
    rgb = np.stack([gray, gray[::-1], gray.T], -1)
    assert decode_ir(_save(tmp_path / "ir.png", gray)).dtype == np.uint8
    assert decode_ir(tmp_path / "ir.png", "p1-p99").dtype == np.float32
    assert decode_vi(_save(tmp_path / "vi.png", rgb)).dtype == np.uint8
    expected = (gray.astype(np.float64) / 255).astype(np.float32)
    assert np.array_equal(to_unit(torch.from_numpy(gray)).numpy(), expected)
    assert torch.equal(read_vi(tmp_path / "vi.png"), torch.from_numpy(rgb.astype(np.float32) / 255).permute(2, 0, 1))


@pytest.mark.parametrize(("suffix", "lossless"), [(".png", True), (".bmp", True), (".jpg", False), (".webp", False)])
def test_encode_image_formats_levels_and_quality(tmp_path: Path, suffix: str, lossless: bool) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    data = encode_image(arr, suffix, png_level=9, quality=90)
    write_image(tmp_path / f"a{suffix}", data)
    back = read_image(tmp_path / f"a{suffix}")
    assert back.shape == arr.shape and np.array_equal(back, arr) == lossless
    if suffix == ".png":
        smooth = np.broadcast_to(np.arange(32, dtype=np.uint8) * 8, (24, 32))
        assert len(encode_image(smooth, suffix, png_level=0)) > len(encode_image(smooth, suffix, png_level=9))
        assert write_image(tmp_path / "b.png", arr, png_level=9).read_bytes() == data
    with pytest.raises(TaskfuseError, match="unknown image suffix"):
        encode_image(arr, ".gif")


def test_png_levels_store_the_same_pixels_in_every_layout(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ramp = np.add.outer(np.arange(40), np.arange(48)).astype(np.uint8)
    arrays = {
        "gray": ramp,
        "rgb": np.stack([ramp, ramp[::-1], 255 - ramp], -1),
        "rgba": rng.integers(0, 256, (40, 48, 4), dtype=np.uint8),
        "gray16": (ramp.astype(np.uint16) * 257),
    }
    for name, arr in arrays.items():
        sizes = {}
        for level in range(10):
            data = encode_image(arr, ".png", png_level=level)
            sizes[level] = len(data)
            back = read_image(write_image(tmp_path / f"{name}{level}.png", data))
            assert back.dtype == arr.dtype and np.array_equal(back, arr), (name, level)
        if name != "rgba":
            assert sizes[0] > 2 * max(sizes[1], sizes[9]), (name, sizes)
    with pytest.raises(TaskfuseError, match="0..9"):
        encode_image(ramp, ".png", png_level=10)


def _scene(h: int, w: int, channels: int, seed: int) -> np.ndarray:
    """A smooth gradient under mild noise: camera-like bytes that Paeth predicts well but not exactly."""
    rng = np.random.default_rng(seed)
    ramp = np.add.outer(np.arange(h) * 0.7, np.arange(w) * 0.4)[..., None] + 40 * np.arange(channels)
    return np.clip(ramp + rng.normal(0, 6, (h, w, channels)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_png_from_scanlines_writes_opencvs_file(channels: int) -> None:
    batch = np.stack([_scene(128, 160, channels, seed) for seed in range(2)])
    rows = png_scanlines(torch.from_numpy(batch))
    assert rows.shape == (2, 128, 1 + 160 * channels) and (rows[..., 0] == 4).all()
    assert torch.equal(rows[1], png_scanlines(torch.from_numpy(batch[1])))
    for level in range(10):
        for image, lines in zip(batch, rows.numpy(), strict=True):
            ours = png_from_scanlines(lines, channels, level)
            theirs = encode_image(image if channels == 3 else image[..., 0], ".png", png_level=level)
            assert level == 0 or ours == theirs, level
            back = cv2.imdecode(np.frombuffer(ours, np.uint8), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(back, cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if channels == 3 else image[..., 0])


def test_png_from_scanlines_keeps_the_pixels_of_small_and_odd_images(tmp_path: Path) -> None:
    for shape in [(1, 1, 1), (7, 13, 3), (5, 3, 1), (2, 300, 3)]:
        image = _scene(*shape, seed=sum(shape))
        for level in (0, 1, 6, 9):
            data = png_from_scanlines(png_scanlines(torch.from_numpy(image)).numpy(), shape[2], level)
            back = read_image(write_image(tmp_path / f"{shape}-{level}.png", data))
            assert np.array_equal(back, image if shape[2] == 3 else image[..., 0]), (shape, level)


def test_png_scanlines_and_file_refuse_what_they_cannot_write() -> None:
    with pytest.raises(TaskfuseError, match="uint8 images"):
        png_scanlines(torch.zeros(4, 4, 3))
    with pytest.raises(TaskfuseError, match="uint8 images"):
        png_scanlines(torch.zeros(4, 3, dtype=torch.uint8))
    rows = png_scanlines(torch.zeros(4, 5, 3, dtype=torch.uint8)).numpy()
    with pytest.raises(TaskfuseError, match="whole pixels of 2"):
        png_from_scanlines(rows, 2)
    with pytest.raises(TaskfuseError, match="0..9"):
        png_from_scanlines(rows, 3, level=10)


@pytest.mark.parametrize("kind", ["gray8", "gray16", "rgb8", "rgb16"])
def test_plain_pngs_decode_without_pillow_to_the_same_arrays(tmp_path: Path, kind: str, monkeypatch) -> None:
    rng = np.random.default_rng(7)
    shape = (13, 21) if kind.startswith("gray") else (13, 21, 3)
    dtype = np.uint16 if kind.endswith("16") else np.uint8
    arr = rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)
    path = tmp_path / f"{kind}.png"
    if kind == "rgb16":
        assert cv2.imwrite(str(path), arr[..., ::-1])
    else:
        _save(path, arr)
    with monkeypatch.context() as m:
        m.setattr(PngImageFile, "load", lambda self: pytest.fail("Pillow decoded a plain PNG"))
        fast = read_image(path)
    monkeypatch.setattr(io_module, "_decode_plain_png", lambda data: None)
    pillow = read_image(path)
    assert fast.dtype == pillow.dtype == dtype and np.array_equal(fast, pillow) and np.array_equal(fast, arr)


def test_other_pngs_go_to_pillow(tmp_path: Path) -> None:
    gray = np.arange(64, dtype=np.uint8).reshape(8, 8)
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "made here")
    images = {
        "palette": (Image.fromarray(gray).convert("P"), {}),
        "transparency": (Image.fromarray(gray), {"transparency": 5}),
        "text": (Image.fromarray(gray), {"pnginfo": text}),
        "rgba": (Image.fromarray(np.dstack([gray] * 4)), {}),
        "two-bit": (Image.fromarray(gray % 4 * 85), {"bits": 2}),
    }
    for name, (im, kw) in images.items():
        im.save(tmp_path / f"{name}.png", **kw)
        assert _decode_plain_png((tmp_path / f"{name}.png").read_bytes()) is None, name
    assert read_image(tmp_path / "rgba.png").shape == (8, 8, 4)
    assert np.array_equal(read_image(tmp_path / "text.png"), gray)
    assert read_image(tmp_path / "palette.png").shape == (8, 8, 3)
    assert _decode_plain_png(b"\xff\xd8\xff" + bytes(40)) is None


def test_a_plain_png_with_missing_image_data_is_refused(tmp_path: Path) -> None:
    arr = np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    chunks = _chunk_data(_save(tmp_path / "whole.png", arr))
    raw = zlib.decompress(b"".join(v for k, v in chunks if k == b"IDAT"))
    short = [(k, zlib.compress(raw[: len(raw) // 2]) if k == b"IDAT" else v) for k, v in chunks]
    (tmp_path / "short.png").write_bytes(_png_bytes(short))
    with pytest.raises(TaskfuseError, match="short.png: not a readable image.*corrupt or truncated"):
        read_vi(tmp_path / "short.png")
