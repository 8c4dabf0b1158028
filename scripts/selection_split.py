"""Hold a selection split out of the default model's training pairs, for choosing a training setting without
looking at any validation pair.

The default model trains on the RoadScene training pairs (``scripts/roadscene_split.py``) and the MSRS training
pairs of ``msrs_det`` (split fixed by name). A setting chosen by its validation scores would make those scores a
tuning result; a setting chosen here is chosen on pairs that neither the candidates nor any validation table
use. Of each set's training names, sorted, every eighth (positions 0, 8, 16, ...) is held out into
``select/<set>`` (22 RoadScene, 30 MSRS pairs), the rest go to ``train`` (363 pairs); all are ``paired``
folders (hard links, or copies where links fail). Score the sets apart: a setting may help one kind of scene and
hurt the other, which a pooled mean hides::

    python scripts/selection_split.py ../shared OUT        # OUT/train/, OUT/select/{roadscene,msrs}/
    taskfuse train lite --set data.train.root=OUT data.train.mix=null data.val=null log.best=null ...
    python scripts/default_tables.py --select select-roadscene=OUT/select/roadscene select-msrs=OUT/select/msrs \
        --weights ... ours=CANDIDATE
"""

from __future__ import annotations

import argparse
from pathlib import Path

from roadscene_split import link, split

from taskfuse.data.datasets import open_dataset
from taskfuse.data.pairs import Pair, find_pairs

SELECT_EVERY = 8


def training_pairs(shared: Path) -> dict[str, list[Pair]]:
    """The default model's training pairs of each set, sorted by name."""
    rs_root = shared / "data" / "roadscene"
    rs = {p.name: p for p in find_pairs(rs_root / "ir", rs_root / "vi")}
    msrs_root = shared / "data" / "msrs_det"
    records = open_dataset("msrs_det", msrs_root, "train", labels=False).records
    msrs = sorted((Pair(r.name, r.ir, r.vi) for r in records), key=lambda p: p.name)
    return {"roadscene": [rs[n] for n in split(list(rs))["train"]], "msrs": msrs}


def selection(pairs: list[Pair]) -> dict[str, list[Pair]]:
    """``pairs`` (sorted) split into ``select`` (every ``SELECT_EVERY``-th) and ``train`` (the others)."""
    return {"select": pairs[::SELECT_EVERY], "train": [p for i, p in enumerate(pairs) if i % SELECT_EVERY]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shared", type=Path, help="the folder holding data/roadscene and data/msrs_det")
    parser.add_argument("out", type=Path, help="folder for train/ and select/")
    args = parser.parse_args()
    for dataset, pairs in training_pairs(args.shared).items():
        for part, chosen in selection(pairs).items():
            folder = args.out / part / dataset if part == "select" else args.out / part
            for pair in chosen:
                for role in ("ir", "vi"):
                    src = getattr(pair, role)
                    link(src, folder / role / src.name)
            print(f"{dataset} {part}: {len(chosen)} pairs -> {folder}")


if __name__ == "__main__":
    main()
