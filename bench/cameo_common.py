"""Shared by the cameo benchmarks: seed stored templates fast."""

from __future__ import annotations

import time

import numpy as np

SEED_OWNERS = 1000
HNSW_INDEX_SQL = (
    "CREATE INDEX cameo_template_hnsw ON cameo_cameo USING hnsw (template_vector vector_cosine_ops) "
    "WITH (m = 16, ef_construction = 64)"
)


def random_templates(count: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors spread over the sphere: unrelated identities."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def near(template: np.ndarray, distance: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at about `distance` (cosine) from `template`: the same face filmed again."""
    noise = rng.standard_normal(template.shape).astype(np.float32)
    noise -= (noise @ template) * template
    noise /= np.linalg.norm(noise)
    angle = np.arccos(1 - distance)
    return (np.cos(angle) * template + np.sin(angle) * noise).astype(np.float32)


def seeded_count(encoder_name: str) -> int:
    from cameo.models import Cameo

    return Cameo.objects.filter(status="active", encoder=encoder_name).count()


def seed_templates(
    count: int, *, encoder_name: str, dim: int, encoder_version: str = "bench", seed: int = 7
) -> np.ndarray:
    """Makes `count` active cameos with random templates (COPY, index dropped and rebuilt once).

    Running it again with the same count reuses what is there. Returns the seeded templates.
    """
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from cameo.identity import TEMPLATE_DIMENSIONS
    from social.models import User

    templates = random_templates(count, dim, seed)
    if seeded_count(encoder_name) == count:
        return templates
    started = time.perf_counter()
    owners = list(User.objects.filter(username__startswith="benchowner").values_list("pk", flat=True))
    if len(owners) < SEED_OWNERS:
        password = make_password(None)
        User.objects.bulk_create(
            [User(username=f"benchowner{i}", password=password) for i in range(len(owners), SEED_OWNERS)]
        )
        owners = list(User.objects.filter(username__startswith="benchowner").values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM cameo_cameo WHERE encoder = %s", [encoder_name])
        cursor.execute("DROP INDEX IF EXISTS cameo_template_hnsw")
    zero_tail = ",0" * (TEMPLATE_DIMENSIONS - dim)
    row_format = "[" + ",".join(["%.6f"] * dim) + zero_tail + "]"
    columns = (
        "owner_id, display_name, status, rejection_reason, permission, instructions, restrictions, "
        "consent_version, template_vector, template_dim, template_spread, template_version, encoder, "
        "encoder_version, face_crop, verification_video, created_at, updated_at"
    )
    raw = connection.connection
    with raw.cursor() as cursor, cursor.copy(f"COPY cameo_cameo ({columns}) FROM STDIN") as copy:
        for index, template in enumerate(templates):
            copy.write_row(
                (
                    owners[index % len(owners)],
                    f"bench {index}",
                    "active",
                    "",
                    "only_me",
                    "",
                    "{}",
                    1,
                    row_format % tuple(template.tolist()),
                    dim,
                    0.01,
                    1,
                    encoder_name,
                    encoder_version,
                    "",
                    "",
                    "2026-01-01T00:00:00Z",
                    "2026-01-01T00:00:00Z",
                )
            )
    raw.commit()
    copied = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '4GB'")
        cursor.execute("SET max_parallel_maintenance_workers = 2")
        cursor.execute(HNSW_INDEX_SQL)
        cursor.execute("ANALYZE cameo_cameo")
    print(
        f"seeded {count} templates: COPY {copied - started:.1f} s, HNSW build {time.perf_counter() - copied:.1f} s",
        flush=True,
    )
    return templates


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]
