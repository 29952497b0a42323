import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from social.models import Like, PostView, Report
from social.services import block_user
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_like_is_idempotent_and_liked_by_me(make_user, make_post):
    alice, bob = make_user("alice"), make_user("bob")
    post = make_post(alice)
    client = client_for(bob)
    assert client.put(f"/api/v1/posts/{post.pk}/like").status_code == 204
    assert client.put(f"/api/v1/posts/{post.pk}/like").status_code == 204
    body = client.get(f"/api/v1/posts/{post.pk}").json()
    assert (body["like_count"], body["liked_by_me"]) == (1, True)
    assert client_for(alice).get(f"/api/v1/posts/{post.pk}").json()["liked_by_me"] is False
    assert client.delete(f"/api/v1/posts/{post.pk}/like").status_code == 204
    assert client.delete(f"/api/v1/posts/{post.pk}/like").status_code == 204
    assert client.get(f"/api/v1/posts/{post.pk}").json()["like_count"] == 0


def test_drafts_cannot_be_liked_or_commented(make_user, make_post):
    alice, owner = make_user("alice"), make_user("owner")
    draft = make_post(alice, status="draft", cameo_owner_ids=[owner.pk])
    refused = client_for(owner).put(f"/api/v1/posts/{draft.pk}/like")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_published"
    refused = client_for(owner).post(f"/api/v1/posts/{draft.pk}/comments", {"text": "hi"}, format="json")
    assert refused.status_code == 409


def test_comment_create_and_list(make_user, make_post):
    alice, bob = make_user("alice"), make_user("bob")
    post = make_post(alice)
    response = client_for(bob).post(f"/api/v1/posts/{post.pk}/comments", {"text": " nice "}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert body["text"] == "nice" and body["author"] == {"id": str(bob.pk), "username": "bob"}
    assert set(body) == {"id", "author", "text", "created_at"}
    for bad in ({"text": ""}, {"text": "x" * 2001}, {}, {"text": "ok", "extra": 1}):
        assert (
            client_for(bob).post(f"/api/v1/posts/{post.pk}/comments", bad, format="json").status_code == 400
        )
    post.refresh_from_db()
    assert post.comment_count == 1


def test_report_is_202_once_per_reporter(make_user, make_post):
    alice, bob = make_user("alice"), make_user("bob")
    post = make_post(alice)
    for reason in ("spam", "still spam"):
        response = client_for(bob).post(f"/api/v1/posts/{post.pk}/report", {"reason": reason}, format="json")
        assert response.status_code == 202
    assert list(Report.objects.values_list("reason", "status")) == [("still spam", "open")]
    assert client_for(bob).post(f"/api/v1/posts/{post.pk}/report", {}, format="json").status_code == 400


def test_views_count_once_per_viewer_per_post_per_day(make_user, make_post):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    post = make_post(alice)
    hidden = make_post(carol)
    block_user(blocker=carol, blocked=bob)
    events = {
        "events": [
            {"post_id": str(post.pk), "watched_ms": 1200},
            {"post_id": str(post.pk), "watched_ms": 3000},
            {"post_id": str(hidden.pk), "watched_ms": 10},
            {"post_id": "987654321", "watched_ms": 10},
        ]
    }
    assert client_for(bob).post("/api/v1/views", events, format="json").status_code == 202
    assert client_for(bob).post("/api/v1/views", events, format="json").status_code == 202
    assert client_for(alice).post("/api/v1/views", events, format="json").status_code == 202
    post.refresh_from_db()
    hidden.refresh_from_db()
    # bob's view of carol's post does not count (a block); alice's own views never count.
    assert (post.view_count, hidden.view_count) == (1, 1)
    assert PostView.objects.get(viewer=bob).watched_ms == 3000
    PostView.objects.update(day=timezone.now().date() - timedelta(days=1))
    client_for(bob).post("/api/v1/views", events, format="json")
    post.refresh_from_db()
    assert post.view_count == 2
    for bad in (
        {"events": []},
        {"events": [{"post_id": "x", "watched_ms": 1}]},
        {"events": [{"post_id": "1"}]},
    ):
        assert client_for(bob).post("/api/v1/views", bad, format="json").status_code == 400


def _run_concurrently(calls):
    barrier = threading.Barrier(len(calls))
    errors = []

    def run(call):
        try:
            barrier.wait()
            call()
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


@pytest.mark.django_db(transaction=True)
def test_counters_are_exact_under_concurrent_requests(make_user, make_post):
    author = make_user("author")
    post = make_post(author)
    fans = [make_user(f"fan{i}") for i in range(8)]
    clients = [client_for(fan) for fan in fans]
    statuses = []

    def request(client, method, path, body=None):
        def call():
            response = getattr(client, method)(path, body, format="json")
            statuses.append(response.status_code)

        return call

    calls = []
    for client in clients:
        # Each fan likes twice at once, comments, follows twice at once and views twice at once.
        calls += [request(client, "put", f"/api/v1/posts/{post.pk}/like")] * 2
        calls += [request(client, "post", f"/api/v1/posts/{post.pk}/comments", {"text": "wow"})]
        calls += [request(client, "put", "/api/v1/users/author/follow")] * 2
        calls += [
            request(client, "post", "/api/v1/views", {"events": [{"post_id": str(post.pk), "watched_ms": 5}]})
        ] * 2
    _run_concurrently(calls)
    assert sorted(set(statuses)) == [201, 202, 204]
    post.refresh_from_db()
    author.refresh_from_db()
    assert (post.like_count, post.comment_count, post.view_count) == (8, 8, 8)
    assert Like.objects.filter(post=post).count() == 8
    assert author.followers_count == 8
    assert all(fan.following_count == 1 for fan in type(author).objects.filter(username__startswith="fan"))

    unlikes = [request(client, "delete", f"/api/v1/posts/{post.pk}/like") for client in clients] * 2
    unfollows = [request(client, "delete", "/api/v1/users/author/follow") for client in clients[:4]] * 2
    _run_concurrently(unlikes + unfollows)
    post.refresh_from_db()
    author.refresh_from_db()
    assert post.like_count == 0 and author.followers_count == 4


@pytest.mark.django_db(transaction=True)
def test_mutual_follows_at_once_do_not_deadlock(make_user):
    users = [make_user(f"m{i}") for i in range(4)]
    calls = []
    for follower in users:
        for followee in users:
            if follower != followee:
                client = client_for(follower)
                calls.append(lambda c=client, name=followee.username: c.put(f"/api/v1/users/{name}/follow"))
    _run_concurrently(calls)
    for user in users:
        user.refresh_from_db()
        assert (user.followers_count, user.following_count) == (3, 3)
