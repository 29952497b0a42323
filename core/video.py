"""Writing frames as a video file: the one H.264 writer the apps share (PyAV)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_video(
    target: str | Path | io.BytesIO,
    frames: Iterable[np.ndarray],
    *,
    fps: int,
    container: str = "mp4",
    codec_options: dict[str, str] | None = None,
    bit_rate: int | None = None,
    metadata: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> None:
    """Encodes RGB uint8 frames (all one size) as H.264 (or VP9 for WebM), yuv420p.

    `metadata` become container tags; `container_options` go to the muxer (e.g. movflags).
    """
    codec = "libvpx-vp9" if container == "webm" else "libx264"
    target_arg = str(target) if isinstance(target, (str, Path)) else target
    with av.open(target_arg, mode="w", format=container, options=container_options or {}) as output:
        for key, value in (metadata or {}).items():
            output.metadata[key] = value
        stream = None
        for index, array in enumerate(frames):
            if stream is None:
                stream = output.add_stream(codec, rate=Fraction(fps, 1))
                stream.height, stream.width = array.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.time_base = Fraction(1, fps)
                if bit_rate:
                    stream.bit_rate = bit_rate
                stream.options = dict(codec_options or {})
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array, dtype=np.uint8), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                output.mux(packet)
        if stream is None:
            raise ValueError("no frames to encode")
        for packet in stream.encode():
            output.mux(packet)


def encode_video(frames: Iterable[np.ndarray], *, fps: int, container: str = "mp4", **options) -> bytes:
    """`write_video` into memory (muxers that rewrite the file, like MP4 faststart, need a path)."""
    buffer = io.BytesIO()
    write_video(buffer, frames, fps=fps, container=container, **options)
    return buffer.getvalue()
