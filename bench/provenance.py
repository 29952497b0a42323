"""Provenance by fingerprints: recall per transform, false positives, cost at the worker, latency.

    DATA_DIR=/tmp/provenance-bench .venv/bin/python bench/provenance.py recall
    DATA_DIR=/tmp/provenance-bench .venv/bin/python bench/provenance.py cost
    DATA_DIR=/tmp/provenance-bench .venv/bin/python bench/provenance.py latency --posts 10000 100000

Without DATABASE_URL it starts the embedded PostgreSQL and Redis in DATA_DIR and migrates.

- recall: stores the corpus's originals (bench/provenance_corpus.py) as posts with the worker's
  fingerprints, then asks `generation.selectors.fingerprint_match` about every transformed copy
  (the fingerprint path alone: no metadata or watermark is read) and about the unrelated clips;
  prints found/total per transform and the false positives. `--dump FILE` keeps every upload's
  hits, to replay `fingerprints.decide` with other thresholds.
- cost: at 480x720, 5 s at GENERATION_FPS, the worker's finishing stages (visible label,
  watermark, H.264 encode) against `fingerprints.fingerprint_frames` on the same clip.
- latency: adds synthetic posts (hashes walking from a random start, as many rows per post as a 5 s post stores, kept
  between runs) up to each `--posts` count, without the HNSW index, then builds it; times the
  index search (one statement, against one ORM query per hash), the path to a fingerprint match (one
  decoding pass, then hashing, search and vote) and the whole
  `POST /provenance/verify` for a 10 s upload (a 480x720 post scaled to 50%, 30 fps) that is one of them.
- recall `--transforms` / `--unrelated-kinds`: a quicker subset of the corpus.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from harness import BASE_DIR, start_django

sys.path.insert(0, str(BASE_DIR / "bench"))


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def bench_user():
    from datetime import date

    from social.models import User
    from social.services import register_user

    user = User.objects.filter(username="bench_provenance").first()
    return user or register_user(
        username="bench_provenance", password="bench-Password-1", birth_date=date(1990, 1, 1)
    )


def store_post(user, clip) -> int:
    """The clip as a published post with the worker's fingerprints of its frames."""
    from generation import fingerprints, services
    from social.services import create_post

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "clip.mp4"
        path.write_bytes(clip.data)
        post = create_post(author=user, video=str(path), status="published", content_id=uuid.uuid4())
    services.record_fingerprints(
        post_id=post.pk, fingerprints=fingerprints.fingerprint_frames(clip.frames, fps=clip.fps)
    )
    return post.pk


def tiny_renderer():
    from generation.backends import Renderer, config_from_settings

    config, name = config_from_settings()
    return Renderer.load(config, name=name)


