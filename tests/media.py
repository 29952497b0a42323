"""Media made by the tests themselves: tiny H.264 MP4 clips encoded with PyAV."""

from __future__ import annotations

import io
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


# --- photos that packages ship, for character cameos -------------------------------------------


def packaged_photo(name: str = "chelsea") -> np.ndarray:
    """An RGB photo bundled with scikit-image (`chelsea`: a cat, `coffee`, `rocket`, `astronaut`:
    a person), or `portrait`: the face bundled in the insightface wheel."""
    if name == "portrait":
        from cameo.sample_media import portrait

        return np.asarray(portrait())
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)()[..., :3])


def image_bytes(pixels: np.ndarray, image_format: str = "PNG") -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def on_canvas(
    subject: np.ndarray,
    *,
    subject_px: int,
    canvas: tuple[int, int] = (480, 360),
    at=(0.35, 0.3),
    background=(120, 130, 140),
) -> np.ndarray:
    """`subject` shrunk to fit `subject_px` and pasted on a plain canvas (width, height) at `at`
    (fractions of the free room)."""
    from PIL import Image

    image = Image.fromarray(subject)
    image.thumbnail((subject_px, subject_px))
    frame = Image.new("RGB", canvas, background)
    frame.paste(image, (int((canvas[0] - image.width) * at[0]), int((canvas[1] - image.height) * at[1])))
    return np.asarray(frame)


def moving_subject_frames(
    subject: np.ndarray, *, seconds: float, fps: int = 8, canvas=(320, 240), subject_px: int = 220
) -> list[np.ndarray]:
    """A subject wandering over a plain canvas and growing a little: a pet filmed for a moment."""
    count = max(1, round(seconds * fps))
    frames = []
    for step in range(count):
        phase = step / max(1, count - 1)
        frames.append(
            on_canvas(
                subject,
                subject_px=int(subject_px * (0.85 + 0.3 * phase)),
                canvas=canvas,
                at=(0.1 + 0.8 * phase, 0.5 + 0.4 * np.sin(phase * np.pi * 2)),
            )
        )
    return frames


def moving_subject_clip(subject: np.ndarray, *, seconds: float, fps: int = 8, **kwargs) -> bytes:
    """An MP4 (H.264) of `moving_subject_frames`."""
    from core.video import encode_video

    return encode_video(moving_subject_frames(subject, seconds=seconds, fps=fps, **kwargs), fps=fps)
