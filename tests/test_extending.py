"""A method defined outside the package, as docs/extending.md describes: one module and one config file.

The module registers a network, its objective and a strategy of its own; the config names the module under
``imports:``. The method trains, resumes and fuses from the command line without any change to taskfuse.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from taskfuse.cli.main import main
from taskfuse.data.io import read_vi, write_image
from taskfuse.models.weights import read_meta, save_weights

MODULE = '''
"""A toy fusion method of a project of one's own."""

import torch
from torch import nn

from taskfuse.losses.base import LossTerms
from taskfuse.losses.fusion_terms import intensity_max_loss
from taskfuse.data.color import luminance
from taskfuse.models import MethodSpec, register
from taskfuse.models.base import FusionModel, FusionOutput
from taskfuse.train.strategies.base import STRATEGIES
from taskfuse.train.strategies.single_stage import SingleStage


class ToyFusion(FusionModel):
    """Two convolutions over the stacked sources."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(2, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, 1, 3, padding=1))

    def fuse(self, ir, vi):
        return FusionOutput(torch.sigmoid(self.body(torch.cat((ir, vi), 1))))


class ToyLoss:
    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def __call__(self, out, batch):
        term = self.weight * intensity_max_loss(out.fused, batch["ir"], luminance(batch["vi"]))
        return LossTerms(term, {"int": term.detach()})


@STRATEGIES.register("toy_steps")
class ToySteps(SingleStage):
    """SingleStage that also logs how many steps it has taken."""

    name = "toy_steps"

    def train_step(self, step):
        return {**super().train_step(step), "toy_step": float(step)}


register(MethodSpec(name="toy_fusion_ext", network=ToyFusion, loss=ToyLoss, strategy="toy_steps"))
'''

CONFIG = """
imports: [toy_method]
method: toy_fusion_ext
model: {width: 4}
loss: {weight: 2.0}
data:
  train: {name: synthetic, length: 8, height: 32, width: 48}
  workers: 0
train: {iters: 4, batch_size: 2, crop: 32, lr: 0.001, optimizer: adam}
log: {every: 1, checkpoint_every: 2, progress: false, tensorboard: false}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding the two files of the out-of-tree method, on the import path."""
    (tmp_path / "toy_method.py").write_text(MODULE)
    (tmp_path / "toy.yaml").write_text(CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("toy_method", None)


def test_out_of_tree_method_trains_resumes_and_fuses(project: Path) -> None:
    runs = project / "runs"
    assert main(["train", str(project / "toy.yaml"), "--out", str(runs), "--device", "cpu"]) == 0
    (run,) = runs.iterdir()
    assert main(["train", "--resume", str(run), "--set", "train.iters=6", "--device", "cpu"]) == 0
    weights = run / "fusion.safetensors"
    meta = read_meta(weights)
    assert meta["method"] == "toy_fusion_ext" and meta["imports"] == ["toy_method"]

    write_image(project / "ir.png", torch.rand(1, 20, 24))
    write_image(project / "vi.png", torch.rand(3, 20, 24))
    argv = ["fuse", "--ir", str(project / "ir.png"), "--vi", str(project / "vi.png"), "--weights", str(weights)]
    assert main(["--import", "toy_method", *argv, "--out", str(project / "out"), "--device", "cpu"]) == 0
    assert read_vi(project / "out" / "ir.png").shape == (3, 20, 24)


def test_weights_of_an_unimported_method_name_the_module_to_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = save_weights(nn.Conv2d(2, 1, 3), tmp_path / "w.safetensors", "not_imported_yet", {}, {"imports": ["a.b"]})
    write_image(tmp_path / "ir.png", torch.rand(1, 8, 8))
    write_image(tmp_path / "vi.png", torch.rand(1, 8, 8))
    argv = ["fuse", "--ir", str(tmp_path / "ir.png"), "--vi", str(tmp_path / "vi.png"), "--weights", str(weights)]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert "taskfuse --import a.b" in capsys.readouterr().err
    assert main(["--import", "no_such_module_here", "fuse", "--list"]) == 2
    assert "--import no_such_module_here: cannot import it" in capsys.readouterr().err
