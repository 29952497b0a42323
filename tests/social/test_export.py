"""Data exports (social/exports.py): one ZIP with everything an account made, checked against the
account's rows; served at a signed URL that expires; deleted after EXPORT_TTL_S; dispatched through
the outbox and taken again when its worker dies; progress over the owner's websocket."""

import base64
import datetime as dt
import hashlib
import io
import json
import zipfile
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.files.storage import default_storage, storages
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from cameo.models import CameoAudit, Permission
from core import periodic
from social import exports, media_access
from social.models import (
    Block,
    Comment,
    DataExport,
    ExportStatus,
    Follow,
    Like,
    Notification,
    Post,
    PostStatus,
)
from social.services import (
    block_user,
    comment_on_post,
    delete_account,
    follow_user,
    like_post,
    take_down_post,
)
from social.tasks import build_export
from tests.broker import broker_at, closed_port
from tests.cameo.conftest import clip, enrolled_cameo  # noqa: F401 - the cameo app's enrollment fixture
from tests.conftest import client_for

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.social.urls_with_media")]

BIOMETRIC_KEYS = ("face_crop", "verification_video", "template_vector", "embedding")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_bytes(name: str, storage=default_storage) -> bytes:
    with storage.open(name, "rb") as handle:
        return handle.read()


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def periodic_job(name: str):
    return {job.name: job for job in periodic.registered_jobs()}[name]


def built_export(user) -> DataExport:
    """An export requested and built by the task body, in-process (the broker path has its tests)."""
    export = exports.request_export(user=user)
    assert build_export(export.pk) == ExportStatus.READY
    export.refresh_from_db()
    return export


def open_zip(export: DataExport) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(stored_bytes(export.file.name)))


def read_json(archive: zipfile.ZipFile, path: str):
    return json.loads(archive.read(path))


@pytest.fixture
def account(make_user, make_post, enrolled_cameo, test_video):  # noqa: F811
    """alice, with something of every kind an export holds, and neighbours whose own rows it must
    leave out."""
    from cameo import services as cameo_services
    from generation import services as generation_services
    from remix.ledger import record_revenue_event

    alice, bob, carol, dan = (make_user(name) for name in ("alice", "bob", "carol", "dan"))
    published = make_post(alice, prompt="a lighthouse at dusk", caption="my first")
    draft = make_post(alice, status=PostStatus.DRAFT, prompt="rain on a tin roof")
    removed = make_post(alice, prompt="a clip bob is in", cameo_owner_ids=[bob.pk])
    take_down_post(actor=bob, post=removed)
    bobs_post = make_post(bob, prompt="bob's own harbour")

    job, _ = generation_services.request_generation(
        user=alice,
        request=generation_services.GenerationRequest(
            prompt="a fox crossing fresh snow", duration_s=1, aspect_ratio="1:1", seed=5
        ),
        enqueue_job=False,
    )
    generation_services.start_generation(job_id=job.pk)
    job = generation_services.complete_generation(
        job_id=job.pk, video_path=str(test_video), model_id="tiny:test"
    )

    comment_on_post(author=alice, post=bobs_post, text="lovely light")
    comment_on_post(author=bob, post=published, text="great shot")  # bob's row, alice's notification
    like_post(user=alice, post=bobs_post)
    like_post(user=bob, post=published)
    follow_user(follower=alice, followee=bob)
    follow_user(follower=carol, followee=alice)
    block_user(blocker=alice, blocked=dan)

    cameo = enrolled_cameo(alice)
    assert cameo.status == "active", cameo.rejection_reason
    cameo = cameo_services.update_cameo(actor=alice, cameo=cameo, permission=Permission.APPROVED)
    cameo_services.grant_use(actor=alice, cameo=cameo, grantee=bob)

    record_revenue_event(event_id="ad-1", post_id=published.pk, amount_minor=1000, currency="USD", kind="ad")
    return {
        "alice": alice,
        "bob": bob,
        "posts": [published, draft, removed, Post.objects.get(pk=job.post_id)],
        "bobs_post": bobs_post,
        "job": job,
        "cameo": cameo,
    }


