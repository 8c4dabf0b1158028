"""The documentation runs: every ``taskfuse`` command line in README.md and docs/*.md parses against the CLI
parser, those that need no data run on tiny synthetic inputs, the README's Python block runs, and so do the
examples in the package's docstrings.

Command lines come from fenced code blocks (a line continued with ``\\`` is joined; ``$ `` prompts, variable
assignments, ``timeout N`` and ``torchrun ... -m taskfuse.cli.main`` are stripped to the taskfuse arguments;
``[...]`` of a synopsis is read as present and ``a|b`` as each alternative) and from inline code spans that give
options. An inline span without options, such as ``taskfuse datasets check``, names a command: its words must
be sub-commands the parser knows.
"""

from __future__ import annotations

import argparse
import contextlib
import doctest
import importlib
import io
import itertools
import pkgutil
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import taskfuse
from taskfuse.cli.main import build_parser, main
from taskfuse.data.io import write_image
from taskfuse.data.synthetic import render_scene, write_scenes

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
INLINE = re.compile(r"`(taskfuse [a-z][a-z-]*(?: [^`]*)?)`")
"""Inline mentions such as `taskfuse evaluate fusion`; quoted messages (`taskfuse fuse: error: ...`) are not."""
IMAGE = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Command:
    where: str
    argv: tuple[str, ...]
    reference: bool = False
    """An inline mention of a command (no options): only its sub-command words are checked."""

    def __str__(self) -> str:
        return f"{self.where}: taskfuse {shlex.join(self.argv)}"


def taskfuse_args(line: str) -> str | None:
    """The arguments of the taskfuse command in a shell line, or None when the line runs no taskfuse command."""
    match = re.search(r"(?:^|[\s;{(])(?:taskfuse|-m taskfuse\.cli\.main)\s+(.*)$", line)
    if match is None or line.lstrip().startswith(("#", "from ", "import ")):
        return None
    args = match.group(1)
    args = re.split(r"\s(?:#|;|&&|\|\||&)(?:\s|$)|\s*;\s*}", args)[0]
    return args.replace('"$@"', "").strip()


def alternatives(tokens: list[str]) -> list[list[str]]:
    """Every command a synopsis stands for: ``[...]`` kept, each ``a|b|c`` word expanded."""
    words = [t.strip("[]") for t in tokens if t.strip("[]")]
    choices = [w.split("|") if "|" in w and not w.startswith("-") else [w] for w in words]
    return [list(c) for c in itertools.product(*choices)]


def commands_of(path: Path) -> list[Command]:
    text = path.read_text()
    out: list[Command] = []
    for block in FENCE.finditer(text):
        first = text.count("\n", 0, block.start()) + 2
        joined = re.sub(r"\\\n\s*", " ", block.group(1))
        for i, line in enumerate(joined.splitlines()):
            args = taskfuse_args(line.removeprefix("$ "))
            if args:
                for argv in alternatives(shlex.split(args)):
                    out.append(Command(f"{path.name}:{first + i}", tuple(argv)))
    prose = FENCE.sub("", text)
    for span in INLINE.finditer(prose):
        tokens = shlex.split(" ".join(span.group(1).split()[1:]))
        reference = not any(t.startswith("-") for t in tokens)
        for argv in alternatives(tokens):
            out.append(Command(f"{path.name} `{span.group(1)}`", tuple(argv), reference))
    return out


COMMANDS = [c for path in DOCS for c in commands_of(path)]


def parse(argv: tuple[str, ...]) -> argparse.Namespace:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            return build_parser().parse_args(list(argv))
        except SystemExit:
            pass
    raise AssertionError(err.getvalue().strip().splitlines()[-1])


def subcommand_path_is_known(argv: tuple[str, ...]) -> None:
    parser = build_parser()
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return
        assert word in subs[0].choices, f"{word!r} is not a sub-command; known: {', '.join(subs[0].choices)}"
        parser = subs[0].choices[word]


def test_the_docs_hold_the_commands_this_test_runs() -> None:
    found = {c.argv[:2] for c in COMMANDS if not c.reference}
    assert {("demo",), ("datasets", "list"), ("train", "--list"), ("fuse", "--list")} <= {a[:2] for a in found} | {
        a[:1] for a in found
    }
    assert any("--quick" in c.argv for c in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=str)
def test_every_documented_command_parses(command: Command) -> None:
    if command.reference:
        subcommand_path_is_known(command.argv)
    else:
        parse(command.argv)


