"""``scripts/selection_split.py``: the pairs held out for choosing a training setting are training pairs of the
default model, never validation pairs, and no pair is in both of its parts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from taskfuse.data.datasets import open_dataset

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def names(folder: Path) -> set[str]:
    return {p.stem for p in (folder / "ir").iterdir()}


def run(script: str, *args: Path) -> None:
    subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], check=True, capture_output=True)


def test_the_selection_split_holds_training_pairs_out_and_no_validation_pair(shared_data: Path, tmp_path: Path) -> None:
    run("selection_split.py", shared_data.parent, tmp_path / "sel")
    run("roadscene_split.py", shared_data / "roadscene", tmp_path / "rs")
    parts = {d: names(tmp_path / "sel" / "select" / d) for d in ("roadscene", "msrs")}
    select, train = parts["roadscene"] | parts["msrs"], names(tmp_path / "sel" / "train")
    assert train == {p.stem for p in (tmp_path / "sel" / "train" / "vi").iterdir()}
    roadscene = {s: names(tmp_path / "rs" / s) for s in ("train", "val")}
    msrs = {
        s: {r.name for r in open_dataset("msrs_det", shared_data / "msrs_det", s, labels=False).records}
        for s in ("train", "val")
    }
    assert not select & train
    assert select | train == roadscene["train"] | msrs["train"]
    assert not (select | train) & (roadscene["val"] | msrs["val"])
    assert parts["roadscene"] <= roadscene["train"] and parts["msrs"] <= msrs["train"]
    assert (len(parts["roadscene"]), len(parts["msrs"]), len(train)) == (22, 30, 363)
