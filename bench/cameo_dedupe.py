"""Likeness dedupe search: the HNSW index against an exact scan, over many stored templates.

    DATA_DIR=/tmp/cameo-bench .venv/bin/python bench/cameo_dedupe.py --templates 1000000

Seeds `--templates` active cameos (random 128-d unit templates, as the dlib encoder makes, stored
zero-padded in vector(512)); then, in the same run, times `cameo.services.nearest_claimed_likeness`
(the service enrollment and the likeness search call: HNSW index, iterative scan) and the same query
with index scans disabled (an exact, parallel sequential scan), for two kinds of probe:
- re-enrollments: a stored template moved by cosine 0.01 (the same face filmed again), whose exact
  nearest neighbour is that template;
- strangers: fresh random vectors (nobody stored is close).
Recall@1 is the share of probes where the index returns the exact scan's nearest cameo.
"""

from __future__ import annotations

import argparse
import time
from contextlib import ExitStack

import numpy as np
from cameo_common import near, percentile, random_templates, seed_templates
from harness import start_django

ENCODER = "bench-128"


def exact_nearest(template: np.ndarray):
    from django.db import connection, transaction
    from pgvector.django import CosineDistance

    from cameo.identity import pad_template
    from cameo.models import Cameo

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute("SET LOCAL enable_bitmapscan = off")
        return (
            Cameo.objects.filter(status="active", encoder=ENCODER, template_vector__isnull=False)
            .annotate(distance=CosineDistance("template_vector", pad_template(template)))
            .order_by("distance")
            .only("id", "owner_id")
            .first()
        )


def plan_of(template: np.ndarray) -> str:
    from django.db import connection, transaction
    from pgvector.django import CosineDistance

    from cameo.identity import pad_template
    from cameo.models import Cameo
    from cameo.services import NEAREST_CANDIDATES

    query = (
        Cameo.objects.filter(status="active", encoder=ENCODER, template_vector__isnull=False)
        .exclude(owner_id=0)
        .annotate(distance=CosineDistance("template_vector", pad_template(template)))
        .order_by("distance")
        .only("id", "owner_id")[:NEAREST_CANDIDATES]
    )
    sql, params = query.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--templates", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--exact-probes", type=int, default=40, help="exact scans are slow: fewer")
    parser.add_argument("--ef-search", default="40,100,200,400", help="hnsw.ef_search values to compare")
    args = parser.parse_args()
    with ExitStack() as stack:
        start_django(stack, "/tmp/cameo-bench")
        from django.conf import settings

        from cameo.services import nearest_claimed_likeness

        stored = seed_templates(args.templates, encoder_name=ENCODER, dim=128)
        rng = np.random.default_rng(11)
        picks = rng.choice(len(stored), size=args.probes, replace=False)
        probes = {
            "re-enrollment": [near(stored[i], 0.01, rng) for i in picks],
            "stranger": list(random_templates(args.probes, 128, seed=99)),
        }
        plan = plan_of(probes["stranger"][0])
        print("plan uses cameo_template_hnsw:", "cameo_template_hnsw" in plan)
        print(f"{args.templates} templates, {args.probes} probes per kind (exact: {args.exact_probes})")
        exact = {}
        for kind, vectors in probes.items():
            exact_ms, exact[kind] = [], []
            for vector in vectors[: args.exact_probes]:
                started = time.perf_counter()
                found = exact_nearest(vector)
                exact_ms.append((time.perf_counter() - started) * 1000)
                exact[kind].append(found.pk if found else None)
            print(
                f"exact scan, {kind:<14} p50 {percentile(exact_ms, 0.5):8.1f} ms  p99 {percentile(exact_ms, 0.99):8.1f} ms"
            )
        print(f"{'ef_search':>9} {'probe':<14} {'index p50 ms':>12} {'index p99 ms':>12} {'recall@1':>9}")
        for ef_search in [int(value) for value in args.ef_search.split(",")]:
            settings.CAMEO_HNSW_EF_SEARCH = ef_search
            for kind, vectors in probes.items():
                for vector in vectors[:5]:  # warm the cache
                    nearest_claimed_likeness(template=vector, encoder_name=ENCODER, exclude_owner_id=0)
                index_ms, found_ids = [], []
                for vector in vectors:
                    started = time.perf_counter()
                    found = nearest_claimed_likeness(
                        template=vector, encoder_name=ENCODER, exclude_owner_id=0
                    )
                    index_ms.append((time.perf_counter() - started) * 1000)
                    found_ids.append(found.pk if found else None)
                hits = sum(int(a == b) for a, b in zip(exact[kind], found_ids, strict=False))
                print(
                    f"{ef_search:>9} {kind:<14} {percentile(index_ms, 0.5):>12.2f} "
                    f"{percentile(index_ms, 0.99):>12.2f} {hits / len(exact[kind]):>9.3f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
