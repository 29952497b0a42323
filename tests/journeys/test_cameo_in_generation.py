"""A friend casts alice's cameo: consent decides, the model is conditioned on her likeness, she
sees the draft, can take it down, and withdrawing consent stops jobs at once."""

import numpy as np
import pytest

from cameo import services as cameo_services
from cameo.models import Permission
from generation import services, worker
from generation.backends import Rendered
from generation.models import Generation, GenerationStatus
from social.models import Follow, Notification, Post
from tests.cameo import clips
from tests.cameo.conftest import enrolled_cameo  # noqa: F401 - a fixture used below
from tests.conftest import client_for
from tests.generation.conftest import tiny_renderer  # noqa: F401 - a fixture used below

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"prompt": "walking on a beach at sunset", "duration_s": 2, "aspect_ratio": "1:1", "seed": 5}


@pytest.fixture(autouse=True)
def _run_jobs_in_process(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


@pytest.fixture
def friends(make_user, enrolled_cameo):  # noqa: F811
    alice, bob, eve = make_user("alice"), make_user("bob"), make_user("eve")
    Follow.objects.create(follower=alice, followee=bob)
    Follow.objects.create(follower=bob, followee=alice)
    cameo = enrolled_cameo(alice, permission=Permission.MUTUALS, instructions="wearing a red scarf")
    cameo_services.update_cameo(actor=alice, cameo=cameo, restrictions=["alcohol"])
    cameo.refresh_from_db()
    return alice, bob, eve, cameo


def test_a_friend_makes_a_video_with_alices_cameo(friends, tiny_renderer):  # noqa: F811
    alice, bob, eve, cameo = friends
    response = client_for(bob).post(
        "/api/v1/generations", {**BODY, "cameo_ids": [str(cameo.pk)]}, format="json"
    )
    assert response.status_code == 202, response.content
    job = Generation.objects.get(pk=int(response.json()["id"]))
    assert "wearing a red scarf" in job.composed_prompt

    request = worker.render_request(job)
    assert np.allclose(request.identity.embedding, cameo.template)

    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED, (done.error_code, done.error_message)
    post = Post.objects.get(pk=done.post_id)
    assert post.status == "draft" and post.cameo_owner_ids == [alice.pk]

    alice_client = client_for(alice)
    appearances = alice_client.get(f"/api/v1/cameos/{cameo.pk}/appearances").json()["results"]
    assert [item["id"] for item in appearances] == [str(post.pk)]
    assert appearances[0]["cameos"] == [{"id": str(cameo.pk), "owner_username": "alice"}]
    assert alice_client.get(f"/api/v1/posts/{post.pk}").status_code == 200
    assert client_for(eve).get(f"/api/v1/posts/{post.pk}").status_code == 404
    assert Notification.objects.filter(user=alice, kind="cameo_appearance", post=post).exists()

    provenance = client_for(bob).get(f"/api/v1/posts/{post.pk}/provenance").json()
    assert "wearing a red scarf" in str(provenance)
    assert alice_client.get(f"/api/v1/posts/{post.pk}/provenance").status_code == 200

    assert client_for(bob).post(f"/api/v1/posts/{post.pk}/publish").status_code == 200
    assert Notification.objects.filter(user=alice, kind="cameo_published", post=post).exists()
    taken = alice_client.delete(f"/api/v1/posts/{post.pk}")
    assert taken.status_code in (200, 204)
    assert Post.objects.get(pk=post.pk).status == "removed"
    assert client_for(eve).get(f"/api/v1/posts/{post.pk}").status_code == 404


def test_consent_decides_before_anything_is_queued(friends):
    alice, bob, eve, cameo = friends
    refused = client_for(eve).post(
        "/api/v1/generations", {**BODY, "cameo_ids": [str(cameo.pk)]}, format="json"
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "cameo_not_permitted"
    restricted = client_for(bob).post(
        "/api/v1/generations",
        {**BODY, "prompt": "me and alice drinking beer at a bar", "cameo_ids": [str(cameo.pk)]},
        format="json",
    )
    assert restricted.status_code == 422
    assert restricted.json()["error"] == {
        "code": "prompt_rejected",
        "message": restricted.json()["error"]["message"],
        "details": {"cameo": str(cameo.pk), "theme": "alcohol"},
    }
    assert not Generation.objects.filter(user=eve).exists()


def test_withdrawing_consent_blocks_pending_jobs_at_once(friends, tiny_renderer):  # noqa: F811
    alice, bob, eve, cameo = friends
    response = client_for(bob).post(
        "/api/v1/generations", {**BODY, "cameo_ids": [str(cameo.pk)]}, format="json"
    )
    job_id = int(response.json()["id"])
    assert (
        client_for(alice)
        .patch(f"/api/v1/cameos/{cameo.pk}", {"permission": "only_me"}, format="json")
        .status_code
        == 200
    )
    job = Generation.objects.get(pk=job_id)
    assert (job.status, job.error_code) == (GenerationStatus.BLOCKED, "consent_revoked")
    assert worker.execute_generation(job_id, renderer=tiny_renderer) is None
    assert not Post.objects.filter(author=bob).exists()


def test_deleting_the_cameo_blocks_pending_jobs(friends):
    alice, bob, eve, cameo = friends
    job_id = int(
        client_for(bob)
        .post("/api/v1/generations", {**BODY, "cameo_ids": [str(cameo.pk)]}, format="json")
        .json()["id"]
    )
    assert client_for(alice).delete(f"/api/v1/cameos/{cameo.pk}").status_code == 204
    assert client_for(bob).get(f"/api/v1/generations/{job_id}").json()["status"] == "blocked"


class FaceRenderer:
    """Renders frames that show a given face: what a model that copied a likeness would output."""

    model_id = "face-copier"

    def __init__(self, face):
        self.frames = np.stack(clips.moving_face_frames(face, count=9))

    def render(self, request, on_step):
        on_step(1, 1)
        return Rendered(self.frames)

    def model_id_for(self, request):
        return self.model_id


def test_output_showing_a_cameo_that_is_not_in_the_job_is_blocked(friends):
    alice, bob, eve, cameo = friends
    job = Generation.objects.get(
        pk=int(client_for(eve).post("/api/v1/generations", BODY, format="json").json()["id"])
    )
    done = worker.execute_generation(job.pk, renderer=FaceRenderer(clips.portrait()))
    assert (done.status, done.error_code) == (GenerationStatus.BLOCKED, "unconsented_likeness")
    assert done.post_id is None and not Post.objects.filter(author=eve).exists()
