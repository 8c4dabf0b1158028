"""Pack what the GPU runs of the default model and the claim benchmark read into one folder small enough to travel
with the repository to a GPU machine (a transfer limit of 64 MiB in all).

    python scripts/gpu_pack.py --shared ../shared --out .cache/gpu

Writes ``OUT/msrs_det`` (the 301 labelled MSRS pairs re-encoded as JPEG with full chroma, infrared at quality
95, visible at 90: 35 MB instead of 128 MB of PNG, a mean difference of about one grey level; ``labels/fusion``
and ``classes.txt`` copied), ``OUT/rs_split`` (the RoadScene training pairs of ``scripts/roadscene_split.py``,
files as published; the validation pairs stay behind), ``OUT/effnet-lite0.safetensors`` (the ImageNet
EfficientNet-Lite0 of ``taskfuse[pretrained]`` without its classifier, in half precision: 7 MB) and
``OUT/{seafusion,tardal}-released.safetensors`` (the authors' weights, converted).

The JPEG copies differ from the PNGs by a few grey levels (the largest and mean difference are printed and kept
in ``OUT/msrs_det/PACKED.json``): GPU trainings and downstream detectors read them; fusion metrics and figures
of the docs are computed on the original PNGs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from roadscene_split import split  # noqa: E402

from taskfuse.nn.efficientnet import package_weights  # noqa: E402

QUALITY = {"ir": 95, "vi": 90}
"""JPEG quality per side: the visible images at 95 would not fit beside the rest."""


def jpeg(src: Path, dest: Path, quality: int) -> float:
    """Re-encode ``src`` as JPEG (4:4:4) at ``dest``; the largest absolute difference in grey levels."""
    image = cv2.imread(str(src), cv2.IMREAD_UNCHANGED)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    ok, data = cv2.imencode(".jpg", image, params)
    if not ok:
        raise SystemExit(f"{src}: could not encode as JPEG")
    dest.write_bytes(data.tobytes())
    back = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    return float(np.abs(back.astype(np.int16) - image.astype(np.int16)).max())


def pack_msrs_det(src: Path, out: Path) -> dict:
    for side in ("ir", "vi"):
        (out / side).mkdir(parents=True, exist_ok=True)
    worst = {"ir": 0.0, "vi": 0.0}
    for side in ("ir", "vi"):
        for f in sorted((src / side).glob("*.png")):
            worst[side] = max(worst[side], jpeg(f, out / side / f"{f.stem}.jpg", QUALITY[side]))
    shutil.copytree(src / "labels" / "fusion", out / "labels" / "fusion", dirs_exist_ok=True)
    shutil.copyfile(src / "labels" / "classes.txt", out / "labels" / "classes.txt")
    record = {"source": str(src), "jpeg_quality": QUALITY, "chroma": "4:4:4", "max_abs_difference": worst}
    (out / "PACKED.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def pack_roadscene(src: Path, out: Path) -> int:
    names = sorted(p.stem for p in (src / "ir").iterdir())
    train = split(names)["train"]
    for side in ("ir", "vi"):
        (out / side).mkdir(parents=True, exist_ok=True)
        files = {p.stem: p for p in (src / side).iterdir()}
        for n in train:
            shutil.copyfile(files[n], out / side / files[n].name)
    return len(train)


def pack_backbone(out: Path) -> None:
    pth = package_weights("lite0")
    full = out / "effnet-lite0-full.safetensors"
    subprocess.run(["taskfuse", "convert", "backbone", str(pth), "--out", str(full), "--overwrite"], check=True)
    state = {
        k: v.half() if v.is_floating_point() else v for k, v in load_file(full).items() if not k.startswith("_fc.")
    }
    save_file(state, out / "effnet-lite0.safetensors")
    full.unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared")
    parser.add_argument("--out", type=Path, default=HERE.parent / ".cache" / "gpu")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    print(pack_msrs_det(args.shared / "data" / "msrs_det", out / "msrs_det"))
    print("roadscene train pairs:", pack_roadscene(args.shared / "data" / "roadscene", out / "rs_split" / "train"))
    pack_backbone(out)
    official = args.shared / "checkpoints" / "official"
    for name, converter, src in (
        ("seafusion", "seafusion-official", "SeAFusion.pth"),
        ("tardal", "tardal-official", "tardal.pt"),
    ):
        dest = out / f"{name}-released.safetensors"
        if not dest.is_file():
            subprocess.run(["taskfuse", "convert", converter, str(official / src), "--out", str(dest)], check=True)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{out}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