def synthetic_pair(ir: Path, vi: Path) -> None:
    """Write a tiny registered pair at ``ir`` and ``vi``: files when they name images, else one pair in each folder."""
    scene = render_scene(0, 48, 64)
    if ir.suffix.lower() not in IMAGE:
        ir, vi = ir / "00001.png", vi / "00001.png"
    write_image(ir, scene["ir"])
    write_image(vi, scene["vi"])


def runnable(command: Command) -> str:
    """Why ``command`` cannot run here without data (empty when it can)."""
    argv = command.argv
    if command.reference:
        return "names a command"
    if argv[:2] == ("benchmark", "claim") and "--root" not in argv:
        return "reads an earlier run's folder"
    if "--list" in argv or argv[:2] == ("datasets", "list") or argv[0] == "demo":
        return ""
    if argv[0] == "fuse":
        if "--weights" in argv or "cuda" in argv:
            return "needs trained weights or a GPU"
        return ""
    if argv[0] == "train" and "--quick" in argv:
        return ""
    return "needs a dataset, weights or a long run"


RUNNABLE = list({c.argv: c for c in reversed(COMMANDS) if not runnable(c)}.values())[::-1]


@pytest.mark.parametrize(
    "command",
    [pytest.param(c, marks=pytest.mark.slow) if c.argv[0] == "train" and "--quick" in c.argv else c for c in RUNNABLE],
    ids=str,
)
def test_documented_commands_that_need_no_data_run(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = list(command.argv)
    args = parse(command.argv)
    if argv[0] == "fuse" and not args.list:
        synthetic_pair(Path(args.ir), Path(args.vi))
        argv += ["--device", "cpu"]
    if argv[0] == "demo":
        argv += ["--scenes", "2", "--size", "48x64", "--device", "cpu"]
    if argv[0] == "train" and not args.list:
        argv += ["--device", "cpu", "--set", "log.progress=false"]
    assert main(argv) == 0, str(command)
    if argv[0] == "fuse" and not args.list:
        out = Path(args.out)
        assert out.is_file() if out.suffix.lower() in IMAGE else any(out.rglob("*.png")), str(command)
    if argv[0] == "demo":
        assert (Path(args.out) / "demo.png").is_file()


def python_blocks(path: Path) -> list[str]:
    text = path.read_text()
    return [m.group(2) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M) if m.group(1) == "python"]


def test_readme_python_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the files it names, made small: a pair in ir/ and vi/, trained weights, an MSRS-layout folder."""
    from taskfuse.models.weights import save_weights

    monkeypatch.chdir(tmp_path)
    synthetic_pair(Path("ir/00001.png"), Path("vi/00001.png"))
    spec = taskfuse.models.get("psfusion")
    save_weights(taskfuse.models.create("psfusion", **spec.small), Path("psfusion.safetensors"), "psfusion", spec.small)
    write_scenes("data/MSRS", 1, 1, 48, 64)
    (block,) = python_blocks(ROOT / "README.md")
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert Path("fused/00001.png").is_file() and scope["qabf"].shape == (1,) and len(scope["msrs"]) == 1


NOT_RUNNABLE = {
    "taskfuse.evaluation": "its example needs a labelled dataset (train, test) and a fused folder",
    "taskfuse.tasks.detection": "its example uses images and targets it does not define",
    "taskfuse.tasks.detection.yolox": "its example uses images and targets it does not define",
    "taskfuse.tasks.keypoints": "its example uses crops it does not define",
    "taskfuse.tasks.segmentation": "its example uses images it does not define",
}
"""Docstrings whose examples cannot run as they are, with the reason."""


def docstring_tests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for info in pkgutil.walk_packages(taskfuse.__path__, "taskfuse."):
        module = importlib.import_module(info.name)
        tests += [t for t in finder.find(module, info.name) if t.examples and t.name.startswith(info.name)]
    return sorted({t.name: t for t in tests}.values(), key=lambda t: t.name)


@pytest.mark.parametrize(
    "test",
    [
        pytest.param(t, marks=pytest.mark.skip(reason=NOT_RUNNABLE[t.name])) if t.name in NOT_RUNNABLE else t
        for t in docstring_tests()
    ],
    ids=lambda t: t.name,
)
def test_docstring_examples_run(test: doctest.DocTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out = io.StringIO()
    result = runner.run(test, out=out.write)
    assert result.failed == 0, out.getvalue()
