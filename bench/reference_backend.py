"""The reference-to-video backend's overhead outside the pipeline call, against ConsisID's.

    DATA_DIR=/tmp/generation-bench .venv/bin/python bench/reference_backend.py --jobs 200

In-process, no database: it loads the configured renderer (tiny unless GENERATION_BACKEND says
otherwise) once and times `Renderer.generate` for jobs that differ only in their cameos:

- consisid: one person (an identity with a 128-d template, as the dlib encoder gives, and a face
  crop), routed to ConsisIDPipeline;
- reference xN: N cameos (N = 1, 2, 3; one reference image each), routed to WanVACEPipeline.

Each pipeline call is replayed (`ReplayPipe`): the first call of each kind runs the real pipeline,
later ones return its output at once, so the time of `generate` is its overhead alone (routing,
prompt encoding, identity conditioning, image conversion, frames to uint8). Every job has a new
prompt (the prompt cache misses, as in production); the cameos repeat (the identity cache hits
after the first job), and a second pass clears the caches before every job (first use of a cameo).
The kinds run alternately, job by job, so a busy machine slows them alike; the median and the
minimum over the jobs are printed with the ratios reference / consisid.
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import contextmanager

from harness import setup_django_without_services


class ReplayPipe:
    """Stands in for a loaded pipeline's `__call__`: the first call runs the real pipeline (and is
    timed), later calls return that output at once, so a job's time is its overhead alone and a
    burst of other work on the machine spoils one sample, not a whole render's worth. Everything
    else (the text encoder, the tokenizer, the transformer's config) is the real pipeline's."""

    def __init__(self, pipe):
        self.pipe = pipe
        self.output = None
        self.real_call_s = 0.0

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def __call__(self, **inputs):
        if self.output is None:
            clock = time.perf_counter()
            self.output = self.pipe(**inputs)
            self.real_call_s = time.perf_counter() - clock
        return self.output


@contextmanager
def replaying(backend, replay: ReplayPipe):
    backend.pipe = replay
    try:
        yield
    finally:
        backend.pipe = replay.pipe


def faces(count: int):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(60, 200, size=(112, 112, 3), dtype=np.uint8)) for _ in range(count)]


def requests_for(kind: str, prompt: str, seed: int, images):
    import numpy as np
    from django.conf import settings

    from generation.backends import IdentityInput, ReferenceImage, RenderRequest

    width, height = settings.GENERATION_SIZES["9:16"]
    base = {
        "prompt": prompt,
        "seed": seed,
        "width": width,
        "height": height,
        "num_frames": settings.GENERATION_MAX_FRAMES,
        "num_inference_steps": settings.GENERATION_STEPS,
    }
    if kind == "consisid":
        embedding = np.random.default_rng(1).standard_normal(128).astype(np.float32)
        identity = IdentityInput("bench-0", 1, embedding, "dlib", images[0])
        references = (ReferenceImage("bench-0", "person", images[0]),)
        return RenderRequest(**base, identity=identity, references=references)
    count = int(kind.removeprefix("reference x"))
    references = tuple(ReferenceImage(f"bench-{i}", "person", images[i]) for i in range(count))
    return RenderRequest(**base, references=references)


def overhead(renderer, request, *, clear_caches: bool) -> float:
    backend = renderer.backend_for(request)
    if clear_caches:
        backend.prompt_cache.clear()
        if hasattr(backend, "identity_cache"):
            backend.identity_cache.clear()
    clock = time.perf_counter()
    renderer.generate(request)
    return time.perf_counter() - clock


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args()
    setup_django_without_services("/tmp/generation-bench")
    from generation.backends import renderer_from_settings, route

    renderer = renderer_from_settings()
    kinds = ["consisid", "reference x1", "reference x2", "reference x3"]
    images = faces(3)
    replays = {}
    for kind in kinds:  # one real render per kind: its output is replayed, and the caches warm
        request = requests_for(kind, "warm-up", 0, images)
        replays[kind] = ReplayPipe(renderer.backend_for(request).pipe)
        with replaying(renderer.backend_for(request), replays[kind]):
            renderer.generate(request)
    results = {}
    for clear_caches in (False, True):
        samples = {kind: [] for kind in kinds}
        for index in range(args.jobs):
            for kind in kinds:
                prompt = f"a kite festival on a windy beach, take {index} ({clear_caches}) {time.time()}"
                request = requests_for(kind, prompt, index, images)
                assert route(request) == ("identity" if kind == "consisid" else "reference")
                with replaying(renderer.backend_for(request), replays[kind]):
                    samples[kind].append(overhead(renderer, request, clear_caches=clear_caches))
        results[clear_caches] = samples

    print(f"{args.jobs} jobs per backend and pass, backend {renderer.name}, 9:16")
    for clear_caches, samples in results.items():
        print("caches cleared before every job" if clear_caches else "caches kept (cameos repeat)")
        print("                outside the pipeline call (ms)   / consisid's    the call itself (s)")
        print("                median    minimum                median  min")
        base = {how: pick(samples["consisid"]) for how, pick in SUMMARIES.items()}
        for kind in kinds:
            outside = {how: pick(samples[kind]) for how, pick in SUMMARIES.items()}
            print(
                f"  {kind:<13} {outside['median'] * 1000:7.2f}  {outside['minimum'] * 1000:7.2f}"
                f"                {outside['median'] / base['median']:5.2f}  {outside['minimum'] / base['minimum']:5.2f}"
                f"    {replays[kind].real_call_s:6.3f}"
            )


# The minimum is the least disturbed by other work on a shared machine; the median is typical.
SUMMARIES = {"median": statistics.median, "minimum": min}


if __name__ == "__main__":
    main()
