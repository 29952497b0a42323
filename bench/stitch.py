"""Stitching four 5 s posts into one: the whole job, and where its time goes.

    DATA_DIR=/tmp/stitch-bench .venv/bin/python bench/stitch.py [--repeat 3] [--size 480x720]

Four published posts of 5 s at GENERATION_FPS (pans over bundled photos and drawn scenes from
bench/provenance_corpus.py, encoded as the worker encodes) are stitched by a fifth user through
`request_generation` and `worker.execute_generation`, as the CPU worker runs a stitch: consent and
source checks, decoding and joining (`render_s` in the job's timings), likeness scan, label and
watermark and H.264 encoding (`finish_s`), fingerprints (`fingerprint_s`), storing the draft with
its provenance (`store_s`). Printed: the median of each stage and of the whole job over `--repeat`
stitches, at the service's portrait size (480x720; `--size` for another).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from harness import BASE_DIR, start_django

sys.path.insert(0, str(BASE_DIR / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", default="480x720")
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))
    with ExitStack() as stack:
        start_django(stack, "/tmp/stitch-bench")
        import provenance_corpus as corpus
        from django.conf import settings

        from generation import encoding, services, worker
        from generation.models import Generation, GenerationStatus
        from social.models import User
        from social.services import create_post, register_user

        settings.GENERATION_SIZES = {**settings.GENERATION_SIZES, "9:16": (width, height)}
        fps = settings.GENERATION_FPS

        def user(name: str) -> User:
            from datetime import date

            existing = User.objects.filter(username=name).first()
            return existing or register_user(
                username=name, password="bench-Password-1", birth_date=date(1990, 1, 1)
            )

        authors = [user(f"stitch_author_{index}") for index in range(4)]
        stitcher = user("stitch_bench")
        clips = [
            corpus.photo_pan(corpus.load_photo("coffee.png"), seed=1, size=(width, height), fps=fps),
            corpus.scene(seed=2, size=(width, height), fps=fps),
            corpus.photo_pan(corpus.load_photo("chelsea.png"), seed=3, size=(width, height), fps=fps),
            corpus.scene(seed=4, size=(width, height), fps=fps),
        ]
        posts = []
        with tempfile.TemporaryDirectory() as folder:
            for index, (author, frames) in enumerate(zip(authors, clips, strict=True)):
                path = Path(folder) / f"{index}.mp4"
                path.write_bytes(encoding.encode_mp4(corpus.label(frames, fps=fps), fps=fps))
                posts.append(
                    create_post(author=author, video=str(path), prompt=f"clip {index}", status="published")
                )
        stages: dict[str, list[float]] = {}
        for round_index in range(args.repeat):
            Generation.objects.filter(user=stitcher).update(status=GenerationStatus.CANCELLED)
            job, _ = services.request_generation(
                user=stitcher,
                request=services.GenerationRequest(
                    prompt="",
                    duration_s=0,
                    aspect_ratio="",
                    mode="stitch",
                    source_ids=[post.pk for post in posts],
                ),
                enqueue_job=False,
            )
            clock = time.perf_counter()
            done = worker.execute_generation(job.pk)
            whole = time.perf_counter() - clock
            assert done.status == GenerationStatus.SUCCEEDED, (done.error_code, done.error_message)
            done.refresh_from_db()
            for name, seconds in {**done.timings, "whole_s": whole}.items():
                stages.setdefault(name, []).append(seconds)
            print(f"  round {round_index + 1}: {whole:.2f} s", file=sys.stderr, flush=True)
        print(
            f"4 posts x 5 s at {width}x{height}, {fps} fps ({4 * 5 * fps} frames), median of {args.repeat}:"
        )
        print(
            "  " + "; ".join(f"{name} {statistics.median(values):.3f} s" for name, values in stages.items())
        )


if __name__ == "__main__":
    main()
