import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from config.asgi import application
from social.models import Notification
from social.services import block_user, like_post, notify
from tests.conftest import client_for


@pytest.mark.django_db(transaction=True)
async def test_follow_like_comment_remix_arrive_over_the_websocket(make_user, make_post):
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    post = await sync_to_async(make_post)(alice)
    communicator = WebsocketCommunicator(application, f"/ws/events?token={AccessToken.for_user(alice)}")
    assert (await communicator.connect())[0]

    def act():
        bob_client = client_for(bob)
        assert bob_client.put("/api/v1/users/alice/follow").status_code == 204
        assert bob_client.put(f"/api/v1/posts/{post.pk}/like").status_code == 204
        assert (
            bob_client.post(f"/api/v1/posts/{post.pk}/comments", {"text": "great"}, format="json").status_code
            == 201
        )
        make_post(bob, remix_of=post)
        # Alice's own action tells nobody.
        assert client_for(alice).put(f"/api/v1/posts/{post.pk}/like").status_code == 204

    await sync_to_async(act)()
    received = [await communicator.receive_json_from(timeout=5) for _ in range(4)]
    assert [m["kind"] for m in received] == ["follow", "like", "comment", "remix"]
    assert all(m["type"] == "notification" for m in received)
    assert received[1]["actor"] == {"id": str(bob.pk), "username": "bob"}
    assert received[1]["post_id"] == str(post.pk) and received[1]["read"] is False
    assert received[2]["data"]["text"] == "great"
    assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()
    stored = await sync_to_async(list)(Notification.objects.filter(user=alice).values_list("kind", flat=True))
    assert sorted(stored) == ["comment", "follow", "like", "remix"]


@pytest.mark.django_db(transaction=True)
async def test_services_for_later_apps_push_too(make_user):
    carol = await sync_to_async(make_user)("carol")
    communicator = WebsocketCommunicator(application, f"/ws/events?token={AccessToken.for_user(carol)}")
    assert (await communicator.connect())[0]
    await sync_to_async(notify)(user=carol, kind="generation_finished", data={"generation_id": "12"})
    message = await communicator.receive_json_from(timeout=5)
    assert (message["kind"], message["data"], message["actor"]) == (
        "generation_finished",
        {"generation_id": "12"},
        None,
    )
    await communicator.disconnect()


@pytest.mark.django_db
def test_no_notification_across_a_block_or_to_oneself(make_user, make_post):
    alice, bob = make_user("alice"), make_user("bob")
    post = make_post(alice)
    block_user(blocker=alice, blocked=bob)
    assert notify(user=alice, kind="like", actor=bob, post=post) is None
    assert notify(user=alice, kind="like", actor=alice, post=post) is None
    like_post(user=alice, post=post)
    assert not Notification.objects.exists()
    with pytest.raises(ValueError):
        notify(user=alice, kind="nonsense")


@pytest.mark.django_db
def test_list_and_mark_read(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    notes = [notify(user=alice, kind="cameo_appearance", actor=bob, data={"n": i}) for i in range(5)]
    notify(user=bob, kind="follow", actor=alice)
    client = client_for(alice)
    page = client.get("/api/v1/notifications?limit=3").json()
    assert [n["data"]["n"] for n in page["results"]] == [4, 3, 2]
    rest = client.get(f"/api/v1/notifications?cursor={page['next_cursor']}").json()
    assert [n["data"]["n"] for n in rest["results"]] == [1, 0] and rest["next_cursor"] is None
    marked = client.post(
        "/api/v1/notifications/read", {"ids": [str(notes[0].pk), str(notes[1].pk)]}, format="json"
    )
    assert marked.status_code == 200 and marked.json() == {"marked_read": 2}
    unread = client.get("/api/v1/notifications?unread=true").json()["results"]
    assert [n["data"]["n"] for n in unread] == [4, 3, 2]
    # Someone else's notification id changes nothing.
    other = Notification.objects.get(user=bob)
    assert client.post("/api/v1/notifications/read", {"ids": [str(other.pk)]}, format="json").json() == {
        "marked_read": 0
    }
    assert client.post("/api/v1/notifications/read", {}, format="json").json() == {"marked_read": 3}
    assert client.get("/api/v1/notifications?unread=1").json()["results"] == []
    assert client.post("/api/v1/notifications/read", {"ids": ["x"]}, format="json").status_code == 400
    assert client.post("/api/v1/notifications/read", {"all": True}, format="json").status_code == 400


@pytest.mark.django_db
def test_a_block_hides_what_was_said_before_it(make_user, make_post):
    from social.services import comment_on_post

    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    post = make_post(alice)
    comment_on_post(author=bob, post=post, text="something bob regrets")
    comment_on_post(author=carol, post=post, text="hello")
    client = client_for(alice)
    assert len(client.get("/api/v1/notifications").json()["results"]) == 2
    block_user(blocker=bob, blocked=alice)  # either side's block hides it
    listed = client.get("/api/v1/notifications").json()["results"]
    assert [note["actor"]["username"] for note in listed] == ["carol"]
    assert "regrets" not in str(listed)


@pytest.mark.django_db
def test_a_follow_toggled_again_and_again_notifies_once(make_user):
    from social.services import follow_user, unfollow_user

    alice, bob = make_user("alice"), make_user("bob")
    for _ in range(5):
        follow_user(follower=bob, followee=alice)
        unfollow_user(follower=bob, followee=alice)
    assert Notification.objects.filter(user=alice, kind="follow").count() == 1
