from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taskfuse.data.io import read_vi, write_image
from taskfuse.errors import TaskfuseError
from taskfuse.evaluation import inputs
from taskfuse.evaluation.inputs import InputSource, InputSpec, classical_methods, parse_input, parse_inputs

CPU = torch.device("cpu")


def _sample(name: str, h: int = 8, w: int = 10) -> dict:
    return {"ir": torch.rand(1, h, w), "vi": torch.rand(3, h, w), "name": name}


def test_parse_each_kind(tmp_path: Path) -> None:
    assert parse_input("ir") == InputSpec("ir", "ir")
    assert parse_input("VI") == InputSpec("vi", "vi")
    assert parse_input("laplacian") == InputSpec("laplacian", "method")
    spec = parse_input(f"seafusion={tmp_path}")
    assert spec == InputSpec("seafusion", "folder", tmp_path) and spec.text == f"seafusion={tmp_path}"
    assert set(classical_methods()) >= {"mean", "max", "laplacian", "gff"} and "psfusion" not in classical_methods()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("lapalcian", "not an input"),
        ("psfusion", "--weights"),
        ("a=", "NAME=DIR"),
        ("inputs=.", "cannot name an input"),
        ("x/y=.", "cannot name an input"),
        ("f=/no/such/folder", "is not a folder"),
    ],
)
def test_bad_inputs_name_the_fix(text: str, says: str) -> None:
    with pytest.raises(TaskfuseError, match=says):
        parse_input(text)


def test_duplicates_and_empty_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TaskfuseError, match="share the name 'ir'"):
        parse_inputs(["ir", "vi", f"ir={tmp_path}"])
    with pytest.raises(TaskfuseError, match="at least one"):
        parse_inputs([])


def test_ir_and_vi_become_three_channels() -> None:
    s = _sample("a")
    ir = InputSource(InputSpec("ir", "ir"), "train", Path("unused"), CPU)(s)
    vi = InputSource(InputSpec("vi", "vi"), "train", Path("unused"), CPU)(s)
    assert ir.shape == (3, 8, 10) and torch.equal(ir[2], s["ir"][0])
    assert torch.equal(vi, s["vi"])


def test_folder_prefers_split_subfolder_and_lists_missing(tmp_path: Path) -> None:
    write_image(tmp_path / "test" / "a.png", torch.full((1, 8, 10), 0.5))
    write_image(tmp_path / "b.jpg", torch.rand(3, 8, 10))
    spec = parse_input(f"f={tmp_path}")
    test = InputSource(spec, "test", tmp_path / "cache", CPU)
    assert test.folder == tmp_path / "test"
    test.check(["a"])
    with pytest.raises(TaskfuseError, match=r"no fused image for 2 of the 3 test samples: b, c"):
        test.check(["a", "b", "c"])
    img = test(_sample("a"))
    assert img.shape == (3, 8, 10) and torch.allclose(img, torch.full_like(img, 128 / 255))
    train = InputSource(spec, "train", tmp_path / "cache", CPU)
    assert train.folder == tmp_path and train(_sample("b")).shape == (3, 8, 10)


def test_fused_image_of_another_size_names_the_file(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png", torch.rand(3, 8, 12))
    source = InputSource(parse_input(f"f={tmp_path}"), "test", tmp_path / "cache", CPU)
    with pytest.raises(TaskfuseError, match=r"a\.png is 12x8 but sample a is 10x8"):
        source(_sample("a"))


def test_classical_rule_is_cached_and_read_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _sample("a")
    source = InputSource(parse_input("max"), "train", tmp_path, CPU)
    first = source(s)
    cached = tmp_path / "max" / "train" / "a.png"
    assert cached.is_file() and torch.equal(first, read_vi(cached))

    def no_fusing(*args: object, **kw: object) -> None:
        raise AssertionError("fused again although the cache holds the image")

    monkeypatch.setattr(inputs, "fuse_tensors", no_fusing)
    assert torch.equal(InputSource(parse_input("max"), "train", tmp_path, CPU)(s), first)
