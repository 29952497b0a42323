"""A character's enrollment against a person's, each from a 10 s 720p clip, in the same run.

    DATA_DIR=/tmp/cameo-bench-enroll .venv/bin/python bench/character_enrollment.py --runs 5

The person clip is `cameo_enrollment.py`'s (the bundled portrait moving, scaled and re-lit); the
character clip is scikit-image's cat moving and scaled the same way over a 1280x720 canvas, 30 fps
(both built once, cached in DATA_DIR). Each run uploads both through
`cameo.services.start_enrollment` and runs the task body (`cameo.services.enroll`), alternating
which goes first, then erases them. The person's path: decode 8 sampled frames, detect and embed
the face in each (the encoder), the rules, the likeness search over `--templates` stored
templates, the crop and the row. The character's: decode the same 8 frames, look for a human
face in each (the same encoder), saliency, sharpness, the references chosen and stored, the row.

It prints per stage the median seconds over the runs, and the ratio character / person (goal:
at most 1.0).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from cameo_common import seed_templates
from cameo_enrollment import Stopwatch, clip_720p
from harness import start_django


def cat_clip_720p(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes()
    from PIL import Image, ImageEnhance
    from skimage import data

    from cameo.sample_media import encode_mp4

    cat = Image.fromarray(data.chelsea())
    frames = []
    count = 300
    for step in range(count):
        phase = step / (count - 1)
        width = int(600 * (0.9 + 0.2 * phase))
        size = (width, int(width * cat.height / cat.width))
        lit = ImageEnhance.Brightness(cat.resize(size, Image.BICUBIC)).enhance(0.85 + 0.35 * phase)
        canvas = Image.new("RGB", (1280, 720), (100 + step % 30, 110, 125))
        canvas.paste(
            lit,
            (
                int((1280 - size[0]) * (0.2 + 0.6 * phase)),
                int((720 - size[1]) * (0.3 + 0.3 * np.sin(phase * np.pi))),
            ),
        )
        frames.append(np.asarray(canvas))
    encoded = encode_mp4(frames, fps=30)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encoded)
    return encoded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--templates", type=int, default=0, help="stored templates the person is searched among"
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        start_django(stack, "/tmp/cameo-bench-enroll")
        from django.core.files.uploadedfile import SimpleUploadedFile

        from cameo import characters, enrollment, services
        from cameo.identity import get_encoder
        from cameo.models import Cameo, CameoStatus, ReleasedHandle
        from social.models import User

        encoder = get_encoder()
        if args.templates:
            seed_templates(
                args.templates, encoder_name=encoder.name, dim=encoder.dim, encoder_version=encoder.version
            )
        folder = Path(os.environ.get("DATA_DIR", "/tmp/cameo-bench-enroll"))
        clips = {
            "person": clip_720p(folder / "clip-720p.mp4"),
            "character": cat_clip_720p(folder / "cat-720p.mp4"),
        }
        owner, _ = User.objects.get_or_create(
            username="bench-enroller", defaults={"birth_date": "1990-01-01"}
        )
        embed = encoder.embed = Stopwatch(type(encoder).embed.__get__(encoder))
        decode = enrollment.sample_frames = Stopwatch(enrollment.sample_frames)
        search = services.nearest_claimed_likeness = Stopwatch(services.nearest_claimed_likeness)
        measure = characters.find_subject = Stopwatch(characters.find_subject)

        def enroll_once(kind: str) -> dict[str, float]:
            for stopwatch in (embed, decode, search, measure):
                stopwatch.seconds = 0.0
            started = time.perf_counter()
            cameo = services.start_enrollment(
                owner=owner,
                kind=kind,
                video=SimpleUploadedFile("clip.mp4", clips[kind], content_type="video/mp4"),
                display_name=f"bench {kind}",
                enqueue=False,
            )
            uploaded = time.perf_counter()
            cameo = services.enroll(cameo_id=cameo.pk)
            total = time.perf_counter() - started
            assert cameo.status == CameoStatus.ACTIVE, (kind, cameo.rejection_reason)
            services.erase_cameo(actor=None, cameo=cameo)
            return {
                "total": total,
                "upload check + store": uploaded - started,
                "decode sampled frames": decode.seconds,
                "encoder (detect [+ embed])": embed.seconds,
                "likeness search": search.seconds,
                "subject saliency": measure.seconds,
                "rules, crops, storage, row": total
                - (uploaded - started)
                - decode.seconds
                - embed.seconds
                - search.seconds
                - measure.seconds,
            }

        rows: dict[str, list[dict[str, float]]] = {"person": [], "character": []}
        for run in range(args.runs + 1):
            order = ("person", "character") if run % 2 else ("character", "person")
            for kind in order:
                row = enroll_once(kind)
                if run:  # the first round is a warm-up: it loads the models
                    rows[kind].append(row)
        Cameo.objects.filter(owner=owner).delete()
        ReleasedHandle.objects.filter(owner=owner).delete()

        print(
            f"10 s 1280x720 30 fps clips ({len(clips['person']) / 1e6:.1f} MB person, "
            f"{len(clips['character']) / 1e6:.1f} MB character), {args.templates} stored templates, "
            f"{args.runs} runs, median seconds"
        )
        print(f"{'stage':<30} {'person':>8} {'character':>10} {'ratio':>7}")
        for name in rows["person"][0]:
            person = statistics.median(row[name] for row in rows["person"])
            character = statistics.median(row[name] for row in rows["character"])
            ratio = f"{character / person:7.2f}" if person > 0.001 else f"{'-':>7}"
            print(f"{name:<30} {person:8.3f} {character:10.3f} {ratio}")


if __name__ == "__main__":
    main()
