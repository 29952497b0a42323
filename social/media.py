"""Probing uploaded videos with PyAV: refuse what is not video, read its size, take a poster frame."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import av
from django.conf import settings

from core.errors import TooLarge, UnsupportedMedia

POSTER_JPEG_QUALITY = 85
# Demuxer names PyAV reports for MP4/MOV and Matroska/WebM; still images (image2, png_pipe...) are
# decodable "video" too, so the container is checked by what it is, not by the file name.
VIDEO_CONTAINERS = {"mp4", "mov", "matroska", "webm"}


@dataclass(frozen=True)
class ContainerInfo:
    duration_s: float
    width: int
    height: int


def probe_container(path: str | Path) -> ContainerInfo:
    """Reads only the container header: MP4, MOV or WebM with a video stream, or 415."""
    try:
        with av.open(str(path), mode="r") as container:
            if not VIDEO_CONTAINERS & set(container.format.name.split(",")):
                raise UnsupportedMedia("Only MP4, MOV and WebM videos are accepted.")
            if not container.streams.video:
                raise UnsupportedMedia("The file has no video stream.")
            stream = container.streams.video[0]
            return ContainerInfo(
                duration_s=duration_seconds(container, stream),
                width=stream.codec_context.width,
                height=stream.codec_context.height,
            )
    except UnsupportedMedia:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise UnsupportedMedia("The file is not a video this service can read.") from exc


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    width: int
    height: int
    size_bytes: int
    poster_jpeg: bytes
    has_audio: bool = False


def probe_video(path: str | Path) -> VideoInfo:
    """Reads the container header and decodes only the first frame (the poster).

    The size limit is checked from the file system before anything is decoded; any decoder error is
    a 415 `unsupported_media`, never a 500.
    """
    size = Path(path).stat().st_size
    if size > settings.POST_VIDEO_MAX_BYTES:
        raise TooLarge(f"The video is larger than {settings.POST_VIDEO_MAX_BYTES} bytes.")
    if size == 0:
        raise UnsupportedMedia("The file is empty.")
    duration_s = probe_container(path).duration_s
    if duration_s > settings.POST_VIDEO_MAX_SECONDS:
        raise UnsupportedMedia(
            f"The video is longer than {settings.POST_VIDEO_MAX_SECONDS} seconds.",
            details={"duration_s": round(duration_s, 3)},
        )
    try:
        with av.open(str(path), mode="r") as container:
            stream = container.streams.video[0]
            first_frame = next(container.decode(stream), None)
            if first_frame is None:
                raise UnsupportedMedia("The video has no frames.")
            width, height = first_frame.width, first_frame.height
            has_audio = bool(container.streams.audio)
            poster = io.BytesIO()
            first_frame.to_image().convert("RGB").save(poster, format="JPEG", quality=POSTER_JPEG_QUALITY)
    except UnsupportedMedia:
        raise
    except (av.FFmpegError, ValueError, IndexError, StopIteration, OSError) as exc:
        raise UnsupportedMedia("The file is not a video this service can read.") from exc
    return VideoInfo(
        duration_s=round(duration_s, 3),
        width=width,
        height=height,
        size_bytes=size,
        poster_jpeg=poster.getvalue(),
        has_audio=has_audio,
    )


def duration_seconds(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    if stream.frames and stream.average_rate:
        return float(stream.frames / stream.average_rate)
    return 0.0
