"""Storyboards: `POST /generations` with `shots` checks every shot before anything is written,
costs a quota unit per shot, renders each shot as its own task and joins them into one labelled,
watermarked post whose provenance names every shot's prompt and seed."""

import datetime as dt

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from cameo import services as cameo_services
from cameo.models import Permission
from generation import encoding, services, sound, storyboards, watermark, worker
from generation.models import Generation, GenerationMode, GenerationShot, GenerationStatus, Provenance
from social.models import Post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

SHOTS = [
    {"prompt": "a lighthouse at dawn", "duration_s": 1},
    {"prompt": "the keeper climbs the stairs", "duration_s": 2},
    {"prompt": "the lamp turns on over the storm", "duration_s": 1},
]


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    sent = []
    monkeypatch.setattr(services, "enqueue_storyboard", sent.append)
    monkeypatch.setattr(services, "enqueue", sent.append)
    return sent


def request_storyboard(user, shots=SHOTS, **body):
    return client_for(user).post(
        "/api/v1/generations", {"shots": shots, "aspect_ratio": "9:16", **body}, format="json"
    )


def render_all(job, renderer):
    for shot in job.shots.order_by("index"):
        rendered = worker.execute_shot(shot.pk, renderer=renderer)
        assert rendered is not None
    return worker.execute_generation(job.pk)


