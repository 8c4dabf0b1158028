"""``import taskfuse`` is light, and the subpackages are its attributes, loaded on first use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import taskfuse

ROOT = Path(__file__).resolve().parents[1]


def test_import_taskfuse_does_not_import_torch() -> None:
    code = "import sys, taskfuse; print(sorted(m for m in ('torch', 'numpy', 'cv2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fusing_imports_neither_torch_compiler_nor_matplotlib() -> None:
    """Importing torch's compiler costs seconds and matplotlib a third of one; ``taskfuse fuse`` (whose parser is
    built with every command's) with the default model needs neither. MAFS's masks import the compiler when the
    first MAFS is made."""
    code = (
        "import sys, torch, taskfuse.cli.main, taskfuse.inference as inf\n"
        "taskfuse.cli.main.build_parser()\n"
        "model = inf.load()\n"
        "model.fuse_batch(torch.rand(1, 1, 32, 32), torch.rand(1, 3, 32, 32))\n"
        "print('torch._dynamo' in sys.modules, 'matplotlib' in sys.modules)\n"
        "taskfuse.models.create('mafs', **taskfuse.models.get('mafs').small)\n"
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True"]


def test_subpackages_are_attributes_loaded_on_first_use() -> None:
    code = (
        "import sys, taskfuse\n"
        "assert 'taskfuse.models' not in sys.modules\n"
        "assert 'lite' in taskfuse.models.names()\n"
        "assert taskfuse.metrics.FusionMetrics and taskfuse.data.open_dataset\n"
        "print(sorted(n for n in taskfuse.SUBPACKAGES if f'taskfuse.{n}' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "'models'" in out.stdout and "'metrics'" in out.stdout and "'benchmark'" not in out.stdout


def test_every_subpackage_resolves_and_unknown_names_raise() -> None:
    for name in taskfuse.SUBPACKAGES:
        assert getattr(taskfuse, name).__name__ == f"taskfuse.{name}"
        assert name in dir(taskfuse)
    assert sorted(taskfuse.SUBPACKAGES) == sorted(p.parent.name for p in (ROOT / "taskfuse").glob("*/__init__.py"))
    from taskfuse.version import __version__

    assert taskfuse.__version__ == __version__
    with pytest.raises(AttributeError, match="no attribute 'modles'"):
        taskfuse.modles  # noqa: B018
