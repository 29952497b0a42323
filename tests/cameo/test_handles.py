"""Handles: chosen or derived at enrollment, unique across persons and characters whatever the case,
changeable, and never handed to another owner within 30 days of their release."""

import datetime as dt
import importlib
import threading
import time

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from cameo import services
from cameo.models import HANDLE_REUSE_AFTER, Cameo, CameoAudit, CameoStatus, ReleasedHandle
from core.errors import Conflict
from tests.cameo.conftest import clip, image_upload, upload
from tests.conftest import client_for
from tests.media import image_bytes, packaged_photo

pytestmark = pytest.mark.django_db


def photo() -> bytes:
    return image_bytes(packaged_photo("coffee"))


def start_person(owner, **fields) -> Cameo:
    """A person's cameo as the upload leaves it (processing): handles are given here."""
    return services.start_enrollment(
        owner=owner, video=upload(clip("enrollment_clip")), display_name="me", enqueue=False, **fields
    )


def start_character(owner, **fields) -> Cameo:
    fields.setdefault("display_name", "Mug")
    return services.start_enrollment(
        owner=owner, kind="character", images=[image_upload(photo())], enqueue=False, **fields
    )


def post_character(client, **fields):
    return client.post(
        "/api/v1/cameos",
        {"kind": "character", "display_name": "Mug", "images": [image_upload(photo())], **fields},
        format="multipart",
    )


def test_a_person_s_handle_is_derived_from_the_username(make_user):
    owner = make_user("Zoë.Smith")
    assert start_person(owner).handle == "zoe.smith"
    assert start_person(owner).handle == "zoe.smith2"


def test_a_character_s_handle_is_derived_from_its_name(user):
    assert start_character(user, display_name="Mr. Whiskers!").handle == "mr._whiskers"


def test_a_derived_handle_skips_one_reserved_for_another_owner(make_user):
    owner, other = make_user("alice"), make_user("other")
    ReleasedHandle.objects.create(handle="alice", owner=other)
    assert start_person(owner).handle == "alice2"


def test_handles_are_unique_across_kinds_and_case(make_user):
    owner, other = make_user("owner"), make_user("other")
    person = start_person(owner, handle="@Rex")
    assert person.handle == "rex"
    for who in (other, owner):
        response = post_character(client_for(who), handle="REX")
        assert response.status_code == 409
        assert response.json()["error"] == {
            "code": "handle_taken",
            "message": "This handle is taken.",
            "details": {"handle": "rex"},
        }
    assert Cameo.objects.count() == 1


@pytest.mark.parametrize("handle", ["ab", "a..b", ".abc", "abc.", "x" * 31, "rex!", "ré"])
def test_malformed_handles_are_400(auth_client, handle):
    response = post_character(auth_client, handle=handle)
    assert response.status_code == 400
    assert "handle" in response.json()["error"]["details"]


def test_the_database_holds_uniqueness_and_format(make_user):
    owner = make_user("owner")
    Cameo.objects.create(owner=owner, display_name="a", handle="rex")
    with pytest.raises(IntegrityError), transaction.atomic():
        Cameo.objects.create(owner=owner, display_name="b", handle="Rex")  # also not lower case
    with pytest.raises(IntegrityError), transaction.atomic():
        Cameo.objects.create(owner=owner, display_name="c", handle="rex")
    with pytest.raises(IntegrityError), transaction.atomic():
        Cameo.objects.create(owner=owner, display_name="d", handle="no")


