"""The distances behind the enrollment thresholds (cameo/enrollment.py, settings CAMEO_*).

    .venv/bin/python bench/cameo_thresholds.py

Runs the dlib encoder over the photos bundled in the insightface wheel and prints cosine distances
between L2-normalised embeddings: the portrait against itself flipped, darkened, brightened, scaled
and rotated (the same face), and the six people of the group photo against each other and against
the portrait (different faces). No database needed.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from cameo.identity import DlibEncoder
    from cameo.sample_media import bundled_images_dir, portrait

    encoder = DlibEncoder()

    def one(image: Image.Image) -> np.ndarray:
        faces = encoder.embed(np.asarray(image.convert("RGB")))
        assert len(faces) == 1, len(faces)
        return faces[0].embedding

    face = portrait()
    variants = {
        "original": face,
        "flipped": ImageOps.mirror(face),
        "darker x0.6": ImageEnhance.Brightness(face).enhance(0.6),
        "brighter x1.4": ImageEnhance.Brightness(face).enhance(1.4),
        "scaled x2": face.resize((224, 224), Image.BICUBIC),
        "x1.5, rotated 8 deg": face.resize((168, 168)).rotate(8, fillcolor=(128, 128, 128)),
    }
    same = {name: one(image) for name, image in variants.items()}
    same_distances = [float(1 - a @ b) for a, b in itertools.combinations(same.values(), 2)]
    group = encoder.embed(np.asarray(Image.open(bundled_images_dir() / "t1.jpg").convert("RGB")))
    people = [item.embedding for item in group]
    between = [float(1 - a @ b) for a, b in itertools.combinations(people, 2)]
    to_portrait = [float(1 - same["original"] @ person) for person in people]
    print(f"encoder {encoder.name} ({encoder.version}), cosine distance = 1 - a.b of unit embeddings")
    for name, embedding in same.items():
        print(f"  portrait vs {name:<22} {float(1 - same['original'] @ embedding):.4f}")
    print(f"same face, any two variants:   {min(same_distances):.4f} - {max(same_distances):.4f}")
    print(f"group photo: {len(people)} faces; between them: {min(between):.4f} - {max(between):.4f}")
    print(f"group faces vs the portrait:   {min(to_portrait):.4f} - {max(to_portrait):.4f}")
    print(
        f"gap: largest same {max(same_distances):.4f} < smallest different {min(min(between), min(to_portrait)):.4f}"
    )


if __name__ == "__main__":
    main()
