"""The bad-input matrix of ``taskfuse fuse``: every awkward input gives a fused image or one line on stderr naming
the file or option and the fix, with exit status 2, before anything is written where the check allows it.

Each case builds its inputs under a temporary folder and gives the command's arguments; ``{t}`` stands for
that folder. Inputs are tiny; the 6000 x 4000 pair uses the cheap ``mean`` rule.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from taskfuse import models
from taskfuse.cli.main import main
from taskfuse.data.io import read_image
from taskfuse.data.manifest import MANIFEST
from taskfuse.models.weights import save_weights

H, W = 12, 16


def gray(h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(h * w).integers(0, 256, (h, w), dtype=np.uint8)


def rgb(h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(h + w).integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, arr: np.ndarray | Image.Image, **kw: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = arr if isinstance(arr, Image.Image) else Image.fromarray(arr)
    im.save(path, exif=im.getexif(), **kw)
    return path


def folders(t: Path, names: tuple[str, ...] = ("a", "b")) -> None:
    """``t/ir/<name>.png`` gray and ``t/vi/<name>.jpg`` colour, one pair per name."""
    for n in names:
        save(t / "ir" / f"{n}.png", gray())
        save(t / "vi" / f"{n}.jpg", rgb())


def single(
    ir: np.ndarray | Image.Image, vi: np.ndarray | Image.Image, ir_name: str = "ir.png", vi_name: str = "vi.png"
):
    """A case setup writing one IR file and one VIS file."""

    def setup(t: Path) -> None:
        save(t / ir_name, ir)
        save(t / vi_name, vi)

    return setup


def thermal16(h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(0).integers(7000, 9000, (h, w)).astype(np.uint16)


def cmyk() -> Image.Image:
    return Image.fromarray(rgb()).convert("CMYK")


def palette() -> Image.Image:
    return Image.fromarray(rgb()).convert("P", palette=Image.Palette.ADAPTIVE)


def rgba() -> np.ndarray:
    return np.concatenate([rgb(), np.full((H, W, 1), 100, np.uint8)], -1)


def exif_rotated() -> Image.Image:
    """A colour image stored W x H (16 x 12 turned) with EXIF orientation 6: it displays as H x W."""
    im = Image.fromarray(rgb(W, H))
    exif = im.getexif()
    exif[0x0112] = 6
    return im


def false_colour() -> np.ndarray:
    ramp = np.tile(np.linspace(0, 1, W), (H, 1))
    return (np.stack([ramp, np.abs(np.sin(6 * ramp)), 1 - ramp], -1) * 255).round().astype(np.uint8)


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)
    path.write_bytes(bytes(data))


def then(*steps: Callable[[Path], object]) -> Callable[[Path], None]:
    def setup(t: Path) -> None:
        for step in steps:
            step(t)

    return setup


def lite_weights(t: Path) -> None:
    save_weights(models.create("lite"), t / "w.safetensors", "lite")


def no_method_weights(t: Path) -> None:
    save_file({"x": torch.zeros(2)}, str(t / "w.safetensors"))


def misfit_weights(t: Path) -> None:
    save_file({"x": torch.zeros(2)}, str(t / "w.safetensors"), metadata={"method": "lite", "config": "{}"})


@dataclass
class Case:
    """One row of the matrix: inputs, command (after ``taskfuse fuse``), exit status, text expected on stderr
    (on stdout for status 0) and, for status 0, the (H, W[, C]) shape of the output ``{t}/out/<name>``.
    ``decoding``: the problem shows only when the image is decoded, after the output folder was prepared;
    every other error comes before anything is written."""

    id: str
    setup: Callable[[Path], None]
    args: str
    code: int
    message: str
    output: tuple[str, tuple[int, ...]] | None = None
    decoding: bool = False


FOLDERS = "--ir {t}/ir --vi {t}/vi --out {t}/out"
FILES = "--ir {t}/ir.png --vi {t}/vi.png --out {t}/out"

CASES = [
    Case("missing arguments", folders, "--ir {t}/ir", 2, "--vi, --out required"),
    Case("missing folder", folders, "--ir {t}/nowhere --vi {t}/vi --out {t}/out", 2, "nowhere: no such file or folder"),
    Case(
        "empty folder",
        then(folders, lambda t: (t / "empty").mkdir()),
        "--ir {t}/empty --vi {t}/vi --out {t}/out",
        2,
        "empty: no images found",
    ),
    Case(
        "missing partner",
        then(folders, lambda t: (t / "vi" / "b.jpg").unlink()),
        FOLDERS,
        2,
        "1 in {t}/ir have no visible partner in {t}/vi: b. Add the missing images, or pass --skip-unpaired",
    ),
    Case(
        "size mismatch",
        then(folders, lambda t: save(t / "vi" / "b.jpg", rgb(H + 2, W))),
        FOLDERS,
        2,
        "1 pair(s) differ in size: b (ir 16x12, vi 16x14)",
    ),
    Case(
        "JPEG truncated in its header",
        then(folders, lambda t: truncate(t / "vi" / "b.jpg")),
        FOLDERS,
        2,
        "b.jpg: not a readable image (Truncated File Read); replace or remove it",
    ),
    Case(
        "JPEG truncated in its data",
        then(
            folders,
            lambda t: save(t / "ir" / "b.png", gray(64, 64)),
            lambda t: save(t / "vi" / "b.jpg", rgb(64, 64)),
            lambda t: truncate(t / "vi" / "b.jpg"),
        ),
        FOLDERS,
        2,
        "b.jpg: not a readable image (image file is truncated",
        decoding=True,
    ),
    Case(
        "corrupt PNG",
        then(folders, lambda t: corrupt(t / "ir" / "b.png")),
        FOLDERS,
        2,
        "b.png: not a readable image",
        decoding=True,
    ),
    Case(
        "zero-byte file",
        then(folders, lambda t: (t / "ir" / "b.png").write_bytes(b"")),
        FOLDERS,
        2,
        "b.png: the file is empty",
    ),
    Case(
        "not an image",
        then(folders, lambda t: (t / "ir" / "b.png").write_text("hello")),
        FOLDERS,
        2,
        "b.png: not a readable image (cannot identify image file",
    ),
    Case("16-bit PNG thermal", single(thermal16(), rgb()), FILES, 0, "fused 1 image(s)", ("ir.png", (H, W, 3))),
    Case(
        "16-bit TIFF thermal",
        single(thermal16(), rgb(), "ir.tif"),
        "--ir {t}/ir.tif --vi {t}/vi.png --out {t}/out",
        0,
        "fused 1 image(s)",
        ("ir.png", (H, W, 3)),
    ),
    Case(
        "float TIFF thermal with NaN",
        single(np.full((H, W), np.nan, np.float32), rgb(), "ir.tif"),
        "--ir {t}/ir.tif --vi {t}/vi.png --out {t}/out",
        2,
        "ir.tif: the image holds NaN or infinite values",
        decoding=True,
    ),
    Case("gray VIS", single(gray(), gray()), FILES, 0, "fused 1 image(s)", ("ir.png", (H, W))),
    Case("RGBA VIS", single(gray(), rgba()), FILES, 0, "fused 1 image(s)", ("ir.png", (H, W, 3))),
    Case("palette VIS", single(gray(), palette()), FILES, 0, "fused 1 image(s)", ("ir.png", (H, W, 3))),
    Case(
        "CMYK VIS",
        single(gray(), cmyk(), vi_name="vi.jpg"),
        "--ir {t}/ir.png --vi {t}/vi.jpg --out {t}/out",
        0,
        "fused 1 image(s)",
        ("ir.png", (H, W, 3)),
    ),
    Case(
        "EXIF-rotated VIS",
        single(gray(), exif_rotated(), vi_name="vi.jpg"),
        "--ir {t}/ir.png --vi {t}/vi.jpg --out {t}/out",
        0,
        "fused 1 image(s)",
        ("ir.png", (H, W, 3)),
    ),
    Case(
        "RGB-stored gray IR",
        single(np.stack([gray()] * 3, -1), rgb()),
        FILES,
        0,
        "fused 1 image(s)",
        ("ir.png", (H, W, 3)),
    ),
    Case(
        "false-colour IR",
        single(false_colour(), rgb()),
        FILES,
        2,
        "ir.png: a false-colour infrared image (100% of its pixels are coloured)",
        decoding=True,
    ),
    Case(
        "false-colour IR, --ir-colour luma",
        single(false_colour(), rgb()),
        FILES + " --ir-colour luma",
        0,
        "fused 1 image(s)",
        ("ir.png", (H, W, 3)),
    ),
    Case(
        "palette IR",
        single(Image.fromarray(false_colour()).convert("P"), rgb()),
        FILES,
        2,
        "ir.png: a false-colour infrared image",
        decoding=True,
    ),
    Case(
        "unicode names",
        single(gray(), rgb(), "ïr 画像.png", "vï 画像.png"),
        "--ir '{t}/ïr 画像.png' --vi '{t}/vï 画像.png' --out {t}/out",
        0,
        "fused 1 image(s)",
        ("ïr 画像.png", (H, W, 3)),
    ),
    Case(
        "file names that are not UTF-8",
        single(gray(), rgb(), os.fsdecode(b"ir\xff.png"), os.fsdecode(b"vi\xff.png")),
        "--ir {t}/ir\udcff.png --vi {t}/vi\udcff.png --out {t}/out",
        0,
        "fused 1 image(s)",
        ("ir\udcff.png", (H, W, 3)),
    ),
    Case(
        "mixed extensions",
        then(
            lambda t: save(t / "ir" / "a.PNG", gray()),
            lambda t: save(t / "vi" / "a.jpeg", rgb()),
            lambda t: save(t / "ir" / "b.tif", gray()),
            lambda t: save(t / "vi" / "b.bmp", rgb()),
        ),
        FOLDERS,
        0,
        "fused 2 image(s)",
        ("b.png", (H, W, 3)),
    ),
    Case("1x1 images", single(gray(1, 1), rgb(1, 1)), FILES, 0, "fused 1 image(s)", ("ir.png", (1, 1, 3))),
    Case(
        "6000x4000 images",
        single(np.zeros((4000, 6000), np.uint8), np.full((4000, 6000), 200, np.uint8)),
        FILES + " --method mean",
        0,
        "fused 1 image(s)",
        ("ir.png", (4000, 6000)),
    ),
    Case(
        "--out is the IR folder",
        folders,
        "--ir {t}/ir --vi {t}/vi --out {t}/ir --overwrite",
        2,
        "--out {t}/ir is the input folder {t}/ir",
    ),
    Case(
        "--out inside the VIS folder",
        folders,
        "--ir {t}/ir --vi {t}/vi --out {t}/vi/fused",
        2,
        "--out {t}/vi/fused lies inside the input folder {t}/vi",
    ),
    Case(
        "--out contains the inputs",
        folders,
        "--ir {t}/ir --vi {t}/vi --out {t}",
        2,
        "--out {t} contains the input folder {t}/ir",
    ),
    Case(
        "--out file is the IR file",
        single(gray(), rgb()),
        "--ir {t}/ir.png --vi {t}/vi.png --out {t}/ir.png",
        2,
        "--out {t}/ir.png is the input file {t}/ir.png",
    ),
    Case(
        "--out folder holds the input files",
        single(gray(), rgb()),
        "--ir {t}/ir.png --vi {t}/vi.png --out {t}",
        2,
        "--out {t} contains the input file {t}/ir.png",
    ),
    Case(
        "--ir and --vi the same file",
        single(gray(), rgb()),
        "--ir {t}/ir.png --vi {t}/ir.png --out {t}/out",
        2,
        "--ir and --vi are the same file",
    ),
    Case(
        "--ir and --vi the same folder",
        folders,
        "--ir {t}/ir --vi {t}/ir --out {t}/out",
        2,
        "would be both infrared and visible",
    ),
    Case(
        "image --out for several pairs",
        folders,
        "--ir {t}/ir --vi {t}/vi --out {t}/fused.png",
        2,
        "--out {t}/fused.png names one image but there are 2 pairs",
    ),
    Case(
        "unwritable --out (under a file)",
        then(folders, lambda t: (t / "file").write_text("x")),
        "--ir {t}/ir --vi {t}/vi --out {t}/file/out",
        2,
        "--out {t}/file/out: cannot write there",
    ),
    Case(
        "--out of another method's results",
        then(folders, lambda t: main(["fuse", *FOLDERS.format(t=t).split()])),
        FOLDERS + " --method mean",
        2,
        "{t}/out holds results of --method lite, --weights lite.safetensors (SHA-256 ",
    ),
    Case(
        "negative --tile-overlap",
        folders,
        FOLDERS + " --tile 8 --tile-overlap -1",
        2,
        "tile overlap must be >= 0 pixels (--tile-overlap), got -1",
    ),
    Case(
        "--device gpu",
        folders,
        FOLDERS + " --device gpu",
        2,
        "--device gpu: not a device name; use auto, cpu, cuda, cuda:N or mps",
    ),
    Case("--device meta", folders, FOLDERS + " --device meta", 2, "--device meta: taskfuse runs on auto, cpu"),
    Case("unknown --method", folders, FOLDERS + " --method laplacain", 2, "did you mean 'laplacian'"),
    Case(
        "learned --method without weights",
        folders,
        FOLDERS + " --method psfusion",
        2,
        "method 'psfusion' is a learned network and needs trained weights",
    ),
    Case("--method twice", folders, FOLDERS + " --method mean Mean", 2, "names a method twice"),
    Case(
        "missing --weights file",
        folders,
        FOLDERS + " --weights {t}/none.safetensors",
        2,
        "none.safetensors: not a readable safetensors file",
    ),
    Case(
        "garbage --weights file",
        then(folders, lambda t: (t / "w.safetensors").write_bytes(b"\x80\x02pickle")),
        FOLDERS + " --weights {t}/w.safetensors",
        2,
        "w.safetensors: not a readable safetensors file",
    ),
    Case(
        "empty --weights file",
        then(folders, lambda t: (t / "w.safetensors").write_bytes(b"")),
        FOLDERS + " --weights {t}/w.safetensors",
        2,
        "w.safetensors: not a readable safetensors file",
    ),
    Case(
        "folder as --weights",
        folders,
        FOLDERS + " --weights {t}/ir",
        2,
        "ir is a folder; pass the .safetensors checkpoint file inside it",
    ),
    Case(
        "--weights without a method",
        then(folders, no_method_weights),
        FOLDERS + " --weights {t}/w.safetensors",
        2,
        "w.safetensors: the file names no method",
    ),
    Case(
        "--weights that do not fit",
        then(folders, misfit_weights),
        FOLDERS + " --weights {t}/w.safetensors",
        2,
        "w.safetensors: weights do not fit 'lite'",
    ),
    Case(
        "--weights of another --method",
        then(folders, lite_weights),
        FOLDERS + " --method mean --weights {t}/w.safetensors",
        2,
        "holds weights of 'lite', not 'mean'",
    ),
    Case(
        "several methods with --weights",
        then(folders, lite_weights),
        FOLDERS + " --method mean lite --weights {t}/w.safetensors",
        2,
        "--weights belongs to one method",
    ),
    Case(
        "--ir-pattern without *",
        folders,
        FOLDERS + " --ir-pattern IR_",
        2,
        "--ir-pattern 'IR_' must hold exactly one *",
    ),
    Case(
        "--ir-pattern matching nothing",
        folders,
        FOLDERS + " --ir-pattern IR_*",
        2,
        "none of its 2 images matches the name pattern 'IR_*'",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_matrix(tmp_path: Path, case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    case.setup(tmp_path)
    capsys.readouterr()
    inputs = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "out" not in p.parts}
    code = main(["fuse", *shlex.split(case.args.format(t=tmp_path))])
    captured = capsys.readouterr()
    message = case.message.format(t=tmp_path)
    assert code == case.code, captured.err
    if code == 0:
        assert message in captured.out
        assert captured.err.count("error") == 0
    else:
        assert message in captured.err
        assert captured.err.startswith("taskfuse fuse: error: ") and captured.err.count("\n") == 1
        written = sorted(p.name for p in (tmp_path / "out").iterdir()) if (tmp_path / "out").is_dir() else []
        if case.decoding:
            assert written == [MANIFEST] or written == ["a.png", MANIFEST]
        elif not case.id.startswith("--out of another"):
            assert written == []
    if case.output is not None:
        name, shape = case.output
        assert read_image(tmp_path / "out" / name).shape == shape
    for path, data in inputs.items():
        assert path.read_bytes() == data, f"{path} changed"


def test_missing_arguments_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fuse"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--ir, --vi, --out required" in captured.err
