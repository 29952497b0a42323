"""What the watermark survives: raw bit error rates and decodes per transform, and false reads.

    DATA_DIR=/tmp/provenance-bench .venv/bin/python bench/watermark.py [--unrelated 200]

Five originals at the service's portrait render size (480x720, 30 fps, 5 s): pans over three bundled
photos and two drawn scenes (bench/provenance_corpus.py), with the visible label, marked
with a random content id and encoded as the worker encodes. Each is transformed (libavfilter through
PyAV, re-encoded with libx264 without metadata) and read through `generation.provenance.read_upload`,
the path `POST /provenance/verify` takes. Printed per transform: the raw bit error rate of the coded
bits before the code corrects them (mean and worst over the clips) and how many clips decoded to their
content id's key; then the PSNR of marked against unmarked frames; then how many of the corpus's
unrelated clips (never marked) read as marked: the goal is 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from contextlib import ExitStack

import numpy as np
from harness import BASE_DIR, start_django

sys.path.insert(0, str(BASE_DIR / "bench"))

SIZE = (480, 720)


def transforms():
    import provenance_corpus as corpus

    single = corpus.SINGLE_TRANSFORMS
    return {
        "crf23": single["crf23"],
        "crf35": single["crf35"],
        "scale50": single["scale50"],
        "scale25": single["scale25"],
        "scale50+crf35": single["scale50"].then(single["crf35"]),
        "trim2s": single["trim2s"],
        "trim2s+scale50+crf35": single["trim2s"].then(single["scale50"]).then(single["crf35"]),
        "fps24": single["fps24"],
        "mirror": single["mirror"],
        "crop10": single["crop10"],
        "letterbox": single["letterbox"],
    }


def originals():
    import provenance_corpus as corpus

    for index, name in enumerate(["coffee.png", "astronaut.png", "chelsea.png"]):
        yield f"photo:{name}", corpus.photo_pan(corpus.load_photo(name), seed=index, size=SIZE)
    for seed in (1, 3):
        yield f"scene:{seed}", corpus.scene(seed=seed, size=SIZE)


def bit_errors(reading, coded: np.ndarray) -> float:
    return float(np.mean((reading.soft > 0) != coded))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--unrelated", type=int, default=200)
    args = parser.parse_args()
    with ExitStack() as stack:
        start_django(stack, "/tmp/provenance-bench")
        import provenance_corpus as corpus
        from provenance import tiny_renderer

        from generation import encoding, watermark
        from generation.provenance import read_upload

        table = {name: ([], 0) for name in transforms()}
        psnrs = []
        count = 0
        for clip_index, (name, frames) in enumerate(originals()):
            frames = corpus.label(frames)
            content_id = uuid.uuid4()
            coded = watermark.encode_message(watermark.message_bits(content_id))
            marked = watermark.embed(frames, content_id)
            psnrs.append(10 * np.log10(255**2 / np.mean((marked.astype(np.float64) - frames) ** 2)))
            data = encoding.encode_mp4(marked, fps=corpus.FPS)
            count += 1
            for transform_name, spec in transforms().items():
                reading = read_upload(corpus.transform(data, spec, seed=clip_index)).watermark
                errors, decoded = table[transform_name]
                errors.append(bit_errors(reading, coded))
                table[transform_name] = (errors, decoded + (reading.key == watermark.key_of(content_id)))
            print(f"  {name} done", file=sys.stderr, flush=True)
        print(
            f"{count} clips, 480x720, 30 fps, 5 s; raw bit error rate of the {watermark.CODED_BITS} coded bits"
        )
        print(f"{'copy':<24} {'BER mean':>9} {'BER worst':>10} {'decoded':>8}")
        for transform_name, (errors, decoded) in table.items():
            print(
                f"{transform_name:<24} {statistics.mean(errors):>9.3f} {max(errors):>10.3f} {decoded:>5}/{count}"
            )
        print(f"PSNR marked/unmarked: {min(psnrs):.1f}-{max(psnrs):.1f} dB")

        false_reads, read_count = [], 0
        for clip in corpus.unrelated(tiny_renderer(), count=args.unrelated):
            reading = read_upload(clip.data).watermark
            read_count += 1
            if reading.key is not None:
                false_reads.append(clip.name)
        print(f"unrelated clips read as marked: {len(false_reads)} of {read_count} {false_reads or ''}")


if __name__ == "__main__":
    main()
