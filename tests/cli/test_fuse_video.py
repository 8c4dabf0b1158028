"""``taskfuse fuse`` on two videos: a fused video or a frame folder, each frame the fusion of its pair as images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from taskfuse.cli.main import main
from taskfuse.data.io import PART, read_image
from taskfuse.data.manifest import MANIFEST
from taskfuse.data.video import VideoReader, VideoWriter

av = pytest.importorskip("av")
from video_files import make_video, numbered  # noqa: E402


def _videos(root: Path, ir_frames: int = 5, ir_rate: int = 12, audio: bool = False) -> tuple[Path, Path]:
    make_video(root / "ir.mkv", numbered(ir_frames), ir_rate)
    make_video(root / "vi.mkv", numbered(5, gray=False, seed=1), 12, audio=audio)
    return root / "ir.mkv", root / "vi.mkv"


def _fuse(ir: Path, vi: Path, out: Path, *extra: str) -> int:
    return main(["fuse", "--ir", str(ir), "--vi", str(vi), "--out", str(out), "--method", "mean", *extra])


def _decoded(path: Path) -> list[np.ndarray]:
    reader = VideoReader(path)
    frames = [frame for _, frame in reader.frames()]
    reader.close()
    return frames


@pytest.mark.parametrize(("ir_frames", "ir_rate", "ir_index"), [(5, 12, [0, 1, 2, 3, 4]), (9, 20, [0, 2, 3, 5, 7])])
def test_each_fused_frame_is_its_pair_fused_as_images(
    tmp_path: Path, capsys, ir_frames: int, ir_rate: int, ir_index: list[int]
) -> None:
    """Lossless FFV1 out: frame k equals fusing VIS frame k with its IR frame (by index, or nearest in time at
    20 against 12 frames/s) written as PNG images and fused by the image path."""
    ir, vi = _videos(tmp_path, ir_frames, ir_rate)
    assert _fuse(ir, vi, tmp_path / "fused.mkv") == 0
    assert "fused 5 frame(s)" in capsys.readouterr().out
    fused = _decoded(tmp_path / "fused.mkv")
    assert len(fused) == 5 and fused[0].shape == (21, 33, 3)
    assert VideoReader(tmp_path / "fused.mkv").info.rate == 12
    ir_frames_, vi_frames = _decoded(ir), _decoded(vi)
    for k, j in enumerate(ir_index):
        Image.fromarray(ir_frames_[j]).save(tmp_path / "ir.png")
        Image.fromarray(vi_frames[k]).save(tmp_path / "vi.png")
        assert _fuse(tmp_path / "ir.png", tmp_path / "vi.png", tmp_path / "one.png", "--overwrite") == 0
        assert np.array_equal(fused[k], read_image(tmp_path / "one.png")), k


def test_lossy_mp4_with_odd_size_has_every_frame(tmp_path: Path) -> None:
    ir, vi = _videos(tmp_path)
    assert _fuse(ir, vi, tmp_path / "fused.mp4") == 0
    info = VideoReader(tmp_path / "fused.mp4").info
    assert (info.frames, info.width, info.height, info.rate) == (5, 33, 21, 12)
    assert len(_decoded(tmp_path / "fused.mp4")) == 5


def test_frame_folder_has_a_manifest_and_resumes(tmp_path: Path, capsys) -> None:
    ir, vi = _videos(tmp_path)
    out = tmp_path / "frames"
    assert _fuse(ir, vi, out, "--method", "max") == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["outputs"] == [f"{i:06d}.png" for i in range(5)] and manifest["settings"]["method"] == "max"
    (out / "000003.png").unlink()
    capsys.readouterr()
    assert _fuse(ir, vi, out, "--method", "max") == 0
    assert "fused 1 frame(s), skipped 4" in capsys.readouterr().out
    assert _fuse(ir, vi, out) == 2
    assert "holds results of --method max" in capsys.readouterr().err


def test_a_video_is_replaced_only_with_overwrite_and_never_left_half_written(
    tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    ir, vi = _videos(tmp_path, audio=True)
    out = tmp_path / "fused.mkv"
    assert _fuse(ir, vi, out) == 0
    assert "vi.mkv has an audio stream; the fused output has none" in capsys.readouterr().err
    before = out.read_bytes()
    assert _fuse(ir, vi, out) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    real = VideoWriter.write

    def interrupted(self: VideoWriter, frame: object) -> None:
        if self.written == 3:
            raise KeyboardInterrupt
        real(self, frame)

    monkeypatch.setattr(VideoWriter, "write", interrupted)
    assert _fuse(ir, vi, out, "--overwrite", "--method", "max") == 130
    assert out.read_bytes() == before
    assert _fuse(ir, vi, tmp_path / "new.mp4") == 130
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix in (".mkv", ".mp4") or PART.fullmatch(p.name)) == [
        "fused.mkv",
        "ir.mkv",
        "vi.mkv",
    ]


def test_video_input_errors_are_named(tmp_path: Path, capsys) -> None:
    ir, vi = _videos(tmp_path)
    make_video(tmp_path / "long.mkv", numbered(25), 10)
    (tmp_path / "broken.mp4").write_bytes(b"\x00" * 100)
    Image.fromarray(numbered(1)[0]).save(tmp_path / "still.png")
    cases = [
        ((tmp_path / "long.mkv", vi, tmp_path / "o.mkv"), "lasts 2.50 s and --vi"),
        ((tmp_path / "broken.mp4", vi, tmp_path / "o.mkv"), "broken.mp4: not a readable video"),
        ((tmp_path / "still.png", vi, tmp_path / "o.mkv"), "is not a video file; give two videos"),
        ((ir, vi, tmp_path / "o.png"), "names an image; give a video file"),
        ((ir, vi, tmp_path / "frames", "--codec", "ffv1"), "--codec needs a video --out"),
        ((ir, vi, tmp_path / "o.mkv", "--codec", "nosuchcodec"), "--codec nosuchcodec: not an encoder"),
        ((ir, vi, tmp_path / "frames", "--worker-processes"), "--worker-processes is for image pairs"),
    ]
    for (a, b, out, *extra), message in cases:
        assert _fuse(a, b, out, *extra) == 2, message
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o.mkv").exists() and not (tmp_path / "frames").exists()
