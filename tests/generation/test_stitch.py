"""Stitching: `POST /posts/stitch` joins posts the caller may use into one draft, through the job
path (consent, quota, outbox, worker), with one label, one watermark, the sources' cameos
inherited through the likeness lineage and the remix share split between the sources' authors."""

import io

import av
import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cameo.models import Permission
from config.celery import app
from generation import encoding, services, sound, watermark, worker
from generation.models import ContentFingerprint, Generation, GenerationMode, GenerationStatus, Provenance
from generation.provenance import read_upload
from generation.tasks import join_clips, run_generation
from remix.ledger import record_revenue_event
from social import services as social_services
from social.models import Post, PostStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)
    monkeypatch.setattr(services, "enqueue_stitch", lambda job_id: None)


@pytest.fixture
def made(made_through_the_job):
    """A post by `author` made through the real job path (1 s at the tiny backend's size)."""

    def make(author, *, aspect_ratio="9:16", **request) -> Post:
        body = {
            "prompt": f"a lighthouse in a storm, {aspect_ratio}",
            "duration_s": 1,
            "aspect_ratio": aspect_ratio,
        }
        return made_through_the_job(author, **{**body, **request})

    return make


def stitch(user, *posts, **body):
    return client_for(user).post(
        "/api/v1/posts/stitch", {"post_ids": [post.pk for post in posts], **body}, format="json"
    )


def video_frames(post: Post) -> tuple[int, float, tuple[int, int]]:
    with post.video.open("rb") as handle, av.open(io.BytesIO(handle.read())) as container:
        stream = container.streams.video[0]
        count = sum(1 for _ in container.decode(stream))
        return count, float(stream.average_rate), (stream.width, stream.height)


def test_a_stitch_joins_posts_into_one_labelled_draft(user, make_user, made, tiny_renderer):
    bob = make_user("bob")
    mine = made(user, status=PostStatus.DRAFT)
    theirs = made(bob, aspect_ratio="1:1")
    response = stitch(user, mine, theirs, mine, caption="the storm, three times")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["mode"] == "stitch" and body["sources"] == [str(mine.pk), str(theirs.pk), str(mine.pk)]
    assert body["aspect_ratio"] == "9:16"  # the first source's
    job = Generation.objects.get(pk=body["id"])
    assert job.mode == GenerationMode.STITCH and job.dispatched_at is None  # in the outbox

    done = worker.execute_generation(job.pk)  # no renderer: a stitch loads no model
    assert done.status == GenerationStatus.SUCCEEDED, (done.error_code, done.error_message)
    post = Post.objects.get(pk=done.post_id)
    assert post.status == PostStatus.DRAFT and post.author_id == user.pk
    assert post.source_ids == [mine.pk, theirs.pk, mine.pk] and post.remix_of_id is None
    assert post.caption == "the storm, three times"
    # Every source's length, to the frame, at the portrait size (the square one letterboxed).
    frames, fps, size = video_frames(post)
    source_frames = [video_frames(source)[0] for source in (mine, theirs, mine)]
    assert frames == sum(source_frames) and size == (48, 80) and fps == 8
    assert post.duration_s == pytest.approx(
        sum(source.duration_s for source in (mine, theirs, mine)), abs=1 / 8
    )
    with post.video.open("rb") as handle:
        data = handle.read()
    reading = read_upload(data)
    # The sources' sound, joined in step with their pictures, with the audible label at its start.
    track = encoding.decode_audio(data)
    assert post.has_audio and abs(track.duration_s - frames / fps) <= 1 / fps
    assert sound.find_ai_cue(track)
    # Its own label and watermark, naming it and not a source.
    assert reading.labelled_content_id == post.content_id
    assert reading.watermark.key == watermark.key_of(post.content_id)
    assert ContentFingerprint.objects.filter(post=post).exists()
    record = Provenance.objects.get(post=post).record
    assert record["mode"] == "stitch" and record["model"] == worker.STITCH_MODEL_ID
    assert [source["post_id"] for source in record["sources"]] == [str(mine.pk), str(theirs.pk), str(mine.pk)]

    detail = client_for(user).get(f"/api/v1/posts/{post.pk}").json()
    assert detail["sources"] == [str(mine.pk), str(theirs.pk), str(mine.pk)]
    # The feeds render it in the database: the same object.
    social_services.publish_post(actor=user, post=post)
    feed = client_for(bob).get("/api/v1/feed", {"tab": "for_you"}).json()["results"]
    assert next(item for item in feed if item["id"] == str(post.pk))["sources"] == detail["sources"]


