"""Pairing infrared and visible images by name, with errors that name the files and the fix.

Images pair by *key*: the file stem by default, or the part of the stem matched by the ``*`` of a name
pattern, so that ``IR_*`` and ``VIS_*`` pair ``IR_12.png`` with ``VIS_12.bmp`` under the key ``12`` (both
may then live in one folder, as in TNO). With ``recursive`` the key is prefixed with the file's folder
relative to the root (``day/00012``), and outputs named by it mirror the input tree.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from taskfuse.data.io import IMAGE_SUFFIXES, image_size
from taskfuse.errors import TaskfuseError

_SHOWN = 10


@dataclass(frozen=True)
class Pair:
    """One registered IR/VIS pair; ``name`` is the shared key (see the module docstring), which names the
    output: a file stem, or with recursive listing a relative path such as ``day/00012``."""

    name: str
    ir: Path
    vi: Path


def listing(names: list[str], sep: str = ", ") -> str:
    """The first ten of ``names`` joined by ``sep``, with a count of the rest (for error messages)."""
    more = f" … and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return sep.join(names[:_SHOWN]) + more


def name_pattern(pattern: str, option: str = "pattern") -> re.Pattern[str]:
    """A name pattern (``IR_*``: literal text around one ``*``) as a regular expression capturing the key."""
    if pattern.count("*") != 1 or "/" in pattern or os.sep in pattern:
        raise TaskfuseError(
            f"{option} {pattern!r} must hold exactly one * standing for the shared name and no folder, e.g. IR_*"
        )
    head, tail = pattern.split("*")
    return re.compile(re.escape(head) + "(.+)" + re.escape(tail))


def apply_pattern(key: str, pattern: str) -> str:
    """The name ``pattern`` gives ``key`` (``Fuse*`` gives ``day/12`` the name ``day/Fuse12``)."""
    folder, _, stem = key.rpartition("/")
    return f"{folder}/{pattern.replace('*', stem)}" if folder else pattern.replace("*", stem)


def _raise(error: OSError) -> None:
    raise error


def _image_files(folder: Path, recursive: bool) -> Iterable[Path]:
    """Image files of ``folder`` (and of its sub-folders when ``recursive``), hidden ones left out."""
    if not recursive:
        return (p for p in sorted(folder.iterdir()) if p.is_file())
    files = []
    for root, dirs, names in os.walk(folder, onerror=_raise):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        files.extend(Path(root) / n for n in sorted(names))
    return files


def list_images(folder: str | os.PathLike, pattern: str = "*", recursive: bool = False) -> dict[str, Path]:
    """Image files in ``folder`` keyed by name (the stem, or the part ``pattern``'s ``*`` matches; with
    ``recursive``, prefixed with the sub-folder). Files not matching ``pattern`` are left out. Missing or
    empty folders and clashing keys raise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TaskfuseError(f"{folder}: no such folder; check the path")
    regex = name_pattern(pattern)
    found: dict[str, Path] = {}
    clashes = []
    images = 0
    try:
        files = list(_image_files(folder, recursive))
    except OSError as e:
        where = e.filename or folder
        raise TaskfuseError(f"{where}: cannot list the folder ({e.strerror or e}); check its permissions") from e
    for p in files:
        if p.suffix.lower() not in IMAGE_SUFFIXES or p.name.startswith("."):
            continue
        images += 1
        match = regex.fullmatch(p.stem)
        if match is None:
            continue
        sub = p.parent.relative_to(folder).as_posix()
        key = match.group(1) if sub == "." else f"{sub}/{match.group(1)}"
        if key in found:
            clashes.append(f"{found[key].relative_to(folder)} / {p.relative_to(folder)}")
        found[key] = p
    if clashes:
        raise TaskfuseError(
            f"{folder}: several files share a name ({listing(clashes)}); keep one file per name and folder"
        )
    if not found:
        where = " or its sub-folders" if recursive else ""
        if images:
            raise TaskfuseError(f"{folder}: none of its {images} images matches the name pattern {pattern!r}")
        raise TaskfuseError(
            f"{folder}{where}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}); point at the folder "
            "holding them" + ("" if recursive else ", or pass --recursive for images in sub-folders")
        )
    return found


