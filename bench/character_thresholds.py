"""The measures behind character enrollment's thresholds (quoted in `cameo/characters.py`), on the
photos scikit-image ships and the portrait bundled in the insightface wheel, and on variants of
them: blurred, darkened, the subject shrunk on a plain or a busy background.

    .venv/bin/python bench/character_thresholds.py

Prints, per image as the analysis sees it (long side 480): faces found by the configured encoder,
mean luminance, subject fraction, sharpness, and whether the frame passes every check; then the
view-embedding distances that MIN_REFERENCE_DISTANCE separates.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for name, value in {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "SECRET_KEY": "bench",
    "DEBUG": "1",
    # nothing here touches the database or the broker
    "DATABASE_URL": "postgresql://unused@localhost:1/unused",
    "REDIS_URL": "redis://localhost:1/0",
}.items():
    os.environ.setdefault(name, value)


def photos() -> dict[str, np.ndarray]:
    from PIL import Image, ImageEnhance, ImageFilter
    from skimage import data

    from tests.media import on_canvas, packaged_photo

    grey = lambda pixels: np.stack([pixels] * 3, axis=-1)  # noqa: E731
    found = {
        "chelsea": data.chelsea(),
        "coffee": data.coffee(),
        "rocket": data.rocket(),
        "astronaut": data.astronaut(),
        "motorcycle": data.stereo_motorcycle()[0],
        "camera": grey(data.camera()),
        "clock": grey(data.clock()),
        "coins": grey(data.coins()),
        "logo": data.logo()[..., :3],
        "hubble_deep_field": data.hubble_deep_field(),
        "retina": data.retina(),
        "immunohistochemistry": data.immunohistochemistry(),
        "portrait (insightface)": packaged_photo("portrait"),
    }
    for name in ("chelsea", "coffee", "rocket", "motorcycle", "hubble_deep_field", "retina", "logo"):
        image = Image.fromarray(np.ascontiguousarray(found[name]))
        for radius in (2, 3):
            found[f"{name} blur {radius} px"] = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)))
        found[f"{name} at 30 %"] = np.asarray(ImageEnhance.Brightness(image).enhance(0.3))
    for side in (60, 100, 150, 200):
        found[f"chelsea {side} px on plain"] = on_canvas(data.chelsea(), subject_px=side)
        found[f"chelsea {side} px on grass"] = _on_texture(data.chelsea(), data.grass(), side)
        found[f"chelsea {side} px on gravel"] = _on_texture(data.chelsea(), data.gravel(), side)
    return found


def _on_texture(subject: np.ndarray, texture: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    canvas = Image.fromarray(texture).convert("RGB").resize((480, 360))
    image = Image.fromarray(subject)
    image.thumbnail((side, side))
    canvas.paste(image, (160, 120))
    return np.asarray(canvas)


def main() -> None:
    import django

    django.setup()
    from cameo import characters
    from cameo.identity import get_encoder
    from tests.media import image_bytes, moving_subject_clip, packaged_photo

    encoder = get_encoder()
    print(f"{'image':<34} {'faces':>5} {'bright':>7} {'subject':>8} {'sharp':>7}  passes")
    for name, pixels in photos().items():
        frame = characters.decode_image(image_bytes(np.ascontiguousarray(pixels)))
        measured = characters.measure(frame, encoder)
        print(
            f"{name:<34} {measured.faces:>5} {measured.brightness:7.1f} {measured.subject.fraction:8.3f} "
            f"{measured.sharpness:7.3f}  {measured.acceptable}"
        )

    cat = packaged_photo("chelsea")
    as_png = characters.view_embedding(characters.decode_image(image_bytes(cat)))
    as_jpeg = characters.view_embedding(characters.decode_image(image_bytes(cat, "JPEG")))
    mirrored = np.ascontiguousarray(cat[:, ::-1][20:290, 60:400])
    closer = characters.view_embedding(characters.decode_image(image_bytes(mirrored)))
    print(f"\nview distance, the cat as PNG and as JPEG: {np.linalg.norm(as_png - as_jpeg):.3f}")
    print(f"view distance, the cat and its mirrored close-up: {np.linalg.norm(as_png - closer):.3f}")
    import tempfile

    from cameo.enrollment import sample_frames

    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "cat.mp4"
        path.write_bytes(moving_subject_clip(cat, seconds=4))
        frames = sample_frames(path, 8)
    crops = []
    for frame in frames:
        left, top, right, bottom = characters.find_subject(frame).box
        crops.append(characters.view_embedding(np.ascontiguousarray(frame[top:bottom, left:right])))
    vectors = np.stack(crops)
    distances = np.linalg.norm(vectors[:, None] - vectors[None], axis=2)[np.triu_indices(len(crops), 1)]
    print(
        f"view distances between the 8 crops of a 4 s clip of the cat: {distances.min():.3f}-{distances.max():.3f}"
    )


if __name__ == "__main__":
    main()
