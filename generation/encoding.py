"""Frames to an H.264 MP4 (PyAV); MP4 bytes back to frames and metadata.

The model renders a few frames; the clip lasts the requested duration at `fps`, each rendered
frame held for its share of the time, so labels that depend on time (2 s of visible label, then a
moving mark) are stamped on the output frames, not the rendered ones.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from core.video import write_video


@dataclass
class DecodedVideo:
    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: float
    metadata: dict[str, str]


def stretch_to_duration(frames: np.ndarray, *, duration_s: float, fps: int) -> np.ndarray:
    total = max(1, round(duration_s * fps))
    picks = (np.arange(total) * len(frames)) // total
    return frames[picks]


def encode_mp4(
    frames: np.ndarray,
    *,
    fps: int,
    metadata: dict[str, str] | None = None,
    bit_rate: int | None = None,
) -> bytes:
    """H.264 in MP4, yuv420p, with `metadata` as container tags (read back by `decode_mp4`)."""
    # faststart (index first, for streaming) rewrites the file, so it needs a real file.
    with tempfile.NamedTemporaryFile(suffix=".mp4") as target:
        options = {"preset": "veryfast"} if bit_rate else {"crf": "18", "preset": "veryfast"}
        write_video(
            target.name,
            frames,
            fps=fps,
            codec_options=options,
            bit_rate=bit_rate,
            metadata=metadata,
            container_options={"movflags": "use_metadata_tags+faststart"},
        )
        return Path(target.name).read_bytes()


def decode_mp4(
    data: bytes | io.IOBase, *, max_frames: int = 2000, max_pixels: int | None = None
) -> DecodedVideo:
    """Frames and container tags; raises `av.error.FFmpegError` (or ValueError) for what is not a video.
    Decoding stops at `max_frames` frames or once the frames hold `max_pixels` pixels."""
    source = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with av.open(source, mode="r") as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        metadata = dict(container.metadata)
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.base_rate or 0)
        frames = []
        pixels = 0
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            pixels += frame.width * frame.height
            if len(frames) >= max_frames or (max_pixels is not None and pixels >= max_pixels):
                break
    if not frames:
        raise ValueError("no frames")
    return DecodedVideo(frames=np.stack(frames), fps=fps, metadata=metadata)


def last_frame(data: bytes | io.IOBase) -> np.ndarray:
    """The last frame (RGB), decoding only from the keyframe before it; raises like `decode_mp4`."""
    source = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with av.open(source, mode="r") as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        last = None
        if stream.duration:
            try:
                container.seek((stream.start_time or 0) + stream.duration, stream=stream, backward=True)
                last = _last_decoded(container, stream)
            except av.error.FFmpegError:
                last = None
            if last is None:
                container.seek(0)
        if last is None:
            last = _last_decoded(container, stream)
    if last is None:
        raise ValueError("no frames")
    return last.to_ndarray(format="rgb24")


def _last_decoded(container, stream):
    last = None
    for frame in container.decode(stream):
        last = frame
    return last