def test_rename_through_patch(user):
    cameo = start_character(user, handle="mug")
    response = client_for(user).patch(f"/api/v1/cameos/{cameo.pk}", {"handle": "big.mug"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["handle"] == "big.mug"
    cameo.refresh_from_db()
    assert cameo.handle == "big.mug" and cameo.consent_version == 1  # no consent changed
    entry = CameoAudit.objects.filter(cameo_id_value=cameo.pk, action="updated").get()
    assert (entry.before, entry.after) == ({"handle": "mug"}, {"handle": "big.mug"})
    released = ReleasedHandle.objects.get(handle="mug")
    assert released.owner_id == user.pk


def test_a_released_handle_waits_30_days_for_anyone_else(make_user):
    owner, other = make_user("owner"), make_user("other")
    cameo = start_character(owner, handle="mug")
    services.update_cameo(actor=owner, cameo=cameo, handle="cup")
    assert post_character(client_for(other), handle="mug").status_code == 409
    # its owner takes it back at any time (here with another cameo)
    assert post_character(client_for(owner), handle="mug").status_code == 202
    assert not ReleasedHandle.objects.filter(handle="mug").exists()
    services.update_cameo(actor=owner, cameo=cameo, handle="saucer")
    ReleasedHandle.objects.filter(handle="cup").update(
        released_at=timezone.now() - HANDLE_REUSE_AFTER + dt.timedelta(minutes=1)
    )
    assert post_character(client_for(other), handle="cup").status_code == 409
    ReleasedHandle.objects.filter(handle="cup").update(released_at=timezone.now() - HANDLE_REUSE_AFTER)
    response = post_character(client_for(other), handle="cup")
    assert response.status_code == 202 and response.json()["handle"] == "cup"
    assert not ReleasedHandle.objects.filter(handle="cup").exists()


def test_renaming_to_a_taken_handle_is_409_and_changes_nothing(make_user):
    owner, other = make_user("owner"), make_user("other")
    mine, theirs = start_character(owner, handle="mine"), start_character(other, handle="theirs")
    response = client_for(owner).patch(
        f"/api/v1/cameos/{mine.pk}", {"handle": "theirs", "instructions": "shiny"}, format="json"
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "handle_taken"
    mine.refresh_from_db()
    assert (mine.handle, mine.instructions) == ("mine", "")
    assert not ReleasedHandle.objects.exists() and theirs.handle == "theirs"


def test_erasure_and_rejection_release_the_handle(make_user, django_capture_on_commit_callbacks):
    owner, other = make_user("owner"), make_user("other")
    cameo = start_character(owner, handle="mug")
    services.erase_cameo(actor=owner, cameo=cameo)
    cameo.refresh_from_db()
    assert cameo.status == CameoStatus.DELETED and cameo.handle is None
    assert post_character(client_for(other), handle="mug").status_code == 409
    face = services.start_enrollment(
        owner=owner,
        kind="character",
        images=[image_upload(image_bytes(packaged_photo("portrait")))],
        display_name="not a pet",
        handle="mug",
        enqueue=False,
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.enroll(cameo_id=face.pk)
    face.refresh_from_db()
    assert face.status == CameoStatus.REJECTED and face.handle is None
    assert ReleasedHandle.objects.get(handle="mug").owner_id == owner.pk
    response = client_for(owner).patch(f"/api/v1/cameos/{face.pk}", {"handle": "mug"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "cameo_rejected"


def test_an_erased_account_s_handles_stay_reserved(make_user):
    from social.services import delete_account

    owner, other = make_user("owner"), make_user("other")
    start_character(owner, handle="mug")
    delete_account(user=owner)
    released = ReleasedHandle.objects.get(handle="mug")
    assert released.owner_id is None
    assert post_character(client_for(other), handle="mug").status_code == 409


def test_backfill_gives_live_cameos_unique_handles(make_user):
    migration = importlib.import_module("cameo.migrations.0005_character_cameos_handles_trending")
    first, second = make_user("Bob"), make_user("bob_")
    made = [
        Cameo.objects.create(owner=first, display_name="a"),
        Cameo.objects.create(owner=first, display_name="b", status=CameoStatus.DELETED),
        Cameo.objects.create(owner=second, display_name="c"),
        Cameo.objects.create(owner=second, display_name="d"),
    ]
    migration.backfill_handles(apps, None)
    handles = [Cameo.objects.get(pk=cameo.pk).handle for cameo in made]
    assert handles == ["bob", None, "bob2", "bob3"]


class HeldOpen(threading.Thread):
    """Runs `action` in a transaction it keeps open for `hold` seconds after `action` returned."""

    def __init__(self, action, hold: float = 0.5):
        super().__init__()
        self.action, self.hold, self.done = action, hold, threading.Event()
        self.errors = []

    def run(self):
        try:
            with transaction.atomic():
                self.action()
                self.done.set()
                time.sleep(self.hold)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)
            self.done.set()
        finally:
            connection.close()


def claim_after(first: HeldOpen, action) -> dict:
    """Runs `action` in this thread once `first` has done its part, timing it."""
    first.start()
    assert first.done.wait(10)
    started = time.monotonic()
    outcome = {}
    try:
        outcome["result"] = action()
    except Conflict as refusal:
        outcome["result"] = refusal.code
    outcome["waited"] = time.monotonic() - started
    first.join(10)
    assert not first.errors, first.errors
    return outcome


@pytest.mark.django_db(transaction=True)
def test_two_claims_of_one_handle_wait_for_each_other(make_user):
    """The second claim waits for the first to commit and is refused with 409 (without the
    handle's lock it would see nothing, insert, and fail on the unique index: a 500)."""
    owner, other = make_user("racer_owner"), make_user("racer_other")
    data = photo()

    def claim(who):
        return services.start_enrollment(
            owner=who,
            kind="character",
            images=[image_upload(data)],
            display_name="Mug",
            handle="mug",
            enqueue=False,
        )

    outcome = claim_after(HeldOpen(lambda: claim(owner)), lambda: claim(other))
    assert outcome["result"] == "handle_taken"
    assert outcome["waited"] > 0.3
    assert list(Cameo.objects.values_list("owner_id", "handle")) == [(owner.pk, "mug")]


@pytest.mark.django_db(transaction=True)
def test_two_enrollments_deriving_one_handle_take_two(make_user):
    """Deriving skips a name another enrollment is claiming instead of waiting for it."""
    data = photo()

    def derive(who):
        return services.start_enrollment(
            owner=who, kind="character", images=[image_upload(data)], display_name="Mug", enqueue=False
        ).handle

    first, second = make_user("racer_one"), make_user("racer_two")
    outcome = claim_after(HeldOpen(lambda: derive(first)), lambda: derive(second))
    assert outcome["result"] == "mug2" and outcome["waited"] < 0.3
    assert sorted(Cameo.objects.values_list("handle", flat=True)) == ["mug", "mug2"]
