"""The `for_you` ranking of `GET /feed`.

How a post is scored, for viewer V at the chain's snapshot time T (all inputs read in two queries):

    score = freshness * engagement * affinity * remixability

- freshness = 0.5 ** (age_hours / 24): a post loses half its weight every day since it was
  published (age measured from T, so a score does not drift while V pages).
- engagement = (likes + 2*comments + 3*remixes + 1) / (views + 10): an engagement *rate*, smoothed
  by a prior of about 0.1 so that a new post with one view is not ranked as a hit; comments and
  remixes are stronger signals than likes.
- affinity = 1 + 1.0 if V follows the author + 0.5 * min(liked_posts_by_author, 5) / 5 (among V's
  200 most recent likes) + 0.5 if the post is in a remix chain (same root) V liked recently.
- remixability = 1 + 0.2 if remixing is allowed + 0.1 * ln(1 + remix_count).

Candidates are the 300 newest published posts before T plus the 100 newest of followed authors
(both index range scans), never V's own posts, nothing across a block and nothing by an author of a
post V reported. The scored list is ordered greedily so that no two neighbours share an author while
another author is available (the author last served on the previous page counts as a neighbour).

The 300 newest posts are the same for every viewer, so a chain's first page takes them from a pool
shared by all viewers (cached for RECENT_POOL_SECONDS and dropped whenever a post is saved or
deleted); T is then the pool's time, and the viewer's own, blocked and reported authors are removed
from it in Python. Later pages and cache misses query as described above.

The cursor is signed and carries T and the ids already served in this chain: posts published
after T never enter the chain, and served posts are excluded from every later page, so no post
appears twice however the counters move between pages; every candidate is served eventually, in
rank order. The ranked list is cached per chain (Redis, 15 min) so later pages cost one cache read
and one query; on a miss it is recomputed, and the served ids still rule out repeats. A chain ends after FEED_CHAIN_MAX_POSTS posts (the cursor stays a few KB); the client
then starts a new chain.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from core.errors import ApiError
from core.pagination import Page, decode_cursor, encode_cursor, keyset_cursor, keyset_position
from social.models import Post, PostStatus, Report, User
from social.selectors import (
    FeedViewer,
    blocked_user_ids,
    feed_viewer,
    following_cards,
    newest_posts_of,
    published_cards,
)

RECENT_POOL = 300
# The shared pool holds more than RECENT_POOL so that removing one viewer's excluded authors
# still leaves a full pool in the usual case.
SHARED_POOL = 400
RECENT_POOL_KEY = "feed:for_you:recent-pool"
RECENT_POOL_SECONDS = 10
FOLLOWED_POOL = 100
RANKING_CACHE_SECONDS = 15 * 60
RECENT_LIKES = 200
HALF_LIFE_HOURS = 24.0


@dataclass(frozen=True)
class Candidate:
    post_id: int
    author_id: int
    root_id: int
    published_at: datetime
    like_count: int
    comment_count: int
    remix_count: int
    view_count: int
    remix_allowed: bool


@dataclass(frozen=True)
class ViewerAffinity:
    followed_author_ids: frozenset[int]
    liked_posts_by_author: dict[int, int]
    liked_root_ids: frozenset[int]


def score(candidate: Candidate, *, affinity: ViewerAffinity, snapshot: datetime) -> float:
    age_hours = max(0.0, (snapshot - candidate.published_at).total_seconds() / 3600)
    freshness = 0.5 ** (age_hours / HALF_LIFE_HOURS)
    engagement = (candidate.like_count + 2 * candidate.comment_count + 3 * candidate.remix_count + 1) / (
        candidate.view_count + 10
    )
    author_affinity = 1.0
    if candidate.author_id in affinity.followed_author_ids:
        author_affinity += 1.0
    author_affinity += 0.5 * min(affinity.liked_posts_by_author.get(candidate.author_id, 0), 5) / 5
    if candidate.root_id in affinity.liked_root_ids:
        author_affinity += 0.5
    remixability = 1.0 + (0.2 if candidate.remix_allowed else 0.0) + 0.1 * math.log1p(candidate.remix_count)
    return freshness * engagement * author_affinity * remixability


def spread_authors(
    ranked: list[tuple[int, int]], *, limit: int, previous_author_id: int | None
) -> list[tuple[int, int]]:
    """Takes `limit` (post_id, author_id) in rank order, skipping ahead when the next one repeats
    the last author while another author is left."""
    remaining = list(ranked)
    chosen: list[tuple[int, int]] = []
    last_author = previous_author_id
    while remaining and len(chosen) < limit:
        index = next((i for i, (_post, author) in enumerate(remaining) if author != last_author), 0)
        picked = remaining.pop(index)
        chosen.append(picked)
        last_author = picked[1]
    return chosen


def _affinity(viewer_facts: FeedViewer) -> ViewerAffinity:
    return ViewerAffinity(
        frozenset(viewer_facts.followed_author_ids),
        dict(Counter(viewer_facts.recent_liked_author_ids)),
        frozenset(viewer_facts.recent_liked_root_ids),
    )


CANDIDATE_FIELDS = (
    "pk",
    "author_id",
    "root_id",
    "published_at",
    "like_count",
    "comment_count",
    "remix_count",
    "view_count",
    "remix_allowed",
)


def _candidates(
    viewer: User, snapshot: datetime, served: set[int], followed: list[int]
) -> tuple[list[Candidate], bool]:
    eligible = (
        Post.objects.filter(status=PostStatus.PUBLISHED, published_at__lte=snapshot)
        .exclude(author_id=viewer.pk)
        .exclude(author_id__in=excluded_author_ids(viewer.pk))
    )
    if served:
        eligible = eligible.exclude(pk__in=served)
    # Both pools are index range scans; UNION (not `pk IN (...)`) keeps the planner off a full scan.
    newest = eligible.order_by("-published_at", "-pk").values_list(*CANDIDATE_FIELDS)[:RECENT_POOL]
    rows = newest
    if followed:
        from_followed = (
            eligible.filter(author_id__in=followed)
            .order_by("-published_at", "-pk")
            .values_list(*CANDIDATE_FIELDS)[:FOLLOWED_POOL]
        )
        rows = newest.union(from_followed)
    candidates = [
        Candidate(pk, author_id, root_id or pk, published_at, likes, comments, remixes, views, remix_allowed)
        for pk, author_id, root_id, published_at, likes, comments, remixes, views, remix_allowed in rows
    ]
    # A full recent pool means older posts remain for later pages.
    may_have_more = len(candidates) >= RECENT_POOL
    return candidates, may_have_more


def recent_pool() -> tuple[datetime, list[tuple]]:
    """(T, the SHARED_POOL newest published posts at T as CANDIDATE_FIELDS rows), shared by all viewers."""
    cached = cache.get(RECENT_POOL_KEY)
    if cached is not None:
        return cached
    snapshot = timezone.now()
    rows = list(
        Post.objects.filter(status=PostStatus.PUBLISHED, published_at__lte=snapshot)
        .order_by("-published_at", "-pk")
        .values_list(*CANDIDATE_FIELDS)[:SHARED_POOL]
    )
    cache.set(RECENT_POOL_KEY, (snapshot, rows), RECENT_POOL_SECONDS)
    return snapshot, rows


def forget_recent_pool() -> None:
    cache.delete(RECENT_POOL_KEY)


def excluded_author_ids(viewer_id: int):
    """Authors whose posts for_you never shows the viewer: people on either side of a block with
    them and authors of posts they reported. A subquery of ids, also read as a set of ids for the
    shared pool; the viewer's own posts are left out separately."""
    return blocked_user_ids(viewer_id=viewer_id).union(
        Report.objects.filter(reporter_id=viewer_id).values_list("post__author_id", flat=True)
    )


