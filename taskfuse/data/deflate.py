"""Deflate streams of Huffman-coded literals, built wherever the data lies (a GPU), for PNG files at level 1.

At level 1 zlib deflates PNG scanlines with Huffman codes alone (``Z_HUFFMAN_ONLY``: no repeated strings), and
on 640 x 480 RGB scanlines that takes about 7.7 ms of a CPU core per image, most of what a fused PNG costs the
CPU. ``deflate_literals`` does the same kind of coding on the device for a batch of images at once: one dynamic
block per image (RFC 1951, section 3.2.7), whose code comes from the image's own byte counts, so that the host
only wraps each stream into a zlib stream and a PNG file (``zlib_from_packed``, ``data.io.png_from_zlib``).

The code lengths come without building a Huffman tree, which is sequential: each byte value gets the length of
a Shannon code, ``ceil(-log2 p)``, for its share ``p`` of the image's bytes mixed with 1/64 of the uniform
share (``UNIFORM_SHARE``; so that no length exceeds deflate's 15 bits), then in two rounds (``SHORTENING_ROUNDS``)
the codes that save the most bits per unit of code space are shortened by one bit while the lengths still
satisfy Kraft's inequality. Deflate's decoders (zlib's ``inflate``) want a complete code, so the code space left
is given to as many of the unused length symbols 257..271 as its binary digits need. The stream decodes to
exactly the scanlines (tested through ``zlib.decompress`` and OpenCV), so the pixels are those of the CPU path;
the bytes are not zlib's, whose blocks restart every 16,383 bytes with a tree of their own, and the files run
a few per cent larger (``docs/performance.md``).

The block's header stores the 286 literal/length and 2 distance code lengths (zlib also keeps two distance
codes of one bit) through a code-length code of 4 bits for each length 0..15, so its size is fixed: 1226
bits.
"""

from __future__ import annotations

import struct

import numpy as np
import torch
from torch import Tensor

from taskfuse.errors import TaskfuseError

MAX_BITS = 15
"""The longest code deflate allows (RFC 1951, section 3.2.7)."""
UNIFORM_SHARE = 2.0**-6
"""The weight of the uniform share mixed into every byte value's share of an image: the least share is then
above 2^-15, so no code is longer than ``MAX_BITS``, and the mixing lengthens an image's stream by at most
-log2(1 - 1/64) = 0.023 bits per byte."""
SHORTENING_ROUNDS = 2
"""Rounds of shortening codes into the code space a Shannon code leaves: on 12 MSRS visible images a second round
saved 0.2 % and a third none."""
LITERALS, END, LENGTH_CODES = 256, 256, 286
"""Byte values, the end-of-block symbol, and the literal/length symbols a dynamic block describes (HLIT 29)."""
ORDER = (16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15)
"""The order in which a dynamic block lists the code-length code's lengths (RFC 1951, section 3.2.7)."""
HEADER_BITS = 1 + 2 + 5 + 5 + 4 + 3 * len(ORDER) + 4 * (LENGTH_CODES + 2)
"""BFINAL, BTYPE, HLIT, HDIST, HCLEN, the code-length code's 19 lengths, and the 288 lengths of 4 bits each."""
ZLIB_HEADER = b"\x78\x01"
"""A zlib stream's header: deflate with a 32 KiB window, the fastest level (RFC 1950)."""
ADLER_MOD = 65521
"""Adler-32's modulus, the largest prime below 2^16 (RFC 1950)."""


