"""Character cameos: enrollment from photos or a short video of a subject (here scikit-image's
cat), each refusal, and the consent machinery shared with persons."""

from datetime import date
from functools import cache

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from cameo import services
from cameo.models import Cameo, CameoAudit, CameoStatus, Permission
from cameo.references import conditioning_image, reference_images
from cameo.selectors import usable_cameos
from core.storage import biometric_storage
from tests.cameo import clips
from tests.cameo.conftest import image_upload, upload
from tests.conftest import client_for
from tests.media import image_bytes, moving_subject_clip, on_canvas, packaged_photo

pytestmark = pytest.mark.django_db


@cache
def cat() -> np.ndarray:
    return packaged_photo("chelsea")


def closer_cat() -> np.ndarray:
    """The cat mirrored and nearer: another view."""
    return np.asarray(ImageOps.mirror(Image.fromarray(cat())).crop((60, 20, 400, 290)))


@cache
def cat_clip(seconds: float = 4) -> bytes:
    return moving_subject_clip(cat(), seconds=seconds)


def transformed(pixels: np.ndarray, how) -> bytes:
    return image_bytes(np.asarray(how(Image.fromarray(pixels))))


REFUSED_PHOTOS = {
    # a 3 px Gaussian blur at the photo's own size: sharpness 0.004 (MIN_SHARPNESS 0.02)
    "blurry": (lambda: transformed(cat(), lambda i: i.filter(ImageFilter.GaussianBlur(3))), "low_quality"),
    # 30 % brightness: mean luminance 34 (CAMEO_MIN_BRIGHTNESS 40)
    "dark": (lambda: transformed(cat(), lambda i: ImageEnhance.Brightness(i).enhance(0.3)), "low_quality"),
    # the cat 80 px wide on a 480x360 frame: subject fraction 0.02 (MIN_SUBJECT_FRACTION 0.04)
    "too_small": (lambda: image_bytes(on_canvas(cat(), subject_px=80)), "subject_too_small"),
    # a real person: the face bundled with insightface, and scikit-image's astronaut
    "portrait": (lambda: image_bytes(packaged_photo("portrait")), "human_face"),
    "astronaut": (lambda: image_bytes(packaged_photo("astronaut"), "JPEG"), "human_face"),
}


def post_character(client, **fields):
    return client.post(
        "/api/v1/cameos", {"kind": "character", "display_name": "Chelsea", **fields}, format="multipart"
    )


def test_active_from_photos_with_references_and_no_template(user, enrolled_character):
    cameo = enrolled_character(user, images=[image_bytes(cat()), image_bytes(closer_cat(), "JPEG")])
    assert cameo.status == CameoStatus.ACTIVE, (cameo.rejection_reason, cameo.pk)
    assert cameo.kind == "character" and cameo.template_vector is None and not cameo.face_crop
    assert len(cameo.reference_images) == 2  # two different views
    storage = biometric_storage()
    assert all(storage.exists(name) for name in cameo.reference_images)
    assert not cameo.source_images and not cameo.verification_video  # the upload is gone
    assert cameo.template_version == 1
    best = conditioning_image(cameo)
    assert best.mode == "RGB" and best.size == (451, 300)  # the whole photo is the subject
    assert [image.size for image in reference_images(cameo)][0] == best.size


def test_one_photo_sent_twice_keeps_one_reference(user, enrolled_character):
    cameo = enrolled_character(user, images=[image_bytes(cat()), image_bytes(cat(), "JPEG")])
    assert cameo.status == CameoStatus.ACTIVE and len(cameo.reference_images) == 1


def test_active_from_a_video_keeps_varied_crops(user, enrolled_character):
    cameo = enrolled_character(user, video=cat_clip())
    assert cameo.status == CameoStatus.ACTIVE, cameo.rejection_reason
    images = reference_images(cameo)
    assert 2 <= len(images) <= 4
    # crops of the subject, not whole 320x240 frames
    assert all(image.width < 320 and image.height < 240 for image in images)
    pixels = [np.asarray(image.resize((64, 48)), dtype=np.float32) for image in images]
    assert min(np.abs(a - b).mean() for i, a in enumerate(pixels) for b in pixels[i + 1 :]) > 1


@pytest.mark.parametrize("case", sorted(REFUSED_PHOTOS))
def test_refused_photos_name_their_reason(user, enrolled_character, case):
    make, reason = REFUSED_PHOTOS[case]
    cameo = enrolled_character(user, images=[make()], handle=f"pet_{case}")
    assert (cameo.status, cameo.rejection_reason) == (CameoStatus.REJECTED, reason)
    assert not cameo.reference_images and not cameo.source_images and cameo.handle is None
    audit = CameoAudit.objects.filter(cameo_id_value=cameo.pk, action="rejected").get()
    assert audit.after["reason"] == reason and "median_sharpness" in audit.after


def test_a_person_filmed_as_a_character_is_human_face(user, enrolled_character):
    cameo = enrolled_character(user, video=clips.enrollment_clip(count=32))  # 4 s of a moving face
    assert (cameo.status, cameo.rejection_reason) == (CameoStatus.REJECTED, "human_face")
    assert not cameo.verification_video


