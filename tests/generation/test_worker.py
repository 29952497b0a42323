"""The worker's path from a queued job to a draft post, run in-process with the tiny models."""

import uuid
from datetime import timedelta

import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from generation import encoding, services, worker
from generation.backends import CheckpointMissing
from generation.models import Generation, GenerationStatus, Provenance
from social.models import Notification, Post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"prompt": "a lighthouse in a storm at dusk", "duration_s": 3, "aspect_ratio": "1:1", "seed": 11}


def request_job(user, **overrides) -> Generation:
    job, _ = services.request_generation(
        user=user, request=services.GenerationRequest(**{**BODY, **overrides}), idempotency_key=""
    )
    return job


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    # These tests run the worker in-process; the broker path has its own tests.
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


def test_job_runs_to_a_labelled_watermarked_draft_post(user, tiny_renderer):
    job = request_job(user)
    # A fixed content id keeps the watermark check deterministic (see generation/watermark.py for
    # how often a 64x64 clip of the tiny model's textured noise decodes).
    Generation.objects.filter(pk=job.pk).update(content_id=uuid.UUID("3d2f8c1e-5b6a-4c7d-8e9f-0a1b2c3d4e5f"))
    job.refresh_from_db()
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED and done.progress == 1.0
    post = Post.objects.get(pk=done.post_id)
    assert post.author_id == user.pk and post.status == "draft" and post.content_id == job.content_id
    assert post.prompt == BODY["prompt"] and post.duration_s == pytest.approx(3, abs=0.2)
    with post.video.open("rb") as handle:
        data = handle.read()
    from generation import watermark
    from generation.provenance import read_upload

    reading = read_upload(data)
    assert reading.watermark.key == watermark.key_of(job.content_id)
    assert reading.labelled_content_id == job.content_id
    assert reading.label["ProduceID"] == str(job.content_id)
    record = Provenance.objects.get(post=post).record
    assert record["prompt"] == BODY["prompt"] and record["seed"] == 11
    assert record["model"].startswith("tiny:ltx2@")  # picture and sound in one pass
    assert Notification.objects.filter(user=user, kind="generation_finished", post=post).exists()


def test_a_second_delivery_makes_no_second_post(user, tiny_renderer):
    job = request_job(user)
    worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert worker.execute_generation(job.pk, renderer=tiny_renderer) is None
    assert Post.objects.filter(author=user).count() == 1


def test_completing_twice_keeps_one_post(user, tiny_renderer, tmp_path):
    job = request_job(user)
    services.start_generation(job_id=job.pk)
    frames = tiny_renderer.generate(worker.render_request(job))
    path = tmp_path / "out.mp4"
    path.write_bytes(encoding.encode_mp4(worker.finish_frames(frames, job), fps=8))
    first = services.complete_generation(job_id=job.pk, video_path=str(path), model_id="m")
    second = services.complete_generation(job_id=job.pk, video_path=str(path), model_id="m")
    assert first.post_id == second.post_id
    assert Post.objects.filter(author=user).count() == 1


def test_cancelled_while_running_stops_at_the_next_step(user, tiny_renderer, monkeypatch):
    job = request_job(user)
    original = services.report_progress

    def cancel_then_report(*, job_id, attempt, progress):
        services.cancel_generation(user=user, job_id=job_id)
        return original(job_id=job_id, attempt=attempt, progress=progress)

    monkeypatch.setattr(services, "report_progress", cancel_then_report)
    monkeypatch.setattr(worker._Progress, "REPORT_EVERY_S", 0.0)
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.CANCELLED and done.post_id is None
    assert not Post.objects.exists()


def _reap(job_id: int, settings) -> None:
    """What happens to a job whose worker stalls: its heartbeat goes stale and the reaper queues it
    again."""
    settings.GENERATION_STALE_AFTER_S = 60
    Generation.objects.filter(pk=job_id).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert services.reap_stale_generations() == [job_id]


def _hand_over(job_id: int, settings) -> Generation:
    """The stalled worker's job, queued again and claimed by another worker (attempt 2)."""
    _reap(job_id, settings)
    return services.start_generation(job_id=job_id)


