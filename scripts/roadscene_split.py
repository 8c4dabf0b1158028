"""Split the 221 RoadScene pairs into the fixed training and validation sets of the default model.

Pairs sorted by file stem; every fifth one (positions 0, 5, 10, ...) is validation: 45 pairs spread over the
whole sequence, the other 176 train. The folders written are the ``paired`` layout's splits::

    python scripts/roadscene_split.py ROADSCENE OUT      # OUT/{train,val}/{ir,vi}/ (hard links or copies)
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from taskfuse.data.pairs import find_pairs

VAL_EVERY = 5


def split(names: list[str]) -> dict[str, list[str]]:
    """The validation and training stems of the sorted ``names``."""
    ordered = sorted(names)
    return {"val": ordered[::VAL_EVERY], "train": [n for i, n in enumerate(ordered) if i % VAL_EVERY]}


def link(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` (a copy across file systems); an existing ``dst`` is kept."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="RoadScene folder with ir/ and vi/")
    parser.add_argument("out", type=Path, help="folder for train/ and val/")
    args = parser.parse_args()
    pairs = {p.name: p for p in find_pairs(args.root / "ir", args.root / "vi")}
    for name, stems in split(list(pairs)).items():
        for stem in stems:
            for role in ("ir", "vi"):
                src = getattr(pairs[stem], role)
                link(src, args.out / name / role / src.name)
        print(f"{name}: {len(stems)} pairs -> {args.out / name}")


if __name__ == "__main__":
    main()
