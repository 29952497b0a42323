"""Frames (and a sound track) to an H.264 MP4 (PyAV); MP4 bytes back to frames, metadata and sound.

The model renders a few frames; the clip lasts the requested duration at `fps`, each rendered
frame held for its share of the time, so labels that depend on time (2 s of visible label, then a
moving mark) are stamped on the output frames, not the rendered ones. The sound, when there is
one, is fitted to that duration and stored as AAC next to the picture.
"""

from __future__ import annotations

import io
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from core.video import write_video
from generation.soundtrack import Soundtrack


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
    sound: Soundtrack | None = None,
) -> bytes:
    """H.264 in MP4, yuv420p, with `metadata` as container tags (read back by `decode_mp4`) and
    `sound`, fitted to the clip's length, as its AAC track (read back by `decode_audio`)."""
    audio = None
    if sound is not None:
        from generation.sound import fit_to_duration

        audio = fit_to_duration(sound, len(frames) / fps)
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
            audio=audio,
        )
        return Path(target.name).read_bytes()


class FrameTooLarge(ValueError):
    """The video's frames are larger than the caller accepts (refused before any is decoded)."""

    def __init__(self, width: int, height: int, max_pixels: int):
        super().__init__(f"frames of {width}x{height} exceed {max_pixels} pixels")
        self.width, self.height, self.max_pixels = width, height, max_pixels


def decode_mp4(
    data: bytes | io.IOBase,
    *,
    max_frames: int = 2000,
    max_pixels: int | None = None,
    max_frame_pixels: int | None = None,
) -> DecodedVideo:
    """Frames and container tags; raises `av.error.FFmpegError` (or ValueError) for what is not a video.
    Decoding stops at `max_frames` frames or once the frames hold `max_pixels` pixels; frames larger
    than `max_frame_pixels` raise FrameTooLarge, from the stream's header before any frame is
    decoded. The frames are written into one array sized from the header, so memory peaks at the
    budget and one frame, not at twice the budget (a list of frames, then a stacked copy)."""
    source = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with av.open(source, mode="r") as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        metadata = dict(container.metadata)
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.base_rate or 0)
        width, height = stream.codec_context.width, stream.codec_context.height
        # Sized from the header before anything is decoded (the decoder's own frame is as large as
        # ours); from the first frame only when the header has no size.
        frames = (
            _frame_buffer(width, height, max_frames, max_pixels, max_frame_pixels)
            if width and height
            else None
        )
        count = 0
        for frame in container.decode(stream):
            if frames is None:
                width, height = frame.width, frame.height
                frames = _frame_buffer(width, height, max_frames, max_pixels, max_frame_pixels)
            if (frame.width, frame.height) != (width, height):
                raise ValueError("the frame size changes within the video")
            frames[count] = frame.to_ndarray(format="rgb24")
            count += 1
            if count == len(frames):
                break
    if not count:
        raise ValueError("no frames")
    return DecodedVideo(frames=frames[:count], fps=fps, metadata=metadata)


def _frame_buffer(
    width: int, height: int, max_frames: int, max_pixels: int | None, max_frame_pixels: int | None
) -> np.ndarray:
    """An uninitialised (frames, height, width, 3) array for as many frames as the budgets allow
    (pages the decoder never fills are never touched, so a short video costs only its frames)."""
    frame_pixels = width * height
    if max_frame_pixels is not None and frame_pixels > max_frame_pixels:
        raise FrameTooLarge(width, height, max_frame_pixels)
    capacity = max_frames if max_pixels is None else min(max_frames, math.ceil(max_pixels / frame_pixels))
    return np.empty((max(1, capacity), height, width, 3), dtype=np.uint8)


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


def has_audio_stream(data: bytes | io.IOBase) -> bool:
    """Whether the file has a sound track (a file object is left where it was)."""
    if isinstance(data, bytes | bytearray):
        with av.open(io.BytesIO(data), mode="r") as container:
            return bool(container.streams.audio)
    position = data.tell()
    try:
        with av.open(data, mode="r") as container:
            return bool(container.streams.audio)
    finally:
        data.seek(position)


def decode_audio(data: bytes | io.IOBase, *, max_duration_s: float = 600.0) -> Soundtrack | None:
    """The first sound track as float32 (samples, channels) at its own rate, sample 0 at the file's
    time zero (a track that starts late is preceded by silence, so it stays in sync with the
    picture); None when the file has no sound. Decoding stops after `max_duration_s`. Raises like
    `decode_mp4` for what is not a media file."""

    source = io.BytesIO(data) if isinstance(data, bytes | bytearray) else data
    with av.open(source, mode="r") as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate
        channels = stream.codec_context.layout.nb_channels or 1
        # Planar float whatever the decoder gives (AAC gives it already; others give integers).
        to_float = av.AudioResampler(format="fltp")
        chunks: list[np.ndarray] = []
        start, count = None, 0
        for frame in container.decode(stream):
            if start is None:
                start, rate = frame.time or 0.0, frame.sample_rate
            for converted in to_float.resample(frame):
                chunks.append(converted.to_ndarray())
                count += converted.samples
            if count >= max_duration_s * rate:
                break
    if not chunks:
        return Soundtrack(samples=np.zeros((0, channels), dtype=np.float32), sample_rate=rate)
    samples = np.concatenate(chunks, axis=1).T.astype(np.float32)[: math.ceil(max_duration_s * rate)]
    offset = round((start or 0.0) * rate)
    if offset > 0:
        samples = np.concatenate([np.zeros((offset, samples.shape[1]), dtype=np.float32), samples])
    elif offset < 0:
        samples = samples[-offset:]
    # A lossy codec overshoots full scale a little where the track reached it.
    return Soundtrack(samples=np.clip(samples, -1.0, 1.0), sample_rate=rate)


def _last_decoded(container, stream):
    last = None
    for frame in container.decode(stream):
        last = frame
    return last