def recall(args) -> None:
    import provenance_corpus as corpus

    from generation import fingerprints, selectors
    from social.models import Post

    user = bench_user()
    Post.objects.filter(author=user).delete()
    renderer = tiny_renderer()
    started = time.perf_counter()
    cases = []  # (expected post id or None, transform or kind, upload hashes)
    for clip in corpus.originals(renderer):
        post_id = store_post(user, clip)
        for name, spec in corpus.TRANSFORMS.items():
            if args.transforms and name not in args.transforms:
                continue
            copy = corpus.transform(clip.data, spec, seed=post_id)
            cases.append((post_id, name, fingerprints.fingerprint_upload(copy)))
    print(f"originals and copies made in {time.perf_counter() - started:.0f} s", flush=True)
    kinds = set(args.unrelated_kinds) if args.unrelated_kinds else None
    for clip in corpus.unrelated(renderer, count=args.unrelated, kinds=kinds):
        cases.append((None, clip.kind, fingerprints.fingerprint_upload(clip.data)))
    print(f"corpus made in {time.perf_counter() - started:.0f} s", flush=True)
    durations = dict(Post.objects.filter(author=user).values_list("pk", "duration_s"))
    found: dict[str, list[int]] = {}
    scores: dict[str, list[float]] = {}
    false_positives: dict[str, int] = {}
    unrelated_counts: dict[str, int] = {}
    dump = []
    for expected, name, upload in cases:
        match = selectors.fingerprint_match(upload)
        if args.dump:
            dump.append((expected, name, upload, selectors.fingerprint_hits(fingerprints.queries(upload))))
        if expected is not None:
            found.setdefault(name, []).append(int(match is not None and match.post_id == expected))
            if match is not None and match.post_id == expected:
                scores.setdefault(name, []).append(match.score)
        else:
            unrelated_counts[name] = unrelated_counts.get(name, 0) + 1
            false_positives[name] = false_positives.get(name, 0) + int(match is not None)
    if args.dump:
        with open(args.dump, "wb") as handle:
            pickle.dump({"cases": dump, "durations": durations}, handle)
    print(f"\n{'transform':18s} found  mean score")
    for name, hits in found.items():
        mean = statistics.mean(scores[name]) if scores.get(name) else 0.0
        print(f"{name:18s} {sum(hits)}/{len(hits)}   {mean:.2f}")
    total = sum(sum(hits) for hits in found.values())
    print(f"all copies: {total}/{sum(len(hits) for hits in found.values())} found")
    print(
        f"false positives: {sum(false_positives.values())} of {sum(unrelated_counts.values())} unrelated clips "
        + ", ".join(f"{kind} {false_positives[kind]}/{count}" for kind, count in unrelated_counts.items())
    )


def cost(args) -> None:
    import provenance_corpus as corpus
    from django.conf import settings

    from generation import encoding, fingerprints, labels, watermark

    fps = settings.GENERATION_FPS
    frames = corpus.scene(seed=7, seconds=5, size=(480, 720), fps=fps)
    content_id = uuid.uuid4()
    stages: dict[str, list[float]] = {"label": [], "watermark": [], "encode": [], "fingerprints": []}
    for _ in range(args.repeat):
        clock = time.perf_counter()
        clip = labels.stamp_visible_label(frames, fps=fps, platform_mark="Reelforge")
        stages["label"].append(time.perf_counter() - clock)
        clock = time.perf_counter()
        clip = watermark.embed(clip, content_id)
        stages["watermark"].append(time.perf_counter() - clock)
        clock = time.perf_counter()
        encoding.encode_mp4(clip, fps=fps)
        stages["encode"].append(time.perf_counter() - clock)
        clock = time.perf_counter()
        fingerprints.fingerprint_frames(clip, fps=fps)
        stages["fingerprints"].append(time.perf_counter() - clock)
    median = {name: statistics.median(values) for name, values in stages.items()}
    total = sum(median.values())
    print(f"480x720, 5 s at {fps} fps ({len(frames)} frames), median of {args.repeat}:")
    print("  " + "; ".join(f"{name} {seconds:.3f} s" for name, seconds in median.items()))
    print(f"  fingerprints / finishing time with them: {median['fingerprints'] / total:.1%}")
    print(
        f"  fingerprints / (label + encode + fingerprints), without the watermark: "
        f"{median['fingerprints'] / (total - median['watermark']):.1%}"
    )


# Bits between a synthetic post's consecutive stored hashes (250 ms apart); the corpus's originals
# measure a median of 64-68 bits between neighbouring samples (10th-90th percentiles 32-89).
SYNTHETIC_STEP_BITS = 64


