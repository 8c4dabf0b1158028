"""Shared fixtures: the real images and released checkpoints beside the project (skipped cleanly when absent) and a
fixed seed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OFFICIAL_CHECKPOINTS = SHARED_DATA.parent / "checkpoints" / "official"


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (RoadScene, M3FD sample, golden metric values); the test is skipped without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def official_checkpoints() -> Path:
    """``../shared/checkpoints/official``: released weights of published methods and their authors' outputs;
    the test is skipped without it."""
    if not OFFICIAL_CHECKPOINTS.is_dir():
        pytest.skip(f"released checkpoints not found at {OFFICIAL_CHECKPOINTS}")
    return OFFICIAL_CHECKPOINTS


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> Iterator[None]:
    """One intra-op thread: the tests run many tiny ops, where extra threads on a small CPU only wait."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
