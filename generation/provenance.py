"""Provenance: the creation record kept per post, and reading labels back from a file."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from generation import encoding, labels, watermark


def build_record(
    *, job, model_id: str, post_id: int | None = None, conditioning: dict[str, str] | None = None
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
        "sources": [] if job.remix_of_id is None else [{"post_id": str(job.remix_of_id), "mode": job.mode}],
        "licences": job.licences,
        "labels": {
            "visible": labels.LABEL_TEXT,
            "implicit": labels.AIGC_KEY,
            "watermark": "luma-dct-v1",
        },
        "requested_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": timezone.now().isoformat(),
    }


def _conditioning_of(entry: dict, conditioning: dict[str, str] | None) -> dict[str, str]:
    if conditioning is None:
        return {}
    return {"conditioning": conditioning.get(str(entry["cameo_id"]), "prompt_only")}


@dataclass
class Verification:
    content_id: uuid.UUID | None
    label: dict | None
    watermark_found: bool
    metadata_found: bool


VERIFY_MAX_PIXELS = 200_000_000
# 8K UHD: larger frames are refused from the header, before one is decoded (a single frame of
# 16384x16384 would be 0.8 GB as RGB).
VERIFY_MAX_FRAME_PIXELS = 7680 * 4320


def read_labels(data: bytes) -> Verification:
    """The AIGC metadata and the watermark of an MP4; the watermark wins when they disagree,
    because metadata is trivially rewritten and the mark is not."""
    # The watermark is voted across frames; 600 of them, or as many as make 200M pixels (about 96
    # at 1080p, 0.6 GB as RGB), bound what a verification may hold in memory.
    video = encoding.decode_mp4(
        data, max_frames=600, max_pixels=VERIFY_MAX_PIXELS, max_frame_pixels=VERIFY_MAX_FRAME_PIXELS
    )
    label = labels.read_aigc_metadata(video.metadata)
    reading = watermark.read(video.frames)
    content_id = reading.content_id
    if content_id is None and label is not None:
        try:
            content_id = uuid.UUID(str(label.get("ProduceID", "")))
        except ValueError:
            content_id = None
    return Verification(
        content_id=content_id,
        label=label,
        watermark_found=reading.content_id is not None,
        metadata_found=label is not None,
    )
