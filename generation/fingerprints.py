"""Perceptual fingerprints of videos, and the rule that says whether an upload copies a post.

Hashing (vPDQ's scheme, computed with `pdqhash`: the `vpdq` package builds only against system
ffmpeg libraries): PDQ, Meta's perceptual image hash, of sampled frames, with PDQ's quality (0-100,
gradient energy). PDQ is a global hash: it survives re-encoding and scaling but not cropping, and a
few percent of shift costs tens of bits. So, on both sides:
- dark bars at the edges of every sampled frame (a letterbox) are cut off first;
- the top band where the visible label's box sits for the first labels.LABEL_SECONDS of every post
  (`label_rows`, about a third of the short side, measured by stamping the label) is never hashed:
  hashed, it dominated PDQ on clips with little texture, so unrelated posts matched each other
  there, at the same time in every post;
- a post's frames are hashed whole and as their centre 80% (`REGIONS`), an upload's whole only
  (`UPLOAD_REGIONS`): a copy cropped by 10% per side matches the stored centre, an uncropped copy
  the stored whole;
- frames are reduced (area filter) to HASH_EDGE pixels on the long side first (PDQ reduces to
  64x64 itself; this makes a 480x720 frame cost ~1 ms).
A post stores one frame every SAMPLE_MS; an upload is sampled twice as densely (UPLOAD_SAMPLE_MS)
so a trimmed copy, whose frames fall between the stored ones, has frames close to each stored one,
and each of its frames is also hashed mirrored.

Matching (`decide`): every upload hash of quality >= MIN_QUALITY takes its NEIGHBOURS nearest
stored hashes within MATCH_DISTANCE bits. Each such hit votes for (post, mirrored, time offset
content - upload, in OFFSET_BIN_MS bins). A post matches when one offset (with the bins either side
of it) gathers at least MIN_VOTES stored frames, each hit by a distinct upload frame, and at least
MIN_SHARE of the stored frames that the overlap of upload and post should show. A time offset is
what survives trimming (it is the trim's start) and frame-rate changes (times are compared, not
frame numbers); random near hits scatter over offsets and posts.

Thresholds, from `bench/provenance.py recall --dump` replayed over (MATCH_DISTANCE, MIN_VOTES,
MIN_SHARE) (10 originals x 19 transforms, 200 unrelated clips; figures in bench/README.md). With the
label band hashed: at 48 / 6 / 0.3 all 190 copies found and 5 of 200 unrelated clips matched, every
false vote from the label's 2 s. With it cut, all 190 copies are found from 56 bits up
(scale25+crop10, a 52x96 crop, is the one that needs it: 7/10 at 48), and no unrelated clip
matches up to 76 bits: so 60 / 6 / 0.3, 190/190 found and 0 of 200 unrelated clips. Asking with the
upload's centre 80% as well found no copy more at any setting, and doubled the index search.
"""

from __future__ import annotations

import functools
import io
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

SAMPLE_MS = 250
UPLOAD_SAMPLE_MS = 125
HASH_EDGE = 128
# Share of width and height kept, in percent: the whole frame and its centre.
REGIONS = (100, 80)
# An upload is hashed whole: a copy cropped 10% per side meets the stored centre, an uncropped one
# the stored whole (its centre against the stored centre added no copy found, and doubled the search).
UPLOAD_REGIONS = (100,)
# Edge rows and columns whose luma stays below this in every sampled frame are a letterbox.
BAR_LUMA = 40
MIN_QUALITY = 20
MATCH_DISTANCE = 60
NEIGHBOURS = 10
OFFSET_BIN_MS = 250
MIN_VOTES = 6
MIN_SHARE = 0.3
# An upload is hashed over at most this many frames, spread over its length: each is two index
# searches (it and its mirror), the most of a verification's time with 100k posts (64 frames made
# a 10 s upload's search 0.43 s there; bench/README.md).
MAX_UPLOAD_SAMPLES = 48


@dataclass(frozen=True)
class FrameHash:
    at_ms: int
    bits: str  # 256 characters '0'/'1', the form of a pgvector bit(256)
    quality: int
    region_pct: int = 100
    mirrored: bool = False


def strip_bars(frames: list[np.ndarray]) -> list[np.ndarray]:
    """The frames without the dark rows and columns that frame all of them (a letterbox or
    pillarbox), so a boxed copy hashes like its source."""
    if not frames or any(frame.shape != frames[0].shape for frame in frames):
        return frames
    # The brightest value of each row and each column over every frame and channel, reduced along
    # contiguous memory (a max over the 3 channels first costs several times more).
    height, width = frames[0].shape[:2]
    row_peaks = np.max([frame.reshape(height, -1).max(axis=1) for frame in frames], axis=0)
    column_peaks = np.max([frame.max(axis=0).max(axis=1) for frame in frames], axis=0)
    rows = np.flatnonzero(row_peaks >= BAR_LUMA)
    cols = np.flatnonzero(column_peaks >= BAR_LUMA)
    if len(rows) < 8 or len(cols) < 8:
        return frames
    return [frame[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] for frame in frames]


