"""The registry of protected likenesses: staff-only CRUD, reference faces kept as biometrics, who is
verified as whom, and the rules a cameo's own instructions must pass."""

import io
import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from cameo import moderation, services
from cameo.likeness import ProtectedMatch, find_protected_in_frames, find_unconsented_likenesses
from cameo.models import Cameo, CameoAudit, ProtectedLikeness
from core.errors import ApiError
from core.storage import biometric_storage
from tests.cameo import clips
from tests.cameo.conftest import clip, upload
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/protected-likenesses"
SEEDED = [
    "Donald Trump",
    "Joe Biden",
    "Barack Obama",
    "Xi Jinping",
    "Vladimir Putin",
    "Elon Musk",
    "Taylor Swift",
    "Kim Kardashian",
    "Cristiano Ronaldo",
    "Lionel Messi",
    "Pope Francis",
    "King Charles",
    "Emmanuel Macron",
    "Narendra Modi",
    "Volodymyr Zelensky",
    "Mark Zuckerberg",
    "Jackie Chan",
    "Beyoncé",
]


def image_file(image: Image.Image, name="face.png", fmt="PNG") -> SimpleUploadedFile:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return SimpleUploadedFile(name, buffer.getvalue(), content_type=f"image/{fmt.lower()}")


@pytest.fixture
def staff(make_user):
    return make_user("ops", is_staff=True)


@pytest.fixture
def staff_client(staff):
    return client_for(staff)


def post_cameo(client, **fields):
    body = {"video": upload(clip("enrollment_clip")), "display_name": "Me", **fields}
    return client.post("/api/v1/cameos", body, format="multipart")


def stored_references() -> set[str]:
    storage = biometric_storage()
    return set(storage.listdir("protected")[1]) if storage.exists("protected") else set()


def create(client, **fields):
    body = {"name": "Zhang Wei", "aliases": ["张伟"], "reason": "by_request", **fields}
    fmt = "multipart" if "reference" in fields else "json"
    return client.post(URL, body, format=fmt)


# --- the seeded registry ----------------------------------------------------------------------


def test_the_public_figures_the_rules_used_to_hard_code_are_seeded_by_migrate():
    seeded = dict(ProtectedLikeness.objects.values_list("name", "aliases"))
    assert set(SEEDED) <= set(seeded)
    assert set(ProtectedLikeness.objects.filter(name__in=SEEDED).values_list("reason", flat=True)) == {
        "public_figure"
    }
    assert {"泰勒·斯威夫特", "霉霉"} <= set(seeded["Taylor Swift"])
    assert {"Trump", "特朗普", "川普"} <= set(seeded["Donald Trump"])
    assert not ProtectedLikeness.objects.exclude(reference="").exists()


def test_the_hard_coded_list_is_gone():
    import importlib.util

    assert importlib.util.find_spec("generation.moderation") is None
    assert not hasattr(moderation, "PUBLIC_FIGURES")


# --- CRUD and who may do it -------------------------------------------------------------------


def test_staff_create_read_update_and_delete(staff_client):
    created = create(staff_client, aliases=["张伟", " Zhang  Wei ", "Wei Zhang", "张伟"])
    assert created.status_code == 201, created.json()
    body = created.json()
    assert set(body) == {"id", "name", "aliases", "reason", "has_reference", "created_at"}
    assert body["name"] == "Zhang Wei" and body["reason"] == "by_request"
    # Repeats and spellings of the name itself are dropped.
    assert body["aliases"] == ["张伟", "Wei Zhang"] and body["has_reference"] is False
    detail = f"{URL}/{body['id']}"
    assert staff_client.get(detail).json() == body
    patched = staff_client.patch(detail, {"reason": "deceased", "aliases": ["老张"]}, format="json")
    assert patched.status_code == 200
    assert (patched.json()["reason"], patched.json()["aliases"]) == ("deceased", ["老张"])
    names = [item["name"] for item in staff_client.get(f"{URL}?limit=50").json()["results"]]
    assert names[0] == "Zhang Wei" and set(SEEDED) <= set(names)
    assert staff_client.delete(detail).status_code == 204
    assert staff_client.get(detail).status_code == 404
    assert staff_client.delete(detail).status_code == 404


@pytest.mark.parametrize(
    "fields, status, code",
    [
        ({"reason": "famous"}, 400, "invalid"),
        ({"name": ""}, 400, "invalid"),
        ({"name": "  "}, 400, "invalid"),
        ({"surprise": 1}, 400, "invalid"),
        ({"name": "taylor SWIFT"}, 409, "name_taken"),
    ],
)
def test_bad_entries_are_refused(staff_client, fields, status, code):
    response = create(staff_client, **fields)
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code


