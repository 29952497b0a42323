"""End-to-end enrollment of a 10 s 720p clip, and the share of time spent outside the encoder.

    DATA_DIR=/tmp/cameo-bench-enroll .venv/bin/python bench/cameo_enrollment.py --templates 100000

Builds (once, cached in DATA_DIR) a 10 s 1280x720 30 fps H.264 clip of the bundled portrait moving,
scaled and re-lit; seeds `--templates` stored templates of the configured encoder; then, `--runs`
times, uploads it through `cameo.services.start_enrollment` and runs the task body
(`cameo.services.enroll`): decode sampled frames (PyAV), detect and embed (the encoder), the rules
and aggregation, the likeness search over the stored templates (HNSW), the face crop and the row.
The cameo is erased after each run so that every run takes the activating path.

It prints, per stage (median over runs), the seconds and the share of the total; "outside the
encoder" is everything but `encoder.embed`.
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
from harness import start_django


def clip_720p(path: Path) -> bytes:
    if path.exists():
        return path.read_bytes()
    from PIL import Image, ImageEnhance

    from cameo.sample_media import encode_mp4, portrait

    face = portrait()
    frames = []
    count = 300
    for step in range(count):
        phase = step / (count - 1)
        size = int(300 * (0.9 + 0.2 * phase))
        lit = ImageEnhance.Brightness(face.resize((size, size), Image.BICUBIC)).enhance(0.85 + 0.35 * phase)
        canvas = Image.new("RGB", (1280, 720), (100 + step % 30, 110, 125))
        canvas.paste(
            lit,
            (
                int((1280 - size) * (0.2 + 0.6 * phase)),
                int((720 - size) * (0.3 + 0.3 * np.sin(phase * np.pi))),
            ),
        )
        frames.append(np.asarray(canvas))
    data = encode_mp4(frames, fps=30)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


class Stopwatch:
    """Wraps a callable and adds up the seconds spent in it."""

    def __init__(self, function):
        self.function, self.seconds = function, 0.0

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with ExitStack() as stack:
        start_django(stack, "/tmp/cameo-bench-enroll")
        from django.core.files.uploadedfile import SimpleUploadedFile

        from cameo import enrollment, services
        from cameo.identity import get_encoder
        from cameo.models import CameoStatus
        from social.models import User

        encoder = get_encoder()
        seed_templates(
            args.templates, encoder_name=encoder.name, dim=encoder.dim, encoder_version=encoder.version
        )
        data = clip_720p(Path(os.environ.get("DATA_DIR", "/tmp/cameo-bench-enroll")) / "clip-720p.mp4")
        owner, _ = User.objects.get_or_create(
            username="bench-enroller", defaults={"birth_date": "1990-01-01"}
        )
        embed = encoder.embed = Stopwatch(type(encoder).embed.__get__(encoder))
        decode = enrollment.sample_frames = Stopwatch(enrollment.sample_frames)
        search = services.nearest_claimed_likeness = Stopwatch(services.nearest_claimed_likeness)
        rows = []
        for run in range(args.runs + 1):
            embed.seconds = decode.seconds = search.seconds = 0.0
            started = time.perf_counter()
            cameo = services.start_enrollment(
                owner=owner,
                video=SimpleUploadedFile("clip.mp4", data, content_type="video/mp4"),
                display_name="bench",
                enqueue=False,
            )
            uploaded = time.perf_counter()
            cameo = services.enroll(cameo_id=cameo.pk)
            total = time.perf_counter() - started
            assert cameo.status == CameoStatus.ACTIVE, cameo.rejection_reason
            services.erase_cameo(actor=None, cameo=cameo)
            if run == 0:
                continue  # warm-up: loads the models
            rows.append(
                {
                    "total": total,
                    "upload check + store": uploaded - started,
                    "decode sampled frames": decode.seconds,
                    "encoder (detect + embed)": embed.seconds,
                    "likeness search": search.seconds,
                    "rules, aggregate, crop, row": total
                    - (uploaded - started)
                    - decode.seconds
                    - embed.seconds
                    - search.seconds,
                }
            )
        print(
            f"{len(data) / 1e6:.1f} MB 10 s 1280x720 clip, {args.templates} stored templates, {args.runs} runs"
        )
        total = statistics.median(row["total"] for row in rows)
        for name in rows[0]:
            seconds = statistics.median(row[name] for row in rows)
            print(f"{name:<28} {seconds:8.3f} s {100 * seconds / total:6.1f} %")
        outside = statistics.median(row["total"] - row["encoder (detect + embed)"] for row in rows)
        print(f"{'outside the encoder':<28} {outside:8.3f} s {100 * outside / total:6.1f} %")


if __name__ == "__main__":
    main()
