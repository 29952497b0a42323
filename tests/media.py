"""Media made by the tests themselves: tiny H.264 MP4 clips encoded with PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.video import write_video


def moving_square_frames(*, seconds: float, size: tuple[int, int], fps: int, color=(230, 60, 40)):
    """RGB frames of a square sliding over a gradient, so consecutive frames differ."""
    width, height = size
    total = max(1, round(seconds * fps))
    side = max(4, min(width, height) // 3)
    background = np.zeros((height, width, 3), dtype=np.uint8)
    background[..., 2] = np.linspace(40, 200, height, dtype=np.uint8)[:, None]
    for index in range(total):
        frame = background.copy()
        x = int((width - side) * index / max(1, total - 1))
        y = int((height - side) * (0.5 + 0.4 * np.sin(index / 3)))
        frame[y : y + side, x : x + side] = color
        yield frame


def make_test_video(
    path, seconds: float = 1, size: tuple[int, int] = (64, 112), fps: int = 8, color=(230, 60, 40)
):
    """Writes an MP4 (H.264, yuv420p) of `seconds` at `size` (width, height) and returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(
        path,
        moving_square_frames(seconds=seconds, size=size, fps=fps, color=color),
        fps=fps,
        codec_options={"preset": "ultrafast", "tune": "zerolatency"},
    )
    return path
