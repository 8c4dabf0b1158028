"""Small test videos: numbered frames written losslessly with PyAV (the ``video`` extra)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_video(
    path: Path, frames: list[np.ndarray], rate: int, codec: str = "ffv1", audio: bool = False
) -> list[np.ndarray]:
    """Write RGB uint8 frames (lossless FFV1 by default) at ``rate`` frames/s, optionally with a silent track."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(rate))
        stream.width, stream.height = w, h
        stream.pix_fmt = "bgr0" if codec == "ffv1" else "yuv444p"
        sound = container.add_stream("pcm_s16le", rate=8000) if audio else None
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
            chunk.sample_rate = 8000
            for packet in [*sound.encode(chunk), *sound.encode()]:
                container.mux(packet)
    return frames


def numbered(n: int, size: tuple[int, int] = (21, 33), gray: bool = True, seed: int = 0) -> list[np.ndarray]:
    """Frames whose pixel (0, 0) holds 10 x their index, the rest noise; gray stored as RGB when ``gray``."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n):
        a = rng.integers(0, 256, (*size, 1 if gray else 3), dtype=np.uint8)
        a[0, 0] = 10 * i
        frames.append(np.repeat(a, 3, -1) if gray else a)
    return frames
