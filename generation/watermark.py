"""An invisible watermark in the luma of every frame, carrying the content id.

Where the mark lives. Each frame is divided into a grid of cells fixed relative to the frame, not
to its pixels: CELLS_SHORT cells across the short side and as many square-ish cells along the long
side as its aspect ratio makes (14 x 21 at 2:3). A copy scaled to any size has the same grid, so the
reader first reduces the frame (area filter) to 8x8 pixels per cell and reads two DCT coefficients
per cell (COEFFICIENTS: one cosine period across the cell, horizontally and vertically); the
embedder pushes each to at least +-STRENGTH in the direction of its slot's bit (informed embedding:
the picture's own texture does not mask it; a slot never moves by more than MAX_CHANGE) and spreads
the change back
over the full-resolution pixels with the area filter's pseudo-inverse. A 480x720 frame's cells are
34 pixels across, so the pattern is smooth enough for H.264 at CRF 35 and for halving the size.
Chroma does not survive 4:2:0 subsampling, so the change is the same on R, G and B.

What it carries. A 16-bit known header, the content id's first 64 bits (its key: posts are found by
the range of ids that start with it; 60 of the bits are random in a version-4 UUID) and a CRC-16
(96 bits), coded with a rate-1/3 convolutional code into 306 coded bits, each in one or two of the
588 slots of a 2:3 frame (two coefficients per cell, a keyed spread of whole copies). Every frame
carries the same layout, so nothing depends on frame numbers or timing: a trimmed copy, a copy at
another frame rate, any 2 s of the clip decode from the votes of whatever frames there are. Each
frame votes per slot with its value clipped to +-VOTE_CLIP (nearly the sign: a slot the picture
swamps counts no more than a marked one), and soft-input Viterbi decodes the summed votes. The
reader also tries the grid mirrored (the cosines are symmetric within a cell, so a mirrored copy only
reverses the cell columns) and inverted (the header read back inverted reveals a flipped luma). A
read counts only when the header and the CRC both check (32 bits, four hypotheses: an unmarked video
passes by chance about once in 10^9 reads) and exactly one post's content id has the key.

What it survives, measured with `bench/watermark.py` (2026-12, 2 cores): five clips at 480x720,
30 fps, 5 s (pans over three photographs, two drawn scenes), labelled, marked with random ids and
encoded as the worker encodes, each copy re-encoded by libx264 without metadata and read through the
verify path. Raw bit error rate of the 306 coded bits before the code corrects them (mean, worst
clip) and the copies that decoded:

    copy                               BER mean   worst   decoded
    CRF 23                             0.002      0.010   5/5
    CRF 35                             0.022      0.082   5/5
    scaled to 50%                      0.003      0.016   5/5
    scaled to 25%                      0.012      0.052   5/5
    scaled to 50% and CRF 35           0.110      0.268   4/5
    any 2 s (a random start)           0.012      0.042   5/5
    any 2 s, scaled to 50%, CRF 35     0.175      0.376   2/5
    30 -> 24 fps                       0.001      0.007   5/5
    mirrored                           0.002      0.010   5/5
    cropped 10% per side               0.488      0.500   0/5   the grid moves with the crop;
    letterboxed into 16:9              0.492      0.536   0/5   the fingerprints find these

The code corrects up to about 15% raw errors; beyond that (a textured photograph halved and at
CRF 35, the worst clip above) the fingerprints answer. PSNR of marked against unmarked frames:
32.6-36.3 dB (the change concentrates in textured cells, where it is least visible). A third
coefficient per cell (2, 2) or STRENGTH 26 decoded the halved CRF 35 copies of all three photographs
but cost 1.5-2 dB of PSNR, and still not the 2 s of the most textured one. Unmarked clips read as
marked: see bench/README.md ("Watermark").
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass

import numpy as np
from scipy import sparse

# Named in every provenance record. v1 (before 2026-12) keyed its layout to frame numbers on an 8x8
# pixel grid; a v1 mark is no longer read (its posts are found by metadata or fingerprints).
VERSION = "luma-cells-v2"
BLOCK = 8
CELLS_SHORT = 14
HEADER = 0xB5E3
HEADER_BITS = 16
PAYLOAD_BITS = 64
CRC_BITS = 16
MESSAGE_BITS = HEADER_BITS + PAYLOAD_BITS + CRC_BITS
KEY = 0x5EED_2025
# Each cell carries one bit per coefficient: one full cosine period across the cell, horizontally
# and vertically. Both are symmetric under a mirror, and low enough in frequency to survive halving
# and CRF 35.
COEFFICIENTS = ((0, 2), (2, 0))
STRENGTH = 20.0
# No coefficient moves by more than this: where the picture's own texture opposes a bit more
# strongly, the slot is left wrong and the code corrects it. At 2 x STRENGTH photographs kept 1.5 dB
# more PSNR, but the tiny model's 64x64 frames (textured noise, cells under 5 pixels) decoded for
# only 16-18 of 20 random ids; at 3 x STRENGTH, 20 of 20 (3 s and 5 s clips).
MAX_CHANGE = 3 * STRENGTH
# Each frame's value per slot is clipped to this before the votes are summed: nearly a vote of
# signs, so a slot that the picture swamps (hundreds, either way) counts no more than a marked one.
# Measured on photo pans after scaling to 50% and CRF 35: raw bit errors 0.21-0.24 with the clip at
# 3 x STRENGTH (no decode), 0.13-0.17 at STRENGTH / 2, 0.11-0.16 at STRENGTH / 4.
VOTE_CLIP = STRENGTH / 4
# Frames marked at a time: bounds the float working copy (16 frames of 1080p are 130 MB).
CHUNK_FRAMES = 16


def _dct_basis(u: int, v: int) -> np.ndarray:
    n = np.arange(BLOCK)
    cu = np.sqrt((1 if u == 0 else 2) / BLOCK)
    cv = np.sqrt((1 if v == 0 else 2) / BLOCK)
    row = cu * np.cos((2 * n + 1) * u * np.pi / (2 * BLOCK))
    col = cv * np.cos((2 * n + 1) * v * np.pi / (2 * BLOCK))
    return np.outer(row, col).astype(np.float32)


BASES = np.stack([_dct_basis(*coefficient) for coefficient in COEFFICIENTS])


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


def message_bits(content_id: uuid.UUID) -> np.ndarray:
    """The message bits: header, the content id's key (`key_of`), CRC-16 of both."""
    body = np.concatenate([_int_to_bits(HEADER, HEADER_BITS), _int_to_bits(key_of(content_id), PAYLOAD_BITS)])
    return np.concatenate([body, crc16(body)])