def add_synthetic_posts(user, target: int) -> None:
    """Posts (rows only, no files) with synthetic hashes, until the bench user has `target` posts."""
    from django.db import connection
    from django.utils import timezone

    from generation import fingerprints
    from social.models import Post

    have = Post.objects.filter(author=user).count()
    rng = np.random.default_rng(have)
    samples = 5000 // fingerprints.SAMPLE_MS
    while have < target:
        batch = min(5000, target - have)
        synthetic = [
            Post(
                author=user,
                status="published",
                published_at=timezone.now(),
                video="bench/synthetic.mp4",
                duration_s=5.0,
                prompt="synthetic",
            )
            for _ in range(batch)
        ]
        posts = Post.objects.bulk_create(synthetic, batch_size=1000)
        # Like a real post's, consecutive frames' hashes are near each other: each region's hash
        # walks from a random start, SYNTHETIC_STEP_BITS bits apart on average per sample (uniformly
        # random hashes would be the HNSW graph's worst case, not a video library's).
        bits = rng.integers(0, 2, size=(batch, 1, len(fingerprints.REGIONS), 256), dtype=np.uint8)
        flips = rng.random((batch, samples - 1, len(fingerprints.REGIONS), 256)) < SYNTHETIC_STEP_BITS / 256
        walk = np.bitwise_xor.accumulate(np.concatenate([bits, flips.astype(np.uint8)], axis=1), axis=1)
        # '0'/'1' text of every hash at once: building 256-character strings bit by bit in Python
        # made the 100k-post setup take longer than everything else.
        text = walk + 48
        hashes = text.reshape(-1, 256).view("S256").ravel()
        keys = (
            (post.pk, sample * fingerprints.SAMPLE_MS, region)
            for post in posts
            for sample in range(samples)
            for region in fingerprints.REGIONS
        )
        lines = b"".join(
            b"%d\t%d\t%d\t%s\t100\n" % (post_id, at_ms, region, bits)
            for (post_id, at_ms, region), bits in zip(keys, hashes, strict=True)
        )
        columns = "post_id, at_ms, region_pct, hash, quality"
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY generation_contentfingerprint ({columns}) FROM STDIN") as copy,
        ):
            copy.write(lines)
        have += batch
        print(f"  {have} posts", file=sys.stderr, flush=True)


def drop_index() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS content_fingerprint_hnsw")


def build_index() -> float:
    """The migration's HNSW index, built over all rows; seconds taken."""
    from django.db import connection

    clock = time.perf_counter()
    with connection.cursor() as cursor:
        # The graph of 4M hashes needs about 2 GB; once it outgrows this the build slows down severalfold.
        cursor.execute("SET maintenance_work_mem = '6GB'")
        cursor.execute(
            "CREATE INDEX content_fingerprint_hnsw ON generation_contentfingerprint "
            "USING hnsw (hash bit_hamming_ops) WITH (m = 16, ef_construction = 64)"
        )
        cursor.execute("ANALYZE generation_contentfingerprint")
    return time.perf_counter() - clock


def hits_one_query_per_hash(queries):
    """The baseline for `selectors.fingerprint_hits`: the same search as one ORM query per hash."""
    from django.db import connection, transaction
    from pgvector.django import HammingDistance

    from generation import fingerprints, selectors
    from generation.models import ContentFingerprint

    hits = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(selectors.FINGERPRINT_EF_SEARCH)}")
        for query in queries:
            rows = (
                ContentFingerprint.objects.annotate(distance=HammingDistance("hash", query.bits))
                .order_by("distance")
                .values_list("post_id", "at_ms", "distance")[: fingerprints.NEIGHBOURS]
            )
            hits.extend(
                fingerprints.Hit(query.at_ms, query.mirrored, post_id, at_ms, int(distance))
                for post_id, at_ms, distance in rows
            )
    return hits


def uses_index(queries) -> bool:
    from django.db import connection, transaction

    from generation import fingerprints, selectors

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN " + selectors.NEAREST_FINGERPRINTS_SQL,
            {"hashes": [query.bits for query in queries], "neighbours": fingerprints.NEIGHBOURS},
        )
        return "content_fingerprint_hnsw" in "\n".join(row[0] for row in cursor.fetchall())


def timed(function, *args) -> tuple[float, object]:
    clock = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - clock, result


