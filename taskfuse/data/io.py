"""Reading and writing images: 8/16-bit PNG, JPEG, BMP, TIFF; infrared as one float channel in [0, 1].

Decoding goes through Pillow, which refuses truncated or corrupt files instead of returning a half-grey
image, and honours the EXIF orientation tag. 16-bit colour PNG/TIFF (which Pillow would reduce to 8 bits)
is decoded with OpenCV after Pillow has checked the file. Plain gray or RGB PNGs (no transparency, text or
EXIF chunks; every PNG of the MSRS pairs, for one) are decoded by OpenCV alone, to the same arrays:
OpenCV decodes a file in one call that releases the GIL, where Pillow's PNG reader walks the chunks and feeds
its decoder in Python; with Pillow, decoding threads stopped scaling beyond 8 (docs/performance.md).

Infrared scaling (``ir_range``), applied to one-channel data:

- ``auto`` (default): 8-bit images are divided by 255 and float images already in [0, 1] are kept; 16-bit
  and other float images are stretched linearly from their own minimum to maximum, which uses the full
  [0, 1] range for radiometric thermal images that occupy a narrow band of 0..65535. A handful of outliers
  (a hot spot, dead pixels) would compress the whole scene into a few grey levels, so values beyond a
  fence are left out of the range and clipped: the fence lies one body width beyond the 0.1st and 99.9th
  percentiles (body width = their difference), so at most 0.1 % of the pixels on each side can be clipped,
  and only when they stand further from the scene than the scene is wide. An image without such outliers
  keeps its exact minimum-to-maximum stretch.
- ``full``: divide by the largest value of the integer type (255 or 65535). Nothing is clipped.
- ``p1-p99``: map the 1st..99th percentile to [0, 1] and clip the 2 % of outliers; asked for explicitly,
  for thermal images whose few very hot pixels would otherwise compress the scene.
"""

from __future__ import annotations

import glob
import io
import os
import re
import secrets
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from taskfuse.data.color import KB, KG, KR
from taskfuse.errors import TaskfuseError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}
"""Pillow's format name of every output suffix ``write_image`` knows."""
LOSSY = (".jpg", ".jpeg", ".webp")
"""Output suffixes whose pixels depend on the encoder's ``quality``."""
PNG_LEVEL = 1
"""Default level of PNG outputs. Every level stores the same pixels; only size and speed change. PNG files are
written by OpenCV with the Paeth prediction filter: level 1 then Huffman-codes the filtered bytes without
searching for repeats (zlib's ``Z_HUFFMAN_ONLY``), 2..9 search for repeats with zlib's effort of that level, 0
stores the data uncompressed. On fused camera images level 1 encodes 16-21 % faster than run-length coding
(``Z_RLE``) for files 1-3 % larger, and faster than Pillow's level 1 for smaller files (docs/performance.md has
the measured tables). On a GPU ``taskfuse fuse`` filters the rows there (``png_scanlines``); at levels 0 and 2..9
it deflates them as libpng does (``png_from_scanlines``), to the same files above 16 KiB of rows, and at level 1
deflates them there too (``taskfuse.data.deflate``), to the same pixels in a few per cent more bytes."""
QUALITY = 95
"""Default quality of JPEG and WebP outputs."""
IR_RANGES = ("auto", "full", "p1-p99")
IR_COLOURS = ("error", "luma")
"""What reading a false-colour infrared image does: refuse it (default) or take its BT.601 luma."""
OUTLIER_PERCENT = 0.1
"""``ir_range="auto"`` may clip at most this percentage of pixels on each side (see the module docstring)."""
COLOUR_SPREAD = 1 / 8
"""A pixel is coloured when its channels differ by more than this fraction of the value range."""
COLOUR_SHARE = 0.01
"""An infrared image is false colour when more than this fraction of its pixels is coloured."""
PART = re.compile(r"\..+\.[a-z0-9_]{8}\.part(\.[A-Za-z0-9]+)?")
"""Names of the temporary files ``atomic_path`` writes (``.NAME.RANDOM.part.SUFFIX``)."""
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_CHUNK = 8192
"""Bytes of deflated data per IDAT chunk, as libpng writes them."""
PLAIN_PNG_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"iCCP", b"pHYs", b"sBIT", b"tIME"})
"""Chunks that change nothing in the decoded samples: a PNG made of these alone is decoded by OpenCV
(``_decode_plain_png``). Any other chunk (transparency, text that may hold XMP, EXIF, palette) sends the file
to Pillow."""


