"""Video streams: what a reader reports, the pairing rules (by index, by nearest time), refusals, atomic writing."""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from taskfuse.data import video
from taskfuse.data.io import PART
from taskfuse.data.video import VideoPair, VideoReader, VideoWriter, nearest_in_time
from taskfuse.errors import TaskfuseError

av = pytest.importorskip("av")
from video_files import make_video, numbered  # noqa: E402


def test_reader_reports_size_rate_count_and_audio(tmp_path: Path) -> None:
    made = make_video(tmp_path / "a.mkv", numbered(4), 12, audio=True)
    reader = VideoReader(tmp_path / "a.mkv")
    info = reader.info
    assert (info.width, info.height, info.rate, info.frames, info.audio) == (33, 21, 12, 4, True)
    assert info.duration == pytest.approx(4 / 12, abs=0.01)
    decoded = list(reader.frames())
    reader.close()
    assert [t for t, _ in decoded] == pytest.approx([0, 1 / 12, 2 / 12, 3 / 12], abs=1e-3)  # Matroska: ms
    assert all(np.array_equal(a, b) for (_, a), b in zip(decoded, made, strict=True))


def test_nearest_in_time_pairs_each_visible_frame_with_the_closest_infrared_one() -> None:
    ir = [(j / 20, j) for j in range(9)]
    vi = [(k / 12, k) for k in range(5)]
    pairs = list(nearest_in_time(iter(ir), iter(vi)))
    assert [(i, a, b) for i, a, b in pairs] == [(0, 0, 0), (1, 2, 1), (2, 3, 2), (3, 5, 3), (4, 7, 4)]
    tie = list(nearest_in_time(iter([(0.0, "a"), (0.2, "b")]), iter([(0.1, "v")])))
    assert tie == [(0, "a", "v")]
    assert list(nearest_in_time(iter([]), iter(vi))) == []


def test_same_rate_pairs_by_index_other_rates_by_time(tmp_path: Path) -> None:
    make_video(tmp_path / "ir.mkv", numbered(5), 12)
    make_video(tmp_path / "ir20.mkv", numbered(9), 20)
    make_video(tmp_path / "vi.mkv", numbered(5, gray=False, seed=1), 12)
    same = VideoPair(tmp_path / "ir.mkv", tmp_path / "vi.mkv")
    assert not same.by_time and same.frames == 5 and same.rate == 12
    assert [int(ir[0, 0, 0]) // 10 for _, ir, _ in same.pairs()] == [0, 1, 2, 3, 4]
    other = VideoPair(tmp_path / "ir20.mkv", tmp_path / "vi.mkv")
    assert other.by_time and other.frames == 5 and other.rate == 12
    assert [int(ir[0, 0, 0]) // 10 for _, ir, _ in other.pairs()] == [0, 2, 3, 5, 7]


def test_streams_that_cannot_pair_are_refused_naming_them(tmp_path: Path) -> None:
    make_video(tmp_path / "long.mkv", numbered(20), 10)
    make_video(tmp_path / "short.mkv", numbered(5), 10)
    make_video(tmp_path / "wide.mkv", numbered(20, size=(21, 35)), 10)
    with pytest.raises(TaskfuseError, match=r"lasts 2.00 s and --vi .*short.mkv 0.50 s, more than 0.20 s apart"):
        VideoPair(tmp_path / "long.mkv", tmp_path / "short.mkv")
    with pytest.raises(TaskfuseError, match="33x21 and --vi .* 35x21; .* --resize vi"):
        VideoPair(tmp_path / "long.mkv", tmp_path / "wide.mkv")
    assert VideoPair(tmp_path / "long.mkv", tmp_path / "wide.mkv", resize="vi").size("vi") == (33, 21)
    (tmp_path / "text.mp4").write_text("not a video")
    with pytest.raises(TaskfuseError, match="text.mp4: not a readable video"):
        VideoReader(tmp_path / "text.mp4")
    with wave.open(str(tmp_path / "sound.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000), w.writeframes(bytes(1600))
    with pytest.raises(TaskfuseError, match="sound.wav: holds no video stream"):
        VideoReader(tmp_path / "sound.wav")


def test_writer_is_atomic_and_keeps_lossless_frames(tmp_path: Path) -> None:
    frames = numbered(3, gray=False)
    with VideoWriter(tmp_path / "out.mkv", Fraction(12), 33, 21) as writer:
        for frame in frames:
            writer.write(writer.convert(frame))
        assert not (tmp_path / "out.mkv").exists()
    reader = VideoReader(tmp_path / "out.mkv")
    assert all(np.array_equal(a, b) for (_, a), b in zip(reader.frames(), frames, strict=True))
    reader.close()
    before = (tmp_path / "out.mkv").read_bytes()
    with pytest.raises(KeyboardInterrupt), VideoWriter(tmp_path / "out.mkv", Fraction(12), 33, 21) as writer:
        writer.write(writer.convert(frames[0]))
        raise KeyboardInterrupt
    assert (tmp_path / "out.mkv").read_bytes() == before
    with (
        pytest.raises(TaskfuseError, match="no frame decoded"),
        VideoWriter(tmp_path / "none.mkv", Fraction(12), 33, 21),
    ):
        pass
    assert sorted(p.name for p in tmp_path.iterdir() if PART.fullmatch(p.name)) == []
    assert not (tmp_path / "none.mkv").exists()


def test_opencv_stands_in_without_pyav(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = make_video(tmp_path / "ir.mkv", numbered(4, gray=False), 12)
    monkeypatch.setattr(video, "pyav", lambda: None)
    reader = VideoReader(tmp_path / "ir.mkv")
    assert (reader.info.width, reader.info.height, reader.info.rate, reader.info.frames) == (33, 21, 12, 4)
    decoded = list(reader.frames())
    reader.close()
    assert [t for t, _ in decoded] == pytest.approx([0, 1 / 12, 2 / 12, 3 / 12])
    assert all(np.array_equal(a, b) for (_, a), b in zip(decoded, made, strict=True))
    for name in ("out.mkv", "out.mp4"):
        with VideoWriter(tmp_path / name, Fraction(12), 33, 21) as writer:
            for frame in made:
                writer.write(writer.convert(frame))
        assert VideoReader(tmp_path / name).info.frames == 4
    with pytest.raises(TaskfuseError, match=r"--codec libx264 needs PyAV: pip install 'taskfuse\[video\]'"):
        VideoWriter(tmp_path / "x.mp4", Fraction(12), 33, 21, codec="libx264")