def test_renaming_onto_another_entry_is_409(staff_client):
    entry = create(staff_client).json()
    response = staff_client.patch(f"{URL}/{entry['id']}", {"name": "Elon Musk"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "name_taken"


def test_only_staff_see_or_change_the_registry(make_user, api, staff_client, enrolled_cameo):
    entry = create(staff_client).json()
    detail = f"{URL}/{entry['id']}"
    owner = make_user("owner")
    cameo = enrolled_cameo(owner)
    verify = f"/api/v1/cameos/{cameo.pk}/verified-as"
    calls = [
        ("get", URL, None),
        ("post", URL, {"name": "Somebody", "reason": "by_request"}),
        ("get", detail, None),
        ("patch", detail, {"name": "Renamed"}),
        ("delete", detail, None),
        ("put", verify, {"protected_likeness_id": entry["id"]}),
    ]
    for caller, expected, code in [
        (client_for(owner), 403, "forbidden"),
        (api, 401, "not_authenticated"),
    ]:
        for method, url, body in calls:
            response = getattr(caller, method)(url, body, format="json")
            assert response.status_code == expected, (method, url, response.content)
            assert response.json()["error"]["code"] == code
    assert ProtectedLikeness.objects.get(pk=entry["id"]).name == "Zhang Wei"
    assert not ProtectedLikeness.objects.filter(name="Somebody").exists()
    assert Cameo.objects.get(pk=cameo.pk).verified_as_id is None


def test_services_refuse_non_staff_whatever_the_caller(make_user):
    with pytest.raises(ApiError) as refusal:
        services.create_protected_likeness(actor=make_user("eve"), name="X Y", reason="by_request")
    assert (refusal.value.status_code, refusal.value.code) == (403, "forbidden")


def test_list_query_count_does_not_grow_with_page_size(staff_client, django_assert_num_queries):
    total = ProtectedLikeness.objects.count()
    assert total > 11
    # One query for the JWT's user, one for the page.
    for limit in (1, 10):
        with django_assert_num_queries(2):
            response = staff_client.get(f"{URL}?limit={limit}")
        assert len(response.json()["results"]) == limit
        with django_assert_num_queries(2):
            following = staff_client.get(f"{URL}?limit={limit}&cursor={response.json()['next_cursor']}")
        assert len(following.json()["results"]) == min(limit, total - limit)
        assert {item["id"] for item in following.json()["results"]}.isdisjoint(
            item["id"] for item in response.json()["results"]
        )


# --- the reference face -----------------------------------------------------------------------


def test_reference_is_kept_privately_under_a_random_name_and_deleted_with_the_entry(
    staff_client, django_capture_on_commit_callbacks
):
    created = create(staff_client, reference=image_file(clips.portrait(), name="tom-hanks.png"))
    assert created.status_code == 201, created.json()
    assert created.json()["has_reference"] is True
    assert "reference" not in created.json() and "template" not in str(created.json())
    entry = ProtectedLikeness.objects.get(pk=created.json()["id"])
    name = entry.reference.name
    assert re.fullmatch(r"protected/[0-9a-f]{32}\.png", name), name
    path = Path(biometric_storage().path(name))
    assert path.is_file() and path.is_relative_to(settings.BIOMETRICS_ROOT)
    assert not path.is_relative_to(settings.MEDIA_ROOT)
    with pytest.raises(ValueError):
        biometric_storage().url(entry.reference.name)
    assert entry.template_dim == 128 and entry.encoder == "dlib-resnet" and entry.template_vector is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert staff_client.delete(f"{URL}/{entry.pk}").status_code == 204
    assert not path.exists()


def test_a_new_reference_replaces_the_old_file(staff_client, django_capture_on_commit_callbacks):
    entry_id = create(staff_client, reference=image_file(clips.portrait())).json()["id"]
    old = ProtectedLikeness.objects.get(pk=entry_id)
    other_face = clips.group_faces()[2]
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.patch(
            f"{URL}/{entry_id}", {"reference": image_file(other_face, "b.jpg", "JPEG")}, format="multipart"
        )
    assert response.status_code == 200, response.json()
    new = ProtectedLikeness.objects.get(pk=entry_id)
    assert new.reference.name.endswith(".jpg") and new.reference.name != old.reference.name
    assert not biometric_storage().exists(old.reference.name) and biometric_storage().exists(
        new.reference.name
    )
    assert float(np.dot(new.template_vector, old.template_vector)) < 0.95


def _blank_png() -> Image.Image:
    return Image.new("RGB", (160, 160), (90, 140, 200))


@pytest.mark.parametrize(
    "make_upload, status, code",
    [
        (lambda: image_file(_blank_png()), 422, "no_face"),
        (lambda: image_file(clips.group_photo(), "group.jpg", "JPEG"), 422, "multiple_faces"),
        (lambda: SimpleUploadedFile("face.png", b"not an image at all" * 10), 415, "unsupported_media"),
        (lambda: image_file(clips.portrait(), "face.gif", "GIF"), 415, "unsupported_media"),
    ],
)
def test_a_reference_is_checked_by_its_content(staff_client, make_upload, status, code):
    before = stored_references()
    response = create(staff_client, reference=make_upload())
    assert response.status_code == status, response.json()
    assert response.json()["error"]["code"] == code
    assert not ProtectedLikeness.objects.filter(name="Zhang Wei").exists()
    assert stored_references() == before


def test_a_reference_over_the_limits_is_413(staff_client, settings):
    settings.PROTECTED_REFERENCE_MAX_BYTES = 1000
    response = create(staff_client, reference=image_file(clips.portrait()))
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
    settings.PROTECTED_REFERENCE_MAX_BYTES = 10_000_000
    settings.PROTECTED_REFERENCE_MAX_PIXELS = 100 * 100
    response = create(staff_client, reference=image_file(clips.portrait()))
    assert response.status_code == 413 and response.json()["error"]["details"]["max_pixels"] == 10_000


def test_frames_are_compared_with_reference_faces(staff, enrolled_cameo, make_user):
    tom = services.create_protected_likeness(
        actor=staff, name="Tom Hanks", reason="public_figure", reference=image_file(clips.portrait())
    )
    frames = clips.moving_face_frames(count=2)
    matches = find_protected_in_frames(frames)
    assert [(match.protected_likeness_id, match.name) for match in matches] == [(tom.pk, "Tom Hanks")]
    assert find_protected_in_frames(frames, allowed_ids=[tom.pk]) == []
    other = clips.moving_face_frames(clips.group_faces()[2], count=1, face_px=190)
    assert find_protected_in_frames(other) == []
    # A job is let through only with a cameo verified as him.
    cameo = enrolled_cameo(make_user("tom"), face=clips.group_faces()[2], face_px=190)
    assert [type(match) for match in find_unconsented_likenesses(frames, cameo_ids=[cameo.pk])] == [
        ProtectedMatch
    ]
    services.verify_cameo_as(actor=staff, cameo=cameo, protected_likeness=tom)
    assert find_unconsented_likenesses(frames, cameo_ids=[cameo.pk]) == []


# --- verified_as ------------------------------------------------------------------------------


def test_staff_verify_a_cameo_which_is_audited_and_changes_no_consent(
    staff_client, make_user, enrolled_cameo
):
    owner = make_user("taylor")
    cameo = enrolled_cameo(owner)
    version = cameo.consent_version
    taylor = ProtectedLikeness.objects.get(name="Taylor Swift")
    url = f"/api/v1/cameos/{cameo.pk}/verified-as"
    response = staff_client.put(url, {"protected_likeness_id": str(taylor.pk)}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["verified_as"] == str(taylor.pk)
    assert client_for(owner).get(f"/api/v1/cameos/{cameo.pk}").json()["verified_as"] == str(taylor.pk)
    assert staff_client.put(url, {"protected_likeness_id": str(taylor.pk)}, format="json").status_code == 200
    assert staff_client.put(url, {"protected_likeness_id": None}, format="json").json()["verified_as"] is None
    cameo.refresh_from_db()
    assert cameo.consent_version == version and cameo.verified_as_id is None
    entries = list(
        CameoAudit.objects.filter(cameo_id_value=cameo.pk, action="verified_as_changed").order_by("id")
    )
    assert [(e.before, e.after, e.actor_username) for e in entries] == [
        ({"verified_as": None}, {"verified_as": {"id": str(taylor.pk), "name": "Taylor Swift"}}, "ops"),
        ({"verified_as": {"id": str(taylor.pk), "name": "Taylor Swift"}}, {"verified_as": None}, "ops"),
    ]
    audit = client_for(owner).get(f"/api/v1/cameos/{cameo.pk}/audit").json()["results"]
    assert audit[0]["action"] == "verified_as_changed"


@pytest.mark.parametrize("likeness_id", ["999999", "x", 5])
def test_verifying_as_an_unknown_entry_is_refused(staff_client, user, enrolled_cameo, likeness_id):
    cameo = enrolled_cameo(user)
    response = staff_client.put(
        f"/api/v1/cameos/{cameo.pk}/verified-as", {"protected_likeness_id": likeness_id}, format="json"
    )
    assert response.status_code in (400, 404)
    assert Cameo.objects.get(pk=cameo.pk).verified_as_id is None


def test_deleting_an_entry_clears_and_audits_its_verified_cameos(staff, staff_client, user, enrolled_cameo):
    entry = services.create_protected_likeness(actor=staff, name="Zhang Wei", reason="by_request")
    cameo = services.verify_cameo_as(actor=staff, cameo=enrolled_cameo(user), protected_likeness=entry)
    assert staff_client.delete(f"{URL}/{entry.pk}").status_code == 204
    cameo.refresh_from_db()
    assert cameo.verified_as_id is None
    last = CameoAudit.objects.filter(cameo_id_value=cameo.pk).order_by("-id").first()
    assert (last.action, last.after) == ("verified_as_changed", {"verified_as": None})


# --- instructions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "instructions, rule",
    [
        ("completely nude, explicit sex scene", "sexual_content"),
        ("looks like Taylor Swift", "protected_likeness"),
        ("长得像霉霉", "protected_likeness"),
    ],
)
def test_enrolling_with_instructions_the_rules_refuse_is_422_and_stores_nothing(
    auth_client, instructions, rule
):
    response = post_cameo(auth_client, instructions=instructions)
    assert response.status_code == 422, response.json()
    error = response.json()["error"]
    assert error["code"] == "prompt_rejected"
    assert error["details"]["field"] == "instructions" and error["details"]["rule"] == rule
    assert not Cameo.objects.exists()


def test_enrolling_with_ordinary_instructions_is_202(auth_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = post_cameo(auth_client, instructions="wears round glasses, loves the sea")
    assert response.status_code == 202, response.json()
    assert response.json()["verified_as"] is None


def test_changing_instructions_passes_the_same_rules(auth_client, user, enrolled_cameo, staff):
    cameo = enrolled_cameo(user, instructions="always in a red scarf")
    url = f"/api/v1/cameos/{cameo.pk}"
    for instructions, rule in [
        ("completely nude, explicit sex scene", "sexual_content"),
        ("looks like Taylor Swift", "protected_likeness"),
    ]:
        response = auth_client.patch(url, {"instructions": instructions}, format="json")
        assert response.status_code == 422, response.json()
        assert response.json()["error"]["details"]["field"] == "instructions"
        assert response.json()["error"]["details"]["rule"] == rule
    assert Cameo.objects.get(pk=cameo.pk).instructions == "always in a red scarf"
    ok = auth_client.patch(url, {"instructions": "wears round glasses and a green hat"}, format="json")
    assert ok.status_code == 200 and ok.json()["instructions"] == "wears round glasses and a green hat"
    # Her own verified cameo may say who she is.
    services.verify_cameo_as(
        actor=staff, cameo=cameo, protected_likeness=ProtectedLikeness.objects.get(name="Taylor Swift")
    )
    assert auth_client.patch(url, {"instructions": "Taylor Swift on stage"}, format="json").status_code == 200


def test_a_minors_instructions_stay_safe_for_minors(make_user):
    minor = make_user("kid", birth_date=date.today().replace(year=date.today().year - 14, day=1))
    with pytest.raises(ApiError) as refusal:
        moderation.check_instructions(owner=minor, instructions="holding a glass of beer")
    assert refusal.value.details == {"field": "instructions", "rule": "minor_unsafe", "theme": "alcohol"}
    moderation.check_instructions(owner=make_user("adult"), instructions="holding a glass of beer")
    moderation.check_instructions(owner=minor, instructions="always in a red scarf")


# --- the admin --------------------------------------------------------------------------------


def test_admin_writes_through_the_services(make_user, client, django_capture_on_commit_callbacks):
    admin_user = make_user("root", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    form = {"name": "Tom Hanks", "aliases": "汤姆·汉克斯,Tom  Hanks", "reason": "public_figure"}
    refused = client.post(
        "/admin/cameo/protectedlikeness/add/", {**form, "reference_photo": image_file(_blank_png())}
    )
    assert refused.status_code == 200 and b"exactly one face" in refused.content
    added = client.post(
        "/admin/cameo/protectedlikeness/add/", {**form, "reference_photo": image_file(clips.portrait())}
    )
    assert added.status_code == 302, added.content[:2000]
    entry = ProtectedLikeness.objects.get(name="Tom Hanks")
    assert entry.aliases == ["汤姆·汉克斯"] and entry.template_vector is not None
    assert entry.reference.name.startswith("protected/") and biometric_storage().exists(entry.reference.name)
    duplicate = client.post("/admin/cameo/protectedlikeness/add/", {**form, "name": "tom hanks"})
    assert (
        duplicate.status_code == 200
        and ProtectedLikeness.objects.filter(name__iexact="tom hanks").count() == 1
    )
    changed = client.post(
        f"/admin/cameo/protectedlikeness/{entry.pk}/change/", {**form, "reason": "deceased"}
    )
    assert changed.status_code == 302
    entry.refresh_from_db()
    assert entry.reason == "deceased" and biometric_storage().exists(entry.reference.name)
    assert client.get("/admin/cameo/protectedlikeness/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        deleted = client.post(f"/admin/cameo/protectedlikeness/{entry.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not ProtectedLikeness.objects.filter(pk=entry.pk).exists()
    assert not biometric_storage().exists(entry.reference.name)
