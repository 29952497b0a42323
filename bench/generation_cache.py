"""Speed-up of the prompt-embedding and identity-conditioning caches on a remix-like chain.

    DATA_DIR=/tmp/generation-bench .venv/bin/python bench/generation_cache.py --chain 10

In-process, no database: it loads the configured backend (tiny unless GENERATION_BACKEND says
otherwise) once, then renders a chain of `--chain` jobs like a remix relay: every job stars the same
cameo (an identity with a 128-d template, as the dlib encoder gives, and a face crop), each prompt is
composed from the previous one and a new instruction (`remix.composition.compose_remix_prompt`),
and the chain is then rendered a second time with other seeds (the variants a creator asks for).

It runs the whole thing twice, alternating, best of `--repeat`:
- caches off: both caches cleared before every job (what a worker without them does);
- caches on: the caches kept for the worker's life.

It prints the seconds spent building conditioning (text encoder + face vision tower) and the
seconds per job overall, with the ratio off/on.
"""

from __future__ import annotations

import argparse
import time

from harness import setup_django_without_services


def chain_prompts(length: int) -> list[str]:
    from remix.composition import compose_remix_prompt

    instructions = [
        "a fox finds a glowing map in the forest",
        "the fox follows the map to a river",
        "a heron offers the fox a ride",
        "they cross the river at night",
        "the map leads to a hidden city",
        "the city's lights go out",
        "the fox relights the lanterns",
        "the heron flies home at dawn",
        "the fox draws a new map",
        "the new map shows the sea",
    ]
    prompts = [instructions[0]]
    for index in range(1, length):
        prompts.append(
            compose_remix_prompt(
                source_prompt=prompts[-1],
                instruction=instructions[index % len(instructions)],
                mode="continue",
            )
        )
    return prompts


def run(renderer, prompts, identity, *, caches: bool):
    from django.conf import settings

    from generation.backends import RenderRequest

    backend = renderer.identity_backend
    backend.prompt_cache.clear()
    backend.identity_cache.clear()
    conditioning = 0.0
    started = time.perf_counter()
    jobs = 0
    for variant in range(2):
        for index, prompt in enumerate(prompts):
            if not caches:
                backend.prompt_cache.clear()
                backend.identity_cache.clear()
            request = RenderRequest(
                prompt=prompt,
                seed=index + 100 * variant,
                width=settings.GENERATION_SIZES["9:16"][0],
                height=settings.GENERATION_SIZES["9:16"][1],
                num_frames=settings.GENERATION_MAX_FRAMES,
                num_inference_steps=settings.GENERATION_STEPS,
                identity=identity,
            )
            clock = time.perf_counter()
            backend.identity_conditioning(request)
            backend._encode_prompt(
                backend.pipe, backend.model_id, request, backend.config.max_sequence_length
            )
            conditioning += time.perf_counter() - clock
            renderer.generate(request)
            jobs += 1
    total = time.perf_counter() - started
    return {
        "conditioning_s": conditioning,
        "per_job_s": total / jobs,
        "prompt_hits": backend.prompt_cache.hits,
        "identity_hits": backend.identity_cache.hits,
        "jobs": jobs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chain", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    setup_django_without_services("/tmp/generation-bench")
    import numpy as np
    from PIL import Image

    from generation.backends import IdentityInput, renderer_from_settings

    renderer = renderer_from_settings()
    rng = np.random.default_rng(0)
    identity = IdentityInput(
        cameo_id="bench",
        template_version=1,
        embedding=rng.standard_normal(128).astype(np.float32),
        encoder="dlib",
        face_crop=Image.fromarray(rng.integers(60, 200, size=(112, 112, 3), dtype=np.uint8)),
    )
    prompts = chain_prompts(args.chain)
    run(renderer, prompts[:2], identity, caches=True)  # warm-up
    best = {}
    for _ in range(args.repeat):
        for caches in (False, True):
            figures = run(renderer, prompts, identity, caches=caches)
            if caches not in best or figures["per_job_s"] < best[caches]["per_job_s"]:
                best[caches] = figures
    off, on = best[False], best[True]
    print(f"chain of {args.chain} prompts rendered twice ({on['jobs']} jobs), backend {renderer.name}")
    print(
        f"conditioning  off {off['conditioning_s']:.3f} s  on {on['conditioning_s']:.3f} s  speed-up {off['conditioning_s'] / on['conditioning_s']:.1f}x"
    )
    print(
        f"per job       off {off['per_job_s']:.3f} s  on {on['per_job_s']:.3f} s  speed-up {off['per_job_s'] / on['per_job_s']:.2f}x"
    )


if __name__ == "__main__":
    main()
