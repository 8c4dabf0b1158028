"""Deflate streams of Huffman-coded literals made with torch (``taskfuse.data.deflate``): zlib inflates them to the
bytes given, their codes are complete and at most 15 bits, and the PNG files they make hold the pixels of the CPU
encoder's."""

from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from taskfuse.data.deflate import (
    HEADER_BITS,
    MAX_BITS,
    capacity_words,
    code_lengths,
    deflate_literals,
    reversed_codes,
    zlib_from_packed,
)
from taskfuse.data.io import encode_image, png_from_scanlines, png_from_zlib, png_scanlines
from taskfuse.device import GraphReplay
from taskfuse.errors import TaskfuseError


def _inflated(rows: torch.Tensor) -> list[bytes]:
    packed = deflate_literals(rows).numpy()
    streams = [zlib_from_packed(row) for row in packed]
    assert all(n == rows[0].numel() for _, n in streams)
    return [zlib.decompress(stream) for stream, _ in streams]


@pytest.mark.parametrize(
    "rows",
    [
        torch.randint(0, 256, (3, 4096), generator=torch.Generator().manual_seed(0), dtype=torch.uint8),
        torch.zeros(2, 50, dtype=torch.uint8),
        torch.full((1, 1), 255, dtype=torch.uint8),
        torch.randint(0, 3, (2, 9, 700), generator=torch.Generator().manual_seed(1), dtype=torch.uint8),
    ],
    ids=["uniform", "zeros", "one-byte", "three-values"],
)
def test_zlib_inflates_each_stream_to_its_bytes(rows) -> None:
    assert _inflated(rows) == [row.numpy().tobytes() for row in rows]


def test_uniform_bytes_stay_within_the_capacity_bound() -> None:
    """Uniform random bytes, the costliest kind to code, fill less than the words ``capacity_words`` reserves."""
    rows = torch.randint(0, 256, (2, 200_000), generator=torch.Generator().manual_seed(2), dtype=torch.uint8)
    packed = deflate_literals(rows).numpy()
    words = capacity_words(rows.shape[1])
    assert packed.shape == (2, words + 4)
    assert all(HEADER_BITS + 8 * 200_000 < row[words] <= 32 * (words - 1) for row in packed)


def test_codes_are_complete_prefix_codes_of_at_most_15_bits_covering_every_byte() -> None:
    counts = torch.stack(
        [
            torch.randint(0, 10**6, (257,), generator=torch.Generator().manual_seed(3)),
            torch.cat([torch.tensor([10**7]), torch.zeros(255, dtype=torch.int64), torch.ones(1, dtype=torch.int64)]),
            torch.ones(257, dtype=torch.int64),
        ]
    )
    lengths = code_lengths(counts)
    assert lengths.shape == (3, 286) and int(lengths.max()) <= MAX_BITS
    assert bool((lengths[:, :257] >= 1).all())
    assert ((1 << MAX_BITS) >> lengths[lengths > 0]).sum().item() == 3 << MAX_BITS
    for row_lengths, row_codes in zip(lengths.tolist(), reversed_codes(lengths).tolist(), strict=True):
        words = {format(c, f"0{n}b")[::-1] for c, n in zip(row_codes, row_lengths, strict=True) if n}
        assert not any(a != b and b.startswith(a) for a in words for b in words)


def test_frequent_bytes_get_short_codes() -> None:
    counts = torch.tensor([[2**20 >> min(i, 19) for i in range(256)] + [1]])
    lengths = code_lengths(counts)[0]
    assert lengths[0] <= 2 and bool((lengths[1:256] >= lengths[:255]).all()) and lengths[255] > lengths[10]


@pytest.mark.parametrize("channels", [1, 3])
def test_png_files_hold_the_pixels_of_the_cpu_encoder_in_a_few_more_bytes(channels) -> None:
    noise = torch.rand(1, channels, 30, 40, generator=torch.Generator().manual_seed(4))
    smooth = F.interpolate(noise, size=(120, 160), mode="bicubic").clamp(0, 1)[0]
    image = smooth.mul(255).round().byte().permute(1, 2, 0).contiguous()
    rows = png_scanlines(image[None])
    stream, _ = zlib_from_packed(deflate_literals(rows)[0].numpy())
    png = png_from_zlib(stream, 120, 160, channels)
    expected = image.numpy() if channels == 3 else image[..., 0].numpy()
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), expected)
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(decoded if channels == 1 else decoded[..., ::-1], expected)
    cpu = png_from_scanlines(rows[0].numpy(), channels)
    assert cpu == encode_image(expected, ".png", 1)
    assert len(png) <= 1.1 * len(cpu) + HEADER_BITS // 8


def test_bad_input_and_overruns_raise() -> None:
    with pytest.raises(TaskfuseError, match="uint8 byte strings"):
        deflate_literals(torch.zeros(2, 5))
    packed = deflate_literals(torch.zeros(1, 10, dtype=torch.uint8))[0].numpy().copy()
    packed[-4] = 32 * (packed.shape[0] - 4) + 1
    with pytest.raises(TaskfuseError, match="overran"):
        zlib_from_packed(packed)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")
def test_deflating_on_a_gpu_is_captured_into_a_cuda_graph_with_the_eager_streams() -> None:
    """``taskfuse fuse`` replays a batch's work from a CUDA graph (``GraphReplay``): the deflate must not copy from
    the host, or capture fails and every batch runs eagerly."""
    levels = torch.randint(0, 256, (3, 48, 64, 3), generator=torch.Generator().manual_seed(6)).byte().cuda()
    replay = GraphReplay(lambda x: deflate_literals(png_scanlines(x)))
    eager = replay(levels).clone()
    assert torch.equal(replay(levels), eager) and next(iter(replay.graphs.values())) is not None
    streams = [zlib.decompress(zlib_from_packed(row)[0]) for row in eager.cpu().numpy()]
    assert streams == [row.cpu().numpy().tobytes() for row in png_scanlines(levels)]