def _candidates_from_pool(
    viewer: User, snapshot: datetime, pool: list[tuple], viewer_facts: FeedViewer
) -> tuple[list[Candidate], bool]:
    excluded = viewer_facts.excluded_author_ids | {viewer.pk}
    rows = [row for row in pool if row[1] not in excluded][:RECENT_POOL]
    seen = {row[0] for row in rows}
    from_followed = newest_posts_of(
        author_ids=viewer_facts.followed_author_ids,
        excluded_author_ids=excluded,
        before=snapshot,
        limit=FOLLOWED_POOL,
    )
    rows += [row for row in from_followed if row[0] not in seen]
    candidates = [
        Candidate(pk, author_id, root_id or pk, published_at, likes, comments, remixes, views, remix_allowed)
        for pk, author_id, root_id, published_at, likes, comments, remixes, views, remix_allowed in rows
    ]
    return candidates, len(pool) >= RECENT_POOL


def _ranking_cache_key(viewer_id: int, snapshot: datetime) -> str:
    return f"feed:for_you:{viewer_id}:{snapshot.isoformat()}"


def _ranked_candidates(
    viewer: User, snapshot: datetime, served: set[int], pool: list[tuple] | None = None
) -> tuple[list[tuple[int, int]], bool]:
    """(post_id, author_id) in rank order, not yet served; cached per chain so that later pages skip
    the candidate and affinity queries. A cache miss recomputes; the cursor's served ids keep the
    chain free of repeats either way."""
    cache_key = _ranking_cache_key(viewer.pk, snapshot)
    cached = cache.get(cache_key)
    if cached is not None:
        ranked, may_have_more = cached
        remaining = [entry for entry in ranked if entry[0] not in served]
        if remaining or not may_have_more:
            return remaining, may_have_more
    viewer_facts = feed_viewer(viewer=viewer, recent_likes=RECENT_LIKES)
    affinity = _affinity(viewer_facts)
    if pool is not None and not served:
        candidates, may_have_more = _candidates_from_pool(viewer, snapshot, pool, viewer_facts)
    else:
        candidates, may_have_more = _candidates(viewer, snapshot, served, viewer_facts.followed_author_ids)
    ordered = sorted(
        candidates,
        key=lambda c: (score(c, affinity=affinity, snapshot=snapshot), c.post_id),
        reverse=True,
    )
    ranked = [(c.post_id, c.author_id) for c in ordered]
    cache.set(cache_key, (ranked, may_have_more), RANKING_CACHE_SECONDS)
    return ranked, may_have_more


