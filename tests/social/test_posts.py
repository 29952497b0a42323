import uuid
from urllib.parse import urlsplit

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from core.errors import Conflict, Forbidden, UnsupportedMedia
from social import hooks
from social.models import Notification, Post, Report, User
from social.services import create_post, publish_post, take_down_post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def test_create_post_probes_the_video_and_stores_it_with_a_poster(user, test_video):
    content_id = uuid.uuid4()
    post = create_post(
        author=user,
        video=test_video,
        prompt="a red square",
        caption="hi",
        content_id=content_id,
        provider="tiny",
        cameo_refs=[{"id": 7, "owner_username": "bob"}],
        ip_refs=[{"id": 3, "name": "Robo", "rights_holder": "Acme"}],
    )
    assert post.status == "draft" and post.published_at is None
    assert (post.width, post.height) == (64, 112)
    assert post.duration_s == pytest.approx(1.0, abs=0.2)
    assert post.size_bytes == test_video.stat().st_size
    assert default_storage.exists(post.video.name)
    with default_storage.open(post.poster.name) as poster:
        assert poster.read(3) == b"\xff\xd8\xff"  # a JPEG
    body = client_for(user).get(f"/api/v1/posts/{post.pk}").json()
    assert body["ai_label"] == {"content_id": str(content_id), "provider": "tiny"}
    assert body["has_audio"] is False  # the clip has no sound track
    assert body["cameos"] == [{"id": "7", "owner_username": "bob"}]
    assert body["ip"] == [{"id": "3", "name": "Robo", "rights_holder": "Acme"}]
    video_url, poster_url = urlsplit(body["video_url"]), urlsplit(body["poster_url"])
    assert body["video_url"].startswith("http://testserver/") and video_url.path.endswith(".mp4")
    assert poster_url.path.endswith(".jpg")
    # A draft's media are at signed URLs only (social.media_access).
    assert "signature=" in video_url.query and "signature=" in poster_url.query
    assert body["id"] == str(post.pk) and body["author"] == {"id": str(user.pk), "username": "alice"}
    assert set(body) == {
        "id", "author", "status", "caption", "prompt", "video_url", "poster_url", "duration_s", "width",
        "height", "has_audio", "created_at", "published_at", "like_count", "comment_count", "remix_count",
        "view_count",
        "liked_by_me", "remix_of", "root_id", "sources", "remix_allowed", "cameos", "ip", "ai_label",
    }  # fmt: skip
    assert body["sources"] == []


def test_create_post_accepts_an_uploaded_file(user, test_video):
    upload = SimpleUploadedFile("x.mp4", test_video.read_bytes(), content_type="video/mp4")
    post = create_post(author=user, video=upload)
    assert post.width == 64 and default_storage.exists(post.video.name)


@pytest.mark.parametrize("content", [b"", b"GIF89a not really", b"\x00" * 4096])
def test_create_post_refuses_what_is_not_video(user, tmp_path, content):
    path = tmp_path / "fake.mp4"
    path.write_bytes(content)
    with pytest.raises(UnsupportedMedia) as refusal:
        create_post(author=user, video=path)
    assert refusal.value.status_code == 415 and refusal.value.code == "unsupported_media"
    assert not Post.objects.exists()


def test_create_post_refuses_a_still_image(user, tmp_path):
    from PIL import Image

    path = tmp_path / "still.mp4"
    Image.new("RGB", (64, 64), "red").save(path, format="JPEG")
    with pytest.raises(UnsupportedMedia):
        create_post(author=user, video=path)


def test_remix_records_root_depth_counts_and_notifies(make_user, make_post):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    source = make_post(alice)
    child = make_post(bob, remix_of=source)
    grandchild = make_post(carol, remix_of=child)
    own_remix = make_post(alice, remix_of=source)
    assert (child.root_id, child.depth) == (source.pk, 1)
    assert (grandchild.root_id, grandchild.depth, grandchild.remix_of_id) == (source.pk, 2, child.pk)
    source.refresh_from_db()
    child.refresh_from_db()
    assert (source.remix_count, child.remix_count) == (2, 1)
    assert own_remix.root_id == source.pk
    remix_notes = Notification.objects.filter(kind="remix")
    assert sorted((n.user_id, n.actor_id) for n in remix_notes) == sorted(
        [(alice.pk, bob.pk), (bob.pk, carol.pk)]
    )