def test_a_letterboxed_source_keeps_its_whole_picture():
    from generation.joining import Clip, fit, join

    square = np.full((64, 64, 3), 200, dtype=np.uint8)
    fitted = fit(square, 48, 80)
    assert fitted.shape == (80, 48, 3)
    assert fitted[:16].max() == 0 and fitted[-16:].max() == 0  # bars above and below
    assert fitted[16:64].min() == 200  # the picture whole, 48x48
    joined = join(
        [Clip(np.zeros((8, 80, 48, 3), np.uint8), 8), Clip(np.stack([square] * 12), 24)],
        width=48,
        height=80,
        fps=8,
    )
    assert len(joined) == 8 + 4  # 1 s at 8 fps, then 0.5 s at 24 fps as 4 frames at 8


def test_the_sources_cameos_are_inherited_and_their_authors_share_the_remix_royalty(
    alice_cameo, user, make_user, made
):
    bob, carol, dave = make_user("bob"), make_user("carol"), make_user("dave")
    with_alice = made(bob, cameo_ids=[alice_cameo.pk])
    plain = made(carol)
    response = stitch(dave, with_alice, plain)
    assert response.status_code == 202, response.json()
    assert response.json()["inherited_cameo_ids"] == [str(alice_cameo.pk)]
    job = Generation.objects.get(pk=response.json()["id"])
    assert job.likeness_ids == [alice_cameo.pk] and job.cameo_consents[0]["inherited_from"] == with_alice.pk
    done = worker.execute_generation(job.pk)
    assert done.status == GenerationStatus.SUCCEEDED, (done.error_code, done.error_message)
    post = Post.objects.get(pk=done.post_id)
    assert post.cameo_owner_ids == [user.pk]
    # alice sees the draft among her appearances.
    appearances = client_for(user).get(f"/api/v1/cameos/{alice_cameo.pk}/appearances").json()["results"]
    assert str(post.pk) in [item["id"] for item in appearances]
    social_services.publish_post(actor=dave, post=post)
    event = record_revenue_event(
        event_id="ad-s", post_id=post.pk, amount_minor=10_000, currency="EUR", kind="ad"
    )
    parties = {(split.party.type, split.party.id): split.amount_minor for split in event.splits}
    # 10% remix share: half each to the two sources' authors; 5% to the cameo owner.
    assert parties[("remix_source", bob.pk)] == 500 and parties[("remix_source", carol.pk)] == 500
    assert parties[("cameo_owner", user.pk)] == 500
    assert sum(parties.values()) == 10_000


def test_consent_narrowed_after_the_request_blocks_the_stitch(alice_cameo, user, make_user, made):
    bob, dave = make_user("bob"), make_user("dave")
    with_alice = made(bob, cameo_ids=[alice_cameo.pk])
    response = stitch(dave, with_alice, made(bob))
    assert response.status_code == 202
    from cameo import services as cameo_services

    cameo_services.update_cameo(actor=user, cameo=alice_cameo, permission=Permission.ONLY_ME)
    done = worker.execute_generation(int(response.json()["id"]))
    assert (
        done.status == GenerationStatus.BLOCKED
        and done.error_code == "consent_revoked"
        and done.post_id is None
    )


