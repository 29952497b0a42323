"""Jobs with cameos: consent at request, start and store; identity conditioning; likeness scan."""

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from PIL import Image

from cameo import services as cameo_services
from cameo.models import Permission
from generation import services, worker
from generation.backends import Rendered
from generation.models import Generation, GenerationStatus
from social.models import Notification, Post
from tests.cameo import clips
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

BODY = {"prompt": "walking a dog along a beach at sunset", "duration_s": 2, "aspect_ratio": "1:1"}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


def test_cameo_job_is_conditioned_on_the_cameo_and_its_owner_is_told(
    alice_cameo, user, make_user, tiny_renderer
):
    bob = make_user("bob")
    response = client_for(bob).post(
        "/api/v1/generations", {**BODY, "cameo_ids": [str(alice_cameo.pk)]}, format="json"
    )
    assert response.status_code == 202, response.json()
    job = Generation.objects.get(pk=response.json()["id"])
    assert "red scarf" in job.composed_prompt
    assert job.cameo_consents[0]["consent_version"] == alice_cameo.consent_version
    request = worker.render_request(job)
    assert request.identity.template_version == alice_cameo.template_version
    assert request.identity.embedding.shape == alice_cameo.template.shape
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    post = Post.objects.get(pk=done.post_id)
    assert user.pk in post.cameo_owner_ids and post.cameo_refs[0]["id"] == str(alice_cameo.pk)
    assert done.model_id.startswith("tiny:consisid@")
    assert Notification.objects.filter(user=user, kind="cameo_appearance", post=post).exists()
    # The owner of the cameo sees the draft and its provenance.
    record = client_for(user).get(f"/api/v1/posts/{post.pk}/provenance").json()["record"]
    assert record["cameos"][0]["consent_version"] == alice_cameo.consent_version


def test_a_cameo_the_user_may_not_use_is_403(user, make_user, enrolled_cameo):
    private = enrolled_cameo(user, permission=Permission.ONLY_ME)
    response = client_for(make_user("bob")).post(
        "/api/v1/generations", {**BODY, "cameo_ids": [str(private.pk)]}, format="json"
    )
    assert response.status_code == 403 and response.json()["error"]["code"] == "cameo_not_permitted"


@pytest.mark.parametrize("kind", ["forbidden", "unknown", "not_a_number", "out_of_range"])
def test_unknown_and_forbidden_cameos_are_refused_alike(kind, user, make_user, enrolled_cameo):
    private = enrolled_cameo(user, permission=Permission.ONLY_ME)
    cameo_id = {
        "forbidden": str(private.pk),
        "unknown": str(private.pk + 1000),
        "not_a_number": "x1",
        "out_of_range": "9" * 30,
    }[kind]
    response = client_for(make_user("bob")).post(
        "/api/v1/generations", {**BODY, "cameo_ids": [cameo_id]}, format="json"
    )
    assert response.status_code == 403
    error = response.json()["error"]
    assert (error["code"], error["message"]) == ("cameo_not_permitted", "You may not use this cameo.")
    assert error["details"] == {"cameo": cameo_id}


def test_cameos_of_a_request_are_authorised_and_loaded_in_two_queries(alice_cameo, make_user):
    bob = make_user("bob")
    with CaptureQueriesContext(connection) as queries:
        likenesses = services._authorised_likenesses(
            user=bob, cameo_ids=[str(alice_cameo.pk), alice_cameo.pk], sources=[]
        )
    assert len(queries.captured_queries) == 2, [q["sql"] for q in queries.captured_queries]
    assert [likeness.cameo.pk for likeness in likenesses] == [alice_cameo.pk]
    assert likenesses[0].consent_entry()["template_version"] == alice_cameo.template_version


def test_a_theme_the_owner_refuses_is_422_with_cameo_and_theme(alice_cameo, user):
    cameo_services.update_cameo(actor=user, cameo=alice_cameo, restrictions=["alcohol"])
    response = client_for(user).post(
        "/api/v1/generations",
        {**BODY, "prompt": "drinking beer at a pub", "cameo_ids": [str(alice_cameo.pk)]},
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"cameo": str(alice_cameo.pk), "theme": "alcohol"}


def test_consent_revoked_before_start_blocks_the_job(alice_cameo, user, make_user, tiny_renderer):
    bob = make_user("bob")
    job, _ = services.request_generation(
        user=bob, request=services.GenerationRequest(**BODY, cameo_ids=[alice_cameo.pk])
    )
    cameo_services.update_cameo(actor=user, cameo=alice_cameo, permission=Permission.ONLY_ME)
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.BLOCKED and done.error_code == "consent_revoked"
    assert not Post.objects.filter(author=bob).exists()


def test_consent_revoked_while_rendering_discards_the_output(
    alice_cameo, user, make_user, tiny_renderer, monkeypatch
):
    bob = make_user("bob")
    job, _ = services.request_generation(
        user=bob, request=services.GenerationRequest(**BODY, cameo_ids=[alice_cameo.pk])
    )
    original = worker.finish_frames

    def revoke_then_finish(frames, job):
        cameo_services.update_cameo(actor=user, cameo=alice_cameo, permission=Permission.ONLY_ME)
        return original(frames, job)

    monkeypatch.setattr(worker, "finish_frames", revoke_then_finish)
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.BLOCKED and done.error_code == "consent_revoked"
    assert done.post_id is None and not Post.objects.filter(author=bob).exists()


class FaceRenderer:
    """Renders a real photo of a face, as a model might reproduce someone's likeness."""

    def __init__(self, face: Image.Image):
        self.frame = np.asarray(face.resize((112, 112)))

    def render(self, request, on_step=None):
        return Rendered(np.stack([self.frame] * request.num_frames))

    def model_id_for(self, request):
        return "face"


def test_output_showing_an_unconsented_cameo_is_blocked(user, make_user, enrolled_cameo, settings):
    settings.GENERATION_SIZES = {**settings.GENERATION_SIZES, "1:1": (112, 112)}
    owner = make_user("tom")
    enrolled = enrolled_cameo(owner, face=clips.portrait())
    assert enrolled.status == "active", enrolled.rejection_reason
    job, _ = services.request_generation(user=user, request=services.GenerationRequest(**BODY))
    done = worker.execute_generation(job.pk, renderer=FaceRenderer(clips.portrait()))
    assert done.status == GenerationStatus.BLOCKED and done.error_code == "unconsented_likeness"
    assert not Post.objects.filter(author=user).exists()
