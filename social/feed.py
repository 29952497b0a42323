"""The `for_you` ranking of `GET /feed`.

How a post is scored, for viewer V at the chain's snapshot time T:

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
(at most 20 of any one author, so one prolific author cannot fill it), never V's own posts, nothing across a block and nothing by an author of a post V reported. The
scored list is ordered greedily so that no two neighbours share an author while another author is
available (the author last served on the previous page counts as a neighbour).

A chain's first page costs two statements besides the page itself. The 300 newest posts are the
same for every viewer, so they come from a pool each server process keeps for RECENT_POOL_SECONDS
(dropped at once in the process where a post is saved or deleted; elsewhere a new post enters first
pages within those seconds, and a post taken down meanwhile is never served, as every page is read
again with its status); T is the pool's time, and V's own, blocked and reported authors are removed
from it in Python. Everything else about V (follows, exclusions, recent likes) and the followed
authors' newest posts comes in one statement (`social.selectors.feed_viewer`).

The cursor is signed and carries T and the ids already served in this chain: posts published
after T never enter the chain, and served posts are excluded from every later page, so no post
appears twice however the counters move between pages; every candidate is served eventually, in
rank order. The ranked list is cached per chain (Redis, 15 min, and the last few hundred in the
server process) so later pages cost at most one cache read and one statement; on a miss it is
recomputed from queries, and the served ids still rule out repeats. A chain ends after FEED_CHAIN_MAX_POSTS posts (the cursor stays a few KB); the client then
starts a new chain.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass
from datetime import datetime

import numpy as np
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
    published_cards,
)

RECENT_POOL = 300
# The shared pool holds more than RECENT_POOL so that removing one viewer's excluded authors
# still leaves a full pool in the usual case.
SHARED_POOL = 400
RECENT_POOL_SECONDS = 5
FOLLOWED_POOL = 100
FOLLOWED_POOL_PER_AUTHOR = 20
RANKING_CACHE_SECONDS = 15 * 60
RECENT_LIKES = 200
HALF_LIFE_HOURS = 24.0


@dataclass(frozen=True)
class ViewerAffinity:
    followed_author_ids: frozenset[int]
    liked_posts_by_author: dict[int, int]
    liked_root_ids: frozenset[int]


# A candidate is a row of these columns; `published_at` in seconds since the epoch.
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


def rank(candidates: list[tuple], *, affinity: ViewerAffinity, snapshot: datetime) -> list[tuple[int, int]]:
    """(post_id, author_id) of the candidates by descending score (the module's formula, computed
    for all candidates at once), the newer post first on equal scores."""
    if not candidates:
        return []
    post_ids, author_ids, root_ids, published, likes, comments, remixes, views, remix_allowed = zip(
        *candidates, strict=True
    )
    post_ids_array = np.array(post_ids, dtype=np.int64)
    author_ids_array = np.array(author_ids, dtype=np.int64)
    # A post that is no remix is its own chain's root. (Set lookups: np.isin sorts, and costs more
    # than these few hundred lookups.)
    in_liked_chain = np.array(
        [
            (post if root is None else root) in affinity.liked_root_ids
            for post, root in zip(post_ids, root_ids, strict=True)
        ]
    )
    by_followed = np.array([author in affinity.followed_author_ids for author in author_ids])
    likes_array = np.array(likes, dtype=np.float64)
    comments_array = np.array(comments, dtype=np.float64)
    remixes_array = np.array(remixes, dtype=np.float64)
    age_hours = np.maximum(0.0, (snapshot.timestamp() - np.array(published, dtype=np.float64)) / 3600)
    freshness = 0.5 ** (age_hours / HALF_LIFE_HOURS)
    engagement = (likes_array + 2 * comments_array + 3 * remixes_array + 1) / (
        np.array(views, dtype=np.float64) + 10
    )
    liked_by_author = np.array([affinity.liked_posts_by_author.get(author, 0) for author in author_ids])
    author_affinity = (
        1.0 + 1.0 * by_followed + 0.5 * np.minimum(liked_by_author, 5) / 5 + 0.5 * in_liked_chain
    )
    remixability = 1.0 + 0.2 * np.array(remix_allowed, dtype=bool) + 0.1 * np.log1p(remixes_array)
    scores = freshness * engagement * author_affinity * remixability
    order = np.lexsort((post_ids_array, scores))[::-1]
    return list(zip(post_ids_array[order].tolist(), author_ids_array[order].tolist(), strict=True))


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


def _with_epoch_seconds(rows) -> list[tuple]:
    """Candidate rows read with `published_at` as a datetime, with it in epoch seconds instead."""
    return [row[:3] + (row[3].timestamp(),) + row[4:] for row in rows]


def _candidates(
    viewer: User, snapshot: datetime, served: set[int], followed: list[int]
) -> tuple[list[tuple], bool]:
    eligible = (
        Post.objects.filter(status=PostStatus.PUBLISHED, published_at__lte=snapshot)
        .exclude(author_id=viewer.pk)
        .exclude(author_id__in=excluded_author_ids(viewer.pk))
    )
    if served:
        eligible = eligible.exclude(pk__in=served)
    # Both pools are index range scans; UNION (not `pk IN (...)`) keeps the planner off a full scan.
    # (Only a lost cached ranking comes here; its followed pool has no per-author cap.)
    newest = eligible.order_by("-published_at", "-pk").values_list(*CANDIDATE_FIELDS)[:RECENT_POOL]
    rows = newest
    if followed:
        from_followed = (
            eligible.filter(author_id__in=followed)
            .order_by("-published_at", "-pk")
            .values_list(*CANDIDATE_FIELDS)[:FOLLOWED_POOL]
        )
        rows = newest.union(from_followed)
    candidates = _with_epoch_seconds(rows)
    # A full recent pool means older posts remain for later pages.
    may_have_more = len(candidates) >= RECENT_POOL
    return candidates, may_have_more


_recent_pool: tuple[float, datetime, list[tuple]] | None = None


def recent_pool() -> tuple[datetime, list[tuple]]:
    """(T, the SHARED_POOL newest published posts at T as CANDIDATE_FIELDS rows), shared by all
    viewers served by this process for RECENT_POOL_SECONDS."""
    global _recent_pool
    cached = _recent_pool
    if cached is not None and cached[0] > time.monotonic():
        return cached[1], cached[2]
    snapshot = timezone.now()
    rows = _with_epoch_seconds(
        Post.objects.filter(status=PostStatus.PUBLISHED, published_at__lte=snapshot)
        .order_by("-published_at", "-pk")
        .values_list(*CANDIDATE_FIELDS)[:SHARED_POOL]
    )
    _recent_pool = (time.monotonic() + RECENT_POOL_SECONDS, snapshot, rows)
    return snapshot, rows


def forget_recent_pool() -> None:
    global _recent_pool
    _recent_pool = None


def excluded_author_ids(viewer_id: int):
    """Authors whose posts for_you never shows the viewer: people on either side of a block with
    them and authors of posts they reported. A subquery of ids, also read as a set of ids for the
    shared pool; the viewer's own posts are left out separately."""
    return blocked_user_ids(viewer_id=viewer_id).union(
        Report.objects.filter(reporter_id=viewer_id).values_list("post__author_id", flat=True)
    )


