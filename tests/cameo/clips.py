"""Verification clips built with PyAV from the face photos bundled in the insightface wheel."""

from __future__ import annotations

import io
from pathlib import Path

import insightface
import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from cameo.sample_media import CANVAS, encode_mp4, moving_face_frames, portrait

IMAGES = Path(insightface.__file__).parent / "data" / "images"


def group_photo() -> Image.Image:
    """Six people."""
    return Image.open(IMAGES / "t1.jpg").convert("RGB")


def group_faces() -> list[Image.Image]:
    """Single-face crops of the group photo (boxes found once with the dlib detector)."""
    photo = group_photo()
    boxes = [
        (67, 283, 175, 390),
        (275, 176, 364, 265),
        (450, 295, 557, 402),
        (724, 367, 832, 474),
        (870, 67, 999, 196),
        (1118, 283, 1226, 390),
    ]
    crops = []
    for left, top, right, bottom in boxes:
        margin = (right - left) // 2
        crops.append(photo.crop((left - margin, top - margin, right + margin, bottom + margin)))
    return crops


encode = encode_mp4


def enrollment_clip(face: Image.Image | None = None, **kwargs) -> bytes:
    return encode(moving_face_frames(face, **kwargs))


def still_clip(face: Image.Image | None = None, count: int = 16) -> bytes:
    """One picture held still: what a photo held up to the camera looks like."""
    frame = moving_face_frames(face, count=1)[0]
    return encode([frame] * count)


def two_faces_clip(count: int = 12) -> bytes:
    faces = group_faces()
    frames = []
    for step in range(count):
        canvas = Image.new("RGB", (360, 320), (120, 130, 140))
        offset = step * 2
        canvas.paste(faces[0].resize((150, 150)), (10 + offset, 80))
        canvas.paste(faces[3].resize((150, 150)), (200 - offset, 90))
        frames.append(np.asarray(canvas))
    return encode(frames)


def no_face_clip(count: int = 12) -> bytes:
    frames = []
    for step in range(count):
        canvas = Image.new("RGB", CANVAS, (30 + step * 8, 120, 200 - step * 5))
        frames.append(np.asarray(canvas))
    return encode(frames)


def tiny_face_clip(count: int = 16) -> bytes:
    return encode(moving_face_frames(count=count, face_px=52))


def blurred_clip(count: int = 16) -> bytes:
    frames = [
        np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(2.0)))
        for frame in moving_face_frames(count=count)
    ]
    return encode(frames)


def dark_clip(count: int = 16) -> bytes:
    """Filmed in a dim room: the whole frame dark."""
    frames = moving_face_frames(count=count)
    return encode([np.asarray(ImageEnhance.Brightness(Image.fromarray(f)).enhance(0.3)) for f in frames])


def switching_identity_clip(count: int = 16) -> bytes:
    """Half the frames one person, half another."""
    first = moving_face_frames(portrait(), count=count // 2)
    second = moving_face_frames(group_faces()[2], count=count - count // 2)
    return encode(first + second)


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    portrait().save(buffer, format="PNG")
    return buffer.getvalue()
