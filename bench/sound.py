"""What sound adds to a job's finishing: the same clip finished silent and with a sound track.

    DATA_DIR=/tmp/sound-bench .venv/bin/python bench/sound.py [--repeat 5] [--size 480x720] [--seconds 5]

A clip at GENERATION_FPS (a pan over a bundled photo, bench/provenance_corpus.py) is finished as the
worker finishes a rendered job (`worker.finish_frames`: visible label and watermark; then
`encoding.encode_mp4` with the AIGC tag), once silent and once with a sound track as a model
returns it (16 kHz stereo, as LTX-2's vocoder gives it), which adds `worker.finish_sound` (fit
to the clip, the audible label cue mixed in) and the AAC stream (resampled to 48 kHz, encoded,
muxed). Printed: the median of each over `--repeat` runs and the share of the finishing time that
sound adds. No database or broker is needed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid

import numpy as np
from harness import BASE_DIR, setup_django_without_services

sys.path.insert(0, str(BASE_DIR / "bench"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size", default="480x720")
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    width, height = (int(part) for part in args.size.split("x"))
    setup_django_without_services("/tmp/sound-bench")
    import provenance_corpus as corpus
    from django.conf import settings

    from generation import encoding, labels, worker
    from generation.models import Generation
    from generation.soundtrack import Soundtrack

    fps = settings.GENERATION_FPS
    frames = corpus.photo_pan(
        corpus.load_photo("coffee.png"), seed=1, seconds=args.seconds, size=(width, height), fps=fps
    )
    rate = 16000
    times = np.arange(args.seconds * rate) / rate
    rng = np.random.default_rng(1)
    music = 0.3 * np.sin(2 * np.pi * 220 * times) + 0.05 * rng.standard_normal(len(times))
    track = Soundtrack(np.stack([music, music], axis=1).astype(np.float32), rate)
    job = Generation(content_id=uuid.uuid4(), duration_s=args.seconds, mode="create")
    metadata = {labels.AIGC_KEY: labels.aigc_metadata(content_id=str(job.content_id), producer="bench")}

    def finish(sound: Soundtrack | None) -> dict[str, float]:
        clock = time.perf_counter()
        clip = worker.finish_frames(frames, job)
        picture = time.perf_counter() - clock
        clock = time.perf_counter()
        fitted = worker.finish_sound(sound, len(clip) / fps)
        label = time.perf_counter() - clock
        clock = time.perf_counter()
        encoding.encode_mp4(clip, fps=fps, metadata=metadata, sound=fitted)
        encode = time.perf_counter() - clock
        return {"label_watermark_s": picture, "sound_fit_cue_s": label, "encode_mux_s": encode}

    finish(track)  # warm-up: scipy's resampler and the AAC encoder load once per process
    results: dict[str, dict[str, list[float]]] = {"silent": {}, "with sound": {}}
    for _ in range(args.repeat):
        for name, sound in (("silent", None), ("with sound", track)):
            for stage, seconds in finish(sound).items():
                results[name].setdefault(stage, []).append(seconds)
    totals = {}
    print(f"{args.seconds} s clip at {width}x{height}, {fps} fps, median of {args.repeat}:")
    for name, stages in results.items():
        medians = {stage: statistics.median(values) for stage, values in stages.items()}
        totals[name] = sum(medians.values())
        print(
            f"  {name}: "
            + "; ".join(f"{stage} {value:.3f} s" for stage, value in medians.items())
            + f"; total {totals[name]:.3f} s"
        )
    added = totals["with sound"] - totals["silent"]
    print(f"  sound adds {added:.3f} s: {added / totals['with sound']:.1%} of the finishing time with sound")


if __name__ == "__main__":
    main()
