"""No door leads to biometrics or to a draft: after an enrollment (one activated, one rejected), a
generation with the cameo (a draft) and a published post, every file of both storages is asked for
at every URL form, anonymously and by a stranger; only the published post's media come back. A
draft's signed URL works until it expires; erasing the cameo leaves nothing of it in storage."""

import os
import re
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from rest_framework.test import APIClient

from cameo.models import CameoStatus, Permission
from generation import services, worker
from generation.models import GenerationStatus
from social import media_access
from social.models import Follow, Post, PostStatus
from social.services import create_post
from tests.cameo.conftest import clip, enrolled_cameo  # noqa: F401 - a fixture used below
from tests.conftest import client_for
from tests.generation.conftest import tiny_renderer  # noqa: F401 - a fixture used below
from tests.media import make_test_video

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.social.urls_with_media")]

BODY = {"prompt": "walking on a beach at sunset", "duration_s": 2, "aspect_ratio": "1:1", "seed": 5}


@pytest.fixture(autouse=True)
def _run_jobs_in_process(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


@pytest.fixture
def roots(settings, tmp_path):
    """Both storages in folders of this test alone, so "every file" is this story's files."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.BIOMETRICS_ROOT = str(tmp_path / "biometrics")
    return Path(settings.MEDIA_ROOT), Path(settings.BIOMETRICS_ROOT)


def files_under(root: Path) -> dict[str, bytes]:
    """Every file under `root`, by its name relative to `root`, with its bytes."""
    found = {}
    for folder, _subfolders, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def signed(name: str, *, at: float | None = None) -> str:
    """`media_access.signed_query` for `name`, made at `at` (now when None)."""
    if at is None:
        return media_access.signed_query(name)
    real_now = media_access._now
    media_access._now = lambda: at
    try:
        return media_access.signed_query(name)
    finally:
        media_access._now = real_now


def url_forms(name: str, *, other_name: str) -> dict[str, str]:
    """Every way this test knows to ask the media route for `name`, by what each tries."""
    return {
        "plain": f"/media/{name}",
        "quoted": f"/media/{quote(name)}",
        "slashes quoted": f"/media/{quote(name, safe='')}",
        "dot segment": f"/media/./{name}",
        "double slash": f"/media//{name}",
        "trailing slash": f"/media/{name}/",
        "upper case prefix": f"/MEDIA/{name}",
        "no prefix": f"/{name}",
        "bogus signature": f"/media/{name}?expires=99999999999&signature=bogus",
        "expired signature": f"/media/{name}?{signed(name, at=1_000_000)}",
        "another file's signature": f"/media/{name}?{signed(other_name)}",
        "its own signature": f"/media/{name}?{signed(name)}",
        "signed escape": f"/media/../biometrics/{name}?{signed(f'../biometrics/{name}')}",
        "quoted escape": f"/media/%2e%2e/biometrics/{name}",
        "biometrics folder": f"/media/biometrics/{name}",
    }


def assert_no_private_bytes(response, private: dict[str, bytes], url: str) -> None:
    content = body(response)
    assert response.status_code == 404, (url, response.status_code)
    for data in private.values():
        assert data not in content or not data, url


def test_no_url_reaches_biometrics_or_drafts(roots, make_user, enrolled_cameo, tiny_renderer, monkeypatch):  # noqa: F811
    media_root, biometrics_root = roots
    alice, bob, carol, dan, eve = (make_user(name) for name in ("alice", "bob", "carol", "dan", "eve"))
    Follow.objects.create(follower=alice, followee=bob)
    Follow.objects.create(follower=bob, followee=alice)

    # Enrollment, both outcomes: only the aligned crop of the active cameo stays, privately.
    cameo = enrolled_cameo(alice, permission=Permission.MUTUALS)
    assert cameo.status == CameoStatus.ACTIVE and not cameo.verification_video
    rejected = enrolled_cameo(carol, data=clip("no_face_clip"))
    assert rejected.status == CameoStatus.REJECTED
    assert not rejected.verification_video and not rejected.face_crop
    biometrics = files_under(biometrics_root)
    assert list(biometrics) == [cameo.face_crop.name]  # the verification videos are gone
    assert re.fullmatch(r"cameos/[0-9a-f]{32}\.png", cameo.face_crop.name)
    assert not any(name.startswith("cameos") for name in files_under(media_root))

    # A generation with the cameo: a draft. And a published post of someone else.
    response = client_for(bob).post(
        "/api/v1/generations", {**BODY, "cameo_ids": [str(cameo.pk)]}, format="json"
    )
    assert response.status_code == 202, response.content
    done = worker.execute_generation(int(response.json()["id"]), renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED, (done.error_code, done.error_message)
    draft = Post.objects.get(pk=done.post_id)
    assert draft.status == PostStatus.DRAFT and draft.cameo_owner_ids == [alice.pk]
    published = create_post(
        author=dan, video=make_test_video(media_root.parent / "dan.mp4"), status="published"
    )

    media = files_under(media_root)
    public = {published.video.name, published.poster.name}
    assert {draft.video.name, draft.poster.name} | public <= set(media)
    private = {**biometrics, **{name: data for name, data in media.items() if name not in public}}
    assert draft.video.name in private and cameo.face_crop.name in private

    # Every file, every URL form, anonymously and as a stranger.
    old_paths = [
        f"/media/cameos/{some.pk}/{tail}"
        for some in (cameo, rejected)
        for tail in ("face/face.png", "verification/video", "")
    ]
    for client in (APIClient(), client_for(eve)):
        for name in private:
            for form, url in url_forms(name, other_name=published.video.name).items():
                if name in media and form == "its own signature":
                    continue  # a draft's own signed URL is its door by design: checked below
                assert_no_private_bytes(client.get(url), private, f"{form}: {url}")
        for url in old_paths:
            assert_no_private_bytes(client.get(url), private, url)
        for name in public:
            response = client.get(f"/media/{name}")
            assert response.status_code == 200 and body(response) == media[name], name
        assert client.get(f"/api/v1/posts/{draft.pk}").status_code in (401, 404)

    # The draft's signed URL from the API works for its author and the cameo's owner, then expires.
    for viewer in (bob, alice):
        rendered = client_for(viewer).get(f"/api/v1/posts/{draft.pk}").json()
        for field, name in (("video_url", draft.video.name), ("poster_url", draft.poster.name)):
            parts = urlsplit(rendered[field])
            assert parts.path == f"/media/{name}" and set(parse_qs(parts.query)) == {"expires", "signature"}
            fetched = client_for(viewer).get(f"{parts.path}?{parts.query}")
            assert fetched.status_code == 200 and body(fetched) == media[name]
    parts = urlsplit(rendered["video_url"])
    expires = int(parse_qs(parts.query)["expires"][0])
    with monkeypatch.context() as patch:
        patch.setattr(media_access, "_now", lambda: expires + 1)
        assert_no_private_bytes(client_for(alice).get(f"{parts.path}?{parts.query}"), private, "expired")

    # Erasure leaves no file of the cameo in the private storage.
    assert client_for(alice).delete(f"/api/v1/cameos/{cameo.pk}").status_code == 204
    assert files_under(biometrics_root) == {}