def test_the_zip_holds_every_row_and_file_of_the_account_and_no_biometrics(account):
    alice, cameo = account["alice"], account["cameo"]
    export = built_export(alice)
    assert export.status == ExportStatus.READY and export.progress == 1.0
    assert export.file.name.startswith(f"exports/{alice.pk}/") and export.expires_at > timezone.now()
    raw = stored_bytes(export.file.name)
    assert (export.size_bytes, export.sha256) == (len(raw), sha256(raw))
    archive = open_zip(export)

    # The manifest lists every other file, with its size, sha256 and what it is.
    manifest = read_json(archive, "manifest.json")
    assert manifest["user"] == {"id": str(alice.pk), "username": "alice"} and manifest["missing"] == []
    listed = {entry["path"]: entry for entry in manifest["files"]}
    assert sorted(listed) == sorted(set(archive.namelist()) - {"manifest.json"})
    for path, entry in listed.items():
        data = archive.read(path)
        assert (entry["size"], entry["sha256"]) == (len(data), sha256(data)), path
        assert entry["describes"] and entry["content_type"]

    # Posts: every one of alice's, none of bob's; media byte-identical; a removed post has none.
    posts = {post["id"]: post for post in read_json(archive, "posts.json")}
    assert set(posts) == {str(post.pk) for post in account["posts"]}
    for post in Post.objects.filter(author=alice):
        record = posts[str(post.pk)]
        assert (record["prompt"], record["status"], record["caption"]) == (
            post.prompt,
            post.status,
            post.caption,
        )
        if post.status == PostStatus.REMOVED:
            assert record["video"] is None and record["poster"] is None
            continue
        assert archive.read(record["video"]) == stored_bytes(post.video.name)
        assert archive.read(record["poster"]) == stored_bytes(post.poster.name)
        assert listed[record["video"]]["content_type"] == "video/mp4"
    media = [name for name in archive.namelist() if name.startswith("media/")]
    assert len(media) == 2 * 3  # video and poster of the published, the draft and the generated post

    # Generations and creation records.
    job = account["job"]
    [generation] = read_json(archive, "generations.json")
    assert (generation["id"], generation["prompt"], generation["seed"]) == (str(job.pk), job.prompt, 5)
    assert generation["post_id"] == str(job.post_id)
    [record] = read_json(archive, "creation_records.json")
    assert record["post_id"] == str(job.post_id)
    assert record["record"]["prompt"] == job.prompt and record["record"]["seed"] == 5

    # Comments, likes, follows, blocks and notifications: alice's rows exactly.
    comments = read_json(archive, "comments.json")
    assert [(c["post_id"], c["text"]) for c in comments] == [
        (str(c.post_id), c.text) for c in Comment.objects.filter(author=alice).order_by("id")
    ]
    assert (
        [like["post_id"] for like in read_json(archive, "likes.json")]
        == [str(post_id) for post_id in Like.objects.filter(user=alice).values_list("post_id", flat=True)]
        == [str(account["bobs_post"].pk)]
    )
    follows = read_json(archive, "follows.json")
    assert [person["username"] for person in follows["following"]] == ["bob"]
    assert [person["username"] for person in follows["followers"]] == ["carol"]
    assert Follow.objects.filter(follower=alice).count() == 1
    assert [person["username"] for person in read_json(archive, "blocks.json")] == ["dan"]
    assert Block.objects.filter(blocker=alice).count() == 1
    notifications = read_json(archive, "notifications.json")
    assert sorted(n["id"] for n in notifications) == sorted(
        str(pk) for pk in Notification.objects.filter(user=alice).values_list("pk", flat=True)
    )
    assert {"comment", "like", "follow", "generation_finished"} <= {n["kind"] for n in notifications}

    # Cameos, their grants and audit trail; earnings.
    [cameo_record] = read_json(archive, "cameos.json")
    assert (cameo_record["id"], cameo_record["permission"]) == (str(cameo.pk), "approved")
    assert [g["grantee"]["username"] for g in read_json(archive, "cameo_grants.json")] == ["bob"]
    audit = read_json(archive, "cameo_audit.json")
    assert [entry["action"] for entry in audit] == list(
        CameoAudit.objects.filter(cameo_id_value=cameo.pk)
        .order_by("at", "id")
        .values_list("action", flat=True)
    )
    assert {"granted"} <= {entry["action"] for entry in audit} and len(audit) >= 3
    earnings = read_json(archive, "earnings.json")
    from remix.ledger import earnings_of_user

    books = earnings_of_user(
        user_id=alice.pk, start=dt.datetime(1970, 1, 1, tzinfo=dt.UTC), end=timezone.now()
    )
    assert earnings["totals"] == books["totals"] and earnings["totals"][0]["amount_minor"] > 0
    assert [line["post_id"] for line in earnings["lines"]] == [str(account["posts"][0].pk)]

    # No biometrics: neither the face crop nor the verification clip, and no field that holds one.
    face_crop = stored_bytes(cameo.face_crop.name, storages["biometrics"])
    biometric_digests = {sha256(face_crop), sha256(clip("enrollment_clip"))}
    assert not biometric_digests & {entry["sha256"] for entry in manifest["files"]}
    for path in archive.namelist():
        if path.endswith(".json"):
            text = archive.read(path).decode()
            assert not [key for key in BIOMETRIC_KEYS if f'"{key}"' in text], path


