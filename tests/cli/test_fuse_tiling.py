"""``taskfuse fuse --tile``: tiled files match untiled ones; bad values are refused by the parser."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from taskfuse.cli.main import main
from taskfuse.data.io import read_vi, write_image


def test_tiled_cli_output_matches_untiled(tmp_path: Path) -> None:
    write_image(tmp_path / "ir" / "a.png", torch.rand(1, 176, 208))
    write_image(tmp_path / "vi" / "a.png", torch.rand(3, 176, 208))
    base = ["fuse", "--ir", str(tmp_path / "ir"), "--vi", str(tmp_path / "vi"), "--method", "laplacian"]
    assert main([*base, "--out", str(tmp_path / "off"), "--tile", "off"]) == 0
    assert main([*base, "--out", str(tmp_path / "tiled"), "--tile", "48", "--tile-overlap", "0"]) == 0
    tiled, untiled = read_vi(tmp_path / "tiled" / "a.png"), read_vi(tmp_path / "off" / "a.png")
    assert tiled.shape == (3, 176, 208)
    assert (tiled - untiled).abs().max() <= 1 / 255 + 1e-6


@pytest.mark.parametrize("value", ["0", "-5", "big"])
def test_bad_tile_value_is_a_usage_error(tmp_path: Path, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fuse", "--ir", "a", "--vi", "b", "--out", str(tmp_path), "--tile", value])
    assert exit_info.value.code == 2
    assert "tile size in pixels, auto or off" in capsys.readouterr().err


def test_negative_overlap_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image(tmp_path / "ir.png", torch.rand(1, 40, 40))
    write_image(tmp_path / "vi.png", torch.rand(1, 40, 40))
    args = ["fuse", "--ir", str(tmp_path / "ir.png"), "--vi", str(tmp_path / "vi.png"), "--out", str(tmp_path / "o")]
    assert main([*args, "--tile", "16", "--tile-overlap", "-1"]) == 2
    assert "--tile-overlap" in capsys.readouterr().err
