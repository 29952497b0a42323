"""Fingerprints: every output hashed once at creation, copies found through verify, old posts
backfilled."""

import io
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command

from bench import provenance_corpus as corpus
from generation import fingerprints, services, worker
from generation.models import ContentFingerprint, Generation, GenerationStatus
from social.services import create_post
from tests.conftest import client_for

pytestmark = pytest.mark.django_db(transaction=True)

SIZE = (144, 256)
SECONDS = 2.5


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


def clip_of(photo: str, *, seed: int) -> corpus.Clip:
    frames = corpus.photo_pan(corpus.load_photo(photo), seed=seed, seconds=SECONDS, size=SIZE)
    return corpus.Clip(photo, "photo", corpus.label(frames), seed=seed)


def stored_post(user, clip: corpus.Clip, tmp_path, *, status="published", fingerprinted=True):
    path = tmp_path / f"{uuid.uuid4().hex}.mp4"
    path.write_bytes(clip.data)
    post = create_post(author=user, video=str(path), status=status, content_id=uuid.uuid4())
    if fingerprinted:
        services.record_fingerprints(
            post_id=post.pk, fingerprints=fingerprints.fingerprint_frames(clip.frames, fps=clip.fps)
        )
    return post


def verify(client, data: bytes) -> dict:
    response = client.post(
        "/api/v1/provenance/verify",
        {"file": SimpleUploadedFile("copy.mp4", data, "video/mp4")},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture(scope="module")
def original() -> corpus.Clip:
    return clip_of("astronaut.png", seed=1)


@pytest.mark.parametrize("transform", ["scale50+crf35", "crop10+mirror", "trim2s", "letterbox", "fps24"])
def test_a_transformed_copy_is_found_by_its_fingerprints(user, make_user, original, tmp_path, transform):
    post = stored_post(user, original, tmp_path)
    copy = corpus.transform(original.data, corpus.TRANSFORMS[transform], seed=3)
    result = verify(client_for(make_user()), copy)
    # No metadata survives the copy, and the corpus clip carries no watermark: only the frames tell.
    assert result["label"] is None and result["watermark_found"] is False
    assert result["generated_here"] is True and result["post_id"] == str(post.pk)
    assert result["content_id"] == str(post.content_id)
    assert result["match"]["by"] == "fingerprint" and 0 < result["match"]["score"] <= 1


def test_an_unrelated_clip_is_not_found(user, make_user, original, tmp_path):
    stored_post(user, original, tmp_path)
    stored_post(user, clip_of("coffee.png", seed=2), tmp_path)
    for frames in (
        corpus.label(corpus.photo_pan(corpus.load_photo("rocket.jpg"), seed=4, seconds=SECONDS, size=SIZE)),
        corpus.label(corpus.scene(seed=11, seconds=SECONDS, size=SIZE)),
    ):
        result = verify(client_for(make_user()), corpus.encode(frames, fps=corpus.FPS))
        assert result["generated_here"] is False and result["post_id"] is None and result["match"] is None


def test_a_clip_that_shares_only_the_label_box_with_a_post_does_not_verify(user, make_user, tmp_path):
    # Drifting smooth noise has little texture: with the box hashed, the first 2 s of any two such
    # clips were 20 bits apart and matched at offset 0.
    post_frames = corpus.label(corpus.noise(seed=9, seconds=SECONDS, size=SIZE))
    stored_post(user, corpus.Clip("noise:9", "noise", post_frames, seed=9), tmp_path)
    other = corpus.encode(corpus.label(corpus.noise(seed=11, seconds=SECONDS, size=SIZE)), fps=corpus.FPS)
    result = verify(client_for(make_user()), other)
    assert result["generated_here"] is False and result["match"] is None


def test_the_label_box_is_not_part_of_a_frame_hash():
    frames = corpus.scene(seed=4, seconds=0.5, size=SIZE)
    labelled = corpus.label(frames)
    assert (labelled[0] != frames[0]).any()
    assert fingerprints.hash_frame(labelled[0], at_ms=0) == fingerprints.hash_frame(frames[0], at_ms=0)


def test_a_copy_of_a_draft_does_not_name_it_to_others(user, make_user, original, tmp_path):
    post = stored_post(user, original, tmp_path, status="draft")
    copy = corpus.transform(original.data, corpus.TRANSFORMS["scale50"])
    by_stranger = verify(client_for(make_user()), copy)
    assert by_stranger["generated_here"] is True and by_stranger["match"]["by"] == "fingerprint"
    assert by_stranger["post_id"] is None and by_stranger["content_id"] is None
    by_author = verify(client_for(user), copy)
    assert by_author["post_id"] == str(post.pk)


def test_the_worker_fingerprints_its_output_once_however_often_it_stores(user, tiny_renderer, tmp_path):
    job, _ = services.request_generation(
        user=user,
        request=services.GenerationRequest(
            prompt="a kite over dunes", duration_s=2, aspect_ratio="1:1", seed=4
        ),
    )
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED
    stored = ContentFingerprint.objects.filter(post_id=done.post_id)
    # 2 s at one frame per SAMPLE_MS, each frame whole and its centre.
    assert stored.count() == 2000 // fingerprints.SAMPLE_MS * len(fingerprints.REGIONS)
    assert Generation.objects.get(pk=job.pk).timings["fingerprint_s"] >= 0
    with done.post.video.open("rb") as handle:
        again = fingerprints.fingerprint_file(handle)
    # The store step again (a retried delivery), and the hashes again: nothing is added.
    Generation.objects.filter(pk=job.pk).update(status=GenerationStatus.RUNNING)
    services.complete_generation(
        job_id=job.pk, video_path=str(tmp_path / "unused.mp4"), model_id="x", fingerprints=again
    )
    assert services.record_fingerprints(post_id=done.post_id, fingerprints=again) == 0
    assert stored.count() == 2000 // fingerprints.SAMPLE_MS * len(fingerprints.REGIONS)


def test_backfill_fingerprints_old_posts_once_and_resumes(user, tmp_path):
    old = [
        stored_post(user, clip_of(name, seed=5), tmp_path, fingerprinted=False)
        for name in ("chelsea.png", "china.jpg")
    ]
    out = io.StringIO()
    call_command("fingerprint_posts", "--limit", "1", "--no-progress", stdout=out)
    assert "fingerprinted 1 posts" in out.getvalue()
    assert ContentFingerprint.objects.filter(post_id=old[0].pk).exists()
    assert not ContentFingerprint.objects.filter(post_id=old[1].pk).exists()
    err = io.StringIO()
    call_command("fingerprint_posts", stdout=out, stderr=err)
    assert "1/1" in err.getvalue()  # the progress bar
    expected = int(SECONDS * 1000) // fingerprints.SAMPLE_MS * len(fingerprints.REGIONS)
    assert [ContentFingerprint.objects.filter(post_id=post.pk).count() for post in old] == [expected] * 2
    out = io.StringIO()
    call_command("fingerprint_posts", "--no-progress", stdout=out)
    assert "fingerprinted 0 posts" in out.getvalue()


def _hits(pairs, *, post_id=1, mirrored=False, distance=10):
    return [
        fingerprints.Hit(upload_ms, mirrored, post_id, content_ms, distance)
        for upload_ms, content_ms in pairs
    ]


def test_a_match_needs_enough_frames_at_one_time_offset():
    durations = {1: 5000, 2: 5000}
    # A 2 s segment cut at 1.5 s: every upload frame hits the stored frame 1.5 s later.
    aligned = _hits([(ms, ms + 1500) for ms in range(0, 2000, 250)])
    match = fingerprints.decide(aligned, upload_ms=2000, durations_ms=durations)
    assert match is not None and match.post_id == 1 and match.offset_ms == 1500 and match.score == 1
    # As many near hits scattered over offsets: no match.
    scattered = _hits([(ms, (ms * 7919) % 5000) for ms in range(0, 2000, 250)])
    assert fingerprints.decide(scattered, upload_ms=2000, durations_ms=durations) is None
    # Aligned, but too far apart in bits.
    far = _hits([(ms, ms) for ms in range(0, 2000, 250)], distance=fingerprints.MATCH_DISTANCE + 1)
    assert fingerprints.decide(far, upload_ms=2000, durations_ms=durations) is None
    # Fewer than MIN_VOTES frames: no match, however well aligned.
    few = _hits([(ms, ms) for ms in range(0, 250 * (fingerprints.MIN_VOTES - 1), 250)])
    assert fingerprints.decide(few, upload_ms=5000, durations_ms=durations) is None
    # One upload frame hitting many stored frames votes once.
    static = _hits([(0, ms) for ms in range(0, 5000, 250)])
    assert fingerprints.decide(static, upload_ms=2000, durations_ms=durations) is None
