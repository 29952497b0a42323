import pytest

from social.models import Block, Follow
from social.selectors import get_visible_post, visible_posts
from social.services import block_user, follow_user, take_down_post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user):
    author = make_user("author")
    follower = make_user("follower")
    stranger = make_user("stranger")
    blocked = make_user("blocked")
    blocker = make_user("blocker")
    cameo_owner = make_user("cameoowner")
    follow_user(follower=follower, followee=author)
    block_user(blocker=author, blocked=blocked)
    block_user(blocker=blocker, blocked=author)
    return {
        "author": author,
        "follower": follower,
        "stranger": stranger,
        "blocked": blocked,
        "blocker": blocker,
        "cameo_owner": cameo_owner,
    }


# Who sees a post in each status: True = 200, False = 404.
MATRIX = {
    "published": {
        "author": True, "follower": True, "stranger": True, "blocked": False, "blocker": False,
        "cameo_owner": True,
    },
    "draft": {
        "author": True, "follower": False, "stranger": False, "blocked": False, "blocker": False,
        "cameo_owner": True,
    },
    "removed": {
        "author": True, "follower": False, "stranger": False, "blocked": False, "blocker": False,
        "cameo_owner": False,
    },
}  # fmt: skip


@pytest.mark.parametrize("status", ["published", "draft", "removed"])
def test_visibility_matrix(people, make_post, make_user, status):
    author = people["author"]
    post = make_post(
        author,
        status="draft" if status == "draft" else "published",
        cameo_owner_ids=[people["cameo_owner"].pk],
    )
    if status == "removed":
        take_down_post(actor=make_user("moderator", is_staff=True), post=post)
    for role, sees in MATRIX[status].items():
        viewer = people[role]
        response = client_for(viewer).get(f"/api/v1/posts/{post.pk}")
        assert response.status_code == (200 if sees else 404), (status, role)
        assert visible_posts(viewer=viewer).filter(pk=post.pk).exists() is sees
        if sees:
            assert get_visible_post(viewer=viewer, post_id=str(post.pk)).pk == post.pk


def test_a_cameo_owner_who_is_blocked_does_not_see_the_draft(make_user, make_post):
    author, owner = make_user("author"), make_user("owner")
    draft = make_post(author, status="draft", cameo_owner_ids=[owner.pk])
    block_user(blocker=author, blocked=owner)
    assert client_for(owner).get(f"/api/v1/posts/{draft.pk}").status_code == 404


def test_block_ends_follows_both_ways_and_hides_profiles_of_blockers(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    follow_user(follower=alice, followee=bob)
    follow_user(follower=bob, followee=alice)
    assert client_for(alice).put("/api/v1/users/bob/block").status_code == 204
    assert client_for(alice).put("/api/v1/users/bob/block").status_code == 204
    assert not Follow.objects.exists()
    alice.refresh_from_db()
    bob.refresh_from_db()
    assert (alice.followers_count, alice.following_count, bob.followers_count, bob.following_count) == (
        0,
        0,
        0,
        0,
    )
    assert client_for(bob).get("/api/v1/users/alice").status_code == 404
    assert client_for(alice).get("/api/v1/users/bob").status_code == 200
    refused = client_for(bob).put("/api/v1/users/alice/follow")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "blocked"
    assert client_for(alice).delete("/api/v1/users/bob/block").status_code == 204
    assert client_for(alice).delete("/api/v1/users/bob/block").status_code == 204
    assert not Block.objects.exists()
    assert client_for(bob).put("/api/v1/users/alice/follow").status_code == 204


def test_comments_across_a_block_are_hidden(make_user, make_post):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    post = make_post(alice)
    client_for(bob).post(f"/api/v1/posts/{post.pk}/comments", {"text": "from bob"}, format="json")
    client_for(carol).post(f"/api/v1/posts/{post.pk}/comments", {"text": "from carol"}, format="json")
    block_user(blocker=carol, blocked=bob)
    texts = [c["text"] for c in client_for(carol).get(f"/api/v1/posts/{post.pk}/comments").json()["results"]]
    assert texts == ["from carol"]
    texts = [c["text"] for c in client_for(alice).get(f"/api/v1/posts/{post.pk}/comments").json()["results"]]
    assert texts == ["from carol", "from bob"]


def test_user_posts_lists_drafts_only_for_the_author(make_user, make_post):
    alice, bob = make_user("alice"), make_user("bob")
    published = make_post(alice)
    draft = make_post(alice, status="draft", cameo_owner_ids=[bob.pk])
    mine = client_for(alice).get("/api/v1/users/alice/posts?status=draft").json()["results"]
    assert [p["id"] for p in mine] == [str(draft.pk)]
    assert [p["id"] for p in client_for(bob).get("/api/v1/users/alice/posts").json()["results"]] == [
        str(published.pk)
    ]
    assert client_for(bob).get("/api/v1/users/alice/posts?status=draft").status_code == 403
    assert client_for(bob).get("/api/v1/users/alice/posts?status=weird").status_code == 400
    assert client_for(bob).get("/api/v1/users/nobody/posts").status_code == 404


def test_profile_fields(make_user, make_post):
    alice, bob = make_user("alice", display_name="Alice"), make_user("bob")
    make_post(alice)
    make_post(alice, status="draft")
    follow_user(follower=alice, followee=bob)
    body = client_for(bob).get("/api/v1/users/alice").json()
    assert body == {
        "id": str(alice.pk),
        "username": "alice",
        "display_name": "Alice",
        "bio": "",
        "followers_count": 0,
        "following_count": 1,
        "posts_count": 1,
        "is_following": False,
        "follows_you": True,
    }
    assert client_for(alice).get("/api/v1/users/bob").json()["is_following"] is True


def test_follow_refusals_and_idempotence(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    client = client_for(alice)
    assert client.put("/api/v1/users/alice/follow").json()["error"]["code"] == "cannot_follow_self"
    assert client.put("/api/v1/users/ghost/follow").status_code == 404
    assert client.put("/api/v1/users/bob/follow").status_code == 204
    assert client.put("/api/v1/users/bob/follow").status_code == 204
    bob.refresh_from_db()
    assert bob.followers_count == 1
    assert client.delete("/api/v1/users/bob/follow").status_code == 204
    assert client.delete("/api/v1/users/bob/follow").status_code == 204
    bob.refresh_from_db()
    assert bob.followers_count == 0
