"""An invisible watermark in the luma of every frame, carrying the content id.

Chroma does not survive 4:2:0 subsampling, so the mark lives in luma: each 8x8 luma block carries
one coded bit in the sign of one low-frequency DCT coefficient (informed embedding: the coefficient
is pushed to at least +-strength in the bit's direction, so the image's own texture does not mask
it). Blocks are H.264 transform-aligned, which keeps the coefficient through re-encoding.

The message: a 16-bit known header, the 128-bit content id and a CRC-16, protected by a Hamming
(7,4) code (corrects one flipped bit per 7), spread over the blocks of all frames in a keyed order
so every coded bit appears many times; the reader sums the soft values of all copies (a vote across
frames) before deciding. Processing can flip the sign of the whole mark (inverted luma, some
transcoders' filters); the header read back inverted reveals the flip, and the bits are inverted.

Capacity is the limit on tiny frames: a 64x64 frame has 64 blocks for 280 coded bits. Measured on
tiny 64x64 clips re-encoded with libx264 at a fraction of the original bitrate (10 random ids each):
5 s clips survived 10/10 at 75% and 7/10 at 60%; 3 s clips 8/10 at 75% and 4/10 at 60%. A 480x720
frame has 5400 blocks, each coded bit about 19 times per frame.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np

BLOCK = 8
HEADER = 0xB5E3
HEADER_BITS = 16
PAYLOAD_BITS = 128
CRC_BITS = 16
DATA_BITS = HEADER_BITS + PAYLOAD_BITS + CRC_BITS
CODED_BITS = DATA_BITS // 4 * 7
KEY = 0x5EED_2025
# Chosen by measurement on tiny 64x64 clips: (0, 2) at 20 survives re-encoding at 60% of the
# original bitrate; (1, 1) and (1, 2) did not, and keeping one pattern over several frames was worse.
COEFFICIENT = (0, 2)
STRENGTH = 20.0

# Hamming(7,4): generator rows for data bits d1..d4, codeword p1 p2 d1 p3 d2 d3 d4.
_G = np.array(
    [
        [1, 1, 1, 0, 0, 0, 0],
        [1, 0, 0, 1, 1, 0, 0],
        [0, 1, 0, 1, 0, 1, 0],
        [1, 1, 0, 1, 0, 0, 1],
    ],
    dtype=np.uint8,
)
_H = np.array(
    [
        [1, 0, 1, 0, 1, 0, 1],
        [0, 1, 1, 0, 0, 1, 1],
        [0, 0, 0, 1, 1, 1, 1],
    ],
    dtype=np.uint8,
)
_DATA_POSITIONS = [2, 4, 5, 6]


def _dct_basis(u: int, v: int) -> np.ndarray:
    n = np.arange(BLOCK)
    cu = np.sqrt((1 if u == 0 else 2) / BLOCK)
    cv = np.sqrt((1 if v == 0 else 2) / BLOCK)
    row = cu * np.cos((2 * n + 1) * u * np.pi / (2 * BLOCK))
    col = cv * np.cos((2 * n + 1) * v * np.pi / (2 * BLOCK))
    return np.outer(row, col)


BASIS = _dct_basis(*COEFFICIENT)


def crc16(bits: np.ndarray) -> np.ndarray:
    """CRC-16-CCITT over a bit array, as 16 bits."""
    register = 0xFFFF
    for bit in bits:
        top = (register >> 15) & 1
        register = (register << 1) & 0xFFFF
        if top ^ int(bit):
            register ^= 0x1021
    return _int_to_bits(register, 16)


def _int_to_bits(value: int, width: int) -> np.ndarray:
    return np.array([(value >> (width - 1 - index)) & 1 for index in range(width)], dtype=np.uint8)


def _bits_to_int(bits: np.ndarray) -> int:
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming_encode(data: np.ndarray) -> np.ndarray:
    return (data.reshape(-1, 4) @ _G % 2).astype(np.uint8).reshape(-1)


def hamming_decode(coded: np.ndarray) -> np.ndarray:
    words = coded.reshape(-1, 7).copy()
    syndromes = words @ _H.T % 2
    positions = syndromes[:, 0] + 2 * syndromes[:, 1] + 4 * syndromes[:, 2]
    for row, position in enumerate(positions):
        if position:
            words[row, position - 1] ^= 1
    return words[:, _DATA_POSITIONS].reshape(-1)


def message_bits(content_id: uuid.UUID) -> np.ndarray:
    header = _int_to_bits(HEADER, HEADER_BITS)
    payload = _int_to_bits(content_id.int, PAYLOAD_BITS)
    body = np.concatenate([header, payload])
    return hamming_encode(np.concatenate([body, crc16(body)]))


def _slot_order(slots: int) -> np.ndarray:
    """Which coded bit each block slot carries: whole keyed permutations, repeated."""
    rng = np.random.default_rng(KEY)
    copies = -(-slots // CODED_BITS)
    return np.concatenate([rng.permutation(CODED_BITS) for _ in range(copies)])[:slots]


def _frame_slots(count: int, blocks: int) -> np.ndarray:
    """Coded bit carried by each (frame, block)."""
    return _slot_order(count * blocks).reshape(count, blocks)


def _luma(frames: np.ndarray) -> np.ndarray:
    rgb = frames.astype(np.float32)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def _blocks(height: int, width: int) -> list[tuple[int, int]]:
    return [(y, x) for y in range(0, height - BLOCK + 1, BLOCK) for x in range(0, width - BLOCK + 1, BLOCK)]


def embed(frames: np.ndarray, content_id: uuid.UUID, *, strength: float = STRENGTH) -> np.ndarray:
    count, height, width = frames.shape[:3]
    blocks = _blocks(height, width)
    coded = message_bits(content_id).astype(np.float32) * 2 - 1
    order = _frame_slots(count, len(blocks))
    luma = _luma(frames)
    delta = np.zeros((count, height, width), dtype=np.float32)
    for frame_index in range(count):
        for block_index, (y, x) in enumerate(blocks):
            sign = coded[order[frame_index, block_index]]
            current = float((luma[frame_index, y : y + BLOCK, x : x + BLOCK] * BASIS).sum())
            target = sign * max(strength, sign * current)
            delta[frame_index, y : y + BLOCK, x : x + BLOCK] = (target - current) * BASIS
    # Equal change to R, G and B changes luma by exactly delta and leaves chroma alone.
    marked = frames.astype(np.float32) + delta[..., None]
    return np.clip(np.rint(marked), 0, 255).astype(np.uint8)


@dataclass
class WatermarkReading:
    content_id: uuid.UUID | None
    inverted: bool = False
    confidence: float = 0.0


def read(frames: np.ndarray) -> WatermarkReading:
    count, height, width = frames.shape[:3]
    blocks = _blocks(height, width)
    if not blocks:
        return WatermarkReading(None)
    order = _frame_slots(count, len(blocks))
    luma = _luma(frames)
    votes = np.zeros(CODED_BITS, dtype=np.float64)
    for frame_index in range(count):
        for block_index, (y, x) in enumerate(blocks):
            value = float((luma[frame_index, y : y + BLOCK, x : x + BLOCK] * BASIS).sum())
            votes[order[frame_index, block_index]] += np.clip(value, -3 * STRENGTH, 3 * STRENGTH)
    confidence = float(
        np.mean(np.abs(votes)) / (np.sqrt(max(1, count * len(blocks) / CODED_BITS)) * STRENGTH)
    )
    hard = (votes > 0).astype(np.uint8)
    for inverted, coded in ((False, hard), (True, 1 - hard)):
        data = hamming_decode(coded)
        header, payload, crc = (
            data[:HEADER_BITS],
            data[HEADER_BITS : HEADER_BITS + PAYLOAD_BITS],
            data[HEADER_BITS + PAYLOAD_BITS :],
        )
        if _bits_to_int(header) == HEADER and np.array_equal(crc, crc16(data[: HEADER_BITS + PAYLOAD_BITS])):
            return WatermarkReading(
                uuid.UUID(int=_bits_to_int(payload)), inverted=inverted, confidence=confidence
            )
    return WatermarkReading(None, confidence=confidence)
