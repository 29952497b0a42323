"""Reads of the social app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Exists, OuterRef, Q, QuerySet, Value

from core.errors import Forbidden, NotFound
from social.models import Block, Comment, Follow, Like, Notification, Post, PostStatus, User

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


def following_feed(*, viewer: User) -> QuerySet[Post]:
    """Published posts of the people the viewer follows (blocks end follows, so none is blocked).

    Lean on purpose: the page query selects keys only, and `with_viewer_state` loads the page's
    posts; building the full visibility query for every swipe cost more than running it.
    """
    return Post.objects.filter(
        status=PostStatus.PUBLISHED,
        author_id__in=Follow.objects.filter(follower_id=viewer.pk).values("followee_id"),
    ).only("id", "published_at")


def with_viewer_state(*, viewer: User, posts: list[Post]) -> list[Post]:
    """The given posts, in order, with their author and `liked_by_me`, in one query."""
    ids = [post.pk for post in posts]
    if not ids:
        return []
    rows = (
        Post.objects.select_related("author")
        .filter(pk__in=ids)
        .annotate(liked_by_me=Exists(Like.objects.filter(post_id=OuterRef("pk"), user_id=viewer.pk)))
    )
    by_id = {row.pk: row for row in rows}
    return [by_id[post_id] for post_id in ids if post_id in by_id]


def post_comments(*, viewer: User, post: Post) -> QuerySet[Comment]:
    return Comment.objects.filter(post=post).filter(not_blocked(viewer.pk)).select_related("author")


def notifications_for(*, user: User, unread_only: bool = False) -> QuerySet[Notification]:
    rows = Notification.objects.filter(user=user).select_related("actor")
    if unread_only:
        rows = rows.filter(read_at__isnull=True)
    return rows