def test_rejection_deletes_the_uploaded_images(user, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        cameo = services.start_enrollment(
            owner=user,
            kind="character",
            images=[image_upload(image_bytes(packaged_photo("portrait")))],
            display_name="not a pet",
        )
    [stored] = cameo.source_images
    assert biometric_storage().exists(stored)
    with django_capture_on_commit_callbacks(execute=True):
        services.enroll(cameo_id=cameo.pk)
    assert not biometric_storage().exists(stored)


def test_no_likeness_dedupe_between_owners(make_user, enrolled_character):
    first = enrolled_character(make_user("first"), images=[image_bytes(cat())])
    second = enrolled_character(make_user("second"), images=[image_bytes(cat())])
    assert first.status == second.status == CameoStatus.ACTIVE


def test_upload_is_202_processing_with_kind_and_derived_handle(
    auth_client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_character(
            auth_client, images=[image_upload(image_bytes(cat()))], display_name="Chelsea the Cat"
        )
    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["kind"], body["status"], body["handle"]) == ("character", "processing", "chelsea_the_cat")
    assert len(callbacks) == 1  # the same outbox dispatch as persons


def test_too_many_images_is_400(auth_client):
    response = post_character(
        auth_client, images=[image_upload(image_bytes(cat()), f"{n}.png") for n in range(5)]
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid" and "images" in response.json()["error"]["details"]
    assert not Cameo.objects.exists()


def test_video_and_images_together_is_400(auth_client):
    response = post_character(
        auth_client, images=[image_upload(image_bytes(cat()))], video=upload(cat_clip(), "pet.mp4")
    )
    assert response.status_code == 400 and "images" in response.json()["error"]["details"]


def test_a_person_takes_no_images(auth_client):
    response = auth_client.post(
        "/api/v1/cameos",
        {"display_name": "me", "images": [image_upload(image_bytes(cat()))]},
        format="multipart",
    )
    assert response.status_code == 400 and "video" in response.json()["error"]["details"]


def test_a_video_shorter_than_3_s_is_415_too_short(auth_client):
    response = post_character(auth_client, video=upload(moving_subject_clip(cat(), seconds=2), "pet.mp4"))
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "too_short" and error["details"]["min_s"] == 3.0
    assert not Cameo.objects.exists()


def test_a_video_longer_than_15_s_is_415_too_long(auth_client):
    response = post_character(
        auth_client, video=upload(moving_subject_clip(cat(), seconds=16, fps=2, subject_px=60), "pet.mp4")
    )
    assert response.status_code == 415 and response.json()["error"]["code"] == "too_long"


def test_an_image_that_is_not_one_is_415(auth_client):
    response = post_character(auth_client, images=[image_upload(cat_clip()[:4096], "pet.png")])
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media"
    assert not Cameo.objects.exists()


def test_characters_share_the_consent_rules(make_user, enrolled_character):
    owner, friend, stranger = make_user("owner"), make_user("friend"), make_user("stranger")
    cameo = enrolled_character(owner, images=[image_bytes(cat())], permission=Permission.APPROVED)
    assert not usable_cameos(user=friend).filter(pk=cameo.pk).exists()
    services.grant_use(actor=owner, cameo=cameo, grantee=friend)
    assert usable_cameos(user=friend).filter(pk=cameo.pk).exists()
    assert not usable_cameos(user=stranger).filter(pk=cameo.pk).exists()
    cameo = services.update_cameo(actor=owner, cameo=cameo, permission=Permission.EVERYONE)
    assert usable_cameos(user=stranger).filter(pk=cameo.pk).exists()
    actions = list(CameoAudit.objects.filter(cameo_id_value=cameo.pk).values_list("action", flat=True))
    assert actions == ["created", "activated", "granted", "updated"]


def test_a_minor_s_character_is_not_for_everyone(make_user):
    minor = make_user("young", birth_date=date(2013, 1, 1))
    response = client_for(minor).post(
        "/api/v1/cameos",
        {
            "kind": "character",
            "display_name": "pup",
            "permission": "everyone",
            "images": [image_upload(image_bytes(cat()))],
        },
        format="multipart",
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "permission_not_allowed"


def test_erasure_deletes_the_references(user, enrolled_character, django_capture_on_commit_callbacks):
    cameo = enrolled_character(user, images=[image_bytes(cat()), image_bytes(closer_cat())], handle="chelsea")
    names = list(cameo.reference_images)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(user).delete(f"/api/v1/cameos/{cameo.pk}")
    assert response.status_code == 204
    assert not any(biometric_storage().exists(name) for name in names)
    cameo.refresh_from_db()
    assert cameo.status == CameoStatus.DELETED and cameo.reference_images == [] and cameo.handle is None
    body = client_for(user).get(f"/api/v1/cameos/{cameo.pk}").json()
    assert (body["status"], body["kind"], body["handle"]) == ("deleted", "character", None)


def test_the_export_names_kind_and_handle_and_no_media(user, enrolled_character):
    from cameo.exports import cameos_of

    enrolled_character(user, images=[image_bytes(cat())], handle="chelsea")
    [record] = cameos_of(user)
    assert (record["kind"], record["handle"], record["status"]) == ("character", "chelsea", "active")
    assert not {"reference_images", "source_images", "face_crop"} & set(record)
