"""Loads a large social graph with PostgreSQL COPY, for the feed benchmark.

    DATA_DIR=/tmp/social-bench .venv/bin/python bench/seed_social.py --posts 100000

Without DATABASE_URL it starts the embedded PostgreSQL and Redis in DATA_DIR (default
/tmp/social-bench) and migrates. Scale follows the issue's ratios from --posts P: P/10 users, 50
follows per user, 10 likes per post (--posts 1000000 gives 100k users, 5M follows, 10M likes: exact
counts of distinct rows). Popularity is skewed (Zipf-like) for authors, followees and liked posts;
5% of posts are remixes of an earlier post. Every post points at one real sample video. Every row is
drawn in memory first, so each counter is computed from the rows that are loaded and written with
its row: counters are exact without a pass over the tables. Rows are added to what is there (ids
continue from the current maximum); run it on a database meant for benchmarks, never on one with
real users.
"""

from __future__ import annotations

import argparse
import io
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from harness import start_django


def skewed_choice(rng: np.random.Generator, n_items: int, size: int, exponent: float = 1.1) -> np.ndarray:
    """Indexes in [0, n_items) where low indexes are much more popular (a Zipf-like law)."""
    weights = 1.0 / np.arange(1, n_items + 1) ** exponent
    weights /= weights.sum()
    order = rng.permutation(n_items)  # popularity unrelated to id order
    return order[rng.choice(n_items, size=size, p=weights)]