def test_what_may_not_be_stitched(alice_cameo, user, make_user, made):
    bob, mallory = make_user("bob"), make_user("mallory")
    published = made(bob)
    draft = made(bob, status=PostStatus.DRAFT)
    closed = made(bob)
    social_services.update_post(actor=bob, post=closed, remix_allowed=False)
    mine = made(mallory)

    def refused(*posts):
        response = stitch(mallory, *posts)
        return response.status_code, response.json()["error"]["code"]

    assert refused(mine, draft) == (404, "not_found")  # someone else's draft
    assert refused(mine, closed) == (403, "remix_not_allowed")
    assert refused(mine) == (400, "invalid")
    assert refused(*([mine] * 11)) == (400, "invalid")
    # A source whose cameo's owner blocked the stitcher is refused with the source named.
    with_alice = made(bob, cameo_ids=[alice_cameo.pk])
    social_services.block_user(blocker=user, blocked=mallory)
    response = stitch(mallory, mine, with_alice)
    assert response.status_code == 403
    assert response.json()["error"]["details"] == {
        "cameo": str(alice_cameo.pk),
        "inherited_from": str(with_alice.pk),
    }
    # Blocks between the stitcher and a source's author hide the source.
    social_services.block_user(blocker=bob, blocked=mallory)
    assert refused(mine, published) == (404, "not_found")
    social_services.unblock_user(blocker=bob, blocked=mallory)
    # A removed source is gone.
    social_services.take_down_post(actor=make_user("mod", is_staff=True), post=published)
    assert refused(mine, published) == (404, "not_found")
    # Longer than STITCH_MAX_DURATION_S in all.
    long_one = made(mallory)
    Post.objects.filter(pk=long_one.pk).update(duration_s=59.5)
    status, code = refused(mine, long_one)
    assert (status, code) == (422, "stitch_too_long")
    assert not Generation.objects.filter(user=mallory, mode=GenerationMode.STITCH).exists()


def test_a_source_removed_before_the_worker_runs_fails_the_stitch(user, make_user, made):
    bob = make_user("bob")
    source = made(bob)
    response = stitch(user, made(user), source)
    assert response.status_code == 202
    social_services.delete_post(actor=bob, post=source)
    done = worker.execute_generation(int(response.json()["id"]))
    assert done.status == GenerationStatus.FAILED and done.error_code == "not_found" and done.post_id is None


def test_stitches_go_to_the_cpu_queue_and_renders_to_the_gpu_queue(user, made, monkeypatch):
    sent = []
    monkeypatch.setattr(services, "enqueue", lambda job_id: sent.append(("gpu", job_id)))
    monkeypatch.setattr(services, "enqueue_stitch", lambda job_id: sent.append(("cpu", job_id)))
    monkeypatch.setattr("core.outbox.broker_answers", lambda: True)
    first, second = made(user), made(user)
    sent.clear()
    stitched = stitch(user, first, second).json()
    rendered = (
        client_for(user)
        .post(
            "/api/v1/generations",
            {"prompt": "a red kite", "duration_s": 1, "aspect_ratio": "1:1"},
            format="json",
        )
        .json()
    )
    # (Sent once the request commits; the outbox sends what is due either way.)
    services.dispatch_generations(job_ids=[int(stitched["id"]), int(rendered["id"])])
    assert sorted(sent) == sorted([("cpu", int(stitched["id"])), ("gpu", int(rendered["id"]))])
    assert app.amqp.router.route({}, join_clips.name)["queue"].name == "default"
    assert app.amqp.router.route({}, run_generation.name)["queue"].name == "gpu"


def test_a_stitch_request_costs_a_fixed_number_of_queries_per_source(user, made):
    posts = [made(user) for _ in range(4)]

    def queries(sources):
        with CaptureQueriesContext(connection) as captured:
            assert stitch(user, *sources).status_code == 202
        # Out of flight, so the next request is not held back by the in-flight limit.
        Generation.objects.filter(user=user).update(status=GenerationStatus.CANCELLED)
        return len(captured)

    # Each source is checked as a remix source is; nothing else grows with their number.
    two, three, four = queries(posts[:2]), queries(posts[:3]), queries(posts)
    assert four - three == three - two


def test_only_workers_of_the_gpu_queue_load_the_video_models(monkeypatch, settings):
    from generation import tasks

    settings.GENERATION_PRELOAD_MODELS = True
    loaded = []
    monkeypatch.setattr(tasks, "get_renderer", lambda: loaded.append(True))
    queues = app.amqp.queues
    monkeypatch.setattr(queues, "_consume_from", {"default": queues["default"]})
    tasks.load_models_at_worker_start()
    assert loaded == []
    monkeypatch.setattr(queues, "_consume_from", {"default": queues["default"], "gpu": queues["gpu"]})
    tasks.load_models_at_worker_start()
    assert loaded == [True]