def test_a_file_the_storage_lost_is_named_in_the_manifest_and_the_rest_exported(make_user, make_post):
    alice = make_user("alice")
    kept, lost = make_post(alice, prompt="kept"), make_post(alice, prompt="lost")
    default_storage.delete(lost.video.name)
    archive = open_zip(built_export(alice))
    posts = {post["id"]: post for post in read_json(archive, "posts.json")}
    assert posts[str(lost.pk)]["video"] is None and posts[str(lost.pk)]["poster"] is not None
    assert archive.read(posts[str(kept.pk)]["video"]) == stored_bytes(kept.video.name)
    [missing] = read_json(archive, "manifest.json")["missing"]
    assert missing["path"] == f"media/posts/{lost.pk}/video.mp4" and missing["path"] not in archive.namelist()


def test_the_owner_reads_the_export_and_everyone_else_gets_404(make_user, api):
    alice, bob = make_user("alice"), make_user("bob")
    response = client_for(alice).post("/api/v1/me/export")
    assert response.status_code == 202, response.json()
    created = response.json()
    assert created["status"] == "queued" and created["download_url"] is None
    export_id = created["id"]

    own = client_for(alice).get(f"/api/v1/me/exports/{export_id}")
    assert own.status_code == 200 and own.json()["id"] == export_id
    assert [item["id"] for item in client_for(alice).get("/api/v1/me/exports").json()["results"]] == [
        export_id
    ]

    not_found = {"error": {"code": "not_found", "message": "Not found.", "details": {}}}
    for path in (export_id, "abc", "99999999999999999999", str(int(export_id) + 1000)):
        response = client_for(bob).get(f"/api/v1/me/exports/{path}")
        assert (response.status_code, response.json()) == (404, not_found), path
    assert client_for(bob).get("/api/v1/me/exports").json() == {"results": [], "next_cursor": None}
    assert api.get(f"/api/v1/me/exports/{export_id}").status_code == 401
    assert api.post("/api/v1/me/export").json()["error"]["code"] == "not_authenticated"


def test_one_export_in_flight_per_account(make_user):
    alice = make_user("alice")
    client = client_for(alice)
    first = client.post("/api/v1/me/export").json()
    refused = client.post("/api/v1/me/export")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "export_in_progress"
    assert refused.json()["error"]["details"] == {"id": first["id"]}
    assert client_for(make_user("bob")).post("/api/v1/me/export").status_code == 202  # per account

    assert build_export(int(first["id"])) == ExportStatus.READY
    assert client.post("/api/v1/me/export").status_code == 202


def test_the_download_url_is_signed_and_expires(make_user, api, monkeypatch):
    alice = make_user("alice")
    export = built_export(alice)
    rendered = client_for(alice).get(f"/api/v1/me/exports/{export.pk}").json()
    assert rendered["status"] == "ready" and rendered["progress"] == 1.0
    assert rendered["sha256"] == export.sha256 and rendered["size_bytes"] == export.size_bytes
    url = rendered["download_url"]
    assert urlsplit(url).path == f"/media/{export.file.name}"
    query = parse_qs(urlsplit(url).query)
    assert set(query) == {"expires", "signature"}

    response = api.get(path_of(url))
    assert response.status_code == 200 and response["Cache-Control"] == "private, no-store"
    assert sha256(body(response)) == export.sha256
    assert api.get(f"/media/{export.file.name}").status_code == 404  # unsigned
    signature = query["signature"][0]
    tampered = signature[:-1] + ("B" if signature.endswith("A") else "A")
    expires = int(query["expires"][0])
    for refused in (
        f"/media/{export.file.name}?expires={expires}&signature={tampered}",
        f"/media/{export.file.name}?expires={expires + 3600}&signature={signature}",
    ):
        assert api.get(refused).status_code == 404
    monkeypatch.setattr(media_access, "_now", lambda: expires + 1)
    assert api.get(path_of(url)).status_code == 404


