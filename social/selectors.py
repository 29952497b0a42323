"""Reads of the social app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q

from social.models import Block, Follow, User

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


def get_active_user(*, username: str) -> User | None:
    return User.objects.filter(username__iexact=username, is_active=True).first()


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