def _bit_depth(im: Image.Image, data: bytes) -> int:
    """Bits per sample of a PNG or TIFF as stored on disk (Pillow reports 16-bit RGB as 8-bit RGB)."""
    if im.format == "PNG" and len(data) > 24:
        return data[24]
    if im.format == "TIFF":
        bits = im.tag_v2.get(258, (8,))
        return int(bits[0] if isinstance(bits, tuple) else bits)
    return 8


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to an array: (H, W) or (H, W, C) with C in 3 (RGB) or 4 (RGBA).

    dtype is uint8, uint16 or float32 as stored. EXIF orientation is applied. Any unreadable, truncated or
    non-image file raises ``TaskfuseError`` naming the file.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise TaskfuseError(f"{path}: cannot read the file ({e.strerror}); check the path and permissions") from e
    if not data:
        raise TaskfuseError(f"{path}: the file is empty; replace it with a valid image or remove it")
    try:
        plain = _decode_plain_png(data)
        if plain is not None:
            return plain
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            orientation = im.getexif().get(0x0112, 1)
            if im.mode in ("RGB", "RGBA") and _bit_depth(im, data) == 16:
                arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
                if arr is None:
                    raise OSError("OpenCV could not decode the 16-bit colour data")
                arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
                return _orient(arr, orientation)
            arr = _pil_to_array(im)
    except _DECODE_ERRORS as e:
        raise TaskfuseError(
            f"{path}: not a readable image ({e}); the file is corrupt or truncated — replace or remove it"
        ) from e
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise TaskfuseError(f"{path}: the image holds NaN or infinite values; replace them with finite ones")
    return _orient(arr, orientation)


def _decode_plain_png(data: bytes) -> np.ndarray | None:
    """An 8- or 16-bit gray (H, W) or RGB (H, W, 3) PNG made of ``PLAIN_PNG_CHUNKS`` alone, decoded by OpenCV
    to the array Pillow gives; None for any other file (another format, colour type or chunk, or a chunk list
    cut short), which ``read_image`` then reads with Pillow and its errors. Raises ValueError when libpng refuses
    the image data (a bad checksum, too little data: Pillow would return such an image with its missing rows
    black)."""
    if len(data) < 33 or data[:8] != PNG_SIGNATURE or data[12:16] != b"IHDR" or data[25] not in (0, 2):
        return None
    width, height, depth = struct.unpack_from(">IIB", data, 16)
    if depth not in (8, 16):
        return None
    kinds = [kind for kind, _ in _png_chunks(io.BytesIO(data))]
    if kinds[-1:] != [b"IEND"] or not PLAIN_PNG_CHUNKS.issuperset(kinds):
        return None
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[:2] != (height, width) or arr.ndim != (2 if data[25] == 0 else 3):
        raise ValueError("libpng refused the image data")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB) if arr.ndim == 3 else arr