def _fail_as(job_id: int, attempt: int) -> None:
    services.end_generation(
        job_id=job_id, status=GenerationStatus.FAILED, code="generation_failed", message="x", attempt=attempt
    )


def test_a_worker_that_lost_its_job_to_another_attempt_stops_and_leaves_it_alone(
    user, tiny_renderer, settings, monkeypatch
):
    job = request_job(user)
    original = services.report_progress
    taken_over = {}

    def stall_then_report(*, job_id, attempt, progress):
        if not taken_over:
            taken_over["job"] = _hand_over(job_id, settings)
        return original(job_id=job_id, attempt=attempt, progress=progress)

    monkeypatch.setattr(services, "report_progress", stall_then_report)
    monkeypatch.setattr(worker._Progress, "REPORT_EVERY_S", 0.0)
    left = worker.execute_generation(job.pk, renderer=tiny_renderer)
    claimed = taken_over["job"]
    assert claimed.attempts == 2
    # The first worker stopped at its next beat: the job still runs as attempt 2, with attempt
    # 2's heartbeat and progress, and nothing was stored or ended in its name.
    assert left.status == GenerationStatus.RUNNING and left.attempts == 2 and left.post_id is None
    assert left.heartbeat_at == claimed.heartbeat_at and left.progress == 0.0
    assert not Post.objects.exists()


def test_a_stalled_worker_cannot_end_a_job_the_reaper_queued_again(user, settings):
    job = request_job(user)
    first = services.start_generation(job_id=job.pk)
    _reap(job.pk, settings)
    _fail_as(job.pk, first.attempts)
    assert Generation.objects.get(pk=job.pk).status == GenerationStatus.QUEUED


def test_a_stale_attempt_can_neither_beat_nor_end_nor_complete_the_job(
    user, tiny_renderer, settings, tmp_path
):
    job = request_job(user)
    first = services.start_generation(job_id=job.pk)
    assert services.report_progress(job_id=job.pk, attempt=first.attempts, progress=0.2)
    second = _hand_over(job.pk, settings)
    assert not services.report_progress(job_id=job.pk, attempt=first.attempts, progress=0.9)
    _fail_as(job.pk, first.attempts)
    frames = tiny_renderer.generate(worker.render_request(job))
    path = tmp_path / "out.mp4"
    path.write_bytes(encoding.encode_mp4(worker.finish_frames(frames, job), fps=8))
    services.complete_generation(job_id=job.pk, video_path=str(path), model_id="m", attempt=first.attempts)
    job.refresh_from_db()
    assert job.status == GenerationStatus.RUNNING and job.post_id is None
    assert job.heartbeat_at == second.heartbeat_at and job.progress == 0.0
    # The attempt that holds the job still can.
    assert services.report_progress(job_id=job.pk, attempt=second.attempts, progress=0.5)
    done = services.complete_generation(
        job_id=job.pk, video_path=str(path), model_id="m", attempt=second.attempts
    )
    assert done.status == GenerationStatus.SUCCEEDED and done.post_id is not None


