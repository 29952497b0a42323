"""Loads a large social graph with PostgreSQL COPY, for the feed benchmark.

    DATA_DIR=/tmp/bench .venv/bin/python bench/seed_social.py --posts 100000

Scale follows the issue's ratios from --posts P: P/10 users, 50 follows per user, 10 likes per post
(--posts 1000000 gives 100k users, 5M follows, 10M likes). Popularity is skewed (Zipf-like) for
authors, followees and liked posts; 5% of posts are remixes of an earlier post. Every post points
at one real sample video. Counters are computed from the rows afterwards, so they are exact.
Rows are added to what is there (ids continue from the current maximum); run it on a database
meant for benchmarks, never on one with real users.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def setup_django() -> None:
    from config.env import load_dev_env

    load_dev_env()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def skewed_choice(rng: np.random.Generator, n_items: int, size: int, exponent: float = 1.1) -> np.ndarray:
    """Indexes in [0, n_items) where low indexes are much more popular (a Zipf-like law)."""
    weights = 1.0 / np.arange(1, n_items + 1) ** exponent
    weights /= weights.sum()
    order = rng.permutation(n_items)  # popularity unrelated to id order
    return order[rng.choice(n_items, size=size, p=weights)]


def copy_rows(cursor, table: str, columns: list[str], lines: list[str]) -> None:
    buffer = io.StringIO("\n".join(lines) + "\n")
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        while chunk := buffer.read(1 << 20):
            copy.write(chunk)


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
    n_likes = posts * 10
    timings: dict[str, float] = {}
    now = datetime.now(UTC)

    sample = Path("/tmp") / f"seed-social-{os.getpid()}.mp4"
    render_sample_video(sample, color=(250, 140, 40), seed=0)
    with sample.open("rb") as handle:
        video_name = default_storage.save("posts/bench/sample.mp4", handle)
    sample.unlink()

    with transaction.atomic(), connection.cursor() as cursor:
        started = time.perf_counter()
        first_user = next_id(cursor, "social_user")
        password = make_password("bench-password-42")
        user_ids = np.arange(first_user, first_user + n_users)
        joined = now.isoformat()
        copy_rows(
            cursor,
            "social_user",
            [
                "id", "password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff",
                "is_active", "date_joined", "display_name", "bio", "birth_date", "tier", "followers_count",
                "following_count", "posts_count",
            ],
            [
                f"{uid}\t{password}\tf\tbench_{uid}\t\t\t\tf\tt\t{joined}\tBench {uid}\t\t1990-01-01\tfree\t0\t0\t0"
                for uid in user_ids
            ],
        )  # fmt: skip
        timings["users"] = time.perf_counter() - started

        started = time.perf_counter()
        followers = np.repeat(np.arange(n_users), follows_per_user)
        followees = skewed_choice(rng, n_users, followers.size)
        keep = followers != followees
        pairs = np.unique(np.stack([followers[keep], followees[keep]], axis=1), axis=0)
        first_follow = next_id(cursor, "social_follow")
        copy_rows(
            cursor,
            "social_follow",
            ["id", "follower_id", "followee_id", "created_at"],
            [
                f"{first_follow + i}\t{user_ids[a]}\t{user_ids[b]}\t{joined}"
                for i, (a, b) in enumerate(pairs.tolist())
            ],
        )
        timings["follows"] = time.perf_counter() - started
        n_follows = len(pairs)

        started = time.perf_counter()
        first_post = next_id(cursor, "social_post")
        authors = user_ids[skewed_choice(rng, n_users, posts, exponent=0.8)]
        ages = np.sort(rng.uniform(0, 30 * 24 * 3600, size=posts))[::-1]  # oldest first, ids ascend
        remix_of = np.full(posts, -1)
        roots = np.full(posts, -1)
        depth = np.zeros(posts, dtype=np.int64)
        is_remix = rng.random(posts) < 0.05
        for index in np.nonzero(is_remix)[0].tolist():
            if index == 0:
                continue
            parent = int(rng.integers(0, index))
            remix_of[index] = parent
            roots[index] = roots[parent] if roots[parent] >= 0 else parent
            depth[index] = depth[parent] + 1
        lines = []
        for index in range(posts):
            published = (now - timedelta(seconds=float(ages[index]))).isoformat()
            parent = "\\N" if remix_of[index] < 0 else str(first_post + remix_of[index])
            root = "\\N" if roots[index] < 0 else str(first_post + roots[index])
            lines.append(
                f"{first_post + index}\t{authors[index]}\tpublished\tclip {index}\ta sample prompt {index}\t"
                f"{video_name}\t\t2\t144\t256\t20000\t{published}\t{published}\tt\t{parent}\t{root}\t"
                f"{depth[index]}\t0\t0\t0\t0\t\\N\tbench\t{{}}\t[]\t[]"
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
            lines,
        )  # fmt: skip
        timings["posts"] = time.perf_counter() - started

        started = time.perf_counter()
        likers = rng.integers(0, n_users, size=n_likes)
        liked = skewed_choice(rng, posts, n_likes, exponent=0.9)
        likes = np.unique(np.stack([likers, liked], axis=1), axis=0)
        first_like = next_id(cursor, "social_like")
        copy_rows(
            cursor,
            "social_like",
            ["id", "user_id", "post_id", "created_at"],
            [
                f"{first_like + i}\t{user_ids[u]}\t{first_post + p}\t{joined}"
                for i, (u, p) in enumerate(likes.tolist())
            ],
        )
        timings["likes"] = time.perf_counter() - started

        started = time.perf_counter()
        cursor.execute(
            """
            UPDATE social_post p SET like_count = c.n
            FROM (SELECT post_id, COUNT(*) n FROM social_like WHERE post_id >= %s GROUP BY post_id) c
            WHERE p.id = c.post_id;
            UPDATE social_post p SET remix_count = c.n
            FROM (SELECT remix_of_id, COUNT(*) n FROM social_post WHERE remix_of_id >= %s GROUP BY remix_of_id) c
            WHERE p.id = c.remix_of_id;
            UPDATE social_post SET view_count = like_count * 4 + remix_count * 10 + 5 WHERE id >= %s;
            UPDATE social_user u SET followers_count = c.n
            FROM (SELECT followee_id, COUNT(*) n FROM social_follow GROUP BY followee_id) c
            WHERE u.id = c.followee_id AND u.id >= %s;
            UPDATE social_user u SET following_count = c.n
            FROM (SELECT follower_id, COUNT(*) n FROM social_follow GROUP BY follower_id) c
            WHERE u.id = c.follower_id AND u.id >= %s;
            UPDATE social_user u SET posts_count = c.n
            FROM (SELECT author_id, COUNT(*) n FROM social_post WHERE status = 'published' GROUP BY author_id) c
            WHERE u.id = c.author_id AND u.id >= %s;
            """,
            [first_post, first_post, first_post, first_user, first_user, first_user],
        )
        for table in ("social_user", "social_follow", "social_post", "social_like"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            )
        timings["counters"] = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE social_user, social_follow, social_post, social_like")
    timings["analyze"] = time.perf_counter() - started
    print(f"users {n_users}, follows {n_follows}, posts {posts}, likes {len(likes)}")
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    setup_django()
    started = time.perf_counter()
    timings = seed(args.posts, args.seed)
    for step, seconds in timings.items():
        print(f"  {step:9s} {seconds:7.1f} s")
    print(f"total {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