def test_a_storyboard_is_one_job_with_a_row_per_shot(user, _no_broker):
    response = request_storyboard(user, seed=41)
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["mode"] == "storyboard" and body["duration_s"] == 4 and body["audio"] is True
    assert [shot["prompt"] for shot in body["shots"]] == [shot["prompt"] for shot in SHOTS]
    assert [shot["status"] for shot in body["shots"]] == ["queued"] * 3
    job = Generation.objects.get(pk=body["id"])
    assert job.mode == GenerationMode.STORYBOARD and job.quota_units == 3
    assert [shot.seed for shot in job.shots.all()] == [41, 42, 43]
    # In the outbox until the request commits; then sent as one chord (services.enqueue_storyboard).
    assert job.dispatched_at is None
    assert services.dispatch_generations() == [job.pk] and _no_broker == [job.pk]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"shots": SHOTS[:1]}, "shots"),
        ({"shots": SHOTS * 3}, "shots"),
        ({"shots": SHOTS, "prompt": "and also this"}, "prompt"),
        ({"shots": SHOTS, "duration_s": 3}, "duration_s"),
        ({"shots": [{"prompt": "no length"}, SHOTS[0]]}, "shots"),
        ({}, "prompt"),
    ],
)
def test_malformed_storyboards_are_refused_with_400(user, body, field):
    response = client_for(user).post("/api/v1/generations", {"aspect_ratio": "1:1", **body}, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["details"]
    assert not Generation.objects.exists()


def test_a_storyboard_longer_than_the_limit_is_refused(user, settings):
    settings.STORYBOARD_MAX_DURATION_S = 3
    response = request_storyboard(user)
    assert response.status_code == 422 and response.json()["error"]["code"] == "storyboard_too_long"
    assert not Generation.objects.exists()


def test_every_shot_is_checked_before_anything_is_written(user, make_user, alice_cameo):
    bob = make_user("bob")
    cameo_services.update_cameo(actor=user, cameo=alice_cameo, permission=Permission.ONLY_ME)
    shots = [SHOTS[0], {**SHOTS[1], "cameo_ids": [str(alice_cameo.pk)]}]
    response = request_storyboard(bob, shots)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "cameo_not_permitted" and error["details"]["shot"] == 1
    rejected = request_storyboard(bob, [SHOTS[0], {"prompt": "a nude figure on a beach", "duration_s": 1}])
    assert rejected.status_code == 422 and rejected.json()["error"]["details"]["shot"] == 1
    assert not Generation.objects.exists() and not GenerationShot.objects.exists()


def test_a_storyboard_costs_one_quota_unit_per_shot(user, settings):
    settings.GENERATION_DAILY_LIMITS = {"free": 4, "pro": 300}
    settings.GENERATION_MAX_IN_FLIGHT = {"free": 5, "pro": 5}
    assert request_storyboard(user).status_code == 202  # 3 of 4
    refused = request_storyboard(user, SHOTS[:2])
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "quota_exceeded"
    assert (
        refused.json()["error"]["details"].items()
        >= {"reason": "daily", "limit": 4, "used": 3, "needed": 2}.items()
    )
    assert services.used_today(user) == 3
    single = client_for(user).post(
        "/api/v1/generations", {"prompt": "one more", "duration_s": 1, "aspect_ratio": "1:1"}, format="json"
    )
    assert single.status_code == 202


def test_shots_render_apart_and_join_into_one_labelled_post_with_sound(
    user, tiny_renderer, django_capture_on_commit_callbacks
):
    job = Generation.objects.get(pk=request_storyboard(user, seed=7).json()["id"])
    first, second, third = job.shots.order_by("index")
    assert worker.execute_shot(first.pk, renderer=tiny_renderer).status == GenerationStatus.RUNNING
    first.refresh_from_db()
    assert first.status == GenerationStatus.SUCCEEDED and default_storage.exists(first.output_name)
    job.refresh_from_db()
    assert job.status == GenerationStatus.RUNNING and job.progress == pytest.approx(0.9 / 3, abs=0.01)
    # The join waits for every shot: before that it does nothing.
    assert worker.execute_generation(job.pk) is None
    for shot in (second, third):
        worker.execute_shot(shot.pk, renderer=tiny_renderer)
    with django_capture_on_commit_callbacks(execute=True):
        done = worker.execute_generation(job.pk)
    assert done.status == GenerationStatus.SUCCEEDED, (done.error_code, done.error_message)
    assert done.attempts == 1 and done.progress == 1.0

    post = Post.objects.get(pk=done.post_id)
    assert post.duration_s == pytest.approx(4, abs=1 / 8) and post.has_audio
    with post.video.open("rb") as handle:
        data = handle.read()
    video = encoding.decode_mp4(data)
    track = encoding.decode_audio(data)
    assert abs(track.duration_s - len(video.frames) / video.fps) <= 1 / video.fps
    assert sound.find_ai_cue(track)
    assert watermark.read(video.frames).key == watermark.key_of(done.content_id)

    record = Provenance.objects.get(post=post).record
    assert record["mode"] == "storyboard" and record["audio"] is True
    assert [(shot["prompt"], shot["seed"]) for shot in record["shots"]] == [
        (shot["prompt"], 7 + index) for index, shot in enumerate(SHOTS)
    ]
    # The shots' clips are gone once joined into the post.
    assert not any(default_storage.exists(shot.output_name) for shot in job.shots.all())


def test_a_silent_storyboard_has_no_sound(user, tiny_renderer):
    job = Generation.objects.get(pk=request_storyboard(user, SHOTS[:2], audio=False).json()["id"])
    done = render_all(job, tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED
    post = Post.objects.get(pk=done.post_id)
    assert not post.has_audio and Provenance.objects.get(post=post).record["audio"] is False


def test_cancelling_a_storyboard_stops_every_shot(user, tiny_renderer, django_capture_on_commit_callbacks):
    job = Generation.objects.get(pk=request_storyboard(user).json()["id"])
    first, second, third = job.shots.order_by("index")
    worker.execute_shot(first.pk, renderer=tiny_renderer)
    claimed = storyboards.start_shot(shot_id=second.pk)  # a worker is rendering it
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(user).post(f"/api/v1/generations/{job.pk}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert {shot["status"] for shot in response.json()["shots"]} == {"succeeded", "cancelled"}
    # The running shot stops at its next step; the queued one never starts; nothing is joined.
    assert not storyboards.report_shot_progress(shot_id=second.pk, attempt=claimed.attempts, progress=0.5)
    assert worker.execute_shot(third.pk, renderer=tiny_renderer) is None
    assert worker.execute_generation(job.pk) is None
    assert not GenerationShot.objects.filter(generation=job, status__in=["queued", "running"]).exists()
    first.refresh_from_db()
    assert not default_storage.exists(first.output_name)


def test_consent_withdrawn_for_one_shot_blocks_the_whole_storyboard(
    user, make_user, alice_cameo, tiny_renderer, monkeypatch
):
    bob = make_user("bob")
    shots = [SHOTS[0], {**SHOTS[1], "cameo_ids": [str(alice_cameo.pk)]}, SHOTS[2]]
    job = Generation.objects.get(pk=request_storyboard(bob, shots).json()["id"])
    assert job.likeness_ids == [alice_cameo.pk]
    first, second, third = job.shots.order_by("index")
    assert second.likeness_ids == [alice_cameo.pk] and first.likeness_ids == []
    worker.execute_shot(first.pk, renderer=tiny_renderer)

    class RevokingRenderer:
        """The tiny model, with alice withdrawing consent once her shot has begun."""

        def render(self, request, on_step=None):
            def step(index, total):
                if index == 1:
                    cameo_services.update_cameo(actor=user, cameo=alice_cameo, permission=Permission.ONLY_ME)
                on_step(index, total)

            return tiny_renderer.render(request, step)

        def model_id_for(self, request):
            return tiny_renderer.model_id_for(request)

    monkeypatch.setattr(worker._Progress, "REPORT_EVERY_S", 0)
    worker.execute_shot(second.pk, renderer=RevokingRenderer())
    job.refresh_from_db()
    assert job.status == GenerationStatus.BLOCKED and job.error_code == "consent_revoked"
    assert worker.execute_shot(third.pk, renderer=tiny_renderer) is None
    assert worker.execute_generation(job.pk) is None
    assert not Post.objects.filter(author=bob).exists()


def test_a_dead_shot_is_rendered_again_and_the_rendered_ones_are_kept(user, tiny_renderer, settings):
    job = Generation.objects.get(pk=request_storyboard(user, SHOTS[:2]).json()["id"])
    first, second = job.shots.order_by("index")
    worker.execute_shot(first.pk, renderer=tiny_renderer)
    assert storyboards.start_shot(shot_id=second.pk) is not None  # ...and its worker dies
    # A second delivery of the same shot finds it running and leaves it.
    assert storyboards.start_shot(shot_id=second.pk) is None
    long_ago = timezone.now() - dt.timedelta(seconds=settings.GENERATION_STALE_AFTER_S + 5)
    Generation.objects.filter(pk=job.pk).update(heartbeat_at=long_ago)
    GenerationShot.objects.filter(pk=second.pk).update(heartbeat_at=long_ago)
    assert services.reap_stale_generations() == [job.pk]
    job.refresh_from_db()
    assert job.status == GenerationStatus.QUEUED and job.progress > 0
    assert job.shots.get(index=1).status == GenerationStatus.QUEUED  # its dead worker let go of it

    assert worker.execute_shot(first.pk, renderer=tiny_renderer) is None  # rendered: kept
    worker.execute_shot(second.pk, renderer=tiny_renderer)
    done = worker.execute_generation(job.pk)
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    attempts = dict(job.shots.values_list("index", "attempts"))
    assert attempts == {0: 1, 1: 2}


def test_a_shot_whose_workers_keep_dying_fails_the_storyboard(user, settings):
    settings.GENERATION_MAX_ATTEMPTS = 2
    job = Generation.objects.get(pk=request_storyboard(user, SHOTS[:2]).json()["id"])
    shot = job.shots.order_by("index").first()
    GenerationShot.objects.filter(pk=shot.pk).update(status="running", attempts=2, heartbeat_at=None)
    assert storyboards.start_shot(shot_id=shot.pk) is None
    job.refresh_from_db()
    assert job.status == GenerationStatus.FAILED and job.error_code == "worker_lost"
    assert "shot 1" in job.error_message


def test_the_generations_list_costs_the_same_queries_with_storyboards(
    user, settings, django_assert_num_queries
):
    settings.GENERATION_MAX_IN_FLIGHT = {"free": 5, "pro": 5}
    client = client_for(user)
    client.post(
        "/api/v1/generations", {"prompt": "one", "duration_s": 1, "aspect_ratio": "1:1"}, format="json"
    )
    request_storyboard(user)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/api/v1/generations")
        assert response.status_code == 200
        return len(queries)

    before = count()
    request_storyboard(user, SHOTS[:2])
    assert count() == before
    with django_assert_num_queries(before):
        body = client.get("/api/v1/generations").json()
    assert [len(item["shots"]) for item in body["results"]] == [2, 3, 0]