class OutOfMemoryRenderer:
    """Stands in for a GPU that cannot fit the model: torch's own out-of-memory error."""

    def render(self, request, on_step=None):
        from generation.backends.loading import translate_device_errors

        raise translate_device_errors(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB"))

    def model_id_for(self, request):
        return "oom"


def test_cuda_out_of_memory_fails_the_job_with_a_clear_code(user):
    job = request_job(user)
    done = worker.execute_generation(job.pk, renderer=OutOfMemoryRenderer())
    assert done.status == GenerationStatus.FAILED and done.error_code == "out_of_memory"
    assert "out of memory" in done.error_message


def test_missing_checkpoint_fails_the_job_with_a_clear_code(user, settings, tmp_path, monkeypatch):
    from generation import backends

    settings.GENERATION_BACKEND = "diffusers"
    settings.GENERATION_MODEL_DIR = str(tmp_path / "absent-models")
    monkeypatch.setattr(backends, "_renderer", None)
    job = request_job(user)
    done = worker.execute_generation(job.pk)
    assert done.status == GenerationStatus.FAILED and done.error_code == "model_unavailable"
    assert "absent-models" in done.error_message
    with pytest.raises(CheckpointMissing):
        backends.get_renderer()
    monkeypatch.setattr(backends, "_renderer", None)


def test_provenance_is_for_the_author_only_and_verify_names_the_post(user, make_user, tiny_renderer):
    queued = request_job(user, duration_s=5)
    # A fixed content id keeps the re-encoding check below deterministic.
    Generation.objects.filter(pk=queued.pk).update(
        content_id=uuid.UUID("0b8e5f7a-1c2d-4e3f-9a0b-6c7d8e9f0a1b")
    )
    job = worker.execute_generation(queued.pk, renderer=tiny_renderer)
    author = client_for(user)
    response = author.get(f"/api/v1/posts/{job.post_id}/provenance")
    assert response.status_code == 200
    assert response.json()["record"]["composed_prompt"] == BODY["prompt"]
    stranger = client_for(make_user("eve"))
    assert stranger.get(f"/api/v1/posts/{job.post_id}/provenance").status_code == 404

    data = Post.objects.get(pk=job.post_id).video.open("rb").read()
    verified = author.post(
        "/api/v1/provenance/verify",
        {"file": SimpleUploadedFile("x.mp4", data, "video/mp4")},
        format="multipart",
    ).json()
    assert verified["generated_here"] is True and verified["post_id"] == str(job.post_id)
    assert verified["content_id"] == str(job.content_id) and verified["label"]["Label"] == "1"
    # The post is still a draft: someone who may not see it learns it was made here, not which.
    by_stranger = stranger.post(
        "/api/v1/provenance/verify",
        {"file": SimpleUploadedFile("x.mp4", data, "video/mp4")},
        format="multipart",
    ).json()
    assert by_stranger["generated_here"] is True and by_stranger["post_id"] is None

    # Metadata stripped by a re-encode at a lower bitrate: the watermark still names the post.
    frames = encoding.decode_mp4(data).frames
    stripped = encoding.encode_mp4(frames, fps=8, bit_rate=int(len(data) * 8 / 5 * 0.75))
    again = author.post(
        "/api/v1/provenance/verify",
        {"file": SimpleUploadedFile("y.mp4", stripped, "video/mp4")},
        format="multipart",
    ).json()
    assert again["label"] is None and again["watermark_found"] and again["post_id"] == str(job.post_id)
    assert again["match"] == {"by": "watermark", "score": 1.0}
    assert again["content_id"] == str(job.content_id)


def test_verify_a_file_from_elsewhere_and_a_file_that_is_not_video(user, tiny_renderer):
    client = client_for(user)
    foreign = encoding.encode_mp4(
        tiny_renderer.generate(worker.render_request(request_job(user, seed=5))), fps=8
    )
    result = client.post(
        "/api/v1/provenance/verify",
        {"file": SimpleUploadedFile("f.mp4", foreign, "video/mp4")},
        format="multipart",
    ).json()
    assert result["generated_here"] is False and result["post_id"] is None
    bad = client.post(
        "/api/v1/provenance/verify",
        {"file": SimpleUploadedFile("a.mp4", b"not a video at all", "video/mp4")},
        format="multipart",
    )
    assert bad.status_code == 415 and bad.json()["error"]["code"] == "unsupported_media"
    assert client.post("/api/v1/provenance/verify", {}, format="multipart").status_code == 400


def test_verify_refuses_frames_larger_than_it_decodes(user, tiny_renderer, monkeypatch):
    from generation import provenance

    monkeypatch.setattr(provenance, "VERIFY_MAX_FRAME_PIXELS", 32 * 32)
    clip = encoding.encode_mp4(tiny_renderer.generate(worker.render_request(request_job(user))), fps=8)
    refused = client_for(user).post(
        "/api/v1/provenance/verify",
        {"file": SimpleUploadedFile("big.mp4", clip, "video/mp4")},
        format="multipart",
    )
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_large"
    assert refused.json()["error"]["details"] == {"width": 64, "height": 64}
