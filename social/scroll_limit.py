"""A minor's daily scroll limit (API.md): the feed serves them so many posts per UTC day, then
answers 429 `scroll_limit_reached` with `Retry-After` until the next UTC midnight.

Posts served are counted per user and day in Redis (the cache, shared by every process) under a
key that expires after its day. A page reserves its posts before it is read (an atomic INCRBY, so
pages read at once cannot pass the limit together) and gives back what it did not serve: a page
that would cross the limit is cut to what remains, and the next one is refused. When Redis cannot
be reached the feed is served uncounted: the limit is a wellbeing measure, and the feed should not
fail with the cache.
"""

from __future__ import annotations

import contextlib
import json
import math
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.utils import timezone

from core.errors import RateLimited
from core.pagination import Page
from social.selectors import RenderedCards

# A day's count outlives its day by this much, so a server whose clock lags still finds it.
KEY_GRACE_S = 3600


def seconds_to_next_utc_midnight(now: datetime) -> int:
    """Whole seconds from `now` to the next UTC midnight, rounded up (at least 1)."""
    utc = now.astimezone(UTC)
    midnight = (utc + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, math.ceil((midnight - utc).total_seconds()))


def _served_key(user_id: int, now: datetime) -> str:
    return f"feed:served:{user_id}:{now.astimezone(UTC).date().isoformat()}"


def posts_on(page: Page) -> int:
    """How many posts a feed page holds (one rendered by PostgreSQL is a JSON array)."""
    if isinstance(page.items, RenderedCards):
        return len(json.loads(page.items.json))
    return len(page.items)


class DailyScroll:
    """Posts one feed page may serve its viewer, as a context manager around reading the page:

        with DailyScroll(user_id=..., daily_limit=..., wanted=limit) as allowance:
            page = ...(limit=allowance.granted)
            allowance.record(page)

    Entering reserves `wanted` posts (429 when none remain today); leaving gives back what was not
    served. Without a `daily_limit` (adults) it grants what is wanted and counts nothing: their
    pages are not even looked at."""

    def __init__(self, *, user_id: int, daily_limit: int | None, wanted: int):
        self.user_id = user_id
        self.daily_limit = daily_limit
        self.wanted = wanted
        self.granted = wanted
        self.served = 0
        self._key: str | None = None

    def __enter__(self) -> DailyScroll:
        if self.daily_limit is None:
            return self
        now = timezone.now()
        key = _served_key(self.user_id, now)
        cache.add(key, 0, seconds_to_next_utc_midnight(now) + KEY_GRACE_S)
        try:
            total = cache.incr(key, self.wanted)
        except ValueError:  # the cache is unavailable, or lost the key meanwhile: serve uncounted
            return self
        self._key = key
        already_served = total - self.wanted
        self.granted = max(0, min(self.wanted, self.daily_limit - already_served))
        if not self.granted:
            self._give_back(self.wanted)
            raise RateLimited(
                "You have reached today's scroll limit.",
                code="scroll_limit_reached",
                retry_after=seconds_to_next_utc_midnight(now),
                details={"daily_limit": self.daily_limit},
            )
        return self

    def record(self, page: Page) -> None:
        """The page served, counted only while posts are reserved for it."""
        if self._key is not None:
            self.served = posts_on(page)

    def __exit__(self, *exc_info) -> None:
        if self._key is not None:
            self._give_back(self.wanted - self.served)

    def _give_back(self, posts: int) -> None:
        if posts > 0:
            # When the cache went away meanwhile, the count went with it.
            with contextlib.suppress(ValueError):
                cache.decr(self._key, posts)
        self._key = None
