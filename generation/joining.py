"""Joining clips into one: what a stitch does with its sources (and a storyboard with its shots).

Each clip is brought to the output's frame size (scaled to fit whole, centred on black: a source of
another shape is letterboxed, never cropped, so no one in it is cut out) and to its frame rate (the
frame shown at each output instant), then the clips follow one another. Labels and the watermark
are applied once, to the joined clip, by the worker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Clip:
    frames: np.ndarray  # (frames, height, width, 3) uint8
    fps: float

    @property
    def duration_s(self) -> float:
        return len(self.frames) / self.fps


def nearest_aspect(width: int, height: int, aspects: Iterable[str]) -> str:
    """The aspect ratio ("9:16", ...) closest to width:height, compared as logarithms (2:1 and 1:2
    are as far from 1:1)."""

    def distance(aspect: str) -> float:
        across, down = (int(part) for part in aspect.split(":"))
        return abs(np.log((width / height) / (across / down)))

    return min(aspects, key=distance)


def fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """The frame scaled to fit inside width x height whole, centred on black."""
    source_height, source_width = frame.shape[:2]
    if (source_width, source_height) == (width, height):
        return frame
    scale = min(width / source_width, height / source_height)
    scaled_width = max(1, min(width, round(source_width * scale)))
    scaled_height = max(1, min(height, round(source_height * scale)))
    scaled = np.asarray(
        Image.fromarray(frame).resize((scaled_width, scaled_height), Image.Resampling.LANCZOS)
    )
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - scaled_height) // 2, (width - scaled_width) // 2
    canvas[top : top + scaled_height, left : left + scaled_width] = scaled
    return canvas


def frames_at(clip: Clip, fps: float) -> int:
    """How many frames the clip lasts at `fps`: its length to the nearest frame, at least one."""
    return max(1, round(clip.duration_s * fps))


def retime(clip: Clip, fps: float) -> list[np.ndarray]:
    """The clip's frames at `fps`: at each output instant, the frame shown then; its length kept
    to the nearest output frame."""
    count = frames_at(clip, fps)
    picks = np.minimum((np.arange(count) * clip.fps / fps).astype(int), len(clip.frames) - 1)
    return [clip.frames[index] for index in picks]


def join(clips: Sequence[Clip], *, width: int, height: int, fps: float) -> np.ndarray:
    """The clips one after another at width x height and `fps`."""
    if not clips:
        raise ValueError("nothing to join")
    frames = [fit(frame, width, height) for clip in clips for frame in retime(clip, fps)]
    return np.stack(frames)