# A convolutional code (constraint length 7, rate 1/3; LTE's generators), decoded with soft-input
# Viterbi: where repeating each bit lets one bad cell decide it, a bit here is spread over 21 coded
# bits, and the decoder takes the most likely message given how strongly every slot voted.
CODE_GENERATORS = (0o133, 0o171, 0o165)
CODE_MEMORY = 6
CODED_BITS = (MESSAGE_BITS + CODE_MEMORY) * len(CODE_GENERATORS)
_STATES = 1 << CODE_MEMORY


def _parity(values: np.ndarray) -> np.ndarray:
    values = values.copy()
    for shift in (4, 2, 1):
        values ^= values >> shift
    return values & 1


def _code_outputs() -> np.ndarray:
    """(states, input bit, generator) coded bits leaving each state for each input bit."""
    states = np.arange(_STATES)[:, None]
    registers = (np.array([0, 1])[None, :] << CODE_MEMORY) | states  # newest bit on top
    return np.stack([_parity(registers & generator) for generator in CODE_GENERATORS], axis=-1)


_OUTPUTS = _code_outputs()
_NEXT = (np.arange(_STATES)[:, None] >> 1) | (np.array([0, 1])[None, :] << (CODE_MEMORY - 1))


def encode_message(bits: np.ndarray) -> np.ndarray:
    """The coded bits of a message, ending in state 0 (CODE_MEMORY zero bits appended)."""
    state, coded = 0, []
    for bit in np.concatenate([bits, np.zeros(CODE_MEMORY, dtype=np.uint8)]):
        coded.append(_OUTPUTS[state, bit])
        state = _NEXT[state, bit]
    return np.concatenate(coded).astype(np.uint8)


