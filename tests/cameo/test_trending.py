"""`GET /cameos/trending`: cameos anyone may use, by a decayed count of their published appearances,
kept as appearances are published (never a scan of the posts)."""

import datetime as dt
import math

import pytest
from django.utils import timezone

from cameo import services
from cameo.models import TRENDING_TAU_S, Cameo, CameoKind, CameoStatus, Permission
from social import hooks
from social.models import Post, PostStatus
from social.services import block_user, delete_account, delete_post, publish_post, take_down_post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def shared_cameo(owner, handle, **fields) -> Cameo:
    """An active character anyone may use, made directly (enrollment is not what is tested)."""
    fields = {
        "kind": CameoKind.CHARACTER,
        "reference_images": ["cameos/none.png"],
        "status": CameoStatus.ACTIVE,
        "permission": Permission.EVERYONE,
        **fields,
    }
    return Cameo.objects.create(owner=owner, handle=handle, display_name=handle.title(), **fields)


def draft_with(author, *cameos) -> Post:
    post = Post.objects.create(author=author, status=PostStatus.DRAFT, prompt="a day at the beach")
    services.record_appearances(post=post, uses=[(cameo, cameo.consent_version) for cameo in cameos])
    return post


def publish_with(author, *cameos) -> Post:
    return publish_post(actor=author, post=draft_with(author, *cameos))


def published_days_ago(author, days: float, *cameos) -> Post:
    """As if published `days` ago: counted at that time."""
    post = draft_with(author, *cameos)
    at = timezone.now() - dt.timedelta(days=days)
    Post.objects.filter(pk=post.pk).update(status=PostStatus.PUBLISHED, published_at=at)
    services.count_published_appearances(post_id=post.pk, at=at)
    return post


def score(cameo) -> float:
    cameo.refresh_from_db()
    return cameo.trending_score()


def trending(viewer, **params):
    response = client_for(viewer).get("/api/v1/cameos/trending", params)
    assert response.status_code == 200, response.content
    return response.json()


def test_a_published_appearance_counts_once(make_user):
    owner, author = make_user("owner"), make_user("author")
    rex, mia = shared_cameo(owner, "rex"), shared_cameo(owner, "mia")
    draft = draft_with(author, rex, mia)
    hooks.run_publish_checks(draft)  # remixing one's own draft runs the checks: no publish
    assert score(rex) == 0
    post = publish_post(actor=author, post=draft)
    assert score(rex) == pytest.approx(1, abs=1e-3) and score(mia) == pytest.approx(1, abs=1e-3)
    publish_post(actor=author, post=post)  # again: already published
    assert services.count_published_appearances(post_id=post.pk) == []
    assert score(rex) == pytest.approx(1, abs=1e-3)
    publish_with(author, rex)
    assert score(rex) == pytest.approx(2, abs=1e-3)


def test_appearances_recorded_on_a_published_post_count(make_user):
    owner, author = make_user("owner"), make_user("author")
    rex = shared_cameo(owner, "rex")
    post = Post.objects.create(
        author=author, status=PostStatus.PUBLISHED, published_at=timezone.now(), prompt="later"
    )
    services.record_appearances(post=post, uses=[(rex, rex.consent_version)])
    assert score(rex) == pytest.approx(1, abs=1e-3)


def test_ranked_by_decayed_count(make_user):
    owner, author, viewer = make_user("owner"), make_user("author"), make_user("viewer")
    busy, once, earlier, stale = (shared_cameo(owner, name) for name in ("busy", "once", "earlier", "stale"))
    for _ in range(3):
        publish_with(author, busy)
    publish_with(author, once)
    published_days_ago(author, 5, earlier)
    published_days_ago(author, 5, earlier)
    published_days_ago(author, 8, stale)  # outside the week
    expected_earlier = 2 * math.exp(-5 * 86400 / TRENDING_TAU_S)  # 0.48: below a single fresh one
    assert score(earlier) == pytest.approx(expected_earlier, rel=1e-3)
    body = trending(viewer)
    assert [item["handle"] for item in body["results"]] == ["busy", "once", "earlier"]
    assert [item["trending_score"] for item in body["results"]] == pytest.approx(
        [3, 1, expected_earlier], abs=2e-3
    )
    assert body["results"][0]["kind"] == "character" and body["next_cursor"] is None


