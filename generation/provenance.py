"""Provenance: the creation record kept per post, and reading labels back from a file."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from django.utils import timezone

from generation import fingerprints, labels, watermark
from generation.encoding import FrameTooLarge


def build_record(
    *,
    job,
    model_id: str,
    post_id: int | None = None,
    conditioning: dict[str, str] | None = None,
    has_audio: bool = False,
) -> dict[str, Any]:
    """What a copyright claim needs: the human input (prompts, choices) and what the machine did.

    `conditioning` ({cameo id: "identity" | "reference"}, from generation.backends.cameo_conditioning)
    says how each cameo conditioned the video; a cameo it leaves out appeared through the prompt
    only ("prompt_only"). Without it (a caller that does not know) the record says nothing of it.
    """
    return {
        "content_id": str(job.content_id),
        "post_id": None if post_id is None else str(post_id),
        "generation_id": str(job.pk),
        "creator": {"id": str(job.user_id), "username": job.user.username},
        "prompt": job.prompt,
        "composed_prompt": job.composed_prompt,
        "mode": job.mode,
        "duration_s": job.duration_s,
        "aspect_ratio": job.aspect_ratio,
        "seed": job.seed,
        "model": model_id,
        "cameos": [
            {
                "id": str(entry["cameo_id"]),
                "owner_id": str(entry["owner_id"]),
                "consent_version": entry["consent_version"],
                "template_version": entry.get("template_version"),
                "inherited_from": None
                if entry.get("inherited_from") is None
                else str(entry["inherited_from"]),
                **_conditioning_of(entry, conditioning),
            }
            for entry in job.cameo_consents
        ],
        "sources": _sources_of(job),
        "shots": _shots_of(job),
        "licences": job.licences,
        "audio": has_audio,
        "labels": {
            "visible": labels.LABEL_TEXT,
            "implicit": labels.AIGC_KEY,
            "watermark": watermark.VERSION,
            "audio": AUDIO_LABEL if has_audio else None,
        },
        "requested_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": timezone.now().isoformat(),
    }


# How the sound track is labelled (generation.sound): a tone cue at its start.
AUDIO_LABEL = "morse-cue:AI"


def _shots_of(job) -> list[dict[str, Any]]:
    """A storyboard's shots in order: each one's own prompt, seed, length and model."""
    if job.mode != "storyboard":
        return []
    return [
        {
            "index": shot.index,
            "prompt": shot.prompt,
            "composed_prompt": shot.composed_prompt,
            "duration_s": shot.duration_s,
            "seed": shot.seed,
            "model": shot.model_id,
            "cameos": [str(cameo_id) for cameo_id in shot.likeness_ids],
        }
        for shot in job.shots.order_by("index")
    ]


def _sources_of(job) -> list[dict[str, str]]:
    """The posts the video was made from: a stitch's in the order joined, or a remix's one."""
    if job.source_ids:
        return [{"post_id": str(post_id), "mode": job.mode} for post_id in job.source_ids]
    return [] if job.remix_of_id is None else [{"post_id": str(job.remix_of_id), "mode": job.mode}]


def _conditioning_of(entry: dict, conditioning: dict[str, str] | None) -> dict[str, str]:
    if conditioning is None:
        return {}
    return {"conditioning": conditioning.get(str(entry["cameo_id"]), "prompt_only")}


@dataclass
class UploadReading:
    """What one decoding pass over an uploaded video found."""

    label: dict | None  # the AIGC metadata
    watermark: watermark.WatermarkReading
    samples: list[tuple[int, np.ndarray]]  # (time in ms, RGB frame) for the fingerprints

    @property
    def metadata_found(self) -> bool:
        return self.label is not None

    @property
    def watermark_found(self) -> bool:
        return self.watermark.key is not None

    @property
    def labelled_content_id(self) -> uuid.UUID | None:
        """The content id the metadata names, if it names a well-formed one."""
        try:
            return None if self.label is None else uuid.UUID(str(self.label.get("ProduceID", "")))
        except ValueError:
            return None


# A verification holds at most this many pixels of sampled frames (64 samples of 1080p, 24 of 4K).
VERIFY_MAX_PIXELS = 200_000_000
# 8K UHD: larger frames are refused from the header, before one is decoded (a single frame of
# 16384x16384 would be 0.8 GB as RGB).
VERIFY_MAX_FRAME_PIXELS = 7680 * 4320
# The watermark is voted over at most this many frames: any 2 s carry it whole, and 5 s at 30 fps
# of votes is what bench/watermark.py measured.
WATERMARK_MAX_FRAMES = 150
# 8-bit Y'CbCr layouts whose first plane is the luma the watermark reads, as decoded.
_EIGHT_BIT_LUMA_FIRST = {
    "yuv420p",
    "yuvj420p",
    "yuv422p",
    "yuvj422p",
    "yuv444p",
    "yuvj444p",
    "nv12",
    "nv21",
    "gray",
}


def read_upload(data: bytes) -> UploadReading:
    """The AIGC metadata, the watermark and the fingerprint samples of a video, in one decoding
    pass; raises FrameTooLarge, `av.error.FFmpegError` or ValueError like `encoding.decode_mp4`.
    The watermark reads the decoded luma plane as it comes (no colour conversion); only the
    sampled frames are converted to RGB."""
    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        label = labels.read_aigc_metadata(dict(container.metadata))
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        _check_frame_size(stream.codec_context.width, stream.codec_context.height)
        sampling = fingerprints.upload_sampling(
            container.duration / 1000 if container.duration else None,
            max_samples=_sample_budget(stream.codec_context.width, stream.codec_context.height),
        )
        reader = watermark.Reader()
        lumas: list[np.ndarray] = []
        samples: list[tuple[int, np.ndarray]] = []
        start, decoded, size = None, 0, None
        for frame in container.decode(stream):
            if size is None:
                size = (frame.width, frame.height)
                _check_frame_size(*size)
            elif (frame.width, frame.height) != size:
                raise ValueError("the frame size changes within the video")
            if decoded < WATERMARK_MAX_FRAMES:
                lumas.append(_luma_plane(frame))
                if len(lumas) == watermark.CHUNK_FRAMES:
                    reader.add(np.stack(lumas))
                    lumas.clear()
            decoded += 1
            if frame.time is not None:
                start = frame.time if start is None else start
                at_ms = round((frame.time - start) * 1000)
                if sampling.takes(at_ms):
                    samples.append((at_ms, frame.to_ndarray(format="rgb24")))
            if decoded >= WATERMARK_MAX_FRAMES and sampling.done:
                break
    if not decoded:
        raise ValueError("no frames")
    if lumas:
        reader.add(np.stack(lumas))
    return UploadReading(label=label, watermark=reader.reading(), samples=samples)


def _luma_plane(frame: av.VideoFrame) -> np.ndarray:
    """A copy of the frame's luma: its first plane as decoded, or converted for other formats."""
    if frame.format.name not in _EIGHT_BIT_LUMA_FIRST:
        return frame.to_ndarray(format="gray")
    plane = frame.planes[0]
    rows = np.frombuffer(plane, dtype=np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width].copy()


def _check_frame_size(width: int, height: int) -> None:
    if width * height > VERIFY_MAX_FRAME_PIXELS:
        raise FrameTooLarge(width, height, VERIFY_MAX_FRAME_PIXELS)


def _sample_budget(width: int, height: int) -> int:
    if not width or not height:
        return fingerprints.MAX_UPLOAD_SAMPLES
    return max(1, min(fingerprints.MAX_UPLOAD_SAMPLES, VERIFY_MAX_PIXELS // (width * height)))
