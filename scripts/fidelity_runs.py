"""Short runs before and after the paper-fidelity fixes: one run per setting, same seed, scenes and steps.

    python scripts/fidelity_runs.py OUT                  # CPU: narrowed networks, 64 x 80 scenes, 20 steps
    python scripts/fidelity_runs.py OUT --scale full --device cuda --steps 300 --size 256 320 --scenes 16 \\
        --batch 8 --teacher-steps 300

Every method trains each of its settings from the same seed on the same synthetic labelled scenes
(``taskfuse.data.synthetic.render_scene``, day and night alternating) for the same number of Adam steps at lr
1e-3: a probe of what the objectives pull towards, not the papers' schedules. ``--scale small`` builds the
narrowed networks of the tests (``MethodSpec.small``), ``full`` the networks of the shipped configs.

=========  ==============================================  ==================================================
method     before                                          after
=========  ==============================================  ==================================================
seafusion  ``loss.variant=agf`` (seed 000 as written)      ``agf_active`` (ratio-recombined colour, γ 0.2)
psfusion   ``loss.variant=paper`` (eq. 17 sigmoid masks)   ``released``; also ``released_as_run``
mafs       L_kd without T², gradient through the teacher   ``kd_t2``, teacher logits detached
dsifuse    ``feedback=decoder``, ``masks=written``,         ``feedback=encoder``, ``masks=compared``,
           ``ir_compare=channels``                         ``ir_compare=luminance``
=========  ==============================================  ==================================================

MAFS's teacher is a SegFormer-B0 trained for ``--teacher-steps`` on the max-rule fusions of the training scenes,
the same teacher for both settings. SeAFusion trains its fusion network alone (the settings differ only there).

Written to OUT: ``results.json`` and ``results.md`` with, per run, every loss term at the first and the last
step; the share of the gradient each term carries after training (``taskfuse.losses.base.gradient_shares``
on the first training batch, w.r.t. the network's parameters and w.r.t. the fused image, the only way into
the fusion layers for a term of another head); and the infrared share on the target pixels of
the held-out scenes: the least-squares ``a`` of ``F = a IR + (1 - a) Y_vi`` over car, person and bike pixels
where ``|IR - Y_vi| > 0.05`` (F the fused luminance; 1 = all infrared, 0 = all visible). ``<method>.png`` shows
IR | VIS | the fused image of every setting, one held-out scene per row.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from taskfuse import models
from taskfuse.data.color import luminance, recombine
from taskfuse.data.io import atomic_path, write_image
from taskfuse.data.synthetic import render_scene
from taskfuse.device import resolve_device
from taskfuse.losses.base import gradient_shares
from taskfuse.losses.masks import foreground_from_labels
from taskfuse.tasks import segmentation
from taskfuse.tasks.segmentation.loss import main_aux_loss
from taskfuse.train.resolve import load_config

SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "seafusion": {
        "before: agf": {"loss": {"variant": "agf"}},
        "after: agf_active": {"loss": {"variant": "agf_active"}},
    },
    "psfusion": {
        "before: paper": {"loss": {"variant": "paper"}},
        "after: released": {"loss": {"variant": "released"}},
        "released_as_run": {"loss": {"variant": "released_as_run"}},
    },
    "mafs": {
        "before: no T², through teacher": {"loss": {"kd_t2": False, "kd_through_teacher": True}, "teacher": True},
        "after: T², detached": {"loss": {"kd_t2": True, "kd_through_teacher": False}, "teacher": True},
    },
    "dsifuse": {
        "before: decoder, written, channels": {
            "model": {"feedback": "decoder"},
            "loss": {"masks": "written", "ir_compare": "channels", "object_classes": [1, 2, 3]},
        },
        "after: encoder, compared, luminance": {
            "model": {"feedback": "encoder"},
            "loss": {"masks": "compared", "ir_compare": "luminance", "object_classes": [1, 2, 3]},
        },
    },
}
"""Per method, the settings compared: network (``model``) and objective (``loss``) keyword arguments, and
whether the objective needs a teacher segmenter."""
TARGET_CLASSES = (1, 2, 3)


def scenes(seeds: range, size: tuple[int, int], device: torch.device) -> dict[str, Tensor]:
    """Rendered scenes stacked into one batch on ``device``; odd seeds at night."""
    rendered = [render_scene(s, *size, night=bool(s % 2)) for s in seeds]
    return {k: torch.stack([r[k] for r in rendered]).to(device) for k in ("ir", "vi", "label")}


def split(batch: dict[str, Tensor], size: int) -> list[dict[str, Tensor]]:
    n = batch["ir"].shape[0]
    return [{k: v[i : i + size] for k, v in batch.items()} for i in range(0, n, size)]


def infrared_share(fused: Tensor, batch: dict[str, Tensor], floor: float = 0.05) -> float:
    """Least-squares ``a`` of ``F = a IR + (1 - a) Y_vi`` on target pixels where the sources differ by > floor."""
    y = luminance(fused) if fused.shape[1] == 3 else fused
    ir, vi = batch["ir"], luminance(batch["vi"])
    mask = (foreground_from_labels(batch["label"], TARGET_CLASSES) > 0) & ((ir - vi).abs() > floor)
    d = (ir - vi)[mask]
    return float(((y - vi)[mask] * d).sum() / (d * d).sum()) if d.numel() else math.nan


def display(model: nn.Module, fused: Tensor, vi: Tensor) -> Tensor:
    """The fused image as shown: RGB outputs clamped, luminance outputs with the visible colour."""
    return fused.clamp(0, 1) if model.output_mode == "rgb" else recombine(fused, vi)


def network_args(method: str, scale: str) -> dict[str, Any]:
    spec = models.get(method)
    return dict(spec.small) if scale == "small" else dict(load_config(spec.config).model)


def train_teacher(train: list[dict[str, Tensor]], steps: int, args: argparse.Namespace) -> nn.Module:
    """A SegFormer-B0 trained on the max-rule fusions of the training scenes (MAFS's distillation target)."""
    torch.manual_seed(args.seed)
    teacher = segmentation.create("segformer-b0", 9).to(args.device)
    rule = models.create("max").to(args.device)
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-3)
    for step in range(steps):
        batch = train[step % len(train)]
        with torch.no_grad():
            image = recombine(rule(batch["ir"], batch["vi"]).fused, batch["vi"])
        loss = main_aux_loss(teacher(image), batch["label"], 0.4).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    return teacher.eval()