# A state is the last CODE_MEMORY input bits, the newest on top: state t is reached from the two
# states (t's lower bits shifted up, plus either bit shifted out), with input bit t's top bit.
_PREDECESSORS = ((np.arange(_STATES) & (_STATES // 2 - 1)) << 1)[:, None] | np.array([0, 1])[None, :]
_INPUT_INTO = np.arange(_STATES) >> (CODE_MEMORY - 1)


def decode_message(soft: np.ndarray) -> np.ndarray:
    """The most likely message given soft values per coded bit (positive leaning to 1)."""
    steps = len(soft) // len(CODE_GENERATORS)
    per_step = soft.reshape(steps, len(CODE_GENERATORS))
    signs = _OUTPUTS.astype(np.float64) * 2 - 1  # (states, input, generator)
    gains = signs[_PREDECESSORS, _INPUT_INTO[:, None]]  # (state, predecessor, generator)
    metric = np.full(_STATES, -np.inf)
    metric[0] = 0.0
    came_from = np.zeros((steps, _STATES), dtype=np.int64)
    for step in range(steps):
        scores = metric[_PREDECESSORS] + gains @ per_step[step]
        choice = np.argmax(scores, axis=1)
        came_from[step] = _PREDECESSORS[np.arange(_STATES), choice]
        metric = scores[np.arange(_STATES), choice]
    state, bits = 0, []
    for step in range(steps - 1, -1, -1):
        bits.append(state >> (CODE_MEMORY - 1))
        state = came_from[step, state]
    return np.array(bits[::-1][: steps - CODE_MEMORY], dtype=np.uint8)


def key_of(content_id: uuid.UUID) -> int:
    """What the mark carries of a content id: its first PAYLOAD_BITS bits."""
    return content_id.int >> (128 - PAYLOAD_BITS)


def content_id_bounds(key: int) -> tuple[uuid.UUID, uuid.UUID]:
    """The lowest and highest content ids with this key (UUIDs order as their bytes do)."""
    shift = 128 - PAYLOAD_BITS
    return uuid.UUID(int=key << shift), uuid.UUID(int=(key << shift) | ((1 << shift) - 1))


def grid(height: int, width: int) -> tuple[int, int]:
    """Cell rows and columns of a frame: a function of its aspect ratio only."""
    if width <= height:
        return max(CELLS_SHORT, round(CELLS_SHORT * height / width)), CELLS_SHORT
    return CELLS_SHORT, max(CELLS_SHORT, round(CELLS_SHORT * width / height))


def working_size(height: int, width: int) -> tuple[int, int]:
    """(width, height) a frame is reduced to before it is read: 8x8 pixels per cell."""
    rows, columns = grid(height, width)
    return columns * BLOCK, rows * BLOCK


@functools.lru_cache(maxsize=64)
def cell_bits(rows: int, columns: int) -> np.ndarray:
    """(rows, columns, coefficients): which coded bit each slot carries, whole keyed permutations of
    the coded bits, repeated (every coded bit has a slot: the squarest frame, 14 x 14 cells, has 392)."""
    rng = np.random.default_rng(KEY)
    slots = rows * columns * len(COEFFICIENTS)
    copies = -(-slots // CODED_BITS)
    order = np.concatenate([rng.permutation(CODED_BITS) for _ in range(copies)])[:slots]
    return order.reshape(rows, columns, len(COEFFICIENTS))


def _area_matrix(source: int, target: int) -> np.ndarray:
    """The (target, source) matrix of an area filter: each target pixel the mean of the source
    span it covers (fractions of pixels at its edges), for reducing and enlarging alike."""
    edges = np.arange(target + 1) * (source / target)
    starts, ends = edges[:-1, None], edges[1:, None]
    pixels = np.arange(source)[None, :]
    overlap = np.clip(np.minimum(ends, pixels + 1) - np.maximum(starts, pixels), 0, None)
    return overlap / (source / target)


@functools.lru_cache(maxsize=64)
def _area(source: int, target: int) -> sparse.csr_array:
    return sparse.csr_array(_area_matrix(source, target).astype(np.float32))


@functools.lru_cache(maxsize=64)
def _spread(source: int, target: int) -> sparse.csr_array:
    """The (source, target) pseudo-inverse of `_area`: the smallest full-resolution change whose
    reduction is the given working-size change. Its entries fade fast away from the band; those
    below a thousandth of the largest are dropped, so it is applied as a sparse matrix."""
    inverse = np.linalg.pinv(_area_matrix(source, target))
    inverse[np.abs(inverse) < 1e-3 * np.abs(inverse).max()] = 0
    return sparse.csr_array(inverse.astype(np.float32))


def _resample(frames: np.ndarray, rows: sparse.csr_array, columns: sparse.csr_array) -> np.ndarray:
    """rows @ frame @ columns.T for every frame of (frames, height, width)."""
    count, height, width = frames.shape
    across = (columns @ frames.reshape(count * height, width).T).reshape(-1, count, height)
    down = rows @ across.transpose(2, 1, 0).reshape(height, count * across.shape[0])
    return down.reshape(-1, count, across.shape[0]).transpose(1, 0, 2)


_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _luma(frames: np.ndarray) -> np.ndarray:
    """BT.601 luma of RGB frames, as float32 (one pass: uint8 times float32 weights)."""
    return np.matmul(frames, _LUMA_WEIGHTS)


def _cell_values(luma: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """(frames, rows, columns, coefficients) values of (frames, height, width) luma."""
    height, width = luma.shape[-2:]
    reduced = _resample(luma, _area(height, rows * BLOCK), _area(width, columns * BLOCK))
    cells = reduced.reshape(-1, rows, BLOCK, columns, BLOCK)
    return np.einsum("nrycx,kyx->nrck", cells, BASES)


def embed(
    frames: np.ndarray, content_id: uuid.UUID, *, strength: float = STRENGTH, in_place: bool = False
) -> np.ndarray:
    """The RGB frames (frames, height, width, 3) carrying the content id: a copy, or `in_place`
    the frames themselves (each chunk is read before it is written)."""
    count, height, width = frames.shape[:3]
    rows, columns = grid(height, width)
    coded = encode_message(message_bits(content_id))
    signs = (coded[cell_bits(rows, columns)].astype(np.float32) * 2 - 1)[None]
    spread_rows, spread_columns = _spread(height, rows * BLOCK), _spread(width, columns * BLOCK)
    marked = frames if in_place else np.empty_like(frames)
    for start in range(0, count, CHUNK_FRAMES):
        chunk = frames[start : start + CHUNK_FRAMES]
        current = _cell_values(_luma(chunk), rows, columns)
        target = signs * np.maximum(strength, signs * current)
        change = np.clip(target - current, -MAX_CHANGE, MAX_CHANGE)
        # The change per cell as its cosines at working size, then spread to the frame's pixels.
        working = np.einsum("nrck,kyx->nrycx", change, BASES).reshape(
            len(chunk), rows * BLOCK, columns * BLOCK
        )
        # Rounded once per pixel and added to R, G and B in 16-bit integers (the same result as
        # rounding each channel's float sum, since the channels are integers, at half the cost).
        delta = np.rint(_resample(working, spread_rows, spread_columns)).astype(np.int16)
        marked[start : start + CHUNK_FRAMES] = np.clip(chunk + delta[..., None], 0, 255)
    return marked


@dataclass
class WatermarkReading:
    key: int | None  # the content id's key (`key_of`), when the mark was read
    inverted: bool = False
    mirrored: bool = False
    confidence: float = 0.0
    # The summed votes per coded bit as read (mirrored when the mark was found mirrored): the
    # channel's raw bit errors are measured on these.
    soft: np.ndarray | None = None


class Reader:
    """Votes frame by frame (luma of any size: a decoder's Y plane or RGB's luma), so a video
    is read in one pass without holding its frames."""

    def __init__(self) -> None:
        self.votes: np.ndarray | None = None
        self.frames = 0

    def add(self, luma: np.ndarray) -> None:
        """One frame's (height, width) or several frames' (frames, height, width) luma. Every
        frame of one video must have one size."""
        luma = np.asarray(luma, dtype=np.float32)
        if luma.ndim == 2:
            luma = luma[None]
        height, width = luma.shape[-2:]
        if height < BLOCK or width < BLOCK:
            return
        values = np.clip(_cell_values(luma, *grid(height, width)), -VOTE_CLIP, VOTE_CLIP).sum(axis=0)
        self.votes = values if self.votes is None else self.votes + values
        self.frames += len(luma)

    def soft_bits(self, *, mirrored: bool = False) -> np.ndarray:
        """The summed votes per coded bit (positive leaning to 1)."""
        rows, columns = self.votes.shape[:2]
        votes = self.votes[:, ::-1] if mirrored else self.votes
        return np.bincount(cell_bits(rows, columns).ravel(), weights=votes.ravel(), minlength=CODED_BITS)

    def reading(self) -> WatermarkReading:
        if self.votes is None:
            return WatermarkReading(None)
        unread = None  # what is reported when no hypothesis checks: the grid as it stands
        for mirrored in (False, True):
            soft = self.soft_bits(mirrored=mirrored)
            confidence = float(np.mean(np.abs(soft)) / (self.frames * STRENGTH))
            for inverted in (False, True):
                bits = decode_message(-soft if inverted else soft)
                if _bits_to_int(bits[:HEADER_BITS]) == HEADER and np.array_equal(
                    bits[HEADER_BITS + PAYLOAD_BITS :], crc16(bits[: HEADER_BITS + PAYLOAD_BITS])
                ):
                    return WatermarkReading(
                        _bits_to_int(bits[HEADER_BITS : HEADER_BITS + PAYLOAD_BITS]),
                        inverted=inverted,
                        mirrored=mirrored,
                        confidence=confidence,
                        soft=soft,
                    )
            if unread is None:
                unread = WatermarkReading(None, confidence=confidence, soft=soft)
        return unread


def read(frames: np.ndarray) -> WatermarkReading:
    """The watermark of RGB frames (frames, height, width, 3)."""
    reader = Reader()
    for start in range(0, len(frames), CHUNK_FRAMES):
        reader.add(_luma(frames[start : start + CHUNK_FRAMES]))
    return reader.reading()