def _candidates_from_pool(
    viewer: User, pool: list[tuple], viewer_facts: FeedViewer
) -> tuple[list[tuple], bool]:
    excluded = viewer_facts.excluded_author_ids | {viewer.pk}
    rows = [row for row in pool if row[1] not in excluded][:RECENT_POOL]
    seen = {row[0] for row in rows}
    rows += [row for row in viewer_facts.followed_pool if row[0] not in seen]
    return rows, len(pool) >= RECENT_POOL


class RecentRankings:
    """The rankings this process computed or read most recently, in front of the shared cache: a
    client's next page usually reaches the same server process over its kept-alive connection, and
    a chain's ranking never changes, so the page needs no cache round trip. Bounded (LRU)."""

    def __init__(self, capacity: int = 512):
        self.capacity = capacity
        self._rankings: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str):
        with self._lock:
            value = self._rankings.get(key)
            if value is not None:
                self._rankings.move_to_end(key)
            return value

    def put(self, key: str, value: tuple) -> None:
        with self._lock:
            self._rankings[key] = value
            self._rankings.move_to_end(key)
            while len(self._rankings) > self.capacity:
                self._rankings.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._rankings.clear()


recent_rankings = RecentRankings()


def _cached_ranking(key: str):
    value = recent_rankings.get(key)
    if value is None:
        value = cache.get(key)
        if value is not None:
            recent_rankings.put(key, value)
    return value


def _ranking_cache_key(viewer_id: int, snapshot: datetime) -> str:
    return f"feed:for_you:{viewer_id}:{snapshot.isoformat()}"


def _ranked_candidates(
    viewer: User, snapshot: datetime, served: set[int], pool: list[tuple] | None = None
) -> tuple[list[tuple[int, int]], bool]:
    """(post_id, author_id) in rank order, not yet served; cached per chain so that later pages skip
    the candidate and affinity queries. A cache miss recomputes; the cursor's served ids keep the
    chain free of repeats either way."""
    cache_key = _ranking_cache_key(viewer.pk, snapshot)
    first_page = pool is not None and not served
    # A chain's first page has a new snapshot, so its ranking cannot be cached yet.
    cached = None if first_page else _cached_ranking(cache_key)
    if cached is not None:
        ranked, may_have_more = cached
        remaining = [entry for entry in ranked if entry[0] not in served]
        if remaining or not may_have_more:
            return remaining, may_have_more
    viewer_facts = feed_viewer(
        viewer=viewer,
        recent_likes=RECENT_LIKES,
        followed_pool_at=snapshot if first_page else None,
        followed_pool_size=FOLLOWED_POOL,
        followed_pool_per_author=FOLLOWED_POOL_PER_AUTHOR,
    )
    affinity = _affinity(viewer_facts)
    if first_page:
        candidates, may_have_more = _candidates_from_pool(viewer, pool, viewer_facts)
    else:
        candidates, may_have_more = _candidates(viewer, snapshot, served, viewer_facts.followed_author_ids)
    ranked = rank(candidates, affinity=affinity, snapshot=snapshot)
    cache.set(cache_key, (ranked, may_have_more), RANKING_CACHE_SECONDS)
    recent_rankings.put(cache_key, (ranked, may_have_more))
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