def _reduce(frame: np.ndarray) -> np.ndarray:
    import cv2

    height, width = frame.shape[:2]
    scale = HASH_EDGE / max(height, width)
    if scale >= 1:
        return np.ascontiguousarray(frame)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def _centre(frame: np.ndarray, pct: int) -> np.ndarray:
    height, width = frame.shape[:2]
    cut_h, cut_w = height * (100 - pct) // 200, width * (100 - pct) // 200
    return frame[cut_h : height - cut_h, cut_w : width - cut_w]


# Long sides at which the label's box is measured; the band cut is the tallest share among them,
# so it covers the box on every frame of such sizes and does not depend on the copy's scale
# (labels.py's rounding and minimum text size move the share between 15.6% and 18.8% of a 9:16
# frame's height). Smaller posts (the tiny test backend's 48x80) keep a few label rows.
LABEL_REFERENCE_EDGES = (128, 160, 192, 224, 256, 320, 384, 480, 576, 720)


def _label_share_at(height: int, width: int) -> float:
    from django.conf import settings

    from generation import labels

    blank = np.full((1, height, width, 3), 255, dtype=np.uint8)
    stamped = labels.stamp_visible_label(blank, fps=1, platform_mark=settings.GENERATION_PLATFORM_MARK)
    rows = np.flatnonzero((stamped[0] != blank[0]).any(axis=(1, 2)))
    return (int(rows[-1]) + 1) / height if len(rows) else 0.0


@functools.lru_cache(maxsize=256)
def _label_share(height_per_width: float) -> float:
    shares = []
    for edge in LABEL_REFERENCE_EDGES:
        scale = edge / max(height_per_width, 1.0)
        shares.append(_label_share_at(max(8, round(height_per_width * scale)), max(8, round(scale))))
    return max(shares)


def label_rows(height: int, width: int) -> int:
    """How many rows at the top of a height x width frame the visible label's box covers, measured
    by stamping it on blank frames of the same shape (generation/labels.py is the one home of its
    geometry): about a third of the short side."""
    return math.ceil(_label_share(round(height / width, 2)) * height)


def _below_label(frame: np.ndarray) -> np.ndarray:
    """The frame without its top band where the label box sits in the first seconds of every post,
    cut on both sides: a share of the height set by the region's shape alone, so a copy scaled or
    cropped by the same share on each side cuts the same part as the stored region it should match."""
    height, width = frame.shape[:2]
    return frame[min(label_rows(height, width), height - 8) :]


def _bits(vector: np.ndarray) -> str:
    return "".join("1" if bit else "0" for bit in vector)


def hash_frame(
    frame: np.ndarray, *, at_ms: int, mirrored: bool = False, regions: tuple[int, ...] = REGIONS
) -> list[FrameHash]:
    """The frame's hashes, one per region (and with `mirrored`, its mirror's too)."""
    import pdqhash

    hashes = []
    for pct in regions:
        small = _reduce(_below_label(_centre(frame, pct)))
        vector, quality = pdqhash.compute(small)
        hashes.append(FrameHash(at_ms, _bits(vector), int(quality), pct))
        if mirrored:
            flipped, _ = pdqhash.compute(np.ascontiguousarray(small[:, ::-1]))
            hashes.append(FrameHash(at_ms, _bits(flipped), int(quality), pct, mirrored=True))
    return hashes


def _hash_samples(
    samples: list[tuple[int, np.ndarray]], *, mirrored: bool, regions: tuple[int, ...]
) -> list[FrameHash]:
    frames = strip_bars([frame for _, frame in samples])
    return [
        fingerprint
        for (at_ms, _), frame in zip(samples, frames, strict=True)
        for fingerprint in hash_frame(frame, at_ms=at_ms, mirrored=mirrored, regions=regions)
    ]


def fingerprint_frames(frames: np.ndarray, *, fps: float) -> list[FrameHash]:
    """The hashes a post stores: one frame every SAMPLE_MS of an in-memory clip."""
    count = len(frames)
    duration_ms = count * 1000 / fps
    samples = [
        (at_ms, frames[min(count - 1, int(at_ms * fps / 1000))])
        for at_ms in range(0, max(1, int(duration_ms)), SAMPLE_MS)
    ]
    return _hash_samples(samples, mirrored=False, regions=REGIONS)


