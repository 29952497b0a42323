"""Reads of the social app."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from social.models import User

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
