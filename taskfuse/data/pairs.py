"""Pairing infrared and visible images by file stem, with errors that name the files and the fix."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from taskfuse.data.io import IMAGE_SUFFIXES, image_size
from taskfuse.errors import TaskfuseError

_SHOWN = 10


@dataclass(frozen=True)
class Pair:
    """One registered IR/VIS pair; ``name`` is the shared file stem."""

    name: str
    ir: Path
    vi: Path


def listing(names: list[str], sep: str = ", ") -> str:
    """The first ten of ``names`` joined by ``sep``, with a count of the rest (for error messages)."""
    more = f" … and {len(names) - _SHOWN} more" if len(names) > _SHOWN else ""
    return sep.join(names[:_SHOWN]) + more


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Image files in ``folder`` keyed by stem. Missing or empty folders and clashing stems raise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TaskfuseError(f"{folder}: no such folder; check the path")
    found: dict[str, Path] = {}
    clashes = []
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
            if p.stem in found:
                clashes.append(f"{found[p.stem].name} / {p.name}")
            found[p.stem] = p
    if clashes:
        raise TaskfuseError(f"{folder}: several files share a name stem ({listing(clashes)}); keep one file per stem")
    if not found:
        raise TaskfuseError(
            f"{folder}: no images found (looked for {', '.join(IMAGE_SUFFIXES)}); point at the folder holding them"
        )
    return found


def find_pairs(ir: str | os.PathLike, vi: str | os.PathLike, skip_unpaired: bool = False) -> list[Pair]:
    """Pairs from two files or two folders; in folders, images pair by stem (extensions may differ).

    An image without a partner is an error listing every such file, unless ``skip_unpaired`` is set, in which
    case it is left out.
    """
    ir, vi = Path(ir), Path(vi)
    if ir.is_file() and vi.is_file():
        return [Pair(ir.stem, ir, vi)]
    for p in (ir, vi):
        if not p.exists():
            raise TaskfuseError(f"{p}: no such file or folder; check the path")
    if ir.is_file() != vi.is_file():
        raise TaskfuseError(f"give two files or two folders, not one of each: --ir {ir} --vi {vi}")
    irs, vis = list_images(ir), list_images(vi)
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
        raise TaskfuseError(f"{ir} and {vi} share no file stems; pairs must have the same name in both folders")
    return pairs


def check_sizes(pairs: list[Pair], resize: str | None = None) -> None:
    """Raise if any pair differs in size (read from headers) and no ``resize`` side ("vi" or "ir") is chosen."""
    if resize not in (None, "vi", "ir"):
        raise TaskfuseError(f"resize must be 'vi' or 'ir', got {resize!r}")
    if resize is not None:
        return
    bad = []
    for p in pairs:
        hi, hv = image_size(p.ir), image_size(p.vi)
        if hi != hv:
            bad.append(f"{p.name} (ir {hi[1]}x{hi[0]}, vi {hv[1]}x{hv[0]})")
    if bad:
        raise TaskfuseError(
            f"{len(bad)} pair(s) differ in size: {listing(bad)}. Fusion needs registered images of one size; "
            "pass --resize vi to resize the visible image to the infrared one, or --resize ir for the reverse"
        )