def test_the_periodic_clean_up_deletes_expired_zips_and_marks_them_expired(make_user, settings):
    alice, bob = make_user("alice"), make_user("bob")
    old, fresh = built_export(alice), built_export(bob)
    DataExport.objects.filter(pk=old.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert default_storage.exists(old.file.name)

    periodic_job("social.exports.delete_expired").run()

    assert not default_storage.exists(old.file.name)
    old.refresh_from_db()
    assert old.status == ExportStatus.EXPIRED and not old.file.name
    rendered = client_for(alice).get(f"/api/v1/me/exports/{old.pk}").json()
    assert rendered["status"] == "expired" and rendered["download_url"] is None
    fresh.refresh_from_db()
    assert fresh.status == ExportStatus.READY and default_storage.exists(fresh.file.name)
    assert exports.delete_expired_exports() == []  # nothing twice
    # Made ready with the setting's lifetime.
    assert fresh.expires_at - fresh.finished_at == dt.timedelta(seconds=settings.EXPORT_TTL_S)


@pytest.fixture
def default_queue():
    """The real broker's `default` queue, emptied before and after (as a broker restarted empty)."""
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete("default")
    yield broker
    broker.delete("default")


def queued_export_ids(broker) -> list[int]:
    messages = [json.loads(raw) for raw in broker.lrange("default", 0, -1)]
    assert {message["headers"]["task"] for message in messages} <= {"social.tasks.build_export"}
    # Celery's message body: [args, kwargs, embed], base64-encoded JSON.
    return [json.loads(base64.b64decode(message["body"]))[0][0] for message in messages]


def test_an_export_the_broker_could_not_take_or_lost_is_sent_by_the_periodic_job(
    make_user, default_queue, django_capture_on_commit_callbacks
):
    alice = make_user("alice")
    with broker_at(f"redis://127.0.0.1:{closed_port()}/0"), django_capture_on_commit_callbacks(execute=True):
        response = client_for(alice).post("/api/v1/me/export")
    assert response.status_code == 202  # the request did not wait for the broker
    export = DataExport.objects.get(pk=response.json()["id"])
    assert export.dispatched_at is None and queued_export_ids(default_queue) == []

    periodic_job("social.exports.dispatch").run()
    export.refresh_from_db()
    assert export.dispatched_at is not None and queued_export_ids(default_queue) == [export.pk]
    assert exports.dispatch_exports() == []  # sent, and not again while it may still be taken

    default_queue.delete("default")  # the broker restarted and kept nothing
    DataExport.objects.filter(pk=export.pk).update(
        dispatched_at=timezone.now() - dt.timedelta(seconds=settings.EXPORT_REDISPATCH_AFTER_S + 1)
    )
    periodic_job("social.exports.dispatch").run()
    assert queued_export_ids(default_queue) == [export.pk]
    assert build_export(export.pk) == ExportStatus.READY
    assert build_export(export.pk) is None  # a second delivery does nothing


def test_a_dead_workers_export_is_taken_again_then_failed(make_user, settings):
    alice = make_user("alice")
    export = exports.request_export(user=alice)
    stale = timezone.now() - dt.timedelta(seconds=settings.EXPORT_STALE_AFTER_S + 1)
    with broker_at(f"redis://127.0.0.1:{closed_port()}/0"):
        for attempt in range(1, settings.EXPORT_MAX_ATTEMPTS + 1):
            claimed = exports.start_export(export_id=export.pk)
            assert claimed.attempts == attempt and claimed.status == ExportStatus.RUNNING
            assert exports.start_export(export_id=export.pk) is None  # running and reporting
            DataExport.objects.filter(pk=export.pk).update(heartbeat_at=stale)  # the worker died
            requeued = periodic_job("social.exports.reap_stale").run()
            if attempt < settings.EXPORT_MAX_ATTEMPTS:
                assert requeued == [export.pk]
                export.refresh_from_db()
                assert export.status == ExportStatus.QUEUED and export.dispatched_at is None
                # The dead attempt's late report is refused: it would stop and store nothing.
                assert not exports.report_export_progress(export_id=export.pk, attempt=attempt, progress=0.5)
    assert requeued == []
    rendered = client_for(alice).get(f"/api/v1/me/exports/{export.pk}").json()
    assert rendered["status"] == "failed" and rendered["error"]["code"] == "worker_lost"
    assert client_for(alice).post("/api/v1/me/export").status_code == 202  # free to ask again


@pytest.mark.parametrize("report_every_s", [0, 3600])
def test_a_worker_that_lost_its_export_mid_build_stores_nothing(
    make_user, monkeypatch, django_capture_on_commit_callbacks, report_every_s
):
    """Told at its next report (every 0 s), the worker stops; not told before it stores the ZIP
    (every 3600 s), the export refuses it and the ZIP is deleted."""
    alice = make_user("alice")
    export = exports.request_export(user=alice)

    def taken_over_meanwhile(user):
        # The reaper queued it again and another worker claimed it while this one was writing.
        DataExport.objects.filter(pk=export.pk).update(attempts=2, heartbeat_at=timezone.now())
        return []

    monkeypatch.setattr(exports, "REPORT_EVERY_S", report_every_s)
    monkeypatch.setitem(
        exports._sections,
        "zz.json",
        exports.ExportSection(path="zz.json", describes="a slow section", collect=taken_over_meanwhile),
    )
    with django_capture_on_commit_callbacks(execute=True):
        build_export(export.pk)
    export.refresh_from_db()
    assert (export.status, export.attempts, export.file.name) == (ExportStatus.RUNNING, 2, "")
    assert not default_storage.exists(exports.stored_name(export, 1))


@pytest.mark.django_db(transaction=True)
async def test_progress_reaches_the_owners_websocket(make_user):
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    owner = WebsocketCommunicator(_application(), f"/ws/events?token={AccessToken.for_user(alice)}")
    other = WebsocketCommunicator(_application(), f"/ws/events?token={AccessToken.for_user(bob)}")
    assert (await owner.connect())[0] and (await other.connect())[0]

    def request_and_build() -> DataExport:
        with broker_at(f"redis://127.0.0.1:{closed_port()}/0"):
            export = exports.request_export(user=alice)
        assert build_export(export.pk) == ExportStatus.READY
        return export

    export = await sync_to_async(request_and_build)()
    events = []
    while not events or events[-1]["type"] != "export.finished":
        events.append(await owner.receive_json_from(timeout=5))
    progress = [event for event in events if event["type"] == "export.progress"]
    assert progress and all(event["id"] == str(export.pk) for event in events)
    assert [event["progress"] for event in progress] == sorted(event["progress"] for event in progress)
    assert events[-1] == {"type": "export.finished", "id": str(export.pk), "status": "ready"}
    assert await other.receive_nothing(timeout=0.3)
    await owner.disconnect()
    await other.disconnect()


def _application():
    from config.asgi import application

    return application


def test_deleting_the_account_deletes_its_zips(make_user, django_capture_on_commit_callbacks):
    alice = make_user("alice")
    export = built_export(alice)
    assert default_storage.exists(export.file.name)
    with django_capture_on_commit_callbacks(execute=True):
        delete_account(user=alice)
    assert not default_storage.exists(export.file.name)
    assert not DataExport.objects.filter(pk=export.pk).exists()


@pytest.mark.parametrize("limit", [1, 10])
def test_reading_exports_costs_a_fixed_number_of_queries(make_user, django_assert_num_queries, limit):
    alice = make_user("alice")
    for status in (ExportStatus.READY, ExportStatus.FAILED, ExportStatus.EXPIRED):
        DataExport.objects.create(
            user=alice, token=f"t-{status}", status=status, file=f"exports/x/{status}.zip"
        )
    client = client_for(alice)  # issuing a token may record it; not part of the counted requests
    latest = DataExport.objects.filter(user=alice).latest("id")
    # One query for the token's user, one for the export(s).
    with django_assert_num_queries(2):
        assert client.get(f"/api/v1/me/exports/{latest.pk}").status_code == 200
    with django_assert_num_queries(2):
        response = client.get(f"/api/v1/me/exports?limit={limit}")
    assert len(response.json()["results"]) == min(limit, 3)


def test_the_schema_documents_the_export_endpoints(api):
    paths = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert {"202", "401", "409"} <= set(paths["/api/v1/me/export"]["post"]["responses"])
    assert {"200", "401", "404"} <= set(paths["/api/v1/me/exports/{export_id}"]["get"]["responses"])
    assert {"200", "401"} <= set(paths["/api/v1/me/exports"]["get"]["responses"])
