import numpy as np
import pytest
from celery.contrib.testing.worker import start_worker

from cameo import services
from cameo.identity import DlibEncoder, get_encoder
from cameo.models import Cameo, CameoStatus
from config.celery import app
from core.storage import biometric_storage
from tests.cameo import clips
from tests.cameo.conftest import clip, upload
from tests.conftest import client_for

pytestmark = pytest.mark.django_db


def post_cameo(client, data: bytes, name="me.mp4", **fields):
    return client.post(
        "/api/v1/cameos",
        {"video": upload(data, name), "display_name": "Me", **fields},
        format="multipart",
    )


def test_encoder_separates_people_on_bundled_photos():
    encoder = DlibEncoder()
    portrait = encoder.embed(np.asarray(clips.portrait()))
    group = encoder.embed(np.asarray(clips.group_photo()))
    assert len(portrait) == 1 and len(group) == 6
    flipped = encoder.embed(np.asarray(clips.portrait().transpose(0)))[0]
    same = float(1 - portrait[0].embedding @ flipped.embedding)
    different = min(float(1 - portrait[0].embedding @ face.embedding) for face in group)
    assert same < 0.05 < different


def test_active_from_a_moving_relit_face(user, enrolled_cameo):
    cameo = enrolled_cameo(user)
    assert cameo.status == CameoStatus.ACTIVE, cameo.rejection_reason
    assert cameo.encoder == get_encoder().name and cameo.encoder_version
    assert cameo.template.shape == (128,)
    assert abs(float(np.linalg.norm(cameo.template)) - 1) < 1e-4
    assert cameo.template_version == 1 and cameo.template_spread is not None
    assert cameo.face_crop and biometric_storage().exists(cameo.face_crop.name)
    assert not cameo.verification_video


@pytest.mark.parametrize(
    ("clip_name", "reason"),
    [
        ("still_clip", "liveness_failed"),
        ("two_faces_clip", "multiple_faces"),
        ("no_face_clip", "no_face"),
        ("tiny_face_clip", "face_too_small"),
        ("blurred_clip", "low_quality"),
        ("dark_clip", "low_quality"),
        ("switching_identity_clip", "inconsistent_identity"),
    ],
)
def test_rejections_name_their_reason(user, enrolled_cameo, clip_name, reason):
    cameo = enrolled_cameo(user, data=clip(clip_name))
    assert cameo.status == CameoStatus.REJECTED
    assert cameo.rejection_reason == reason
    assert cameo.template_vector is None
    assert not cameo.verification_video and not cameo.face_crop


def test_another_user_cannot_claim_the_same_likeness(make_user, enrolled_cameo):
    first = enrolled_cameo(make_user("first"))
    second = enrolled_cameo(make_user("second"))
    assert first.status == CameoStatus.ACTIVE
    assert (second.status, second.rejection_reason) == (CameoStatus.REJECTED, "likeness_already_claimed")


def test_a_different_person_is_not_a_claim(make_user, enrolled_cameo):
    assert enrolled_cameo(make_user("first")).status == CameoStatus.ACTIVE
    other = enrolled_cameo(make_user("second"), face=clips.group_faces()[2])
    assert other.status == CameoStatus.ACTIVE, other.rejection_reason


def test_erasing_frees_the_likeness(make_user, enrolled_cameo):
    first_owner = make_user("first")
    first = enrolled_cameo(first_owner)
    services.erase_cameo(actor=first_owner, cameo=first)
    assert enrolled_cameo(make_user("second")).status == CameoStatus.ACTIVE


def test_enrolling_twice_changes_nothing(user, enrolled_cameo):
    cameo = enrolled_cameo(user)
    services.enroll(cameo_id=cameo.pk)
    cameo.refresh_from_db()
    assert cameo.status == CameoStatus.ACTIVE and cameo.template_version == 1