def _pil_to_array(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(im, dtype=np.uint16)
    if mode == "I":
        arr = np.asarray(im)
        if arr.min() >= 0 and arr.max() <= 65535:
            return arr.astype(np.uint16)
        return arr.astype(np.float32)
    if mode == "F":
        return np.asarray(im, dtype=np.float32)
    if mode in ("1", "L"):
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if mode == "LA":
        return np.asarray(im.convert("L"), dtype=np.uint8)
    if mode in ("RGBA", "PA") or (mode == "P" and "transparency" in im.info):
        return np.asarray(im.convert("RGBA"), dtype=np.uint8)
    return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation value (1..8) to an (H, W[, C]) array."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
        7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1],
        8: lambda a: np.swapaxes(a, 0, 1)[::-1],
    }
    op = ops.get(int(orientation))
    return np.ascontiguousarray(op(arr)) if op else arr


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) after EXIF orientation, read from the header only (cheap, for pairing checks)."""
    path = Path(path)
    try:
        empty = path.stat().st_size == 0
    except OSError as e:
        raise TaskfuseError(f"{path}: cannot read the file ({e.strerror}); check the path and permissions") from e
    if empty:
        raise TaskfuseError(f"{path}: the file is empty; replace it with a valid image or remove it")
    try:
        with Image.open(path) as im:
            w, h = im.size
            exif = Image.Exif()
            if im.format == "PNG" and "exif" not in im.info:
                exif.load(_png_exif(path))
            else:
                exif = im.getexif()
            if exif.get(0x0112, 1) in (5, 6, 7, 8):
                w, h = h, w
            return h, w
    except (*_DECODE_ERRORS, struct.error) as e:
        raise TaskfuseError(f"{path}: not a readable image ({e}); replace or remove it") from e


def _png_exif(path: Path) -> bytes:
    """The EXIF data of a PNG whose eXIf chunk follows the image data, or b"" when it has none.

    Pillow finds such a chunk only by decoding the whole image (``PngImageFile.getexif`` loads it); walking
    the chunk headers and seeking over their data costs a few reads instead.
    """
    with open(path, "rb") as f:
        for kind, length in _png_chunks(f):
            if kind == b"eXIf":
                return b"Exif\x00\x00" + f.read(length)
    return b""


def _png_chunks(f: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """(type, data length) of every chunk of the PNG file ``f`` up to ``IEND``, read from the chunk headers alone:
    at each the file stands at the chunk's data, which is skipped unless the caller reads it. Stops early at a
    header cut short."""
    f.seek(8)
    while len(head := f.read(8)) == 8:
        length, kind = struct.unpack(">I4s", head)
        data = f.tell()
        yield kind, length
        if kind == b"IEND":
            return
        f.seek(data + length + 4)


def _to_gray(arr: np.ndarray) -> np.ndarray:
    """Colour -> one channel: equal channels are taken as they are, otherwise BT.601 luma."""
    if arr.ndim == 2:
        return arr
    rgb = arr[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0]
    y = KR * rgb[..., 0].astype(np.float64) + KG * rgb[..., 1] + KB * rgb[..., 2]
    return y.astype(np.float32) if arr.dtype.kind == "f" else np.rint(y).astype(arr.dtype)


def scale_ir(arr: np.ndarray, ir_range: str = "auto") -> np.ndarray:
    """One-channel raw values -> float32 in [0, 1] by the rule named ``ir_range`` (see module docstring)."""
    if ir_range not in IR_RANGES:
        raise TaskfuseError(f"ir_range {ir_range!r} is not one of {', '.join(IR_RANGES)}")
    x = arr.astype(np.float64)
    if ir_range == "p1-p99":
        lo, hi = np.percentile(x, (1, 99))
        out = np.clip((x - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(x)
        return out.astype(np.float32)
    if arr.dtype == np.uint8:
        return (x / 255.0).astype(np.float32)
    if ir_range == "full":
        if arr.dtype.kind == "f":
            if x.min() < 0 or x.max() > 1:
                raise TaskfuseError("ir_range 'full' needs float data in [0, 1]; use 'auto' or 'p1-p99'")
            return x.astype(np.float32)
        return (x / np.iinfo(arr.dtype).max).astype(np.float32)
    if arr.dtype.kind == "f" and x.min() >= 0 and x.max() <= 1:
        return x.astype(np.float32)
    lo, hi = _auto_range(x)
    if hi == lo:
        return np.zeros_like(x, dtype=np.float32)
    return np.clip((x - lo) / (hi - lo), 0, 1).astype(np.float32)


def _auto_range(x: np.ndarray) -> tuple[float, float]:
    """Minimum and maximum of ``x`` without a handful of outliers (``ir_range="auto"``, module docstring)."""
    lo, hi = float(x.min()), float(x.max())
    p_lo, p_hi = np.percentile(x, (OUTLIER_PERCENT, 100 - OUTLIER_PERCENT))
    body = p_hi - p_lo
    fence_lo, fence_hi = p_lo - body, p_hi + body
    if lo >= fence_lo and hi <= fence_hi:
        return lo, hi
    inside = x[(x >= fence_lo) & (x <= fence_hi)]
    in_lo, in_hi = float(inside.min()), float(inside.max())
    return (in_lo, in_hi) if in_hi > in_lo else (lo, hi)


def coloured_share(arr: np.ndarray) -> float:
    """Fraction of pixels whose colour channels differ by more than ``COLOUR_SPREAD`` of the value range
    (0 for one-channel images). Gray images stored as RGB, JPEG chroma noise included, stay near 0; a
    false-colour rendering (a thermal palette such as ironbow or jet) colours most pixels."""
    if arr.ndim == 2:
        return 0.0
    rgb = arr[..., :3]
    full = 1.0 if arr.dtype.kind == "f" else float(np.iinfo(arr.dtype).max)
    spread = rgb.max(-1).astype(np.float64) - rgb.min(-1)
    return float((spread > COLOUR_SPREAD * full).mean())


def decode_ir(path: str | os.PathLike, ir_range: str = "auto", colour: str = "error") -> np.ndarray:
    """Infrared image -> (H, W) array: uint8 as stored when its scaling is a plain division by 255 (8-bit data
    under ``ir_range`` auto or full), left to ``to_unit`` so that it can run where the model runs; otherwise
    float32 in [0, 1] (``scale_ir``).

    Gray IR stored as RGB (equal or nearly equal channels) is turned gray. A false-colour image (palette or
    RGB rendering with more than ``COLOUR_SHARE`` of its pixels coloured) no longer holds the thermal
    intensities: a palette's luma is not monotonic in temperature. ``colour="error"`` refuses it;
    ``colour="luma"`` fuses its BT.601 luma anyway.
    """
    return ir_array(read_image(path), ir_range, colour, str(path))


def ir_array(arr: np.ndarray, ir_range: str = "auto", colour: str = "error", source: str = "image") -> np.ndarray:
    """``decode_ir`` for an image already decoded (a video frame): the same rules, errors naming ``source``."""
    if colour not in IR_COLOURS:
        raise TaskfuseError(f"colour {colour!r} is not one of {', '.join(IR_COLOURS)} (--ir-colour)")
    if ir_range not in IR_RANGES:
        raise TaskfuseError(f"ir_range {ir_range!r} is not one of {', '.join(IR_RANGES)}")
    share = coloured_share(arr)
    if colour == "error" and share > COLOUR_SHARE:
        raise TaskfuseError(
            f"{source}: a false-colour infrared image ({share:.0%} of its pixels are coloured), whose luma is not "
            "the thermal intensity; use the camera's gray (radiometric) export, or fuse its luma anyway "
            "(taskfuse fuse --ir-colour luma)"
        )
    gray = _to_gray(arr)
    return gray if gray.dtype == np.uint8 and ir_range != "p1-p99" else scale_ir(gray, ir_range)


def decode_vi(path: str | os.PathLike) -> np.ndarray:
    """Visible image -> (H, W, 3) RGB or (H, W) gray: uint8 as stored (see ``to_unit``), other depths as
    float32 in [0, 1]; alpha is dropped."""
    arr = read_image(path)
    if arr.ndim == 3:
        arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    return np.clip(arr.astype(np.float32), 0, 1)


def to_unit(x: Tensor) -> Tensor:
    """uint8 levels -> float32 in [0, 1] (level / 255, correctly rounded, so on any device the same values
    as dividing on the CPU); float tensors are returned as they are."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x


