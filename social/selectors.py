"""Reads of the social app."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet, Value
from psycopg import pq

from core.errors import Forbidden, NotFound
from social.models import (
    Block,
    Comment,
    Follow,
    GuardianLink,
    Like,
    Notification,
    Post,
    PostStatus,
    User,
)

# Generation registers how many jobs a user started today; until it does, nobody has used any.
_usage_counters: list[Callable[[User], int]] = []


def register_daily_usage_counter(counter: Callable[[User], int]) -> None:
    if counter not in _usage_counters:
        _usage_counters.append(counter)


@dataclass
class Quota:
    daily_limit: int
    used_today: int


def quota_for(*, user: User) -> Quota:
    limit = settings.GENERATION_DAILY_LIMITS.get(user.tier, settings.GENERATION_DAILY_LIMITS["free"])
    used = sum(counter(user) for counter in _usage_counters)
    return Quota(daily_limit=limit, used_today=used)


def _active_users(username: str) -> QuerySet[User]:
    return User.objects.filter(username__iexact=username, is_active=True)


def get_active_user(*, username: str) -> User | None:
    return _active_users(username).first()


def get_active_user_or_404(*, username: str) -> User:
    user = get_active_user(username=username)
    if user is None:
        raise NotFound()
    return user


def is_blocked_either_way(*, user_id: int, other_id: int) -> bool:
    return Block.objects.filter(
        Q(blocker_id=user_id, blocked_id=other_id) | Q(blocker_id=other_id, blocked_id=user_id)
    ).exists()


def follows(*, follower_id: int, followee_id: int) -> bool:
    return Follow.objects.filter(follower_id=follower_id, followee_id=followee_id).exists()


def are_mutuals(*, user_id: int, other_id: int) -> bool:
    """Each follows the other."""
    return (
        Follow.objects.filter(
            Q(follower_id=user_id, followee_id=other_id) | Q(follower_id=other_id, followee_id=user_id)
        ).count()
        == 2
    )


def blocked_user_ids(*, viewer_id: int) -> QuerySet:
    """The ids of everyone on either side of a block with the viewer (usable as a subquery)."""
    return (
        Block.objects.filter(blocker_id=viewer_id)
        .values_list("blocked_id", flat=True)
        .union(Block.objects.filter(blocked_id=viewer_id).values_list("blocker_id", flat=True))
    )


def not_blocked(viewer_id: int, field: str = "author_id") -> Q:
    """Rows whose `field` (a user id) is on neither side of a block with the viewer."""
    return ~Q(**{f"{field}__in": blocked_user_ids(viewer_id=viewer_id)})


def visible_posts(*, viewer: User | None, annotate_viewer: bool = True) -> QuerySet[Post]:
    """The one place that decides who sees which post.

    - published: everyone, except across a block with the author;
    - draft: its author, and owners of cameos in it (`cameo_owner_ids`) unless blocked;
    - removed: its author only.
    Rows carry the author (select_related) and `liked_by_me`, so rendering a page costs no more
    queries whatever its size.
    """
    posts = Post.objects.select_related("author")
    if viewer is None or not viewer.is_authenticated:
        return posts.filter(status=PostStatus.PUBLISHED).annotate(liked_by_me=Value(False))
    others = (
        Q(status=PostStatus.PUBLISHED) | Q(status=PostStatus.DRAFT, cameo_owner_ids__contains=[viewer.pk])
    ) & not_blocked(viewer.pk)
    posts = posts.filter(Q(author_id=viewer.pk) | others)
    if annotate_viewer:
        posts = posts.annotate(
            liked_by_me=Exists(Like.objects.filter(post_id=OuterRef("pk"), user_id=viewer.pk))
        )
    return posts


def get_visible_post(*, viewer: User | None, post_id) -> Post:
    try:
        post_pk = int(post_id)
    except (TypeError, ValueError) as exc:
        raise NotFound() from exc
    post = visible_posts(viewer=viewer).filter(pk=post_pk).first()
    if post is None:
        raise NotFound()
    return post


def get_post_for_likeness_owner(*, viewer: User, post_id) -> Post:
    """A post as the owner of a cameo in it reaches it to take it down or read its provenance:
    whatever its status and whatever blocks stand between them and its author, since a person may
    always pull their likeness out of circulation. Anyone else: `get_visible_post`."""
    try:
        post_pk = int(post_id)
    except (TypeError, ValueError) as exc:
        raise NotFound() from exc
    carrying = (
        Post.objects.select_related("author")
        .filter(pk=post_pk, cameo_owner_ids__contains=[viewer.pk])
        .exclude(author_id=viewer.pk)
        .first()
    )
    return carrying or get_visible_post(viewer=viewer, post_id=post_pk)


def user_profile(*, viewer: User, username: str) -> User:
    """A user with `is_following` / `follows_you`; 404 when the user blocked the viewer."""
    user = (
        _active_users(username)
        .annotate(
            is_following=Exists(Follow.objects.filter(follower_id=viewer.pk, followee_id=OuterRef("pk"))),
            follows_you=Exists(Follow.objects.filter(follower_id=OuterRef("pk"), followee_id=viewer.pk)),
            blocked_viewer=Exists(Block.objects.filter(blocker_id=OuterRef("pk"), blocked_id=viewer.pk)),
        )
        .first()
    )
    if user is None or user.blocked_viewer:
        raise NotFound()
    return user


def user_posts(*, viewer: User, author: User, status: str = PostStatus.PUBLISHED) -> QuerySet[Post]:
    """Published posts of `author`; the author alone may also list their drafts and removed posts."""
    if status != PostStatus.PUBLISHED and viewer.pk != author.pk:
        raise Forbidden("Only the author may list these posts.")
    return visible_posts(viewer=viewer).filter(author_id=author.pk, status=status)


@dataclass(slots=True)
class PostCard:
    """A post as a feed renders it: its columns, its author's username and whether the viewer liked
    it, read in one row. Feeds read cards with one SQL statement per page; other lists render
    `Post` rows through `PostCard.of_post`, so a post looks the same everywhere."""

    pk: int
    author_id: int
    author_username: str
    status: str
    caption: str
    prompt: str
    video: str
    poster: str
    duration_s: float
    width: int
    height: int
    has_audio: bool
    created_at: datetime
    published_at: datetime | None
    like_count: int
    comment_count: int
    remix_count: int
    view_count: int
    remix_of_id: int | None
    root_id: int | None
    source_ids: list[int]
    remix_allowed: bool
    cameo_refs: list[Any]
    ip_refs: list[Any]
    content_id: UUID | None
    provider: str
    liked_by_me: bool

    @classmethod
    def of_post(cls, post: Post, *, liked_by_me: bool) -> PostCard:
        return cls(
            post.pk, post.author_id, post.author.username, post.status, post.caption, post.prompt,
            post.video.name or "", post.poster.name or "", post.duration_s, post.width, post.height,
            post.has_audio, post.created_at, post.published_at, post.like_count, post.comment_count, post.remix_count,
            post.view_count, post.remix_of_id, post.root_id, post.source_ids, post.remix_allowed, post.cameo_refs,
            post.ip_refs, post.content_id, post.provider, liked_by_me,
        )  # fmt: skip


# The swipe feeds are the hottest reads: hand-written SQL costs one round trip per page and no
# query compilation, which was most of a page's cost through the ORM.
_LIKED_BY_VIEWER = "EXISTS (SELECT 1 FROM social_like l WHERE l.post_id = p.id AND l.user_id = %(viewer)s)"
_CARD_COLUMNS = f"""
SELECT p.id, p.author_id, u.username, p.status, p.caption, p.prompt, p.video, p.poster, p.duration_s,
       p.width, p.height, p.has_audio, p.created_at, p.published_at, p.like_count, p.comment_count, p.remix_count,
       p.view_count, p.remix_of_id, p.root_id, p.source_ids, p.remix_allowed, p.cameo_refs::text, p.ip_refs::text,
       p.content_id, p.provider, {_LIKED_BY_VIEWER}
