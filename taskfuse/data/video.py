"""Video in and out: the frames of an infrared and a visible video paired, a fused video written atomically.

Frames are read and written with PyAV (FFmpeg; ``pip install 'taskfuse[video]'``), so any container and codec
FFmpeg reads will do. Without PyAV, OpenCV's ``VideoCapture`` / ``VideoWriter`` stand in, with less: they take
every stream for constant-rate (a frame's time is its index over the nominal rate), see no audio, and write
only MPEG-4 Part 2 (``.mp4``, ``.mov``, ``.m4v``, ``.avi``) or FFV1 (``.mkv``); ``--codec`` needs PyAV.

Pairing (``VideoPair``): two streams of the same frame rate (within 0.1 %) pair frame by frame, by index. At
different rates every visible frame takes the infrared frame whose presentation time, counted from each
stream's first frame, is nearest (the earlier one on a tie), so the fused video has the visible stream's
frames and rate. Streams whose durations differ by more than ``duration_tolerance`` (two frame intervals of
the slower stream, or 1 % of the longer duration if that is more) are refused: they do not show the same
span of time.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from contextlib import ExitStack, closing
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from taskfuse.data.io import IMAGE_SUFFIXES, atomic_path
from taskfuse.errors import TaskfuseError

EXTRA = "pip install 'taskfuse[video]'"
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
"""Suffixes ``--out`` takes for a video file; inputs may be any file FFmpeg reads that is not an image."""
CODECS = {
    ".mp4": "libx264",
    ".mov": "libx264",
    ".m4v": "libx264",
    ".mkv": "ffv1",
    ".avi": "ffv1",
    ".webm": "libvpx-vp9",
}
"""Default encoder per output suffix: H.264 where players expect it, lossless FFV1 in Matroska and AVI."""
RATE_TOLERANCE = 0.001
"""Relative difference under which two frame rates count as equal (frames then pair by index)."""


def pyav() -> ModuleType | None:
    """The ``av`` module, or None when PyAV is not installed (OpenCV then reads and writes video)."""
    try:
        return importlib.import_module("av")
    except ImportError:  # PyAV comes with pip install taskfuse[video]
        return None


def is_video(path: str | os.PathLike) -> bool:
    """Whether an input names a video: an existing file that is not an image by its suffix."""
    path = Path(path)
    return path.is_file() and path.suffix.lower() not in IMAGE_SUFFIXES


def is_video_output(path: str | os.PathLike) -> bool:
    """Whether ``--out`` names a video file (a video suffix, and not an existing folder)."""
    path = Path(path)
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.is_dir()


@dataclass(frozen=True)
class VideoInfo:
    """What pairing needs of a stream: size, average frame rate, frame count, duration (s), audio."""

    path: Path
    width: int
    height: int
    rate: Fraction
    frames: int
    duration: float
    audio: bool


class VideoReader:
    """The first video stream of a file, decoded to RGB uint8 frames (H, W, 3) with their times in seconds
    from the stream's first frame. PyAV when installed, else OpenCV (module docstring)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.av = pyav()
        try:
            self.info = self._open_av() if self.av is not None else self._open_cv()
        except TaskfuseError:
            self.close()
            raise

    def _open_av(self) -> VideoInfo:
        av = self.av
        try:
            self.container = av.open(str(self.path))
        except (av.FFmpegError, OSError, ValueError) as e:
            raise TaskfuseError(f"{self.path}: not a readable video ({e}); check the file") from e
        if not self.container.streams.video:
            raise TaskfuseError(f"{self.path}: holds no video stream; give a video file")
        stream = self.stream = self.container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            raise TaskfuseError(f"{self.path}: the video stream has no frame rate; remux it with one")
        frames = stream.frames or self._count_packets()
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif self.container.duration:
            duration = self.container.duration / 1e6
        else:
            duration = frames / float(rate)
        audio = bool(self.container.streams.audio)
        return VideoInfo(self.path, stream.width, stream.height, Fraction(rate), frames, duration, audio)

    def _count_packets(self) -> int:
        """Frames of a container that does not store their number (Matroska): its packets, read (through a
        container of its own, which leaves this one at the start) but not decoded."""
        with self.av.open(str(self.path)) as container:
            return sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)

    def _open_cv(self) -> VideoInfo:
        self.capture = cv2.VideoCapture(str(self.path))
        if not self.capture.isOpened():
            raise TaskfuseError(f"{self.path}: not a readable video (OpenCV); install PyAV ({EXTRA}) or check the file")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        frames = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        if fps <= 0:
            raise TaskfuseError(f"{self.path}: the video stream has no frame rate; remux it with one")
        w, h = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        rate = Fraction(fps).limit_denominator(1001)
        return VideoInfo(self.path, w, h, rate, frames, frames / fps, False)

    def frames(self) -> Iterator[tuple[float, np.ndarray]]:
        """(time in s from the first frame, RGB uint8 (H, W, 3)) for every frame, in presentation order."""
        if self.av is None:
            yield from self._frames_cv()
            return
        first = None
        try:
            for i, frame in enumerate(self.container.decode(self.stream)):
                t = frame.time if frame.time is not None else i / float(self.info.rate)
                first = t if first is None else first
                yield t - first, frame.to_ndarray(format="rgb24")
        except self.av.FFmpegError as e:
            raise TaskfuseError(f"{self.path}: a frame does not decode ({e}); the file is damaged") from e

    def _frames_cv(self) -> Iterator[tuple[float, np.ndarray]]:
        i = 0
        while True:
            ok, bgr = self.capture.read()
            if not ok:
                return
            yield i / float(self.info.rate), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            i += 1

    def close(self) -> None:
        if getattr(self, "container", None) is not None:
            self.container.close()
        if getattr(self, "capture", None) is not None:
            self.capture.release()


