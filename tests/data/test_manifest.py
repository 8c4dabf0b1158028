"""The run manifest: round trip, comparison of settings, and a damaged file."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskfuse.data.manifest import MANIFEST, Manifest, changed, file_sha256, read_manifest, write_manifest
from taskfuse.errors import TaskfuseError


def test_round_trip(tmp_path: Path) -> None:
    manifest = Manifest({"method": "gff", "tile": None}, {"weights": None}, ["ünï/画像.png"])
    write_manifest(tmp_path, manifest)
    assert read_manifest(tmp_path) == manifest
    assert read_manifest(tmp_path / "elsewhere") is None
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST]


def test_changed_lists_every_differing_or_missing_key() -> None:
    assert changed({"a": 1, "b": None}, {"a": 1, "b": None}) == []
    assert changed({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": None}) == ["b", "c"]
    assert changed({"a": 1, "gone": None}, {"a": 1}) == ["gone"]


@pytest.mark.parametrize(
    "text", ["{not json", '{"info": {}}', '["settings"]', '{"settings": {}, "outputs": ["../a.png", "/etc/x"]}']
)
def test_damaged_manifest_raises_with_the_fix(tmp_path: Path, text: str) -> None:
    (tmp_path / MANIFEST).write_text(text)
    with pytest.raises(TaskfuseError, match="not a readable run manifest .* use a new folder, or --overwrite"):
        read_manifest(tmp_path)


def test_file_sha256(tmp_path: Path) -> None:
    (tmp_path / "w").write_bytes(b"abc")
    assert file_sha256(tmp_path / "w") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