def capacity_words(n: int) -> int:
    """32-bit words that hold the deflate stream of any ``n`` bytes: a Shannon code for the mixed shares spends at
    most log2(257) + 1 - log2(1 - 1/64) < 9.04 bits on each of the n + 1 symbols (end of block included), and
    shortening only saves; plus the header and a spare word."""
    return (HEADER_BITS + (n + 1) * 904 // 100 + 1) // 32 + 2


def code_lengths(counts: Tensor) -> Tensor:
    """Literal/length code lengths (B, 286) int64 from the counts (B, 257) of each byte value and of the end of
    block (1) in each of B streams: a complete code of at most 15 bits (see the module docstring)."""
    device = counts.device
    counts = counts.to(torch.float64)
    share = (1 - UNIFORM_SHARE) * counts / counts.sum(1, keepdim=True) + UNIFORM_SHARE / counts.shape[1]
    lengths = torch.ceil(-torch.log2(share)).to(torch.int64).clamp_(1, MAX_BITS)
    full = 1 << MAX_BITS
    for _ in range(SHORTENING_ROUNDS):
        cost = torch.where(lengths > 1, full >> lengths, full + 1)
        slack = full - (full >> lengths).sum(1, keepdim=True)
        gain = torch.where(lengths > 1, share * torch.exp2(lengths.to(torch.float64)), -1.0)
        order = torch.sort(gain, dim=1, descending=True, stable=True).indices
        spent = torch.gather(cost, 1, order).cumsum(1)
        shorten = torch.zeros_like(lengths).scatter_(1, order, (spent <= slack).to(torch.int64))
        lengths -= shorten
    slack = full - (full >> lengths).sum(1, keepdim=True)
    bits = torch.arange(MAX_BITS, device=device)
    filler = torch.where((slack >> bits) & 1 == 1, MAX_BITS - bits, 0)
    unused = torch.zeros(counts.shape[0], LENGTH_CODES - counts.shape[1] - MAX_BITS, dtype=torch.int64, device=device)
    return torch.cat([lengths, filler, unused], 1)


def reversed_codes(lengths: Tensor) -> Tensor:
    """The canonical Huffman codes of ``lengths`` (..., S) (RFC 1951, section 3.2.2), each bit-reversed within
    its length: deflate sends a code's first bit first, into the low bit of the stream's next byte. Made without
    assigning a Python number into a tensor: into a 0-dim CUDA tensor that is a copy from the host, which
    ``taskfuse fuse``'s CUDA graph capture forbids."""
    levels = torch.arange(MAX_BITS + 1, device=lengths.device)
    onehot = (lengths.unsqueeze(-1) == levels).to(torch.int64)
    count = onehot.sum(-2) * (levels > 0)
    first = torch.zeros_like(count)
    for bits in range(1, MAX_BITS + 1):
        first[..., bits] = (first[..., bits - 1] + count[..., bits - 1]) << 1
    rank = (onehot.cumsum(-2) * onehot).sum(-1) - 1
    code = torch.gather(first, -1, lengths) + rank
    shifts = torch.arange(MAX_BITS, device=lengths.device)
    digits = (code.unsqueeze(-1) >> shifts) & 1
    place = (lengths.unsqueeze(-1) - 1 - shifts).clamp(min=0)
    return torch.where(shifts < lengths.unsqueeze(-1), digits << place, 0).sum(-1)


def _fixed_bits() -> tuple[int, int]:
    """The block header's plain fields as one number, sent low bit first, and its bit count: BFINAL 1, BTYPE 2
    (dynamic), HLIT 29, HDIST 1, HCLEN 15, then the code-length code's lengths in ``ORDER``, 4 for the lengths
    0..15 and 0 for the repeat codes 16..18."""
    fields = [(1, 1), (2, 2), (LENGTH_CODES - 257, 5), (1, 5), (len(ORDER) - 4, 4)]
    fields += [(0 if s > 15 else 4, 3) for s in ORDER]
    value, bits = 0, 0
    for field, width in fields:
        value, bits = value | field << bits, bits + width
    return value, bits


FIXED_BITS = _fixed_bits()
CHUNK = 16
"""Bits of ``FIXED_BITS`` per symbol of the stream, which every symbol may shift by up to 31 bits in an int64."""


def _header(lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(values, bit counts) (B, 293) of a final dynamic block's header for the literal/length ``lengths``
    (B, 286), each value to be sent low bit first. Made on the device from numbers alone (no copy from the host,
    which CUDA graph capture forbids)."""
    b, device = lengths.shape[0], lengths.device
    value, bits = FIXED_BITS
    widths = [min(CHUNK, bits - at) for at in range(0, bits, CHUNK)]
    fixed = [torch.full((b, 1), (value >> at) & ((1 << CHUNK) - 1), device=device) for at in range(0, bits, CHUNK)]
    every = torch.cat([lengths, torch.ones(b, 2, dtype=torch.int64, device=device)], 1)
    length_codes = reversed_codes(torch.full((MAX_BITS + 1,), 4, dtype=torch.int64, device=device))
    counts = [torch.full((b, 1), w, device=device) for w in widths] + [torch.full_like(every, 4)]
    return torch.cat([*fixed, length_codes[every]], 1), torch.cat(counts, 1)


def deflate_literals(rows: Tensor) -> Tensor:
    """Each of B byte strings (B, ...) uint8 as one final deflate block of Huffman-coded literals, packed for
    ``zlib_from_packed``: (B, W + 4) int32, the stream in W = ``capacity_words(n)`` little-endian words (low bit
    first), then its length in bits, the n bytes' count and their Adler-32 sums (a, b) (RFC 1950).

        >>> import torch, zlib
        >>> rows = torch.tensor([[4, 0, 0, 7, 255, 0]], dtype=torch.uint8)
        >>> stream, n = zlib_from_packed(deflate_literals(rows)[0].numpy())
        >>> zlib.decompress(stream) == bytes(rows[0].tolist()), n
        (True, 6)
    """
    if rows.dtype != torch.uint8 or rows.dim() < 2:
        raise TaskfuseError(f"deflate_literals needs uint8 byte strings (B, ...), got {rows.dtype} {tuple(rows.shape)}")
    data = rows.reshape(rows.shape[0], -1).to(torch.int64)
    b, n = data.shape
    device = data.device
    counts = torch.zeros(b, LITERALS + 1, dtype=torch.int64, device=device)
    counts.scatter_add_(1, data, torch.ones_like(data))
    counts[:, END] = 1
    lengths = code_lengths(counts)
    codes = reversed_codes(lengths)
    head_values, head_bits = _header(lengths)
    end = torch.full((b, 1), END, dtype=torch.int64, device=device)
    symbols = torch.cat([data, end], 1)
    values = torch.cat([head_values, torch.gather(codes, 1, symbols)], 1)
    bits = torch.cat([head_bits, torch.gather(lengths, 1, symbols)], 1)
    ends = bits.cumsum(1)
    starts = ends - bits
    words = capacity_words(n)
    word = (starts >> 5).clamp_(max=words) + (words + 1) * torch.arange(b, device=device).unsqueeze(1)
    packed = torch.zeros(b * (words + 1), dtype=torch.int64, device=device)
    packed.index_add_(0, word.flatten(), (values << (starts & 31)).flatten())
    packed = packed.view(b, words + 1)[:, :words]
    low, high = packed & 0xFFFFFFFF, packed >> 32
    stream = low + torch.cat([torch.zeros_like(high[:, :1]), high[:, :-1]], 1)
    weights = n - torch.arange(n, device=device)
    sum_a = (1 + data.sum(1)) % ADLER_MOD
    sum_b = (n + (data * weights).sum(1)) % ADLER_MOD
    tail = torch.stack([ends[:, -1], torch.full_like(sum_a, n), sum_a, sum_b], 1)
    out = torch.cat([stream, tail], 1)
    return (out - ((out >> 31) << 32)).to(torch.int32)


def zlib_from_packed(packed: np.ndarray) -> tuple[bytes, int]:
    """The zlib stream (RFC 1950: header, the deflate block, Adler-32) of one row of ``deflate_literals``, and the
    number of bytes it holds."""
    words = packed.shape[0] - 4
    bits, n, sum_a, sum_b = (int(v) for v in packed[words:])
    if bits > 32 * words:
        raise TaskfuseError(f"a deflate stream of {bits} bits overran its {words} words; please report this")
    body = packed[:words].astype("<i4", copy=False).view(np.uint8)[: (bits + 7) // 8].tobytes()
    return ZLIB_HEADER + body + struct.pack(">I", (sum_b << 16) | sum_a), n