def run(method: str, setting: dict[str, Any], train: list[dict[str, Tensor]], test: dict[str, Tensor],
        teacher: nn.Module | None, args: argparse.Namespace) -> tuple[dict[str, Any], Tensor]:  # fmt: skip
    """Train one setting; returns its record and the displayed fused test images."""
    torch.manual_seed(args.seed)
    net = models.create(method, **network_args(method, args.scale), **setting.get("model", {})).to(args.device)
    extra = {"teacher": teacher} if setting.get("teacher") else {}
    loss = models.get(method).objective(True, **setting.get("loss", {}), **extra)
    params = list(net.parameters())
    if isinstance(loss, nn.Module):
        loss.to(args.device)
        params += list(loss.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    history, start = [], time.perf_counter()
    net.train()
    for step in range(args.steps):
        batch = train[step % len(train)]
        terms = loss(net(batch["ir"], batch["vi"]), batch)
        opt.zero_grad()
        terms.total.backward()
        opt.step()
        history.append(terms.log_dict())
    seconds = time.perf_counter() - start
    out = net(train[0]["ir"], train[0]["vi"])
    terms = loss.terms(out, train[0])
    shares = {"params": gradient_shares(terms, params), "fused": gradient_shares(terms, [out.fused])}
    net.eval()
    with torch.no_grad():
        fused = net(test["ir"], test["vi"]).fused
    record = {
        "first": history[0],
        "last": history[-1],
        "gradient_shares": shares,
        "infrared_share": infrared_share(fused, test),
        "seconds": round(seconds, 1),
    }
    return record, display(net, fused, test["vi"]).cpu()


def markdown(results: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace) -> str:
    lines = [
        f"Scale {args.scale}, {args.steps} steps of batch {args.batch}, {args.scenes} training and "
        f"{args.test_scenes} held-out {args.size[0]} x {args.size[1]} scenes, seed {args.seed}, device {args.device}.",
        "",
        "| method | setting | total first → last | terms at the last step | gradient shares: parameters; fused image "
        "| IR share on targets |",
        "| --- | --- | --: | --- | --- | --: |",
    ]
    for method, runs in results.items():
        for name, r in runs.items():
            terms = ", ".join(f"{k} {v:.4g}" for k, v in r["last"].items() if k != "total")
            shares = "; ".join(
                ", ".join(f"{k} {v:.3f}" for k, v in r["gradient_shares"][wrt].items()) for wrt in ("params", "fused")
            )
            total = f"{r['first']['total']:.4g} → {r['last']['total']:.4g}"
            lines.append(f"| {method} | {name} | {total} | {terms} | {shares} | {r['infrared_share']:.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument("--methods", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--scale", choices=("small", "full"), default="small", help="narrowed or paper networks")
    parser.add_argument("--steps", type=int, default=20, help="training steps per run (default: 20)")
    parser.add_argument("--teacher-steps", type=int, default=20, help="MAFS teacher's steps (default: 20)")
    parser.add_argument("--scenes", type=int, default=4, help="training scenes (default: 4)")
    parser.add_argument("--test-scenes", type=int, default=2, help="held-out scenes (default: 2)")
    parser.add_argument("--batch", type=int, default=2, help="scenes per step (default: 2)")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 80), metavar=("H", "W"), help="default: 64 80")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    args = parser.parse_args()
    args.device = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)

    train = split(scenes(range(args.scenes), tuple(args.size), args.device), args.batch)
    test = scenes(range(1000, 1000 + args.test_scenes), tuple(args.size), args.device)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for method in args.methods:
        settings = SETTINGS[method]
        teacher = (
            train_teacher(train, args.teacher_steps, args) if any("teacher" in s for s in settings.values()) else None
        )
        results[method], images = {}, []
        for name, setting in settings.items():
            results[method][name], fused = run(method, setting, train, test, teacher, args)
            images.append(fused)
            print(f"{method} {name}: {json.dumps(results[method][name])}", flush=True)
        sources = [test["ir"].expand(-1, 3, -1, -1).cpu(), test["vi"].cpu()]
        rows = [torch.cat([img[i] for img in sources + images], dim=2) for i in range(test["ir"].shape[0])]
        write_image(args.out / f"{method}.png", torch.cat(rows, dim=1))
    args.device = str(args.device)
    with atomic_path(args.out / "results.json") as tmp:
        tmp.write_text(
            json.dumps({"args": {k: v for k, v in vars(args).items() if k != "out"}, "results": results}, indent=1)
        )
    with atomic_path(args.out / "results.md") as tmp:
        tmp.write_text(markdown(results, args))
    print(markdown(results, args), end="")


if __name__ == "__main__":
    main()