@dataclass
class Sampling:
    """Which decoded frames are hashed: the first at or after each multiple of `interval_ms`, at
    most `max_samples` of them."""

    interval_ms: int
    max_samples: int
    taken: int = 0
    next_ms: int = 0

    @property
    def done(self) -> bool:
        return self.taken >= self.max_samples

    def takes(self, at_ms: int) -> bool:
        if self.done or at_ms + 1 < self.next_ms:
            return False
        self.taken += 1
        self.next_ms = at_ms - at_ms % self.interval_ms + self.interval_ms
        return True


def upload_sampling(duration_ms: float | None, *, max_samples: int = MAX_UPLOAD_SAMPLES) -> Sampling:
    """An upload is sampled at most `max_samples` times, spread over it (one frame every
    UPLOAD_SAMPLE_MS for uploads up to 6 s)."""
    interval = UPLOAD_SAMPLE_MS
    if duration_ms is not None:
        interval = max(UPLOAD_SAMPLE_MS, int(duration_ms / max_samples) + 1)
    return Sampling(interval, max_samples)


def _sampled_frames(source, sampling: Sampling):
    """(time in ms, RGB frame) of the frames `sampling` takes; only those are converted to RGB."""
    import av

    with av.open(source, mode="r") as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        start = None
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if start is None:
                start = frame.time
            at_ms = round((frame.time - start) * 1000)
            if sampling.takes(at_ms):
                yield at_ms, frame.to_ndarray(format="rgb24")
            if sampling.done:
                return


def duration_ms(data: bytes) -> float | None:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        if container.duration:
            return container.duration / 1000  # microseconds
    return None


def fingerprint_file(source) -> list[FrameHash]:
    """The hashes a post stores, from its MP4 (a path or a binary file): the backfill's input."""
    samples = list(_sampled_frames(source, Sampling(SAMPLE_MS, 10**6)))
    return _hash_samples(samples, mirrored=False, regions=REGIONS)


def hash_upload(samples: list[tuple[int, np.ndarray]]) -> list[FrameHash]:
    """An upload's hashes and their mirrors, from its sampled (time in ms, RGB frame)."""
    return _hash_samples(samples, mirrored=True, regions=UPLOAD_REGIONS)


def fingerprint_upload(data: bytes) -> list[FrameHash]:
    """An upload's hashes, decoded for them alone (verification decodes once for everything it
    reads: generation.provenance.read_upload)."""
    return hash_upload(list(_sampled_frames(io.BytesIO(data), upload_sampling(duration_ms(data)))))


def queries(upload: Iterable[FrameHash]) -> list[FrameHash]:
    """The upload hashes worth asking the index about: flat or featureless frames (low PDQ
    quality) hash alike whatever they show."""
    return [fingerprint for fingerprint in upload if fingerprint.quality >= MIN_QUALITY]


def distance(a: str, b: str) -> int:
    return sum(x != y for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class Hit:
    """A stored frame near an upload hash."""

    upload_ms: int
    mirrored: bool
    post_id: int
    content_ms: int
    distance: int


@dataclass(frozen=True)
class Match:
    post_id: int
    score: float  # the share of the expected stored frames that voted, capped at 1
    votes: int
    offset_ms: int
    mirrored: bool


def decide(hits: Iterable[Hit], *, upload_ms: int, durations_ms: dict[int, int]) -> Match | None:
    """The best post that enough upload frames hit at one time offset, or None.

    `upload_ms`: the hashed length of the upload; `durations_ms`: each hit post's length."""
    groups: dict[tuple[int, bool, int], list[Hit]] = defaultdict(list)
    for hit in hits:
        if hit.distance <= MATCH_DISTANCE:
            offset_bin = round((hit.content_ms - hit.upload_ms) / OFFSET_BIN_MS)
            groups[(hit.post_id, hit.mirrored, offset_bin)].append(hit)
    best: Match | None = None
    for post_id, mirrored, offset_bin in groups:
        near = [hit for step in (-1, 0, 1) for hit in groups.get((post_id, mirrored, offset_bin + step), ())]
        # One vote per stored frame, and no upload frame votes twice.
        votes = min(len({hit.content_ms for hit in near}), len({hit.upload_ms for hit in near}))
        overlap_ms = min(upload_ms, durations_ms.get(post_id, upload_ms))
        expected = max(1, overlap_ms // SAMPLE_MS)
        share = votes / expected
        if votes < MIN_VOTES or share < MIN_SHARE:
            continue
        candidate = Match(post_id, min(1.0, share), votes, offset_bin * OFFSET_BIN_MS, mirrored)
        if best is None or (candidate.score, -candidate.post_id) > (best.score, -best.post_id):
            best = candidate
    return best
