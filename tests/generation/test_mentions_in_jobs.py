"""`@handle` mentions in a job's prompt: resolved to cameos and authorised exactly like
`cameo_ids` (cameo.lineage), counted with them towards the three a job may show, and written out
in the composed prompt as each owner describes their cameo."""

import numpy as np
import pytest

from cameo import services as cameo_services
from cameo.models import Permission
from cameo.references import conditioning_image
from generation import services, worker
from generation.models import Generation, GenerationStatus, Provenance
from social.services import block_user
from tests.cameo import clips
from tests.cameo.conftest import enrolled_character  # noqa: F401 - the cameo app's character fixture
from tests.conftest import client_for
from tests.media import image_bytes, packaged_photo

pytestmark = pytest.mark.django_db

BODY = {"duration_s": 2, "aspect_ratio": "1:1"}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


@pytest.fixture
def dan_cameo(make_user, enrolled_cameo):
    cameo = enrolled_cameo(
        make_user("dan"),
        permission=Permission.EVERYONE,
        face=clips.group_faces()[2],
        face_px=190,
        display_name="Dan",
        instructions="in a green raincoat",
    )
    assert cameo.status == "active", cameo.rejection_reason
    return cameo


@pytest.fixture
def pet(make_user, enrolled_character):  # noqa: F811
    """carol's cat (scikit-image's sample photo), a character usable by everyone."""
    cameo = enrolled_character(
        make_user("carol"),
        images=[image_bytes(packaged_photo("chelsea"))],
        permission=Permission.EVERYONE,
        display_name="Chelsea",
        instructions="a ginger tabby cat",
    )
    assert cameo.status == "active", cameo.rejection_reason
    return cameo


def generate(user, prompt, **body):
    return client_for(user).post("/api/v1/generations", {**BODY, **body, "prompt": prompt}, format="json")


def test_mentions_resolve_to_cameos_written_out_as_their_owners_describe_them(
    alice_cameo, dan_cameo, make_user
):
    response = generate(make_user("bob"), f"@{alice_cameo.handle} and @{dan_cameo.handle} dance in the rain")
    assert response.status_code == 202, response.json()
    assert response.json()["cameo_ids"] == [str(alice_cameo.pk), str(dan_cameo.pk)]
    job = Generation.objects.get(pk=response.json()["id"])
    assert job.likeness_ids == [alice_cameo.pk, dan_cameo.pk]
    assert "@" not in job.composed_prompt
    assert "Dan (in a green raincoat)" in job.composed_prompt
    # Each owner's instructions appear once: where the prompt names the cameo.
    assert job.composed_prompt.count("red scarf") == 1 and job.composed_prompt.count("green raincoat") == 1
    assert [entry["consent_version"] for entry in job.cameo_consents] == [
        alice_cameo.consent_version,
        dan_cameo.consent_version,
    ]


def test_a_cameo_named_by_id_and_mentioned_counts_once(alice_cameo, make_user):
    response = generate(make_user("bob"), f"@{alice_cameo.handle} on a boat", cameo_ids=[str(alice_cameo.pk)])
    assert response.status_code == 202, response.json()
    job = Generation.objects.get(pk=response.json()["id"])
    assert job.likeness_ids == [alice_cameo.pk] and job.composed_prompt.count("red scarf") == 1


def test_an_unknown_and_an_unusable_mention_are_refused_alike(user, make_user, enrolled_cameo):
    private = enrolled_cameo(user, permission=Permission.ONLY_ME)
    bob = make_user("bob")
    answers = {}
    for handle in (private.handle, "nobody_has_this"):
        response = generate(bob, f"@{handle} waves at the camera")
        assert response.status_code == 403, response.json()
        answers[handle] = response.json()["error"]
    assert {(error["code"], error["message"]) for error in answers.values()} == {
        ("cameo_not_permitted", "You may not use this cameo.")
    }
    # Named by the mention, not by the cameo behind it.
    assert answers[private.handle]["details"] == {"mention": private.handle}
    assert answers["nobody_has_this"]["details"] == {"mention": "nobody_has_this"}
    assert not Generation.objects.exists()


def test_a_blocked_owners_cameo_cannot_be_mentioned(alice_cameo, user, make_user):
    bob = make_user("bob")
    assert generate(bob, f"@{alice_cameo.handle} at the beach").status_code == 202
    block_user(blocker=user, blocked=bob)
    response = generate(bob, f"@{alice_cameo.handle} at the park")
    assert response.status_code == 403 and response.json()["error"]["code"] == "cameo_not_permitted"


def test_a_mentioned_cameos_restrictions_apply(alice_cameo, user, make_user):
    cameo_services.update_cameo(actor=user, cameo=alice_cameo, restrictions=["alcohol"])
    response = generate(make_user("bob"), f"@{alice_cameo.handle} drinking beer at a pub")
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"cameo": str(alice_cameo.pk), "theme": "alcohol"}


def test_more_than_three_cameos_by_mention_or_in_all_is_422(alice_cameo, dan_cameo, make_user):
    bob = make_user("bob")
    four = generate(bob, "@aaa_one @bbb_two @ccc_three and @ddd_four")
    assert four.status_code == 422 and four.json()["error"]["code"] == "too_many_cameos"
    mixed = generate(bob, f"@{alice_cameo.handle} meets @{dan_cameo.handle}", cameo_ids=["999998", "999999"])
    assert mixed.status_code == 422, mixed.json()
    error = mixed.json()["error"]
    assert error["code"] == "too_many_cameos" and error["details"]["max"] == 3
    assert len(error["details"]["cameos"]) == 4
    assert not Generation.objects.exists()


def test_a_mentioned_character_and_person_both_condition_the_video(
    alice_cameo, pet, make_user, tiny_renderer, monkeypatch
):
    calls = []
    backend = tiny_renderer.reference_backend
    real = backend.pipe

    class Spy:
        def __getattr__(self, name):
            return getattr(real, name)

        def __call__(self, **inputs):
            calls.append(inputs)
            return real(**inputs)

    monkeypatch.setattr(backend, "pipe", Spy())
    response = generate(make_user("bob"), f"@{pet.handle} chases @{alice_cameo.handle} round a garden")
    assert response.status_code == 202, response.json()
    assert "Chelsea (a ginger tabby cat)" in Generation.objects.get(pk=response.json()["id"]).composed_prompt
    done = worker.execute_generation(int(response.json()["id"]), renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    assert done.model_id.startswith("tiny:wan_vace@")
    received = calls[0]["reference_images"]
    assert len(received) == 2
    for image, cameo in zip(received, [pet, alice_cameo], strict=True):
        assert np.array_equal(np.asarray(image), np.asarray(conditioning_image(cameo)))
    record = Provenance.objects.get(post_id=done.post_id).record
    assert [(entry["id"], entry["conditioning"]) for entry in record["cameos"]] == [
        (str(pet.pk), "reference"),
        (str(alice_cameo.pk), "reference"),
    ]
