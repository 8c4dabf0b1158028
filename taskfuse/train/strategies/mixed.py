"""Beyond the papers: unlabelled real pairs for the fusion loss, interleaved with labelled task batches.

Labelled data for application-guided fusion is scarce (MSRS, MFNet, FMB) while unlabelled registered pairs
are plentiful (TNO, RoadScene, LLVIP, M3FD_Fusion). This strategy trains a single-stage method on both: of
every ``1 + unlabelled_per_labelled`` steps, the first takes a batch of ``data.train`` (labelled: synthetic
scenes or a labelled dataset) with the method's full loss, the others take batches of ``data.unlabelled``
with the loss the method uses on unlabelled pairs (``taskfuse.train.strategies.fusion_only``). One optimiser
and schedule run over all steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from taskfuse import models
from taskfuse.errors import TaskfuseError
from taskfuse.train.config import DatasetConfig, PhaseConfig, RunConfig
from taskfuse.train.strategies.base import STRATEGIES, Context, as_float, logged, make_loss
from taskfuse.train.strategies.single_stage import SingleStage, SingleStageOptions


@dataclass
class MixedOptions(SingleStageOptions):
    unlabelled_per_labelled: int = 1
    """Unlabelled batches after each labelled batch."""


@STRATEGIES.register("mixed")
class Mixed(SingleStage):
    name = "mixed"
    Options = MixedOptions
    fixed = False

    @classmethod
    def phases(cls, cfg: RunConfig) -> dict[str, tuple[DatasetConfig, PhaseConfig]]:
        assert cfg.data.unlabelled is not None
        return {"train": (cfg.data.train, cfg.train), "unlabelled": (cfg.data.unlabelled, cfg.train)}

    @classmethod
    def check(cls, cfg: RunConfig) -> None:
        if cfg.data.unlabelled is None:
            raise TaskfuseError("train.strategy mixed needs data.unlabelled (a dataset of unlabelled pairs)")
        own = models.get(cfg.method).strategy
        if own != "single_stage":
            single = [n for n in models.names(learned=True) if models.get(n).strategy == "single_stage"]
            raise TaskfuseError(
                f"train.strategy mixed trains single-stage methods ({', '.join(single)}); {cfg.method} trains with "
                f"{own}"
            )
        if cfg.options.unlabelled_per_labelled < 1:
            raise TaskfuseError("train.unlabelled_per_labelled must be at least 1")

    def __init__(self, cfg: RunConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        self.fusion_loss = make_loss(cfg, labelled=False)

    def phase_at(self, step: int) -> str:
        return "train" if step % (1 + self.options.unlabelled_per_labelled) == 0 else "unlabelled"

    def train_step(self, step: int) -> dict[str, Tensor | float]:
        if self.phase_at(step) == "train":
            return {**self.loss_step(step, self.ctx.batch("train")), "labelled": 1.0}
        batch = self.ctx.batch("unlabelled")
        batch.pop("label", None)
        self.net.train()
        with self.ctx.autocast():
            terms = self.run.with_loss(lambda out: self.fusion_loss(as_float(out), batch), batch["ir"], batch["vi"])
        lr = self.opt.step(terms.total, step)
        return {**logged(terms, "unlabelled/"), "lr": lr, "labelled": 0.0}