def as_chw(arr: np.ndarray) -> Tensor:
    """(H, W) or (H, W, C) array -> (1|C, H, W) tensor view of its memory (copied only when read-only, as
    Pillow's arrays are: torch tensors are always writable)."""
    t = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)


def read_ir(path: str | os.PathLike, ir_range: str = "auto", colour: str = "error") -> Tensor:
    """Infrared image -> (1, H, W) float32 tensor in [0, 1] (``decode_ir``, then ``to_unit``)."""
    return to_unit(as_chw(decode_ir(path, ir_range, colour))).contiguous()


def read_vi(path: str | os.PathLike) -> Tensor:
    """Visible image -> (3, H, W) RGB or (1, H, W) gray float32 tensor in [0, 1]; alpha is dropped."""
    return to_unit(as_chw(decode_vi(path))).contiguous()


def quantize(img: Tensor) -> Tensor:
    """Float image in [0, 1] (any shape, any device) -> uint8 levels, rounded to nearest, on the same device."""
    return (img.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8)


def to_uint8(img: Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W) or (H, W, 3) uint8, rounded to nearest."""
    if img.dim() != 3 or img.shape[0] not in (1, 3):
        raise ValueError(f"expected (1|3, H, W), got {tuple(img.shape)}")
    arr = quantize(img).cpu().numpy()
    return arr[0] if arr.shape[0] == 1 else np.ascontiguousarray(arr.transpose(1, 2, 0))


def _create_part(path: Path) -> Path:
    """Create an empty temporary file beside ``path``, named ``.STEM.RANDOM.part.SUFFIX`` (see ``PART``).

    It is created with mode 0666 less the umask, as any file the user writes, not 0600 as ``mkstemp``'s.
    """
    while True:
        tmp = path.parent / f".{path.stem}.{secrets.token_hex(4)}.part{path.suffix}"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``, on error removed.

    An error or interruption (``KeyboardInterrupt``, which the CLI also raises on SIGTERM) therefore leaves
    either the old file or the complete new one, never half of one. Only SIGKILL or a power cut can leave
    the temporary file behind; ``remove_parts`` clears those. The file gets the umask's permissions.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_part(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def remove_parts(folder: str | os.PathLike, recursive: bool = False, name: str | None = None) -> int:
    """Remove the temporary files a killed writer left in ``folder`` (and its sub-folders if ``recursive``),
    or only those of the file ``name`` in ``folder``.

    Only names of ``atomic_path``'s pattern (``PART``) are touched; returns how many were removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    if name is not None:
        target = Path(name)
        found = folder.glob(f".{glob.escape(target.stem)}.*.part{glob.escape(target.suffix)}")
    else:
        found = folder.rglob(".*.part*") if recursive else folder.glob(".*.part*")
    removed = 0
    for p in found:
        if PART.fullmatch(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def writable_folder(folder: str | os.PathLike, option: str = "--out") -> Path:
    """Create ``folder`` (with its parents) and check that files can be created in it, before any work.

    Raises ``TaskfuseError`` naming ``option`` when it is a file or not writable.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _create_part(folder / "write-test").unlink()
    except OSError as e:
        raise TaskfuseError(
            f"{option} {folder}: cannot write there ({e.strerror or e}); choose a folder you can write to"
        ) from e
    return folder


def encode_image(img: Tensor | np.ndarray, suffix: str, png_level: int = PNG_LEVEL, quality: int = QUALITY) -> bytes:
    """An image file's bytes in the format of ``suffix`` (.png, .jpg, .bmp, .tif, .webp): PNG encoded by OpenCV
    (``PNG_LEVEL``), the others by Pillow.

    ``img`` is a (1|3, H, W) float tensor in [0, 1] or a uint8 array (H, W[, 3]). ``png_level`` is the zlib
    level of PNG (0..9: only size and speed change, never the pixels); ``quality`` that of JPEG and WebP (1..100).
    Both release the GIL while they compress, so threads encode in parallel.
    """
    kind = FORMATS.get(suffix.lower())
    if kind is None:
        raise TaskfuseError(f"{suffix}: unknown image suffix; use one of {', '.join(FORMATS)}")
    arr = to_uint8(img) if isinstance(img, Tensor) else img
    if kind == "PNG":
        return _encode_png(arr, png_level)
    params = {"JPEG": {"quality": quality}, "WEBP": {"quality": quality}}
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format=kind, **params.get(kind, {}))
    return buffer.getvalue()


def _encode_png(arr: np.ndarray, level: int) -> bytes:
    """PNG bytes of an 8- or 16-bit (H, W), (H, W, 3) RGB or (H, W, 4) RGBA array at ``level`` (``PNG_LEVEL``)."""
    _check_png_level(level)
    strategy = cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY if level == 1 else cv2.IMWRITE_PNG_STRATEGY_DEFAULT
    params = [cv2.IMWRITE_PNG_COMPRESSION, level, cv2.IMWRITE_PNG_STRATEGY, strategy]
    params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", arr, params)
    if not ok:
        raise TaskfuseError(f"OpenCV could not encode a {arr.shape} {arr.dtype} array as PNG")
    return data.tobytes()


def png_scanlines(levels: Tensor) -> Tensor:
    """The scanlines ``_encode_png`` deflates, made from uint8 images (..., H, W, C) wherever they lie (a GPU):
    (..., H, 1 + W * C), each row its filter type, 4 (Paeth), then every byte less its Paeth predictor.

    Paeth (PNG specification, section 9.4) predicts a byte from the bytes of the same channel to its left (a),
    above (b) and above-left (c), zero beyond the image: of a, b and c the one nearest to a + b - c, ties going
    to a, then b. The bytes are as libpng filters them, so ``png_from_scanlines`` gives ``_encode_png``'s file;
    filtering on the GPU leaves the CPU only the deflate.
    """
    if levels.dtype != torch.uint8 or levels.dim() < 3:
        raise TaskfuseError(f"PNG scanlines need uint8 images (..., H, W, C), got {levels.dtype} {tuple(levels.shape)}")
    *lead, h, w, c = levels.shape
    x = levels.reshape(*lead, h, w * c).to(torch.int16)
    left = F.pad(x, (c, 0))[..., :-c]
    up = F.pad(x, (0, 0, 1, 0))[..., :-1, :]
    up_left = F.pad(x, (c, 0, 1, 0))[..., :-1, :-c]
    guess = left + up - up_left
    d_left, d_up, d_up_left = (guess - left).abs(), (guess - up).abs(), (guess - up_left).abs()
    near_up = torch.where(d_up <= d_up_left, up, up_left)
    predictor = torch.where((d_left <= d_up) & (d_left <= d_up_left), left, near_up)
    kind = torch.full((*lead, h, 1), 4, dtype=torch.uint8, device=levels.device)
    return torch.cat([kind, (x - predictor).to(torch.uint8)], dim=-1)


def png_from_scanlines(rows: np.ndarray, channels: int, level: int = PNG_LEVEL) -> bytes:
    """A PNG file of 8-bit gray (``channels`` 1) or RGB (3) from its ``png_scanlines`` (H, 1 + W * C).

    Deflated as libpng deflates under ``_encode_png`` (zlib's default memory level and 32 KiB window, Huffman
    codes alone at level 1) into IDAT chunks of 8 KiB: at levels 1..9 the bytes are ``_encode_png``'s whenever
    the scanlines exceed 16 KiB (tested); below that libpng narrows the window named in the zlib header, and at
    level 0 it cuts the stored blocks elsewhere, which leaves the pixels the same. zlib releases the GIL while
    it deflates, so threads encode in parallel.
    """
    _check_png_level(level)
    h, line = rows.shape
    if channels not in (1, 3) or (line - 1) % channels:
        raise TaskfuseError(f"PNG scanlines of {line} bytes do not hold whole pixels of {channels} channel(s)")
    strategy = zlib.Z_HUFFMAN_ONLY if level == 1 else zlib.Z_DEFAULT_STRATEGY
    deflate = zlib.compressobj(level, zlib.DEFLATED, 15, 8, strategy)
    return png_from_zlib(deflate.compress(rows) + deflate.flush(), h, (line - 1) // channels, channels)


def png_from_zlib(data: bytes, height: int, width: int, channels: int) -> bytes:
    """A PNG file of 8-bit gray (``channels`` 1) or RGB (3) from the zlib stream of its scanlines, in IDAT chunks
    of 8 KiB as libpng writes them (``png_from_scanlines``; ``taskfuse.data.deflate`` makes such streams on a
    GPU)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    idat = [_png_chunk(b"IDAT", data[i : i + PNG_CHUNK]) for i in range(0, len(data), PNG_CHUNK)]
    return b"".join([PNG_SIGNATURE, _png_chunk(b"IHDR", header), *idat, _png_chunk(b"IEND", b"")])


def _check_png_level(level: int) -> None:
    if not 0 <= level <= 9:
        raise TaskfuseError(f"PNG level must be 0..9, got {level}")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data and the CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` atomically (see ``atomic_path``), unless the file already holds it."""
    path = Path(path)
    if not (path.is_file() and path.read_text() == text):
        with atomic_path(path) as tmp:
            tmp.write_text(text)
    return path


def write_image(
    path: str | os.PathLike, img: Tensor | np.ndarray | bytes, png_level: int = PNG_LEVEL, quality: int = QUALITY
) -> Path:
    """Write an image atomically (see ``atomic_path``); the format follows the suffix (``encode_image``).

    ``img`` is a (1|3, H, W) float tensor in [0, 1], a uint8 array (H, W[, 3]), or the bytes ``encode_image``
    made for this suffix.
    """
    path = Path(path)
    data = img if isinstance(img, bytes) else encode_image(img, path.suffix, png_level, quality)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path
