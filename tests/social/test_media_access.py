"""Post media on the local disk: a published post's files to anyone, a draft's only at a signed URL
that expires (social.media_access); the feeds' SQL rendering never gives a draft's media a URL."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.storage import default_storage
from django.db import connection

from social import media_access
from social.models import PostStatus
from social.selectors import _CARD_FROM, _CARD_JSON
from social.services import take_down_post
from tests.conftest import client_for

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.social.urls_with_media")]

# One answer for a file that is missing, private or out of reach: nothing tells them apart.
NOT_FOUND = {"error": {"code": "not_found", "message": "Not found.", "details": {}}}


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def stored_bytes(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def path_of(url: str) -> str:
    """The URL without scheme and host, as the test client takes it."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def test_a_published_posts_media_are_public(make_user, make_post, api):
    post = make_post(make_user("author"))
    for name in (post.video.name, post.poster.name):
        response = api.get(f"/media/{name}")
        assert response.status_code == 200
        assert body(response) == stored_bytes(name)
        assert response["Cache-Control"].startswith("public")
    assert api.get(f"/media/{post.video.name}")["Content-Type"] == "video/mp4"
    rendered = client_for(make_user("reader")).get(f"/api/v1/posts/{post.pk}").json()
    assert rendered["video_url"] == f"http://testserver/media/{post.video.name}"
    assert api.get(path_of(rendered["poster_url"])).status_code == 200


def test_a_drafts_media_only_at_its_signed_url_until_it_expires(make_user, make_post, api, monkeypatch):
    author = make_user("author")
    draft = make_post(author, status=PostStatus.DRAFT)
    assert api.get(f"/media/{draft.video.name}").status_code == 404
    rendered = client_for(author).get(f"/api/v1/posts/{draft.pk}").json()
    for field, name in (("video_url", draft.video.name), ("poster_url", draft.poster.name)):
        url = rendered[field]
        assert urlsplit(url).path == f"/media/{name}"
        query = parse_qs(urlsplit(url).query)
        assert set(query) == {"expires", "signature"}
        response = api.get(path_of(url))  # anyone holding the URL, until it expires
        assert response.status_code == 200 and body(response) == stored_bytes(name)
        assert response["Cache-Control"] == "private, no-store"

    expires = int(parse_qs(urlsplit(rendered["video_url"]).query)["expires"][0])
    real_now = media_access._now
    monkeypatch.setattr(media_access, "_now", lambda: expires)
    assert api.get(path_of(rendered["video_url"])).status_code == 200
    monkeypatch.setattr(media_access, "_now", lambda: expires + 1)
    assert api.get(path_of(rendered["video_url"])).status_code == 404
    monkeypatch.setattr(media_access, "_now", real_now)
    fresh = client_for(author).get(f"/api/v1/posts/{draft.pk}").json()["video_url"]
    assert api.get(path_of(fresh)).status_code == 200


def test_the_ttl_comes_from_the_setting(make_user, make_post, settings, monkeypatch):
    settings.MEDIA_URL_TTL_S = 1
    monkeypatch.setattr(media_access, "_now", lambda: 1_000_000.5)
    author = make_user("author")
    draft = make_post(author, status=PostStatus.DRAFT)
    url = client_for(author).get(f"/api/v1/posts/{draft.pk}").json()["video_url"]
    assert parse_qs(urlsplit(url).query)["expires"] == ["1000001"]


def test_a_signature_opens_exactly_its_file_and_expiry(make_user, make_post, api, settings):
    author = make_user("author")
    draft = make_post(author, status=PostStatus.DRAFT)
    other = make_post(author, status=PostStatus.DRAFT)
    signed = parse_qs(media_access.signed_query(draft.video.name))
    expires, signature = signed["expires"][0], signed["signature"][0]
    good = f"/media/{draft.video.name}?expires={expires}&signature={signature}"
    tampered = signature[:-1] + ("B" if signature.endswith("A") else "A")
    assert api.get(good).status_code == 200
    refused = [
        f"/media/{other.video.name}?expires={expires}&signature={signature}",  # another file
        f"/media/{draft.poster.name}?expires={expires}&signature={signature}",  # its poster
        f"/media/{draft.video.name}?expires={int(expires) + 3600}&signature={signature}",  # extended
        f"/media/{draft.video.name}?expires={expires}&signature={tampered}",
        f"/media/{draft.video.name}?expires={expires}",
        f"/media/{draft.video.name}?signature={signature}",
        f"/media/{draft.video.name}?expires=soon&signature={signature}",
        f"/media/{draft.video.name}?expires={expires}&signature=",
    ]
    for url in refused:
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.json() == NOT_FOUND
    settings.SECRET_KEY = "another-secret-key-" + "x" * 40
    assert api.get(good).status_code == 404


