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
(at most 20 of any one author, so one prolific author cannot fill it), never V's own posts,
nothing across a block and nothing by an author of a post V reported. The scored list is ordered
greedily so that no two neighbours share an author while another author is available (the author
last served on the previous page counts as a neighbour). The part of a score that does not depend
on V (freshness, engagement, remixability) is computed once per pool, in numpy.

A chain's first page costs one statement besides the page itself, and one more when the shared
pool has expired. The 300 newest posts are the same for every viewer, so they come
from a pool each server process keeps for RECENT_POOL_SECONDS (dropped at once in the process
where a post is saved or deleted; elsewhere a new post enters first pages within those seconds,
and a post taken down meanwhile is never served, as every page is read again with its status); T
is the pool's time, and V's own, blocked and reported authors are removed from it in Python. The
followed authors' newest posts are kept the same way, per author, shared by all of the author's
followers (`AuthorsNewest`). Everything else about V (follows, exclusions, recent likes) and the
newest posts of the followed authors the process does not keep come in one statement
(`social.selectors.first_page_viewer`).

A viewer whose feed is not personalised (minors by default, API.md) is ranked without personal
signals: no affinity (every candidate's is 1), and candidates from the recent pool only, not from
the authors they follow (`_impersonal_viewer`); blocks and reports still exclude authors. Their
chain's ranking is cached under a key of its own, so turning personalisation off or on applies
from the next page.

The cursor is signed and carries T, the author served last and the ids already served in this
chain (`encode_chain_cursor`; `pack_post_ids`: the gaps between the sorted ids in the narrowest
width that holds them, about 2 bytes an id):
posts published after T never enter the chain, and served posts are excluded from every later
page, so no post appears twice however the counters move between pages; every candidate is served
eventually, in rank order. The ranked list is cached per chain (Redis, 15 min, and the last few
hundred in the server process) so later pages cost at most one cache read and one statement. When
it is used up (after about 40 pages) or lost, the next candidates are the same two pools read
again without the served ids (`_continuation`: the newest unserved posts before T from one index
range scan, and the followed authors' newest unserved ones), ranked the same way. A chain ends
after FEED_CHAIN_MAX_POSTS posts (the cursor stays a few KB); the client then starts a new chain.
"""

from __future__ import annotations

import base64
import binascii
import functools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.utils import timezone

from core.errors import ApiError
from core.pagination import Page, decode_cursor, keyset_cursor, keyset_position
from social.models import User
from social.selectors import (
    FeedViewer,
    feed_viewer,
    first_page_viewer,
    following_cards,
    following_cards_json,
    newest_candidates,
    published_cards,
    published_cards_json,
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


# A candidate is read as these columns (`social.selectors`); `chain_root` is the post's remix
# chain (its root, or the post itself when it is no remix); `published_at` in seconds since the
# epoch.
CANDIDATE_FIELDS = (
    "id",
    "author_id",
    "chain_root",
    "published_at",
    "like_count",
    "comment_count",
    "remix_count",
    "view_count",
    "remix_allowed",
)


def _find(ordered: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each value, a position in the sorted, non-empty `ordered` and whether the value is there."""
    index = np.searchsorted(ordered, values)
    index[index == len(ordered)] = 0
    return index, ordered[index] == values


def member_of(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """For each value, whether it is among `members` (as numpy's isin, which costs several times
    more on arrays of a few hundred: it is built for large ones)."""
    if not len(members):
        return np.zeros(len(values), dtype=bool)
    return _find(np.sort(members), values)[1]


@dataclass(frozen=True)
class Candidates:
    """for_you candidates as equal-length numpy columns, with the part of each score that does not
    depend on the viewer (freshness * engagement * remixability at the chain's snapshot) computed
    once: the shared pool is scored once per process and pool period, not once per viewer."""

    post_ids: np.ndarray
    author_ids: np.ndarray
    root_ids: np.ndarray
    base_scores: np.ndarray

    @classmethod
    def from_columns(cls, columns, *, snapshot: datetime) -> Candidates:
        """From CANDIDATE_FIELDS columns (sequences of equal length, `published_at` in epoch
        seconds), as `social.selectors` reads them."""
        post_ids, author_ids, root_ids, published, likes, comments, remixes, views, remix_allowed = columns
        published = np.asarray(published, dtype=np.float64)
        likes, comments, remixes, views = (
            np.asarray(column, dtype=np.float64) for column in (likes, comments, remixes, views)
        )
        age_hours = np.maximum(0.0, (snapshot.timestamp() - published) / 3600)
        freshness = 0.5 ** (age_hours / HALF_LIFE_HOURS)
        engagement = (likes + 2 * comments + 3 * remixes + 1) / (views + 10)
        remixability = 1.0 + 0.2 * np.asarray(remix_allowed, dtype=bool) + 0.1 * np.log1p(remixes)
        return cls(
            np.asarray(post_ids, dtype=np.int64),
            np.asarray(author_ids, dtype=np.int64),
            np.asarray(root_ids, dtype=np.int64),
            freshness * engagement * remixability,
        )

    def __len__(self) -> int:
        return len(self.post_ids)

    def take(self, selection) -> Candidates:
        """The candidates a boolean mask or an index array selects, in its order."""
        return Candidates(
            self.post_ids[selection],
            self.author_ids[selection],
            self.root_ids[selection],
            self.base_scores[selection],
        )

    def followed_by(self, other: Candidates) -> Candidates:
        return Candidates(
            *(
                np.concatenate((mine, theirs))
                for mine, theirs in (
                    (self.post_ids, other.post_ids),
                    (self.author_ids, other.author_ids),
                    (self.root_ids, other.root_ids),
                    (self.base_scores, other.base_scores),
                )
            )
        )


@dataclass(frozen=True)
class ViewerAffinity:
    followed_author_ids: np.ndarray
    # Authors of the viewer's recent likes (sorted, distinct) and how many of those posts each wrote.
    liked_author_ids: np.ndarray
    liked_posts_per_author: np.ndarray
    liked_root_ids: np.ndarray

    def liked_posts_by(self, author_ids: np.ndarray) -> np.ndarray:
        if not len(self.liked_author_ids):
            return np.zeros(len(author_ids), dtype=np.int64)
        index, found = _find(self.liked_author_ids, author_ids)
        return np.where(found, self.liked_posts_per_author[index], 0)


@dataclass(frozen=True)
class Ranking:
    """A chain's candidates in rank order, and whether older posts remain beyond them (cached per
    chain: two arrays, cheap to keep in the process and to send to the shared cache)."""

    post_ids: np.ndarray
    author_ids: np.ndarray
    may_have_more: bool

    def __len__(self) -> int:
        return len(self.post_ids)

    def without(self, served: np.ndarray) -> Ranking:
        """The ranking less the `served` post ids (sorted)."""
        if not len(served):
            return self
        keep = ~_find(served, self.post_ids)[1]
        return Ranking(self.post_ids[keep], self.author_ids[keep], self.may_have_more)


def rank(candidates: Candidates, *, affinity: ViewerAffinity, may_have_more: bool) -> Ranking:
    """The candidates by descending score (the module's formula: the viewer's affinity times the
    base score), the newer post (higher id) first on equal scores."""
    by_followed = member_of(candidates.author_ids, affinity.followed_author_ids)
    liked_by_author = affinity.liked_posts_by(candidates.author_ids)
    in_liked_chain = member_of(candidates.root_ids, affinity.liked_root_ids)
    author_affinity = (
        1.0 + 1.0 * by_followed + 0.5 * np.minimum(liked_by_author, 5) / 5 + 0.5 * in_liked_chain
    )
    scores = candidates.base_scores * author_affinity
    order = np.lexsort((candidates.post_ids, scores))[::-1]
    return Ranking(candidates.post_ids[order], candidates.author_ids[order], may_have_more)


def spread_authors(
    post_ids: list[int], author_ids: list[int], *, limit: int, previous_author_id: int | None
) -> list[tuple[int, int]]:
    """(post_id, author_id) of `limit` posts taken in rank order, skipping ahead when the next one
    repeats the last author while another author is left (the author last served on the previous
    page counts as the last one)."""
    chosen: list[tuple[int, int]] = []
    # Positions passed over because they repeated the last author, in rank order; all of them rank
    # above `position`, so the first one of another author is the next pick.
    passed_over: list[int] = []
    last_author = previous_author_id
    position, count = 0, len(post_ids)
    while len(chosen) < limit:
        earlier = next((i for i, index in enumerate(passed_over) if author_ids[index] != last_author), None)
        if earlier is not None:
            index = passed_over.pop(earlier)
        else:
            while position < count and author_ids[position] == last_author:
                passed_over.append(position)
                position += 1
            if position < count:
                index, position = position, position + 1
            elif passed_over:
                index = passed_over.pop(0)  # only the last author is left
            else:
                break
        chosen.append((post_ids[index], author_ids[index]))
        last_author = author_ids[index]
    return chosen


# The widths a gap between two served ids is packed in, by the tag that starts a packed list.
_ID_GAP_WIDTHS = {"2": np.dtype("<u2"), "4": np.dtype("<u4"), "8": np.dtype("<u8")}
_ID_GAP_LIMITS = [(tag, int(np.iinfo(width).max)) for tag, width in _ID_GAP_WIDTHS.items()]


def pack_post_ids(post_ids: np.ndarray) -> str:
    """Sorted, distinct, positive post ids as a short URL-safe text: the gaps between them, each in
    the narrowest unsigned width that holds the largest. A chain's 500 served ids take about 1.3 KB
    on a million posts (as a JSON list about 4 KB, and far slower to read and write on every page)."""
    gaps = np.array(post_ids, dtype=np.int64)
    gaps[1:] -= gaps[:-1]
    largest = int(gaps.max()) if len(gaps) else 0
    tag = next(tag for tag, limit in _ID_GAP_LIMITS if largest <= limit)
    packed = base64.urlsafe_b64encode(gaps.astype(_ID_GAP_WIDTHS[tag]).tobytes())
    return tag + packed.decode("ascii").rstrip("=")


def unpack_post_ids(text: str) -> np.ndarray:
    """The sorted post ids `pack_post_ids` packed; ValueError when the text is not such a list."""
    width = _ID_GAP_WIDTHS.get(text[:1])
    if width is None:
        raise ValueError("unknown id packing")
    body = text[1:]
    try:
        packed = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_", validate=True)
    except binascii.Error as exc:
        raise ValueError("malformed id packing") from exc
    if len(packed) % width.itemsize:
        raise ValueError("malformed id packing")
    return np.cumsum(np.frombuffer(packed, dtype=width).astype(np.int64))


def _served_ids(state: dict) -> np.ndarray:
    """The served ids a cursor carries: packed, or (cursors issued before the packing) a JSON list."""
    served = state["s"]
    if isinstance(served, str):
        return unpack_post_ids(served)
    return np.unique(np.asarray([int(post_id) for post_id in served], dtype=np.int64))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@functools.cache
def _chain_cursor_signer() -> signing.Signer:
    # Made once per process: a Signer reads SECRET_KEY (and its fallbacks) when it is made, and
    # making one on every page cost as much as signing.
    return signing.Signer(salt="social.feed.for_you.chain")


@dataclass(frozen=True)
class ChainPosition:
    """Where a for_you chain stands: its snapshot time T, the ids it served (sorted) and the author
    it served last."""

    snapshot: datetime
    served: np.ndarray
    last_author_id: int | None


def encode_chain_cursor(position: ChainPosition) -> str:
    """The signed cursor of a chain: `<T in microseconds>.<last author>.<packed served ids>`, signed
    as plain text (no JSON, compression or timestamp: it is read and written on every page)."""
    micros = (position.snapshot - _EPOCH) // _MICROSECOND
    author = "" if position.last_author_id is None else position.last_author_id
    return _chain_cursor_signer().sign(f"{micros}.{author}.{pack_post_ids(position.served)}")


def decode_chain_cursor(cursor: str) -> ChainPosition:
    """The chain position a cursor holds; also reads the JSON cursors issued before
    (`core.pagination.encode_cursor`). 400 `invalid` for anything else."""
    try:
        value = _chain_cursor_signer().unsign(cursor)
    except signing.BadSignature:
        value = None
    try:
        if value is not None:
            micros, author, packed = value.split(".", 2)
            return ChainPosition(
                _EPOCH + int(micros) * _MICROSECOND, unpack_post_ids(packed), int(author) if author else None
            )
        state = decode_cursor(cursor)
        return ChainPosition(datetime.fromisoformat(state["t"]), _served_ids(state), state.get("a"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError("The cursor is not valid.", details={"cursor": ["Invalid cursor."]}) from exc


def _affinity(viewer_facts: FeedViewer) -> ViewerAffinity:
    liked_authors, liked_counts = np.unique(
        np.asarray(viewer_facts.recent_liked_author_ids, dtype=np.int64), return_counts=True
    )
    return ViewerAffinity(
        np.asarray(viewer_facts.followed_author_ids, dtype=np.int64),
        liked_authors,
        liked_counts,
        np.asarray(viewer_facts.recent_liked_root_ids, dtype=np.int64),
    )


def _impersonal_viewer(viewer: User) -> FeedViewer:
    """The viewer as a ranking without personal signals knows them: only the authors they never
    see (blocks, reports); no follows, no likes, no followed authors' pool. One statement."""
    facts = feed_viewer(viewer=viewer, recent_likes=0)
    return replace(facts, followed_author_ids=[])


def _continuation_viewer(viewer: User, snapshot: datetime, served: np.ndarray) -> FeedViewer:
    """What the ranking needs to know about the viewer, with the followed authors' newest posts at
    the snapshot read without the served ids."""
    return feed_viewer(
        viewer=viewer,
        recent_likes=RECENT_LIKES,
        followed_pool_at=snapshot,
        followed_pool_size=FOLLOWED_POOL,
        followed_pool_per_author=FOLLOWED_POOL_PER_AUTHOR,
        exclude_post_ids=served.tolist(),
    )


def _continuation(
    viewer: User, snapshot: datetime, served: np.ndarray, viewer_facts: FeedViewer
) -> tuple[Candidates, bool]:
    """Candidates when a chain's ranking is used up or lost: the RECENT_POOL newest posts at the
    snapshot not yet served, and the followed authors' newest not yet served (viewer_facts, read
    with the served ids left out), under the same rules as a first page."""
    recent = Candidates.from_columns(
        newest_candidates(viewer=viewer, at=snapshot, exclude_post_ids=served.tolist(), limit=RECENT_POOL),
        snapshot=snapshot,
    )
    # A full recent pool means older posts remain for later pages.
    followed = Candidates.from_columns(viewer_facts.followed_pool, snapshot=snapshot)
    return _with_followed_pool(recent, followed), len(recent) >= RECENT_POOL


def _with_followed_pool(recent: Candidates, followed: Candidates) -> Candidates:
    """The recent candidates, then the followed authors' pool less what is among them already."""
    return recent.followed_by(followed.take(~member_of(followed.post_ids, recent.post_ids)))


_PUBLISHED = CANDIDATE_FIELDS.index("published_at")
_POST_ID = CANDIDATE_FIELDS.index("id")
_AUTHOR_ID = CANDIDATE_FIELDS.index("author_id")
_NO_ROWS = np.zeros((0, len(CANDIDATE_FIELDS)), dtype=np.float64)
_NO_CANDIDATES = Candidates.from_columns(_NO_ROWS.T, snapshot=_EPOCH)


class AuthorsNewest:
    """Each author's FOLLOWED_POOL_PER_AUTHOR newest published posts as candidate rows (one float64
    row of CANDIDATE_FIELDS a post), kept by this process for RECENT_POOL_SECONDS and shared by
    every viewer who follows the author, as the recent pool is shared by all viewers: reading the
    followed authors' newest posts was most of a first page's database time, and the same popular
    authors are followed by many viewers. Entries are as fresh as the recent pool (dropped at once
    in the process where one of the author's posts is saved or deleted).

    A first page asks the database only for the followed authors not kept here, in its one viewer
    statement; to name the kept ones before it knows whom the viewer follows, it takes the authors
    the viewer followed at their last first page in this process (a hint: the statement reads the
    follows anew, so a new follow is read and an old one ignored). Bounded (about 40 MB at most: 20
    rows for each of 20,000 authors, 10,000 viewers' hints): when the rows are full, the expired
    ones go, or else all; the hints least recently used go first."""

    def __init__(self, capacity: int = 20_000, viewers: int = 10_000):
        self.capacity = capacity
        self.viewers = viewers
        self._rows: dict[int, tuple[float, np.ndarray]] = {}
        self._followed: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def kept_for(self, viewer_id: int) -> dict[int, np.ndarray]:
        """The fresh rows of the authors the viewer followed at their last first page here."""
        with self._lock:
            followed = self._followed.get(viewer_id)
        now = time.monotonic()
        kept = {}
        for author_id in followed.tolist() if followed is not None else ():
            entry = self._rows.get(author_id)
            if entry is not None and entry[0] > now:
                kept[author_id] = entry[1]
        return kept

    def put(self, viewer_id: int, followed: list[int], read: dict[int, np.ndarray]) -> None:
        """Keeps the rows read for these authors, and whom the viewer follows as their hint."""
        now = time.monotonic()
        with self._lock:
            if read:
                if len(self._rows) + len(read) > self.capacity:
                    self._rows = {key: entry for key, entry in self._rows.items() if entry[0] > now}
                    if len(self._rows) + len(read) > self.capacity:
                        self._rows = {}
                expires_at = now + RECENT_POOL_SECONDS
                self._rows.update((author_id, (expires_at, rows)) for author_id, rows in read.items())
            self._followed[viewer_id] = np.asarray(followed, dtype=np.int64)
            self._followed.move_to_end(viewer_id)
            while len(self._followed) > self.viewers:
                self._followed.popitem(last=False)

    @staticmethod
    def by_author(columns: list[list], author_ids: list[int]) -> dict[int, np.ndarray]:
        """The rows of these authors from columns ordered by author (`first_page_viewer`); no rows
        for an author without posts."""
        found = dict.fromkeys(author_ids, _NO_ROWS)
        if not len(columns[0]):
            return found
        rows = np.column_stack([np.asarray(column, dtype=np.float64) for column in columns])
        # The rows come author by author: each author's block starts where the author changes.
        authors = rows[:, _AUTHOR_ID]
        starts = np.flatnonzero(np.diff(authors, prepend=-1.0))
        ends = [*starts[1:].tolist(), len(rows)]
        for author_id, start, end in zip(
            authors[starts].astype(np.int64).tolist(), starts.tolist(), ends, strict=True
        ):
            found[author_id] = rows[start:end]
        return found

    def forget(self, author_id: int | None = None) -> None:
        """Drops one author's rows, or with no author everything kept."""
        with self._lock:
            if author_id is None:
                self._rows = {}
                self._followed.clear()
            else:
                self._rows.pop(author_id, None)


authors_newest = AuthorsNewest()


def _first_page_viewer(viewer: User, snapshot: datetime) -> tuple[FeedViewer, Candidates]:
    """What the ranking needs to know about the viewer, and the FOLLOWED_POOL newest posts published
    at `snapshot` by the authors they follow (not their own, none excluded): one statement, which
    reads only the authors `authors_newest` does not keep."""
    kept = authors_newest.kept_for(viewer.pk)
    viewer_facts, newest = first_page_viewer(
        viewer=viewer,
        recent_likes=RECENT_LIKES,
        kept_author_ids=list(kept),
        # Read as of now, as they are kept for everyone; posts newer than the snapshot are left
        # out below (so an author who published since then gives this chain fewer of their 20).
        at=timezone.now(),
        per_author=FOLLOWED_POOL_PER_AUTHOR,
    )
    followed = newest.author_ids
    read = AuthorsNewest.by_author(
        newest.columns, [author_id for author_id in followed if author_id not in kept]
    )
    authors_newest.put(viewer.pk, followed, read)
    blocks = [kept.get(author_id, read.get(author_id)) for author_id in followed]
    rows = np.concatenate(blocks) if blocks else _NO_ROWS
    rows = rows[rows[:, _PUBLISHED] <= snapshot.timestamp()]
    newest = np.lexsort((-rows[:, _POST_ID], -rows[:, _PUBLISHED]))[:FOLLOWED_POOL]
    return viewer_facts, Candidates.from_columns(rows[newest].T, snapshot=snapshot)


_recent_pool: tuple[float, datetime, Candidates] | None = None


def recent_pool() -> tuple[datetime, Candidates]:
    """(T, the SHARED_POOL newest published posts at T, scored at T), shared by all viewers served
    by this process for RECENT_POOL_SECONDS."""
    global _recent_pool
    cached = _recent_pool
    if cached is not None and cached[0] > time.monotonic():
        return cached[1], cached[2]
    snapshot = timezone.now()
    pool = Candidates.from_columns(newest_candidates(at=snapshot, limit=SHARED_POOL), snapshot=snapshot)
    _recent_pool = (time.monotonic() + RECENT_POOL_SECONDS, snapshot, pool)
    return snapshot, pool


def forget_kept_posts(author_id: int | None = None) -> None:
    """Drops what this process keeps of published posts for first pages: the shared recent pool,
    and the author's newest posts (every author's without one)."""
    global _recent_pool
    _recent_pool = None
    authors_newest.forget(author_id)


def _candidates_from_pool(
    viewer: User, pool: Candidates, viewer_facts: FeedViewer, followed: Candidates
) -> tuple[Candidates, bool]:
    excluded = [*viewer_facts.excluded_author_ids, viewer.pk]
    allowed = np.flatnonzero(~member_of(pool.author_ids, np.asarray(excluded, dtype=np.int64)))
    return _with_followed_pool(pool.take(allowed[:RECENT_POOL]), followed), len(pool) >= RECENT_POOL


class RecentRankings:
    """The rankings this process computed or read most recently, in front of the shared cache: a
    client's next page usually reaches the same server process over its kept-alive connection, and
    a chain's ranking never changes, so the page needs no cache round trip. Bounded (LRU)."""

    def __init__(self, capacity: int = 512):
        self.capacity = capacity
        self._rankings: OrderedDict[str, Ranking] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> Ranking | None:
        with self._lock:
            value = self._rankings.get(key)
            if value is not None:
                self._rankings.move_to_end(key)
            return value

    def put(self, key: str, value: Ranking) -> None:
        with self._lock:
            self._rankings[key] = value
            self._rankings.move_to_end(key)
            while len(self._rankings) > self.capacity:
                self._rankings.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._rankings.clear()


recent_rankings = RecentRankings()


def _cached_ranking(key: str) -> Ranking | None:
    value = recent_rankings.get(key)
    if value is None:
        value = cache.get(key)
        if not isinstance(value, Ranking):
            return None
        recent_rankings.put(key, value)
    return value


def _ranking_cache_key(viewer_id: int, snapshot: datetime, personalised: bool) -> str:
    kind = "" if personalised else ":impersonal"
    return f"feed:for_you:ranking:{viewer_id}:{snapshot.isoformat()}{kind}"


def _ranked_candidates(
    viewer: User,
    snapshot: datetime,
    served: np.ndarray,
    pool: Candidates | None = None,
    *,
    personalised: bool = True,
) -> Ranking:
    """The chain's candidates in rank order, not yet served; cached per chain so that later pages
    skip the candidate and affinity queries. A cache miss recomputes; the cursor's served ids keep
    the chain free of repeats either way. Without `personalised`, no personal signal enters."""
    cache_key = _ranking_cache_key(viewer.pk, snapshot, personalised)
    first_page = pool is not None and not len(served)
    # A chain's first page has a new snapshot, so its ranking cannot be cached yet.
    cached = None if first_page else _cached_ranking(cache_key)
    if cached is not None:
        remaining = cached.without(served)
        if len(remaining) or not remaining.may_have_more:
            return remaining
    # An impersonal viewer's followed pool is empty: their candidates are the recent pool alone.
    if first_page:
        viewer_facts, followed = (
            _first_page_viewer(viewer, snapshot)
            if personalised
            else (_impersonal_viewer(viewer), _NO_CANDIDATES)
        )
        candidates, may_have_more = _candidates_from_pool(viewer, pool, viewer_facts, followed)
    else:
        viewer_facts = (
            _continuation_viewer(viewer, snapshot, served) if personalised else _impersonal_viewer(viewer)
        )
        candidates, may_have_more = _continuation(viewer, snapshot, served, viewer_facts)
    ranking = rank(candidates, affinity=_affinity(viewer_facts), may_have_more=may_have_more)
    cache.set(cache_key, ranking, RANKING_CACHE_SECONDS)
    recent_rankings.put(cache_key, ranking)
    return ranking


def for_you_page(
    *,
    viewer: User,
    cursor: str | None,
    limit: int,
    media_url_prefix: str | None = None,
    personalised: bool = True,
) -> Page:
    """A page of the `for_you` tab: PostCards, or with `media_url_prefix` the page rendered by
    PostgreSQL (`social.selectors.RenderedCards`); ranked without personal signals unless
    `personalised`."""
    pool = None
    if not cursor:
        (snapshot, pool), served, previous_author = recent_pool(), np.zeros(0, dtype=np.int64), None
    else:
        position = decode_chain_cursor(cursor)
        snapshot, served, previous_author = position.snapshot, position.served, position.last_author_id
    ranking = _ranked_candidates(viewer, snapshot, served, pool, personalised=personalised)
    chosen = spread_authors(
        ranking.post_ids.tolist(),
        ranking.author_ids.tolist(),
        limit=limit,
        previous_author_id=previous_author,
    )
    page_ids = [post_id for post_id, _author in chosen]
    # Blocks and reports made since the chain started apply at once.
    if media_url_prefix is None:
        items = published_cards(viewer=viewer, post_ids=page_ids)
    else:
        items = published_cards_json(viewer=viewer, post_ids=page_ids, media_url_prefix=media_url_prefix)
    # Page ids are never among the served ones (the ranking and the continuation leave them out).
    served_now = np.sort(np.concatenate((served, np.asarray(page_ids, dtype=np.int64))))
    has_more = (len(ranking) > len(chosen) or ranking.may_have_more) and len(
        served_now
    ) < settings.FEED_CHAIN_MAX_POSTS
    next_cursor = None
    if has_more and chosen:
        next_cursor = encode_chain_cursor(ChainPosition(snapshot, served_now, chosen[-1][1]))
    return Page(items=items, next_cursor=next_cursor)


def following_page(
    *, viewer: User, cursor: str | None, limit: int, media_url_prefix: str | None = None
) -> Page:
    """The `following` tab: newest first by (published_at, id), one statement per page; PostCards,
    or with `media_url_prefix` the page rendered by PostgreSQL (`social.selectors.RenderedCards`)."""
    after = keyset_position(cursor, keys=2)
    if after is not None and not (isinstance(after[0], datetime) and isinstance(after[1], int)):
        raise ApiError("The cursor is not valid.", details={"cursor": ["Invalid cursor."]})
    if media_url_prefix is not None:
        rendered, has_more = following_cards_json(
            viewer=viewer, after=after, limit=limit, media_url_prefix=media_url_prefix
        )
        next_cursor = keyset_cursor(list(rendered.last_key)) if has_more and rendered.last_key else None
        return Page(items=rendered, next_cursor=next_cursor)
    cards = following_cards(viewer=viewer, after=after, limit=limit + 1)
    next_cursor = None
    if len(cards) > limit:
        cards = cards[:limit]
        next_cursor = keyset_cursor([cards[-1].published_at, cards[-1].pk])
    return Page(items=cards, next_cursor=next_cursor)