def latency(args) -> None:
    import provenance_corpus as corpus
    from django.core.files.uploadedfile import SimpleUploadedFile
    from rest_framework.test import APIClient

    from generation import fingerprints, selectors
    from generation.models import ContentFingerprint
    from generation.provenance import read_upload
    from social.models import Post

    user = bench_user()
    # Synthetic posts are kept between runs: building the index over them is most of a run.
    Post.objects.filter(author=user).exclude(prompt="synthetic").delete()
    source = corpus.Clip(
        "photo:10s",
        "photo",
        corpus.label(corpus.photo_pan(corpus.load_photo("coffee.png"), seed=5, seconds=10, size=(480, 720))),
    )
    post_id = store_post(user, source)
    upload = corpus.transform(source.data, corpus.TRANSFORMS["scale50"])
    queries = fingerprints.queries(fingerprints.fingerprint_upload(upload))
    client = APIClient()
    client.force_authenticate(user)
    for target in args.posts:
        # Rows go in without the index (each insert into an HNSW graph is a search), then it is built.
        build_s = None
        if Post.objects.filter(author=user).count() < target:
            drop_index()
            add_synthetic_posts(user, target)
            build_s = build_index()
        rows = Post.objects.filter(author=user).count()
        batched, per_hash, path, whole = [], [], [], []
        for _ in range(args.repeat):
            seconds, hits = timed(selectors.fingerprint_hits, queries)
            batched.append(seconds)
            seconds, baseline = timed(hits_one_query_per_hash, queries)
            per_hash.append(seconds)
            seconds, found = timed(lambda: selectors.post_matching_fingerprints(read_upload(upload).samples))
            path.append(seconds)
            assert found is not None and found[0].pk == post_id, found
            seconds, response = timed(
                lambda: client.post(
                    "/api/v1/provenance/verify",
                    {"file": SimpleUploadedFile("copy.mp4", upload, content_type="video/mp4")},
                    format="multipart",
                )
            )
            whole.append(seconds)
            assert response.status_code == 200 and response.json()["match"]["by"] == "fingerprint", (
                response.content
            )
        same = Counter(hits) == Counter(baseline)
        print(
            f"{rows} posts ({ContentFingerprint.objects.count()} hashes, "
            f"index {'kept' if build_s is None else f'built in {build_s:.0f} s'}), 10 s upload, {len(queries)} hashes asked, {args.repeat} runs:\n"
            f"  index search, one statement p50 {statistics.median(batched):.3f} s p99 {percentile(batched, 0.99):.3f} s"
            f" (HNSW used: {uses_index(queries)}); one query per hash p50 {statistics.median(per_hash):.3f} s"
            f" p99 {percentile(per_hash, 0.99):.3f} s; ratio of medians {statistics.median(batched) / statistics.median(per_hash):.2f};"
            f" same hits: {same}\n"
            f"  decode once (metadata, watermark, samples), hash, search, decide p50 {statistics.median(path):.3f} s"
            f" p99 {percentile(path, 0.99):.3f} s; whole verify p50 {statistics.median(whole):.3f} s"
            f" p99 {percentile(whole, 0.99):.3f} s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="part", required=True)
    part = sub.add_parser("recall")
    part.add_argument("--unrelated", type=int, default=200)
    part.add_argument("--dump", default="")
    part.add_argument("--transforms", nargs="*", help="only these transforms (a quicker subset)")
    part.add_argument("--unrelated-kinds", nargs="*", help="only these kinds of unrelated clips")
    part = sub.add_parser("cost")
    part.add_argument("--repeat", type=int, default=3)
    part = sub.add_parser("latency")
    part.add_argument("--posts", type=int, nargs="+", default=[10_000, 100_000])
    part.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with ExitStack() as stack:
        start_django(stack, "/tmp/provenance-bench", DAILY_LIMIT_PRO="100000")
        {"recall": recall, "cost": cost, "latency": latency}[args.part](args)


if __name__ == "__main__":
    main()