"""
# A card's post `p` and its author `u`.
_CARD_FROM = "FROM social_post p JOIN social_user u ON u.id = p.author_id"
_CARD_SELECT = f"{_CARD_COLUMNS} {_CARD_FROM}"


def _iso_utc(column: str) -> str:
    """A timestamp as `PostRendering.iso` writes it in UTC: ISO 8601, microseconds only when there
    are any, `Z` for UTC."""
    return (
        f"to_char({column} AT TIME ZONE 'UTC', CASE WHEN date_trunc('second', {column}) = {column} "
        """THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END)"""
    )


# Characters Python's urllib.parse.quote leaves alone with Django's filepath_to_uri safe set.
_URI_SAFE = r"[-A-Za-z0-9_.~/!*()'']"


def _media_url(column: str) -> str:
    """The media URL of a stored file name: %(media_url_prefix)s and the name quoted as
    `django.utils.encoding.filepath_to_uri` quotes it (stored names are nearly always safe as
    they are; the slow branch percent-encodes each other character's UTF-8 bytes). Published posts
    only: the media of any other post need a signed URL, which only Python makes (null here)."""
    quoted = rf"""CASE WHEN {column} ~ '^{_URI_SAFE}*$' THEN {column} ELSE (
        SELECT string_agg(CASE WHEN ch ~ '^{_URI_SAFE}$' THEN ch
                               ELSE regexp_replace(upper(encode(convert_to(ch, 'UTF8'), 'hex')), '(..)', '%%\1', 'g')
                          END, '' ORDER BY n)
        FROM regexp_split_to_table(replace({column}, '\', '/'), '') WITH ORDINALITY AS t(ch, n)) END"""
    return f"CASE WHEN p.status = 'published' AND {column} <> '' THEN %(media_url_prefix)s || {quoted} END"


def _ref_list(column: str, fields: str) -> str:
    """A jsonb list of reference objects as `render_post_card` lists them (`fields` from each)."""
    return (
        f"CASE WHEN {column} = '[]' THEN '[]'::json ELSE COALESCE((SELECT json_agg(json_build_object({fields})) "
        f"FROM jsonb_array_elements({column}) r WHERE jsonb_typeof(r) = 'object'), '[]') END"
    )


# API.md's Post, built by PostgreSQL for the swipe feeds: the same object as
# `social.api.serializers.render_post_card` builds from a PostCard (tests compare the two field by
# field), without decoding rows, building objects and encoding JSON in Python, which was a third
# of a feed page's Python time. Needs `p` (the post), `u` (its author), %(viewer)s and
# %(media_url_prefix)s (see `PostRendering.database_media_prefix`).
_CARD_JSON = f"""json_build_object(
    'id', p.id::text,
    'author', json_build_object('id', p.author_id::text, 'username', u.username),
    'status', p.status, 'caption', p.caption, 'prompt', p.prompt,
    'video_url', {_media_url("p.video")},
    'poster_url', {_media_url("p.poster")},
    'duration_s', p.duration_s, 'width', p.width, 'height', p.height, 'has_audio', p.has_audio,
    'created_at', {_iso_utc("p.created_at")},
    'published_at', {_iso_utc("p.published_at")},
    'like_count', p.like_count, 'comment_count', p.comment_count, 'remix_count', p.remix_count,
    'view_count', p.view_count,
    'liked_by_me', {_LIKED_BY_VIEWER},
    'remix_of', p.remix_of_id::text, 'root_id', p.root_id::text,
    'sources', to_json(p.source_ids::text[]), 'remix_allowed', p.remix_allowed,
    'cameos', {_ref_list("p.cameo_refs", "'id', r->>'id', 'owner_username', r->'owner_username'")},
    'ip', {_ref_list("p.ip_refs", "'id', r->>'id', 'name', r->'name', 'rights_holder', r->'rights_holder'")},
    'ai_label', json_build_object('content_id', p.content_id::text, 'provider', p.provider)
)"""

# People on either side of a block with the viewer.
_BLOCKED_AUTHORS = """
SELECT b.blocked_id FROM social_block b WHERE b.blocker_id = %(viewer)s
UNION ALL SELECT b.blocker_id FROM social_block b WHERE b.blocked_id = %(viewer)s
"""

# Authors whose posts the viewer never sees in for_you: the blocked ones and authors of posts the
# viewer reported.
_EXCLUDED_AUTHORS = f"""{_BLOCKED_AUTHORS}
UNION ALL SELECT rp.author_id FROM social_report r JOIN social_post rp ON rp.id = r.post_id
          WHERE r.reporter_id = %(viewer)s
"""


@contextmanager
def _binary_cursor() -> Iterator[Any]:
    """A cursor that receives results in PostgreSQL's binary format: psycopg decodes timestamps and
    arrays of numbers in C that way, while Django's loader for text timestamps is Python (in
    binary, a card page reads about 0.05 ms faster and 400 candidate rows twice as fast)."""
    with connection.cursor() as cursor:
        cursor.cursor.format = pq.Format.BINARY
        yield cursor


def _json_column(value: Any) -> Any:
    # The cards read jsonb as text: most posts carry no cameo or IP references, and "[]" needs no
    # JSON decoder.
    if value == "[]":
        return []
    return json.loads(value) if isinstance(value, str) else value


def _cards(sql: str, params: dict[str, Any]) -> list[PostCard]:
    with _binary_cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    cards = []
    for row in rows:
        card = PostCard(*row)
        card.cameo_refs = _json_column(card.cameo_refs)
        card.ip_refs = _json_column(card.ip_refs)
        cards.append(card)
    return cards


def _following_page_sql(select: str, *, after: bool) -> str:
    """The following tab's page: `select` over `p` (the post), `u` (its author) and `page` (its
    place: published_at, id, position from 1), newest first, after the keyset position when `after`.

    The page is merged from each followed author's own newest posts (`limit` of them, from the
    author's partial index, keys only), so its cost grows with the number of people followed and
    the page size, not with how much they ever posted; only the page's rows are then read."""
    where_after = "AND (p.published_at, p.id) < (%(after_at)s, %(after_id)s)" if after else ""
    return f"""
        WITH page AS (
            SELECT newest.id, newest.published_at,
                   row_number() OVER (ORDER BY newest.published_at DESC, newest.id DESC) AS position
            FROM social_follow f
            CROSS JOIN LATERAL (
                SELECT p.id, p.published_at FROM social_post p
                WHERE p.author_id = f.followee_id AND p.status = 'published' {where_after}
                ORDER BY p.published_at DESC, p.id DESC
                LIMIT %(limit)s
            ) newest
            WHERE f.follower_id = %(viewer)s AND f.followee_id NOT IN ({_BLOCKED_AUTHORS})
            ORDER BY newest.published_at DESC, newest.id DESC
            LIMIT %(limit)s
        )
        {select}
        {_CARD_FROM} JOIN page ON page.id = p.id"""


def _following_params(viewer: User, after: Sequence[Any] | None, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"viewer": viewer.pk, "limit": limit}
    if after:
        params["after_at"], params["after_id"] = after
    return params


def following_cards(*, viewer: User, after: Sequence[Any] | None, limit: int) -> list[PostCard]:
    """Published posts of the people the viewer follows, newest first, after the keyset position
    `after` = (published_at, id). Blocks end follows; a follow made at the same moment as a block
    can outlive it, so blocked authors are left out here too."""
    sql = _following_page_sql(_CARD_COLUMNS, after=bool(after)) + " ORDER BY page.position"
    return _cards(sql, _following_params(viewer, after, limit))


@dataclass(frozen=True)
class RenderedCards:
    """A page of posts rendered by PostgreSQL (`_CARD_JSON`): `json` is the JSON array of API.md's
    Post objects in page order, `last_key` the (published_at, id) of the last (following tab)."""

    json: str
    last_key: tuple[datetime, int] | None = None


def following_cards_json(
    *, viewer: User, after: Sequence[Any] | None, limit: int, media_url_prefix: str
) -> tuple[RenderedCards, bool]:
    """The first `limit` of `following_cards` rendered by PostgreSQL, and whether more follow."""
    sql = _following_page_sql(
        f"""SELECT json_agg({_CARD_JSON} ORDER BY page.position) FILTER (WHERE page.position <= %(page_size)s)::text,
                   count(*),
                   max(page.published_at) FILTER (WHERE page.position = %(page_size)s),
                   max(page.id) FILTER (WHERE page.position = %(page_size)s)""",
        after=bool(after),
    )
    params = _following_params(viewer, after, limit + 1)
    params.update(page_size=limit, media_url_prefix=media_url_prefix)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rendered, count, last_at, last_id = cursor.fetchone()
    last_key = (last_at, last_id) if last_id is not None else None
    return RenderedCards(rendered or "[]", last_key), count > limit


_PUBLISHED_FOR_VIEWER = f"""
    WHERE p.id = ANY(%(ids)s) AND p.status = 'published'
      AND p.author_id <> %(viewer)s
      AND p.author_id NOT IN ({_EXCLUDED_AUTHORS})"""


def published_cards(*, viewer: User, post_ids: Sequence[int]) -> list[PostCard]:
    """The given posts, in the given order, leaving out what is no longer published and what the
    viewer may not see in a feed (blocks and reports made since the ids were chosen apply at once)."""
    if not post_ids:
        return []
    sql = f"{_CARD_SELECT} {_PUBLISHED_FOR_VIEWER}"
    by_id = {card.pk: card for card in _cards(sql, {"viewer": viewer.pk, "ids": list(post_ids)})}
    return [by_id[post_id] for post_id in post_ids if post_id in by_id]


def published_cards_json(*, viewer: User, post_ids: Sequence[int], media_url_prefix: str) -> RenderedCards:
    """`published_cards` rendered by PostgreSQL (`_CARD_JSON`), in the given order."""
    if not post_ids:
        return RenderedCards("[]")
    sql = f"""SELECT json_agg({_CARD_JSON} ORDER BY array_position(%(ids)s::bigint[], p.id))::text
        {_CARD_FROM} {_PUBLISHED_FOR_VIEWER}"""
    params = {"viewer": viewer.pk, "ids": list(post_ids), "media_url_prefix": media_url_prefix}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        (rendered,) = cursor.fetchone()
    return RenderedCards(rendered or "[]")


@dataclass(frozen=True)
class FeedViewer:
    """What the for_you ranking needs to know about its viewer, read in one statement."""

    followed_author_ids: list[int]
    excluded_author_ids: frozenset[int]
    recent_liked_author_ids: list[int]
    recent_liked_root_ids: list[int]
    # The followed authors' newest posts as columns (CANDIDATE_FIELDS of social.feed, published_at
    # in epoch seconds), newest first.
    followed_pool: list[list]


@dataclass(frozen=True)
class FollowedNewest:
    """`first_page_viewer`'s followed authors whose posts may enter the viewer's for_you
    (`feed_authors`), and the newest posts of those it was asked to read, as columns
    (CANDIDATE_FIELDS of social.feed) ordered by author, each author's newest first."""

    author_ids: list[int]
    columns: list[list]


# The columns of a for_you candidate, in the order of social.feed.CANDIDATE_FIELDS.
_CANDIDATE_COLUMNS = (
    "pool.id", "pool.author_id", "COALESCE(pool.root_id, pool.id)", "extract(epoch FROM pool.published_at)::float8",
    "pool.like_count", "pool.comment_count", "pool.remix_count", "pool.view_count", "pool.remix_allowed",
)  # fmt: skip


def _candidate_arrays(order: str) -> str:
    """The candidate columns of the rows of `pool`, one array each, in this order. (Epoch seconds:
    an array of numbers is read far faster than one of timestamps.)"""
    return ", ".join(f"array_agg({column} ORDER BY {order})" for column in _CANDIDATE_COLUMNS)


_CANDIDATE_ARRAYS = _candidate_arrays("pool.published_at DESC, pool.id DESC")


# Whom the viewer follows, the authors they never see, the followed authors whose posts may enter
# their for_you (not their own, none excluded) and their recent likes (`recent_likes`), as common
# table expressions `followed`, `excluded`, `feed_authors` and `liked`, and the arrays that read
# them. (PostgreSQL skips an expression a statement does not use.)
_VIEWER_FACTS = f"""
        followed AS (
            SELECT f.followee_id AS id FROM social_follow f WHERE f.follower_id = %(viewer)s
        ),
        excluded AS ({_EXCLUDED_AUTHORS}),
        feed_authors AS (
            SELECT followed.id FROM followed
            WHERE followed.id <> %(viewer)s AND followed.id NOT IN (SELECT * FROM excluded)
        ),
        liked AS (
            SELECT l.post_author_id AS author_id, l.post_root_id AS root_id
            FROM social_like l
            WHERE l.user_id = %(viewer)s
            ORDER BY l.created_at DESC
            LIMIT %(recent_likes)s
        )"""
_VIEWER_FACT_ARRAYS = """ARRAY(SELECT id FROM followed), ARRAY(SELECT * FROM excluded),
               ARRAY(SELECT author_id FROM liked), ARRAY(SELECT root_id FROM liked)"""


def feed_viewer(
    *,
    viewer: User,
    recent_likes: int,
    followed_pool_at: datetime | None = None,
    followed_pool_size: int = 0,
    followed_pool_per_author: int = 0,
    exclude_post_ids: Collection[int] = (),
) -> FeedViewer:
    """Whom the viewer follows, the authors they never see (`_EXCLUDED_AUTHORS`), the author and
    remix chain (root, or the post itself) of their `recent_likes` newest likes, and the
    `followed_pool_size` newest posts published by followed authors (not excluded) at
    `followed_pool_at`, at most `followed_pool_per_author` of each author (the author's newest,
    from their partial index, as in `following_cards`), leaving out `exclude_post_ids`.

    One statement and one round trip: the pool comes back as one array per column."""
    sql = f"""
        WITH {_VIEWER_FACTS},
        newest AS (
            SELECT recent.id, recent.published_at
            FROM feed_authors
            CROSS JOIN LATERAL (
                SELECT p.id, p.published_at FROM social_post p
                WHERE p.author_id = feed_authors.id AND p.status = 'published' AND p.published_at <= %(at)s
                  AND p.id NOT IN (SELECT unnest(%(exclude_post_ids)s::bigint[]))
                ORDER BY p.published_at DESC, p.id DESC
                LIMIT %(per_author)s
            ) recent
            ORDER BY recent.published_at DESC, recent.id DESC
            LIMIT %(pool_size)s
        ),
        pool AS (SELECT p.* FROM newest JOIN social_post p ON p.id = newest.id)
        SELECT {_VIEWER_FACT_ARRAYS}, {_CANDIDATE_ARRAYS}
        FROM pool"""
    params = {
        "viewer": viewer.pk,
        "recent_likes": recent_likes,
        "at": followed_pool_at or datetime.now(UTC),
        "pool_size": followed_pool_size if followed_pool_at is not None else 0,
        "per_author": followed_pool_per_author if followed_pool_at is not None else 0,
        "exclude_post_ids": list(exclude_post_ids),
    }
    with _binary_cursor() as cursor:
        cursor.execute(sql, params)
        followed, excluded, liked_authors, liked_roots, *pool_columns = cursor.fetchone()
    pool = [column or [] for column in pool_columns]
    return FeedViewer(followed, frozenset(excluded), liked_authors, liked_roots, pool)


def first_page_viewer(
    *, viewer: User, recent_likes: int, kept_author_ids: Collection[int], at: datetime, per_author: int
) -> tuple[FeedViewer, FollowedNewest]:
    """What a for_you first page needs to know about its viewer (as `feed_viewer`, without the
    followed pool), the followed authors whose posts may enter it, and the `per_author` newest posts
    each of them but those in `kept_author_ids` published at `at` (one scan of each author's
    partial index). One statement and one round trip."""
    sql = f"""
        WITH {_VIEWER_FACTS},
        pool AS (
            SELECT recent.* FROM feed_authors
            CROSS JOIN LATERAL (
                SELECT p.* FROM social_post p
                WHERE p.author_id = feed_authors.id AND p.status = 'published' AND p.published_at <= %(at)s
                ORDER BY p.published_at DESC, p.id DESC
                LIMIT %(per_author)s
            ) recent
            WHERE feed_authors.id <> ALL (%(kept)s::bigint[])
        )
        SELECT {_VIEWER_FACT_ARRAYS}, ARRAY(SELECT id FROM feed_authors),
               {_candidate_arrays("pool.author_id, pool.published_at DESC, pool.id DESC")}
        FROM pool"""
    params = {
        "viewer": viewer.pk,
        "recent_likes": recent_likes,
        "kept": list(kept_author_ids),
        "at": at,
        "per_author": per_author,
    }
    with _binary_cursor() as cursor:
        cursor.execute(sql, params)
        followed, excluded, liked_authors, liked_roots, feed_authors, *newest_columns = cursor.fetchone()
    viewer_facts = FeedViewer(followed, frozenset(excluded), liked_authors, liked_roots, [])
    return viewer_facts, FollowedNewest(feed_authors, [column or [] for column in newest_columns])


def newest_candidates(
    *, at: datetime, limit: int, viewer: User | None = None, exclude_post_ids: Collection[int] = ()
) -> list[list]:
    """The `limit` newest posts published at `at`, as columns (CANDIDATE_FIELDS of social.feed,
    newest first), leaving out `exclude_post_ids`; with a viewer, only what they may see in a feed
    (not their own, none across a block or by an author they reported). One index range scan from
    `at` down."""
    for_viewer = (
        f"AND p.author_id <> %(viewer)s AND p.author_id NOT IN ({_EXCLUDED_AUTHORS})" if viewer else ""
    )
    sql = f"""
        SELECT {_CANDIDATE_ARRAYS}
        FROM (
            SELECT p.* FROM social_post p
            WHERE p.status = 'published' AND p.published_at <= %(at)s {for_viewer}
              AND p.id NOT IN (SELECT unnest(%(exclude_post_ids)s::bigint[]))
            ORDER BY p.published_at DESC, p.id DESC
            LIMIT %(limit)s
        ) pool"""
    params = {
        "viewer": viewer.pk if viewer else None,
        "at": at,
        "exclude_post_ids": list(exclude_post_ids),
        "limit": limit,
    }
    with _binary_cursor() as cursor:
        cursor.execute(sql, params)
        return [column or [] for column in cursor.fetchone()]


def post_comments(*, viewer: User, post: Post) -> QuerySet[Comment]:
    return Comment.objects.filter(post=post).filter(not_blocked(viewer.pk)).select_related("author")


def notifications_for(*, user: User, unread_only: bool = False) -> QuerySet[Notification]:
    """The user's notifications, less those whose actor is across a block from them now: a block
    also hides what was said before it (a comment's text travels in its notification)."""
    rows = (
        Notification.objects.filter(user=user)
        .filter(not_blocked(user.pk, "actor_id"))
        .select_related("actor")
    )
    if unread_only:
        rows = rows.filter(read_at__isnull=True)
    return rows


# --- teens and guardians --------------------------------------------------------------------------


def _locked(links: QuerySet[GuardianLink]) -> QuerySet[GuardianLink]:
    """The link rows locked until the transaction ends (not the people joined to them). A write
    that must not miss a change of controls locks the link before any row the change touches (the
    teen's posts, their cameos), as the change itself does: one waits for the other, in one order."""
    return links.select_for_update(of=("self",), no_key=True)


def guardian_controls_for(*, teen: User, lock: bool = False) -> GuardianLink | None:
    """The link to the teen's guardian, whose controls hold while the teen is a minor; None for
    adults (no query) and for minors without a guardian. `lock`: see `_locked`."""
    if not teen.is_minor:
        return None
    links = GuardianLink.objects.select_related("guardian").filter(teen_id=teen.pk)
    return (_locked(links) if lock else links).first()


def guardian_link_of(*, guardian: User, teen_username: str, lock: bool = False) -> GuardianLink:
    """The guardian's link to the teen with this username; 404 for anyone who is not their
    guardian, as for a teen who does not exist. `lock`: see `_locked`."""
    links = GuardianLink.objects.select_related("teen", "guardian").filter(
        guardian_id=guardian.pk, teen__username__iexact=teen_username, teen__is_active=True
    )
    link = (_locked(links) if lock else links).first()
    if link is None:
        raise NotFound()
    return link


@dataclass(frozen=True)
class FeedSettings:
    """How the feed treats its viewer: the mood they keep, whether for_you may use their personal
    signals, how many posts it may serve them a day (None: no limit), and whether a guardian keeps
    personalisation off."""

    mood: str
    personalised: bool
    daily_scroll_limit: int | None
    personalised_locked: bool


def feed_settings_for(*, user: User) -> FeedSettings:
    """An adult's come from their row (no query): personalised unless they turned it off, never
    limited. A minor's also from their guardian's controls (one query): unpersonalised unless they
    turned it on and no guardian keeps it off, SCROLL_LIMIT_MINOR posts a day unless the guardian
    set another number."""
    chosen = user.feed_personalised
    if not user.is_minor:
        return FeedSettings(user.feed_mood, chosen is not False, None, personalised_locked=False)
    controls = guardian_controls_for(teen=user)
    locked = controls is not None and not controls.personalised
    limit = controls.daily_scroll_limit if controls is not None else None
    return FeedSettings(
        user.feed_mood,
        bool(chosen) and not locked,
        settings.SCROLL_LIMIT_MINOR if limit is None else limit,
        personalised_locked=locked,
    )