def test_only_cameos_anyone_may_use(make_user):
    owner, author, viewer = make_user("owner"), make_user("author"), make_user("viewer")
    blocker, no_birth_date = make_user("blocker"), make_user("undated", birth_date=None)
    visible = shared_cameo(owner, "visible")
    hidden = [
        shared_cameo(owner, "friends", permission=Permission.MUTUALS),
        shared_cameo(owner, "mine", permission=Permission.ONLY_ME),
        shared_cameo(blocker, "blocked"),
        # the consent rule treats an owner without a birth date as a minor: never past mutuals
        shared_cameo(no_birth_date, "undated"),
    ]
    for cameo in [visible, *hidden]:
        services.count_published_appearances(post_id=draft_with(cameo.owner, cameo).pk)
    block_user(blocker=viewer, blocked=blocker)
    erased = shared_cameo(owner, "erased")
    services.count_published_appearances(post_id=draft_with(author, erased).pk)
    services.erase_cameo(actor=owner, cameo=erased)
    assert [item["handle"] for item in trending(viewer)["results"]] == ["visible"]
    # trending lists what anyone may use: not even its owner sees a mutuals-only cameo there
    assert "friends" not in [item["handle"] for item in trending(owner)["results"]]
    owner.is_active = False
    owner.save(update_fields=["is_active"])
    assert trending(viewer)["results"] == []


@pytest.mark.parametrize("limit", [1, 10])
def test_query_count_does_not_grow_with_page_size(make_user, django_assert_num_queries, limit):
    owners = [make_user(f"owner{n}") for n in range(4)]
    viewer = make_user("viewer")
    cameos = [shared_cameo(owners[n % 4], f"cameo{n}") for n in range(12)]
    for index, cameo in enumerate(cameos):
        for _ in range(index % 3 + 1):
            services.count_published_appearances(post_id=draft_with(owners[0], cameo).pk)
    client = client_for(viewer)
    # one query for the JWT's user, one for the page of cameos with their owners (the consent rule,
    # twice: for anyone and for the viewer, is subqueries of that statement)
    with django_assert_num_queries(2):
        first = client.get(f"/api/v1/cameos/trending?limit={limit}").json()
    assert len(first["results"]) == min(limit, 12) and first["next_cursor"]
    with django_assert_num_queries(2):
        second = client.get(f"/api/v1/cameos/trending?limit={limit}&cursor={first['next_cursor']}").json()
    ids = [item["id"] for item in first["results"] + second["results"]]
    assert len(ids) == len(set(ids)) == min(2 * limit, 12)
    scores = [item["trending_score"] for item in first["results"] + second["results"]]
    assert scores == sorted(scores, reverse=True)


def test_a_post_taken_down_or_deleted_stops_counting(make_user):
    owner, author, moderator = make_user("owner"), make_user("author"), make_user("mod")
    moderator.is_staff = True
    moderator.save(update_fields=["is_staff"])
    rex, mia = shared_cameo(owner, "rex"), shared_cameo(owner, "mia")
    earlier = published_days_ago(author, 2, rex)
    taken_down = publish_with(author, rex, mia)
    deleted = publish_with(author, rex)
    assert score(rex) == pytest.approx(2 + math.exp(-2 * 86400 / TRENDING_TAU_S), abs=1e-3)

    take_down_post(actor=moderator, post=taken_down)
    take_down_post(actor=moderator, post=taken_down)  # again: counted out once
    assert score(mia) == 0 and Cameo.objects.get(pk=mia.pk).trending_key is None
    assert score(rex) == pytest.approx(1 + math.exp(-2 * 86400 / TRENDING_TAU_S), abs=1e-3)
    delete_post(actor=author, post=deleted)
    assert score(rex) == pytest.approx(math.exp(-2 * 86400 / TRENDING_TAU_S), abs=1e-3)
    # The author's account goes, and with it the last post that counted.
    assert Post.objects.filter(pk=earlier.pk).exists()
    delete_account(user=author)
    assert Cameo.objects.get(pk=rex.pk).trending_key is None
    assert [item["handle"] for item in trending(make_user("viewer"))["results"]] == []


def test_posts_leaving_together_cost_the_same_queries_however_many(make_user, django_assert_num_queries):
    owner, author = make_user("owner"), make_user("author")
    rex = shared_cameo(owner, "rex")
    one = [publish_with(author, rex).pk]
    many = [publish_with(author, rex).pk for _ in range(5)]
    with django_assert_num_queries(5) as counted:  # savepoint, read, write, the cameo, release
        services.uncount_published_appearances(one)
    with django_assert_num_queries(len(counted.captured_queries)):
        services.uncount_published_appearances(many)
    assert Cameo.objects.get(pk=rex.pk).trending_key is None