def test_upload_is_202_processing(auth_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_cameo(
            auth_client, clip("enrollment_clip"), permission="mutuals", instructions="red scarf"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "processing" and body["permission"] == "mutuals"
    assert body["instructions"] == "red scarf" and body["rejection_reason"] is None
    assert len(callbacks) == 1


def test_png_named_mp4_is_415(auth_client):
    response = post_cameo(auth_client, clips.png_bytes(), name="me.mp4")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media"
    assert not Cameo.objects.exists()


def test_corrupt_file_is_415(auth_client):
    response = post_cameo(auth_client, b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    assert response.status_code == 415


def test_truncated_mp4_is_415(auth_client):
    data = clip("enrollment_clip")
    assert post_cameo(auth_client, data[: len(data) // 3]).status_code == 415


def test_corrupt_frames_behind_a_valid_header_are_rejected_later(user, enrolled_cameo):
    data = bytearray(clip("enrollment_clip"))
    data[64 : len(data) - 1500] = bytes(len(data) - 1500 - 64)
    cameo = enrolled_cameo(user, data=bytes(data))
    assert cameo.status == CameoStatus.REJECTED
    assert cameo.rejection_reason in {"unsupported_media", "no_face"}


def test_oversize_is_413_before_decoding(auth_client, settings):
    settings.CAMEO_VIDEO_MAX_BYTES = 1000
    response = post_cameo(auth_client, clip("enrollment_clip"))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_too_long_is_refused(auth_client, settings):
    settings.CAMEO_VIDEO_MAX_SECONDS = 1.0
    response = post_cameo(auth_client, clip("enrollment_clip"))
    assert response.status_code == 415
    assert response.json()["error"]["details"]["duration_s"] > 1


def test_webm_is_accepted(auth_client, django_capture_on_commit_callbacks):
    data = clips.encode(clips.moving_face_frames(count=6), container="webm")
    with django_capture_on_commit_callbacks(execute=False):
        assert post_cameo(auth_client, data, name="me.webm").status_code == 202


def test_minor_cannot_enroll_for_everyone(make_user):
    from datetime import date

    minor = make_user("kid", birth_date=date.today().replace(year=date.today().year - 14, day=1))
    response = post_cameo(client_for(minor), clip("enrollment_clip"), permission="everyone")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "permission_not_allowed"


@pytest.mark.django_db(transaction=True)
def test_enrollment_runs_through_a_real_worker(make_user):
    owner = make_user("realworker")
    client = client_for(owner)
    with start_worker(app, pool="solo", perform_ping_check=False, queues=["default"], loglevel="WARNING"):
        response = post_cameo(client, clip("enrollment_clip"))
        assert response.status_code == 202
        cameo_id = int(response.json()["id"])
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = Cameo.objects.get(pk=cameo_id).status
            if status != CameoStatus.PROCESSING:
                break
            time.sleep(0.2)
    assert client.get(f"/api/v1/cameos/{cameo_id}").json()["status"] == "active"


def test_a_video_without_a_duration_is_sampled_in_little_memory_and_bounded(tmp_path, monkeypatch, settings):
    """Browser WebM carries no duration: frames are counted while decoding instead."""
    from cameo import enrollment

    path = tmp_path / "clip.mp4"
    path.write_bytes(clip("enrollment_clip"))
    with_duration = enrollment.sample_frames(path, 4)
    monkeypatch.setattr(enrollment, "duration_seconds", lambda container, stream: 0.0)
    without_duration = enrollment.sample_frames(path, 4)
    assert len(without_duration) == len(with_duration) == 4
    assert without_duration[0].shape == with_duration[0].shape
    settings.CAMEO_VIDEO_MAX_SECONDS = 0.1
    with pytest.raises(enrollment.VideoTooLong):
        enrollment.sample_frames(path, 4)


def test_a_video_without_a_duration_is_too_long_by_its_frames_times(tmp_path, monkeypatch, settings):
    """The decoder skips frames no other frame refers to, so counting decoded frames undercounts
    a video's length; the frames' own times do not."""
    from cameo import enrollment

    path = tmp_path / "clip.mp4"
    path.write_bytes(clip("enrollment_clip"))
    monkeypatch.setattr(enrollment, "duration_seconds", lambda container, stream: 0.0)
    # A frame count that would let the clip pass: only its times can refuse it.
    monkeypatch.setattr(enrollment, "MAX_FRAME_RATE", 100_000)
    settings.CAMEO_VIDEO_MAX_SECONDS = 0.5
    with pytest.raises(enrollment.VideoTooLong, match="a frame at"):
        enrollment.sample_frames(path, 4)