def test_publish_runs_registered_checks_and_counts_posts(make_user, make_post):
    alice = make_user("alice")
    draft = make_post(alice, status="draft")

    def refuse(post):
        raise Conflict("A cameo's consent no longer holds.", code="consent_revoked")

    hooks.register_publish_check(refuse)
    try:
        response = client_for(alice).post(f"/api/v1/posts/{draft.pk}/publish")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "consent_revoked"
        draft.refresh_from_db()
        assert draft.status == "draft"
    finally:
        hooks.unregister_publish_check(refuse)
    response = client_for(alice).post(f"/api/v1/posts/{draft.pk}/publish")
    assert response.status_code == 200
    assert response.json()["status"] == "published" and response.json()["published_at"]
    assert client_for(alice).post(f"/api/v1/posts/{draft.pk}/publish").status_code == 200
    alice.refresh_from_db()
    assert alice.posts_count == 1


def test_only_the_author_publishes(make_user, make_post):
    alice, bob = make_user("alice"), make_user("bob")
    draft = make_post(alice, status="draft", cameo_owner_ids=[bob.pk])
    assert client_for(bob).post(f"/api/v1/posts/{draft.pk}/publish").status_code == 403
    stranger = make_user("stranger")
    assert client_for(stranger).post(f"/api/v1/posts/{draft.pk}/publish").status_code == 404
    with pytest.raises(Forbidden):
        publish_post(actor=bob, post=draft)


def test_publishing_tells_cameo_owners(make_user, make_post):
    alice, bob = make_user("alice"), make_user("bob")
    draft = make_post(alice, status="draft", cameo_owner_ids=[bob.pk, alice.pk])
    publish_post(actor=alice, post=draft)
    assert list(Notification.objects.values_list("user_id", "kind")) == [(bob.pk, "cameo_published")]


def test_patch_caption_and_remix_allowed_by_author_only(make_user, make_post):
    alice, bob = make_user("alice"), make_user("bob")
    post = make_post(alice)
    response = client_for(alice).patch(
        f"/api/v1/posts/{post.pk}", {"caption": "new", "remix_allowed": False}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["caption"], response.json()["remix_allowed"]) == ("new", False)
    assert (
        client_for(bob).patch(f"/api/v1/posts/{post.pk}", {"caption": "x"}, format="json").status_code == 403
    )
    refused = client_for(alice).patch(f"/api/v1/posts/{post.pk}", {"status": "draft"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["details"] == {"status": ["Unknown field."]}


def test_delete_by_author_deletes_and_erases_media(make_user, make_post, django_capture_on_commit_callbacks):
    alice = make_user("alice")
    post = make_post(alice)
    video_name = post.video.name
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(alice).delete(f"/api/v1/posts/{post.pk}").status_code == 204
    assert not Post.objects.filter(pk=post.pk).exists()
    assert not default_storage.exists(video_name)
    alice.refresh_from_db()
    assert alice.posts_count == 0


def test_delete_by_cameo_owner_takes_down(make_user, make_post, django_capture_on_commit_callbacks):
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    post = make_post(alice, cameo_owner_ids=[bob.pk])
    Report.objects.create(reporter=carol, post=post, reason="spam")
    assert client_for(carol).delete(f"/api/v1/posts/{post.pk}").status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(bob).delete(f"/api/v1/posts/{post.pk}").status_code == 204
    post.refresh_from_db()
    assert post.status == "removed"
    assert Report.objects.get().status == "actioned"
    seen_by_author = client_for(alice).get(f"/api/v1/posts/{post.pk}").json()
    assert seen_by_author["status"] == "removed"
    assert seen_by_author["video_url"] is None and seen_by_author["poster_url"] is None
    for other in (bob, carol):
        assert client_for(other).get(f"/api/v1/posts/{post.pk}").status_code == 404
    alice.refresh_from_db()
    assert alice.posts_count == 0
    assert (
        client_for(alice).patch(f"/api/v1/posts/{post.pk}", {"caption": "x"}, format="json").status_code
        == 409
    )


def test_take_down_needs_staff_or_cameo_owner(make_user, make_post):
    alice, bob = make_user("alice"), make_user("bob")
    post = make_post(alice)
    with pytest.raises(Forbidden):
        take_down_post(actor=bob, post=post)
    moderator = make_user("mod", is_staff=True)
    assert take_down_post(actor=moderator, post=post).status == "removed"


def test_unknown_post_ids_are_404(auth_client):
    for post_id in ("999999", "abc", "-1"):
        assert auth_client.get(f"/api/v1/posts/{post_id}").status_code == 404


def test_post_endpoints_need_authentication(api, make_user, make_post):
    post = make_post(make_user("alice"))
    for method, path in [
        ("get", f"/api/v1/posts/{post.pk}"),
        ("delete", f"/api/v1/posts/{post.pk}"),
        ("put", f"/api/v1/posts/{post.pk}/like"),
        ("get", "/api/v1/feed"),
        ("get", "/api/v1/notifications"),
        ("post", "/api/v1/views"),
    ]:
        assert getattr(api, method)(path).status_code == 401
    assert User.objects.count() == 1