def for_you_page(*, viewer: User, cursor: str | None, limit: int) -> Page:
    state = decode_cursor(cursor)
    pool = None
    if state is None:
        (snapshot, pool), served, previous_author = recent_pool(), [], None
    else:
        try:
            snapshot = datetime.fromisoformat(state["t"])
            served = [int(post_id) for post_id in state["s"]]
            previous_author = state.get("a")
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError("The cursor is not valid.", details={"cursor": ["Invalid cursor."]}) from exc
    ranked, may_have_more = _ranked_candidates(viewer, snapshot, set(served), pool)
    chosen = spread_authors(ranked, limit=limit, previous_author_id=previous_author)
    page_ids = [post_id for post_id, _author in chosen]
    # Blocks and reports made since the chain started apply at once.
    items = published_cards(viewer=viewer, post_ids=page_ids)
    served_now = served + page_ids
    has_more = (len(ranked) > len(chosen) or may_have_more) and len(
        served_now
    ) < settings.FEED_CHAIN_MAX_POSTS
    next_cursor = None
    if has_more and chosen:
        next_cursor = encode_cursor({"t": snapshot.isoformat(), "s": sorted(served_now), "a": chosen[-1][1]})
    return Page(items=items, next_cursor=next_cursor)


def following_page(*, viewer: User, cursor: str | None, limit: int) -> Page:
    """The `following` tab: newest first by (published_at, id), one statement per page."""
    after = keyset_position(cursor, keys=2)
    if after is not None and not (isinstance(after[0], datetime) and isinstance(after[1], int)):
        raise ApiError("The cursor is not valid.", details={"cursor": ["Invalid cursor."]})
    cards = following_cards(viewer=viewer, after=after, limit=limit + 1)
    next_cursor = None
    if len(cards) > limit:
        cards = cards[:limit]
        next_cursor = keyset_cursor([cards[-1].published_at, cards[-1].pk])
    return Page(items=cards, next_cursor=next_cursor)
