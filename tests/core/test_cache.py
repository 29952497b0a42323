"""The cache backend against a Redis of the test's own that stops answering (paused) or is gone
(killed): every call answers as a miss within its timeout, the breaker then skips the network, and
the cache is used again once Redis answers."""

import threading
import time

import pytest
from django.conf import settings

from core.breaker import CLOSED, OPEN
from core.cache import RedisCache

RESET_S = 1.0
# A call that reached a paused Redis would take one socket timeout (CACHE_TIMEOUT_MS); N calls skipped
# by the open breaker must take far less than N timeouts.
SKIPPED_CALLS = 40


def make_cache(url: str) -> RedisCache:
    """A backend configured as settings.CACHES configures the default one, with a shorter breaker."""
    options = {**settings.CACHES["default"]["OPTIONS"], "breaker_reset_s": RESET_S}
    return RedisCache(url, {"OPTIONS": options})


def seconds_since(started: float) -> float:
    return time.monotonic() - started


def every_call_answers_a_miss(cache) -> None:
    assert cache.get("k") is None
    assert cache.get("k", "fallback") == "fallback"
    assert cache.get_many(["k", "other"]) == {}
    assert cache.has_key("k") is False
    assert cache.add("new", 1) is False
    assert cache.touch("k") is False
    assert cache.delete("k") is False
    cache.set("k", "written while down", 60)
    cache.set_many({"a": 1, "b": 2}, 60)
    cache.delete_many(["a", "b"])
    assert cache.clear() is False
    with pytest.raises(ValueError):
        cache.incr("counter")


def wait_until_closed(cache, key, expected, within_s=5.0) -> None:
    deadline = time.monotonic() + within_s
    while cache.get(key) != expected:
        assert time.monotonic() < deadline, "the cache was not used again after Redis came back"
        time.sleep(0.05)
    assert cache._cache._breaker.state == CLOSED


def test_the_configured_cache_bounds_every_call():
    from django.core.cache import caches

    options = caches["default"]._cache._pool_options
    assert 0 < options["socket_timeout"] <= 0.1
    assert 0 < options["socket_connect_timeout"] <= 0.1


def test_a_paused_redis_reads_as_misses_then_is_skipped_until_it_answers(redis_process):
    cache = make_cache(redis_process.url)
    cache.set("k", "v", 60)
    cache.set("counter", 1, 60)
    assert cache.get("k") == "v" and cache.incr("counter") == 2

    redis_process.pause()
    started = time.monotonic()
    assert cache.get("k", "fallback") == "fallback"
    assert seconds_since(started) < 0.5  # one timeout of tens of ms; without one it hung
    assert cache._cache._breaker.state == OPEN

    started = time.monotonic()
    for _ in range(SKIPPED_CALLS):
        every_call_answers_a_miss(cache)
    assert seconds_since(started) < 0.5  # 40 × 12 calls would take 24 s of timeouts

    redis_process.resume()
    wait_until_closed(cache, "k", "v")  # nothing written while it was down, nothing lost before
    assert cache.incr("counter") == 3


def test_a_killed_redis_reads_as_misses_and_a_restarted_one_is_used_again(redis_process):
    cache = make_cache(redis_process.url)
    cache.set("k", "v", 60)
    redis_process.kill()
    started = time.monotonic()
    assert cache.get("k", "fallback") == "fallback"
    assert seconds_since(started) < 0.5
    for _ in range(SKIPPED_CALLS):
        every_call_answers_a_miss(cache)

    redis_process.start()  # the same port, empty
    deadline = time.monotonic() + 5
    while True:
        cache.set("k", "again", 60)
        if cache.get("k") == "again":
            break
        assert time.monotonic() < deadline, "the cache was not used again after Redis restarted"
        time.sleep(0.05)
    assert cache._cache._breaker.state == CLOSED
    assert cache.clear() is True and cache.get("k") is None


def test_one_breaker_serves_every_thread(redis_process):
    # Django builds one cache backend per thread; they share the breaker of their server.
    in_request, in_other_thread = make_cache(redis_process.url), make_cache(redis_process.url)
    redis_process.pause()
    assert in_request.get("k", "fallback") == "fallback"
    timings = []

    def read():
        started = time.monotonic()
        for _ in range(SKIPPED_CALLS):
            assert in_other_thread.get("k") is None
        timings.append(seconds_since(started))

    thread = threading.Thread(target=read)
    thread.start()
    thread.join(timeout=10)
    assert timings and timings[0] < 0.5  # 40 reads would take 2 s of timeouts had it tried


@pytest.mark.django_db
def test_the_feed_serves_with_the_cache_redis_paused(redis_process, settings, make_user, tmp_path):
    from social.feed import recent_rankings
    from social.services import create_post
    from tests.conftest import client_for
    from tests.media import make_test_video

    video = make_test_video(tmp_path / "clip.mp4")
    for index in range(6):
        create_post(author=make_user(f"author{index}"), video=video, status="published")
    client = client_for(make_user("viewer"))
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": redis_process.url},
    }
    redis_process.pause()

    started = time.monotonic()
    first = client.get("/api/v1/feed?tab=for_you&limit=3")
    assert first.status_code == 200, first.content
    recent_rankings.clear()  # the next page as another process serves it: the ranking from the cache
    second = client.get(f"/api/v1/feed?tab=for_you&limit=3&cursor={first.json()['next_cursor']}")
    assert second.status_code == 200, second.content
    assert seconds_since(started) < 2  # it answered 500 before
    served = [post["id"] for post in first.json()["results"] + second.json()["results"]]
    assert len(served) == len(set(served)) == 6
