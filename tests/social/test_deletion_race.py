"""Requests racing the deletion of their own account answer 2xx or 401/404, never 500.

Each round starts `DELETE /me` and another write of the same account at the same moment; the
write may have authenticated before the account's row went (so it writes for a user that no
longer exists) or after (401). Rounds are many because the interleavings are the scheduler's.
"""

import threading

import pytest
from django.db import close_old_connections

from social.models import Post, User
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

ROUNDS = 50
ACCEPTED = {200, 204, 401, 404}


def race(*calls) -> list[int]:
    """Runs the calls at once, each on its own thread and database connection; their statuses."""
    barrier = threading.Barrier(len(calls))
    statuses: list[int] = []
    errors: list[Exception] = []

    def run(call):
        try:
            barrier.wait()
            statuses.append(call().status_code)
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
    return statuses


def race_deletion(make_user, write) -> list[int]:
    """ROUNDS rounds of `write(client)` against DELETE /me of the same, fresh account; every
    account is gone afterwards."""
    statuses, user_ids = [], []
    for _ in range(ROUNDS):
        user = make_user()
        user_ids.append(user.pk)
        client = client_for(user)
        statuses += race(lambda c=client: c.delete("/api/v1/me"), lambda c=client: write(c))
    assert not User.objects.filter(pk__in=user_ids).exists()
    return statuses


def test_profile_update_racing_account_deletion_is_never_a_server_error(make_user):
    statuses = race_deletion(
        make_user, lambda client: client.patch("/api/v1/me", {"bio": "still here?"}, format="json")
    )
    assert set(statuses) <= ACCEPTED, sorted(statuses)
    assert statuses.count(204) == ROUNDS  # the deletions


def test_like_racing_account_deletion_is_never_a_server_error(make_user, make_post):
    post = make_post(make_user("author"))
    statuses = race_deletion(make_user, lambda client: client.put(f"/api/v1/posts/{post.pk}/like"))
    assert set(statuses) <= ACCEPTED, sorted(statuses)
    assert statuses.count(204) >= ROUNDS  # the deletions, and the likes that came first
    assert not post.likes.exists()  # the likes that came first went with their accounts
    post.refresh_from_db()
    assert post.like_count == 0  # and were taken out of the count, the ones that lost never in it


def test_deleting_an_account_twice_at_once_deletes_it_once(make_user):
    statuses = race_deletion(make_user, lambda client: client.delete("/api/v1/me"))
    assert set(statuses) <= ACCEPTED, sorted(statuses)
    assert statuses.count(204) == ROUNDS


def follow_each_other_and_the_bystander(clients, users, bystander):
    for client, friend in zip(clients, reversed(users), strict=True):
        assert client.put(f"/api/v1/users/{friend.username}/follow").status_code == 204
        assert client.put(f"/api/v1/users/{bystander.username}/follow").status_code == 204
    return lambda: User.objects.get(pk=bystander.pk).followers_count


def like_each_others_posts_and_the_bystanders(clients, users, bystander, make_post):
    posts = [make_post(user) for user in (*users, bystander)]
    for client, friend_post in zip(clients, reversed(posts[:2]), strict=True):
        for post in (friend_post, posts[2]):
            assert client.put(f"/api/v1/posts/{post.pk}/like").status_code == 204
    return lambda: Post.objects.get(pk=posts[2].pk).like_count


@pytest.mark.parametrize("befriend", ["follow", "like"])
def test_two_friends_deleted_at_once_both_go_and_leave_exact_counts(make_user, make_post, befriend):
    """Each deletion takes back counters on the other's rows (and on the bystander's): they lock
    those rows in one order, so one waits for the other instead of deadlocking (a 503)."""
    bystander = make_user("bystander")
    for _ in range(ROUNDS // 5):
        users = [make_user(), make_user()]
        clients = [client_for(user) for user in users]
        if befriend == "follow":
            bystanders_count = follow_each_other_and_the_bystander(clients, users, bystander)
        else:
            bystanders_count = like_each_others_posts_and_the_bystanders(clients, users, bystander, make_post)
        assert bystanders_count() == 2
        statuses = race(*(lambda c=client: c.delete("/api/v1/me") for client in clients))
        assert statuses == [204, 204]
        assert bystanders_count() == 0