def duration_tolerance(a: VideoInfo, b: VideoInfo) -> float:
    """Seconds two streams' durations may differ by and still pair (module docstring)."""
    return max(2 / float(min(a.rate, b.rate)), 0.01 * max(a.duration, b.duration))


class VideoPair:
    """An infrared and a visible video checked for pairing (module docstring) before anything is decoded.

    ``frames`` is the number of fused frames (the visible stream's, or the shorter stream's by index);
    ``rate`` the output frame rate, the visible stream's. ``resize`` (``"vi"``, ``"ir"`` or None) as for
    images: frames of different sizes are refused without it.
    """

    def __init__(self, ir: str | os.PathLike, vi: str | os.PathLike, resize: str | None = None) -> None:
        self.ir_path, self.vi_path = Path(ir), Path(vi)
        with ExitStack() as stack:
            ir_info = stack.enter_context(closing(VideoReader(ir))).info
            vi_info = stack.enter_context(closing(VideoReader(vi))).info
        self.ir, self.vi = ir_info, vi_info
        tolerance = duration_tolerance(ir_info, vi_info)
        if abs(ir_info.duration - vi_info.duration) > tolerance:
            raise TaskfuseError(
                f"--ir {ir} lasts {ir_info.duration:.2f} s and --vi {vi} {vi_info.duration:.2f} s, more than "
                f"{tolerance:.2f} s apart, so their frames do not show the same moments; trim both to the same span"
            )
        if (ir_info.width, ir_info.height) != (vi_info.width, vi_info.height) and resize is None:
            raise TaskfuseError(
                f"--ir {ir} is {ir_info.width}x{ir_info.height} and --vi {vi} {vi_info.width}x{vi_info.height}; "
                "fusion needs frames of one size: pass --resize vi (or --resize ir)"
            )
        self.by_time = abs(ir_info.rate - vi_info.rate) > RATE_TOLERANCE * vi_info.rate
        self.frames = vi_info.frames if self.by_time else min(ir_info.frames, vi_info.frames)
        self.rate = vi_info.rate
        self.audio = [p for p, info in ((ir, ir_info), (vi, vi_info)) if info.audio]

    def size(self, resize: str | None) -> tuple[int, int]:
        """(width, height) of the fused frames: the infrared stream's, or the visible one's under ``resize="ir"``."""
        info = self.vi if resize == "ir" else self.ir
        return info.width, info.height

    def pairs(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(index, IR RGB frame, VIS RGB frame) for every output frame, in order (module docstring)."""
        with closing(VideoReader(self.ir_path)) as ir, closing(VideoReader(self.vi_path)) as vi:
            if not self.by_time:
                for i, ((_, a), (_, b)) in enumerate(zip(ir.frames(), vi.frames(), strict=False)):
                    yield i, a, b
                return
            yield from nearest_in_time(ir.frames(), vi.frames())


def nearest_in_time(
    ir: Iterator[tuple[float, np.ndarray]], vi: Iterator[tuple[float, np.ndarray]]
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """For every visible frame (time t), the infrared frame whose time is nearest t (the earlier on a tie)."""
    current = next(ir, None)
    if current is None:
        return
    following = next(ir, None)
    for i, (t, frame) in enumerate(vi):
        while following is not None and abs(following[0] - t) < abs(current[0] - t):
            current, following = following, next(ir, None)
        yield i, current[1], frame


class VideoWriter:
    """A video file written atomically: frames go to a temporary file beside ``path`` (``atomic_path``),
    renamed over ``path`` when the writer closes without error and removed otherwise, so an interrupted run
    leaves no half-written video.

    ``codec`` is any FFmpeg encoder (default: ``CODECS`` by suffix, else the container's own default); the
    pixel format is RGB where the encoder takes it (lossless codecs stay lossless), else YUV 4:2:0, or 4:4:4
    for odd sizes, which 4:2:0 cannot hold. ``convert`` may run in threads; ``write`` runs in order.
    """

    def __init__(self, path: str | os.PathLike, rate: Fraction, width: int, height: int, codec: str | None = None):
        self.path, self.rate, self.size, self.codec = Path(path), rate, (width, height), codec
        self.av = pyav()
        if self.av is None and codec is not None:
            raise TaskfuseError(f"--codec {codec} needs PyAV: {EXTRA}")
        self._stack = ExitStack()
        self.written = 0

    def __enter__(self) -> VideoWriter:
        tmp = self._stack.enter_context(atomic_path(self.path))
        try:
            if self.av is not None:
                self._open_av(tmp)
            else:
                self._open_cv(tmp)
        except BaseException as e:
            self._stack.__exit__(type(e), e, e.__traceback__)
            raise
        return self

    def _open_av(self, tmp: Path) -> None:
        av = self.av
        self.container = av.open(str(tmp), "w")
        self._stack.callback(self.container.close)
        name = self.codec or CODECS.get(self.path.suffix.lower()) or self.container.default_video_codec
        if name not in av.codecs_available and name == "libx264":
            name = "mpeg4"
        try:
            self.stream = self.container.add_stream(name, rate=self.rate)
        except (av.FFmpegError, ValueError) as e:
            raise TaskfuseError(f"--codec {name}: not an encoder FFmpeg has here ({e}); choose another") from e
        w, h = self.size
        formats = [f.name for f in self.stream.codec_context.codec.video_formats or []]
        odd = w % 2 or h % 2
        preferred = ("rgb24", "bgr0", "yuv444p" if odd else "yuv420p", "yuv444p")
        self.stream.pix_fmt = next((f for f in preferred if f in formats), formats[0] if formats else "yuv420p")
        self.stream.width, self.stream.height = w, h

    def _open_cv(self, tmp: Path) -> None:
        fourcc = "FFV1" if self.path.suffix.lower() == ".mkv" else "mp4v"
        self.writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*fourcc), float(self.rate), self.size)
        self._stack.callback(self.writer.release)
        if not self.writer.isOpened():
            raise TaskfuseError(f"--out {self.path}: OpenCV cannot write this format; install PyAV ({EXTRA})")

    def convert(self, rgb: np.ndarray) -> Any:
        """An RGB uint8 frame (H, W, 3) in the form ``write`` takes, converted to the encoder's pixel format."""
        if self.av is None:
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        return self.av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=self.stream.pix_fmt)

    def write(self, frame: Any) -> None:
        """Append one frame from ``convert``."""
        self.written += 1
        if self.av is None:
            self.writer.write(frame)
            return
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: Any) -> None:
        """Flush the encoder and rename the file into place, or on any error (or without a frame) remove it."""
        if kind is None:
            try:
                if not self.written:
                    raise TaskfuseError(f"--out {self.path}: no frame decoded from the inputs, nothing to write")
                for packet in self.stream.encode() if self.av is not None else ():
                    self.container.mux(packet)
            except BaseException as e:
                self._stack.__exit__(type(e), e, e.__traceback__)
                raise
        self._stack.__exit__(kind, value, tb)