def test_removed_posts_media_are_not_public(make_user, make_post, api):
    author = make_user("author")
    post = make_post(author)
    assert api.get(f"/media/{post.video.name}").status_code == 200
    take_down_post(actor=make_user("moderator", is_staff=True), post=post)
    assert api.get(f"/media/{post.video.name}").status_code == 404
    assert api.get(f"/media/{post.poster.name}").status_code == 404


def test_unknown_and_escaping_paths_are_the_same_404(make_user, make_post, api):
    post = make_post(make_user("author"))
    missing = post.video.name.replace(".mp4", "0.mp4")
    for url in [
        f"/media/{missing}",
        "/media/",
        "/media/posts/",
        f"/media/{post.video.name}/",
        f"/media/./{post.video.name}",
        f"/media//{post.video.name}",
        "/media/../config/settings.py",
        "/media/%2e%2e/config/settings.py",
        "/media/posts/1/../../../config/settings.py",
        "/media/%2Fetc%2Fpasswd",
    ]:
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.json() == NOT_FOUND, url
    assert api.post(f"/media/{post.video.name}").status_code == 405


def test_head_and_single_byte_ranges(make_user, make_post, api):
    post = make_post(make_user("author"))
    url = f"/media/{post.video.name}"
    data = stored_bytes(post.video.name)
    size = len(data)

    head = api.head(url)
    assert head.status_code == 200 and head["Content-Length"] == str(size) and not head.content
    assert head["Accept-Ranges"] == "bytes"

    cases = {
        "bytes=0-9": (0, 9),
        "bytes=10-": (10, size - 1),
        "bytes=-5": (size - 5, size - 1),
        f"bytes=5-{size + 100}": (5, size - 1),
        f"bytes=-{size + 100}": (0, size - 1),
    }
    for header, (first, last) in cases.items():
        response = api.get(url, HTTP_RANGE=header)
        assert response.status_code == 206, header
        assert response["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert response["Content-Length"] == str(last - first + 1)
        assert body(response) == data[first : last + 1], header
    partial_head = api.head(url, HTTP_RANGE="bytes=0-9")
    assert partial_head.status_code == 206 and partial_head["Content-Length"] == "10"

    for header in (f"bytes={size}-", "bytes=-0"):
        response = api.get(url, HTTP_RANGE=header)
        assert response.status_code == 416 and response["Content-Range"] == f"bytes */{size}"
    for header in ("bytes=0-1,4-5", "bytes=9-3", "items=0-1", "bytes=x-"):
        response = api.get(url, HTTP_RANGE=header)
        assert response.status_code == 200 and body(response) == data, header


def _database_rendered(post, viewer) -> dict:
    params = {"id": post.pk, "viewer": viewer.pk, "media_url_prefix": "/media/"}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_CARD_JSON}::text {_CARD_FROM} WHERE p.id = %(id)s", params)
        return json.loads(cursor.fetchone()[0])


def test_the_database_rendering_gives_media_urls_to_published_posts_only(make_user, make_post):
    """The feeds render published posts in SQL with a fixed prefix (no signature): the expression
    itself leaves any other post's media without a URL, whatever a query selects."""
    author = make_user("author")
    published, draft = make_post(author), make_post(author, status=PostStatus.DRAFT)
    removed = make_post(author)
    take_down_post(actor=make_user("moderator", is_staff=True), post=removed)
    rendered = _database_rendered(published, author)
    assert rendered["video_url"] == f"/media/{published.video.name}"
    assert rendered["poster_url"] == f"/media/{published.poster.name}"
    for post in (draft, removed):
        rendered = _database_rendered(post, author)
        assert rendered["video_url"] is None and rendered["poster_url"] is None