def distinct_pairs(
    rng: np.random.Generator, target: int, draw_left, draw_right, *, right_size: int, no_self: bool = False
) -> np.ndarray:
    """`target` distinct (left, right) index pairs, drawing batches until there are enough, then
    keeping a random `target` of them (sorted, as COPY loads them fastest that way)."""
    codes = np.empty(0, dtype=np.int64)
    while codes.size < target:
        size = max(target - codes.size, target // 10) * 2
        left, right = draw_left(size).astype(np.int64), draw_right(size).astype(np.int64)
        if no_self:
            keep = left != right
            left, right = left[keep], right[keep]
        codes = np.unique(np.concatenate([codes, left * right_size + right]))
    codes = np.sort(rng.choice(codes, size=target, replace=False))
    return np.stack([codes // right_size, codes % right_size], axis=1)


def copy_rows(cursor, table: str, columns: list[str], lines) -> None:
    """COPY the tab-separated lines in chunks of about 1 MB."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for line in lines:
            buffer.write(line)
            buffer.write("\n")
            if buffer.tell() > 1 << 20:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


FOREIGN_KEYS = [
    ("social_follow", "follower_id", "social_user"),
    ("social_follow", "followee_id", "social_user"),
    ("social_post", "author_id", "social_user"),
    ("social_post", "remix_of_id", "social_post"),
    ("social_post", "root_id", "social_post"),
    ("social_like", "user_id", "social_user"),
    ("social_like", "post_id", "social_post"),
]


def check_foreign_keys(cursor, first_ids: dict[str, int]) -> None:
    """Raises (rolling the load back) if a loaded row points at a row that does not exist."""
    for table, column, target in FOREIGN_KEYS:
        cursor.execute(
            f"SELECT count(*) FROM {table} t LEFT JOIN {target} r ON r.id = t.{column} "
            f"WHERE t.id >= %s AND t.{column} IS NOT NULL AND r.id IS NULL",
            [first_ids[table]],
        )
        dangling = cursor.fetchone()[0]
        if dangling:
            raise RuntimeError(f"{dangling} rows of {table}.{column} point at no {target} row")


def next_id(cursor, table: str) -> int:
    cursor.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {table}")
    return cursor.fetchone()[0]


def seed(posts: int, seed_value: int) -> dict[str, float]:
    from django.contrib.auth.hashers import make_password
    from django.core.files.storage import default_storage
    from django.db import connection, transaction

    from social.demo import render_sample_video

    rng = np.random.default_rng(seed_value)
    n_users = max(10, posts // 10)
    follows_per_user = min(50, n_users - 1)
    timings: dict[str, float] = {}
    now = datetime.now(UTC)
    joined = now.isoformat()

    started = time.perf_counter()
    follow_pairs = distinct_pairs(
        rng,
        n_users * follows_per_user,
        lambda size: rng.integers(0, n_users, size=size),
        lambda size: skewed_choice(rng, n_users, size),
        right_size=n_users,
        no_self=True,
    )
    authors = skewed_choice(rng, n_users, posts, exponent=0.8)
    ages = np.sort(rng.uniform(0, 30 * 24 * 3600, size=posts))[::-1]  # oldest first, ids ascend
    remix_of = np.full(posts, -1)
    roots = np.full(posts, -1)
    depth = np.zeros(posts, dtype=np.int64)
    for index in np.nonzero(rng.random(posts) < 0.05)[0].tolist():
        if index == 0:
            continue
        parent = int(rng.integers(0, index))
        remix_of[index] = parent
        roots[index] = roots[parent] if roots[parent] >= 0 else parent
        depth[index] = depth[parent] + 1
    like_pairs = distinct_pairs(
        rng,
        min(posts * 10, posts * n_users),
        lambda size: rng.integers(0, n_users, size=size),
        lambda size: skewed_choice(rng, posts, size, exponent=0.9),
        right_size=posts,
    )
    like_count = np.bincount(like_pairs[:, 1], minlength=posts)
    remix_count = np.bincount(remix_of[remix_of >= 0], minlength=posts)
    view_count = like_count * 4 + remix_count * 10 + 5
    following_count = np.bincount(follow_pairs[:, 0], minlength=n_users)
    followers_count = np.bincount(follow_pairs[:, 1], minlength=n_users)
    posts_count = np.bincount(authors, minlength=n_users)
    timings["draw rows"] = time.perf_counter() - started

    sample = Path("/tmp") / f"seed-social-{rng.integers(1 << 30)}.mp4"
    render_sample_video(sample, color=(250, 140, 40), seed=0)
    with sample.open("rb") as handle:
        video_name = default_storage.save("posts/bench/sample.mp4", handle)
    sample.unlink()

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        checks_in_bulk = cursor.fetchone()[0]
        if checks_in_bulk:
            # Django's foreign keys are deferred triggers, fired once per row at commit (minutes for
            # 16M rows); off while loading, then every loaded reference is checked in one anti-join
            # per foreign key below. Needs a superuser, as the embedded server's is.
            cursor.execute("SET LOCAL session_replication_role = replica")
        started = time.perf_counter()
        first_user = next_id(cursor, "social_user")
        password = make_password("bench-password-42")
        copy_rows(
            cursor,
            "social_user",
            [
                "id", "password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff",
                "is_active", "date_joined", "display_name", "bio", "birth_date", "tier", "followers_count",
                "following_count", "posts_count",
            ],
            (
                f"{first_user + u}\t{password}\tf\tbench_{first_user + u}\t\t\t\tf\tt\t{joined}\t"
                f"Bench {first_user + u}\t\t1990-01-01\tfree\t{followers}\t{following}\t{authored}"
                for u, (followers, following, authored) in enumerate(
                    zip(followers_count.tolist(), following_count.tolist(), posts_count.tolist(), strict=True)
                )
            ),
        )  # fmt: skip
        timings["users"] = time.perf_counter() - started

        started = time.perf_counter()
        first_follow = next_id(cursor, "social_follow")
        copy_rows(
            cursor,
            "social_follow",
            ["id", "follower_id", "followee_id", "created_at"],
            (
                f"{first_follow + i}\t{first_user + a}\t{first_user + b}\t{joined}"
                for i, (a, b) in enumerate(follow_pairs.tolist())
            ),
        )
        timings["follows"] = time.perf_counter() - started

        started = time.perf_counter()
        first_post = next_id(cursor, "social_post")
        published = [(now - timedelta(seconds=age)).isoformat() for age in ages.tolist()]

        def post_lines():
            columns = zip(
                authors.tolist(), published, remix_of.tolist(), roots.tolist(), depth.tolist(),
                like_count.tolist(), remix_count.tolist(), view_count.tolist(), strict=True,
            )  # fmt: skip
            for index, (author, at, parent, root, level, likes, remixes, views) in enumerate(columns):
                parent_id = "\\N" if parent < 0 else str(first_post + parent)
                root_id = "\\N" if root < 0 else str(first_post + root)
                yield (
                    f"{first_post + index}\t{first_user + author}\tpublished\tclip {index}\t"
                    f"a sample prompt {index}\t{video_name}\t\t2\t144\t256\t20000\t{at}\t{at}\tt\t"
                    f"{parent_id}\t{root_id}\t{level}\t{likes}\t0\t{remixes}\t{views}\t\\N\tbench\t{{}}\t[]\t[]"
                )

        copy_rows(
            cursor,
            "social_post",
            [
                "id", "author_id", "status", "caption", "prompt", "video", "poster", "duration_s", "width",
                "height", "size_bytes", "created_at", "published_at", "remix_allowed", "remix_of_id", "root_id",
                "depth", "like_count", "comment_count", "remix_count", "view_count", "content_id", "provider",
                "cameo_owner_ids", "cameo_refs", "ip_refs",
            ],
            post_lines(),
        )  # fmt: skip
        timings["posts"] = time.perf_counter() - started

        started = time.perf_counter()
        first_like = next_id(cursor, "social_like")
        copy_rows(
            cursor,
            "social_like",
            ["id", "user_id", "post_id", "created_at", "post_author_id", "post_root_id"],
            (
                f"{first_like + i}\t{first_user + u}\t{first_post + p}\t{joined}\t{first_user + author}\t"
                f"{first_post + (root if root >= 0 else p)}"
                for i, (u, p, author, root) in enumerate(
                    zip(
                        like_pairs[:, 0].tolist(),
                        like_pairs[:, 1].tolist(),
                        authors[like_pairs[:, 1]].tolist(),
                        roots[like_pairs[:, 1]].tolist(),
                        strict=True,
                    )
                )
            ),
        )
        timings["likes"] = time.perf_counter() - started
        started = time.perf_counter()
        for table in ("social_user", "social_follow", "social_post", "social_like"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            )
        if checks_in_bulk:
            check_foreign_keys(
                cursor, {"social_follow": first_follow, "social_post": first_post, "social_like": first_like}
            )
    # Without a superuser the deferred foreign-key triggers check every loaded row at commit.
    timings["foreign keys + commit"] = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        # VACUUM too: it marks the loaded pages all-visible, which index-only scans need (the feed's
        # per-author scans); autovacuum would get there later on its own.
        cursor.execute("VACUUM ANALYZE social_user, social_follow, social_post, social_like")
    timings["vacuum, analyze"] = time.perf_counter() - started
    print(f"users {n_users}, follows {len(follow_pairs)}, posts {posts}, likes {len(like_pairs)}")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    with ExitStack() as stack:
        start_django(stack, "/tmp/social-bench")
        started = time.perf_counter()
        timings = seed(args.posts, args.seed)
    for step, seconds in timings.items():
        print(f"  {step:22s} {seconds:7.1f} s")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
