"""Verification clips made from the face photos bundled in the insightface wheel, for the demo.

A clip moves, scales and re-lights one face over a plain background, as a person filming
themselves would, so it passes enrollment's liveness and consistency rules.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

from core.video import encode_video

CANVAS = (240, 320)  # width, height


def bundled_images_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("insightface")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "images"


def portrait() -> Image.Image:
    """One face, 112x112."""
    return Image.open(bundled_images_dir() / "Tom_Hanks_54745.png").convert("RGB")


def encode_mp4(frames: list[np.ndarray], *, fps: int = 8, container: str = "mp4") -> bytes:
    return encode_video(frames, fps=fps, container=container)


def moving_face_frames(
    face: Image.Image | None = None, *, count: int = 16, face_px: int = 130, light=(0.85, 1.2)
) -> list[np.ndarray]:
    face = face or portrait()
    frames = []
    for step in range(count):
        phase = step / max(1, count - 1)
        size = int(face_px * (0.9 + 0.2 * phase))
        gain = light[0] + (light[1] - light[0]) * phase
        lit = ImageEnhance.Brightness(face.resize((size, size), Image.BICUBIC)).enhance(gain)
        shade = 90 + (step * 7) % 40
        canvas = Image.new("RGB", CANVAS, (shade, shade + 10, shade + 20))
        left = int((CANVAS[0] - size) * (0.3 + 0.4 * phase))
        top = int((CANVAS[1] - size) * (0.35 + 0.2 * np.sin(phase * np.pi)))
        canvas.paste(lit, (left, top))
        frames.append(np.asarray(canvas))
    return frames


def verification_clip(face: Image.Image | None = None, **kwargs) -> bytes:
    return encode_mp4(moving_face_frames(face, **kwargs))