def find_pairs(
    ir: str | os.PathLike,
    vi: str | os.PathLike,
    skip_unpaired: bool = False,
    ir_pattern: str = "*",
    vi_pattern: str = "*",
    recursive: bool = False,
) -> list[Pair]:
    """Pairs from two files or two folders; in folders, images pair by key (extensions may differ).

    ``ir_pattern`` / ``vi_pattern`` pick the images of each side and their keys (module docstring); one
    folder may then hold both sides. An image without a partner is an error listing every such file, unless
    ``skip_unpaired`` is set, in which case it is left out. Two files pair under the key of the infrared one.
    """
    ir, vi = Path(ir), Path(vi)
    if ir.is_file() and vi.is_file():
        if ir.resolve() == vi.resolve():
            raise TaskfuseError(f"--ir and --vi are the same file ({ir}); give the infrared and the visible image")
        match = name_pattern(ir_pattern, "--ir-pattern").fullmatch(ir.stem)
        return [Pair(match.group(1) if match else ir.stem, ir, vi)]
    for p in (ir, vi):
        if not p.exists():
            raise TaskfuseError(f"{p}: no such file or folder; check the path")
    if ir.is_file() != vi.is_file():
        raise TaskfuseError(f"give two files or two folders, not one of each: --ir {ir} --vi {vi}")
    name_pattern(ir_pattern, "--ir-pattern")
    name_pattern(vi_pattern, "--vi-pattern")
    irs, vis = list_images(ir, ir_pattern, recursive), list_images(vi, vi_pattern, recursive)
    both = sorted(str(p) for p in set(irs.values()) & set(vis.values()))
    if both:
        raise TaskfuseError(
            f"{len(both)} file(s) would be both infrared and visible: {listing(both)}. Give --ir-pattern and "
            "--vi-pattern that tell the two apart (e.g. IR_* and VIS_*)"
        )
    only_ir = sorted(set(irs) - set(vis))
    only_vi = sorted(set(vis) - set(irs))
    if (only_ir or only_vi) and not skip_unpaired:
        parts = []
        if only_ir:
            parts.append(f"{len(only_ir)} in {ir} have no visible partner in {vi}: {listing(only_ir)}")
        if only_vi:
            parts.append(f"{len(only_vi)} in {vi} have no infrared partner in {ir}: {listing(only_vi)}")
        raise TaskfuseError(
            "; ".join(parts) + ". Add the missing images, or pass --skip-unpaired to fuse only complete pairs"
        )
    pairs = [Pair(s, irs[s], vis[s]) for s in sorted(set(irs) & set(vis))]
    if not pairs:
        raise TaskfuseError(f"{ir} and {vi} share no image names; pairs must have the same name in both folders")
    return pairs


def size_mismatch(pair: Pair) -> str | None:
    """``"NAME (ir WxH, vi WxH)"`` when the pair's sizes differ (read from the headers), else None."""
    hi, hv = image_size(pair.ir), image_size(pair.vi)
    return None if hi == hv else f"{pair.name} (ir {hi[1]}x{hi[0]}, vi {hv[1]}x{hv[0]})"


SIZE_FIX = (
    "Fusion needs registered images of one size; pass --resize vi to resize the visible image to the infrared "
    "one, or --resize ir for the reverse"
)


def check_sizes(pairs: list[Pair], resize: str | None = None) -> None:
    """Raise if any pair differs in size (read from headers) and no ``resize`` side ("vi" or "ir") is chosen."""
    if resize not in (None, "vi", "ir"):
        raise TaskfuseError(f"resize must be 'vi' or 'ir', got {resize!r}")
    if resize is not None:
        return
    bad = [m for m in map(size_mismatch, pairs) if m]
    if bad:
        raise TaskfuseError(f"{len(bad)} pair(s) differ in size: {listing(bad)}. {SIZE_FIX}")


def check_output(
    out: str | os.PathLike, sources: Iterable[str | os.PathLike], option: str = "--out", inside: bool = False
) -> None:
    """Refuse an output that would overwrite or mix with the inputs, before anything is read or written.

    ``sources`` are input folders or files. ``out`` (folder or file) must not be one of them nor contain
    one, and unless ``inside`` is allowed, not lie inside an input folder: fused images would replace source
    images, or a rerun would take the sources for finished outputs. Symbolic links are followed.
    """
    target = Path(out).resolve()
    for source in sources:
        src = Path(source).resolve()
        if target == src:
            relation = "is"
        elif src.is_relative_to(target):
            relation = "contains"
        elif target.is_relative_to(src) and not inside:
            relation = "lies inside"
        else:
            continue
        kind = "input file" if src.is_file() else "input folder"
        raise TaskfuseError(
            f"{option} {out} {relation} the {kind} {source}: fused images would mix with or replace the source "
            "images; give an output outside the inputs"
        )
