"""The feed for minors (API.md, teens): unpersonalised unless they turn it on and no guardian keeps
it off, and stopped at a daily scroll limit counted in Redis."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.utils import timezone

from social import guardians, scroll_limit
from social.models import Post
from social.scroll_limit import _served_key, seconds_to_next_utc_midnight
from social.services import follow_user, like_post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def teen_birth_date():
    return timezone.localdate() - timedelta(days=14 * 365)


@pytest.fixture
def teen(make_user):
    return make_user("teen", birth_date=teen_birth_date())


def link(guardian, teen, **controls):
    guardians.link_guardian(guardian=guardian, code=guardians.request_guardian_code(teen=teen).code)
    if controls:
        guardians.set_controls(guardian=guardian, teen_username=teen.username, **controls)


def error_of(response):
    return response.status_code, response.json()["error"]["code"]


def for_you(user, **params):
    query = "&".join(f"{key}={value}" for key, value in {"tab": "for_you", **params}.items())
    response = client_for(user).get(f"/api/v1/feed?{query}")
    assert response.status_code == 200, response.json()
    return [post["id"] for post in response.json()["results"]]


def test_a_minor_starts_unpersonalised_and_may_turn_it_on(teen, make_user):
    adult = make_user("adult")
    assert client_for(teen).get("/api/v1/me/feed").json() == {"mood": None, "personalised": False}
    assert client_for(adult).get("/api/v1/me/feed").json() == {"mood": None, "personalised": True}

    kept = client_for(teen).put(
        "/api/v1/me/feed", {"mood": "calm ocean videos", "personalised": True}, format="json"
    )
    assert kept.status_code == 200
    assert kept.json() == {"mood": "calm ocean videos", "personalised": True}
    # Each field is kept on its own; an empty mood is none.
    assert client_for(teen).put("/api/v1/me/feed", {"mood": ""}, format="json").json() == {
        "mood": None,
        "personalised": True,
    }
    assert client_for(adult).put("/api/v1/me/feed", {"personalised": False}, format="json").json() == {
        "mood": None,
        "personalised": False,
    }
    for body in ({"mood": "x" * 201}, {"mood": 5}, {"tone": "dark"}):
        assert error_of(client_for(teen).put("/api/v1/me/feed", body, format="json")) == (400, "invalid")


def test_a_guardian_may_keep_personalisation_off(teen, make_user):
    guardian = make_user("guardian")
    client_for(teen).put("/api/v1/me/feed", {"personalised": True}, format="json")
    link(guardian, teen)  # the link's default: off
    assert client_for(teen).get("/api/v1/me/feed").json()["personalised"] is False
    refused = client_for(teen).put("/api/v1/me/feed", {"personalised": True}, format="json")
    assert error_of(refused) == (403, "guardian_control")
    assert refused.json()["error"]["details"] == {"control": "personalised"}
    # Turning it off, or keeping a mood, is always allowed.
    assert (
        client_for(teen)
        .put("/api/v1/me/feed", {"personalised": False, "mood": "cats"}, format="json")
        .status_code
        == 200
    )

    guardians.set_controls(guardian=guardian, teen_username="teen", personalised=True)
    # Left to the teen, who turned it off meanwhile, then on again.
    assert client_for(teen).get("/api/v1/me/feed").json()["personalised"] is False
    assert (
        client_for(teen).put("/api/v1/me/feed", {"personalised": True}, format="json").json()["personalised"]
    )


@pytest.fixture
def signals_world(make_user, make_post):
    """Posts whose order differs with and without personal signals: by freshness alone `plain` (1 h
    old) leads, then `liked_new` (2 h, by an author the viewers liked), then `followed` (3 h, by
    an author the viewers follow); affinity reverses that for a viewer who follows and likes."""
    followed, liked, plain = make_user("followed"), make_user("liked"), make_user("plain")
    old_liked = make_post(liked)
    posts = {"followed": make_post(followed), "liked_new": make_post(liked), "plain": make_post(plain)}
    now = timezone.now()
    for hours, post in zip((3, 2, 1), posts.values(), strict=True):
        Post.objects.filter(pk=post.pk).update(published_at=now - timedelta(hours=hours))
    Post.objects.filter(pk=old_liked.pk).update(published_at=now - timedelta(days=30))

    def with_signals(viewer):
        follow_user(follower=viewer, followee=followed)
        like_post(user=viewer, post=old_liked)
        return viewer

    return with_signals, {name: str(post.pk) for name, post in posts.items()}


def test_an_unpersonalised_feed_ranks_without_follows_or_likes(signals_world, teen, make_user):
    with_signals, posts = signals_world
    adult, minor = with_signals(make_user("adult")), with_signals(teen)

    def order(viewer):
        served = for_you(viewer)
        return sorted(posts, key=lambda name: served.index(posts[name]))

    assert order(adult) == ["followed", "liked_new", "plain"]
    # The same follows and likes lift nothing for the minor: freshness and engagement only.
    assert order(minor) == ["plain", "liked_new", "followed"]
    # An adult who turns personalisation off is ranked the same way, from their next chain on.
    client_for(adult).put("/api/v1/me/feed", {"personalised": False}, format="json")
    assert order(adult) == ["plain", "liked_new", "followed"]
    # A minor who turns it on is ranked with their signals.
    client_for(minor).put("/api/v1/me/feed", {"personalised": True}, format="json")
    assert order(minor) == ["followed", "liked_new", "plain"]


def test_a_chain_stops_using_personal_signals_from_its_next_page(signals_world, teen, make_user):
    with_signals, posts = signals_world
    minor = with_signals(teen)
    client_for(minor).put("/api/v1/me/feed", {"personalised": True}, format="json")
    first = client_for(minor).get("/api/v1/feed?tab=for_you&limit=1").json()
    assert first["results"][0]["id"] == posts["followed"]
    link(make_user("guardian"), minor)  # personalisation off
    rest = client_for(minor).get(f"/api/v1/feed?tab=for_you&cursor={first['next_cursor']}").json()["results"]
    assert [post["id"] for post in rest][:2] == [posts["plain"], posts["liked_new"]]


def test_a_minors_feed_page_costs_one_query_more(signals_world, teen, make_user, django_assert_num_queries):
    with_signals, _posts = signals_world
    minor = with_signals(teen)
    link(make_user("guardian"), minor)
    client = client_for(minor)
    assert client.get("/api/v1/feed?tab=for_you").status_code == 200  # the shared pool is kept now
    # user, the guardian's controls, the viewer (exclusions only), the page.
    with django_assert_num_queries(4):
        assert client.get("/api/v1/feed?tab=for_you").status_code == 200
    with django_assert_num_queries(3):  # user, the guardian's controls, the page
        assert client.get("/api/v1/feed?tab=following").status_code == 200


@pytest.fixture
def many_posts(make_user, make_post):
    authors = [make_user(f"writer{index}") for index in range(3)]
    return [make_post(authors[index % 3]) for index in range(12)]


def test_the_scroll_limit_cuts_the_page_that_reaches_it_then_refuses(teen, make_user, many_posts, settings):
    settings.SCROLL_LIMIT_MINOR = 5
    follow_user(follower=teen, followee=many_posts[0].author)
    client = client_for(teen)
    assert len(client.get("/api/v1/feed?tab=for_you&limit=3").json()["results"]) == 3
    assert len(client.get("/api/v1/feed?tab=for_you&limit=3").json()["results"]) == 2  # cut to what remains
    assert cache.get(_served_key(teen.pk, timezone.now())) == 5
    for tab in ("for_you", "following"):
        refused = client.get(f"/api/v1/feed?tab={tab}")
        assert error_of(refused) == (429, "scroll_limit_reached")
        retry_after = int(refused["Retry-After"])
        assert abs(retry_after - seconds_to_next_utc_midnight(timezone.now())) <= 5
        assert refused.json()["error"]["details"]["retry_after"] == retry_after
    # Refusals count nothing: the count stays at what was served.
    assert cache.get(_served_key(teen.pk, timezone.now())) == 5
    # Adults are never limited.
    adult = make_user("adult")
    assert len(for_you(adult, limit=12)) == 12
    assert len(for_you(adult, limit=12)) == 12


def test_a_guardians_limit_overrides_the_default(teen, make_user, many_posts, settings):
    settings.SCROLL_LIMIT_MINOR = 2
    guardian = make_user("guardian")
    link(guardian, teen, daily_scroll_limit=6)
    client = client_for(teen)
    assert len(client.get("/api/v1/feed?tab=for_you&limit=5").json()["results"]) == 5
    assert len(client.get("/api/v1/feed?tab=for_you&limit=5").json()["results"]) == 1
    assert client.get("/api/v1/feed?tab=for_you").status_code == 429
    # Raised, it applies at once; lowered to zero, the feed is closed for the day.
    guardians.set_controls(guardian=guardian, teen_username="teen", daily_scroll_limit=8)
    assert len(client.get("/api/v1/feed?tab=for_you&limit=5").json()["results"]) == 2
    guardians.set_controls(guardian=guardian, teen_username="teen", daily_scroll_limit=0)
    assert error_of(client.get("/api/v1/feed?tab=for_you")) == (429, "scroll_limit_reached")


def test_the_count_is_per_utc_day(teen, many_posts, settings, monkeypatch):
    settings.SCROLL_LIMIT_MINOR = 3
    client = client_for(teen)
    assert len(client.get("/api/v1/feed?tab=for_you&limit=3").json()["results"]) == 3
    assert client.get("/api/v1/feed?tab=for_you").status_code == 429
    tomorrow = timezone.now() + timedelta(days=1)
    monkeypatch.setattr(scroll_limit, "timezone", SimpleNamespace(now=lambda: tomorrow))
    assert len(client.get("/api/v1/feed?tab=for_you&limit=3").json()["results"]) == 3


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (datetime(2026, 3, 1, 23, 59, 59, 500_000, tzinfo=UTC), 1),
        (datetime(2026, 3, 1, 0, 0, tzinfo=UTC), 86_400),
        (datetime(2026, 3, 1, 12, 0, tzinfo=UTC), 43_200),
    ],
)
def test_seconds_to_the_next_utc_midnight(now, seconds):
    assert seconds_to_next_utc_midnight(now) == seconds
