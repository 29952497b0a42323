"""Several cameos in one video: each conditions it (one reference image per cameo on the
reference-to-video model), one person alone keeps the identity model, consent is rechecked for
every cameo, provenance says how each was used, and every cameo owner is paid."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cameo import services as cameo_services
from cameo.models import Cameo, Permission
from cameo.references import conditioning_image
from generation import services, worker
from generation.backends import (
    BackendConfig,
    CheckpointMissing,
    ReferenceImage,
    Rendered,
    Renderer,
    cameo_conditioning,
    route,
)
from generation.models import Generation, GenerationStatus, Provenance
from remix import ledger
from social.models import Notification, Post
from tests.cameo import clips
from tests.cameo.conftest import enrolled_character  # noqa: F401 - the cameo app's character fixture
from tests.conftest import client_for
from tests.generation.conftest import face_image, identity, render_request
from tests.media import image_bytes, packaged_photo

pytestmark = pytest.mark.django_db

BODY = {"prompt": "friends sharing a picnic in a park", "duration_s": 2, "aspect_ratio": "1:1"}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


class PipeSpy:
    """Stands in for a loaded pipeline: records the inputs of each call, then runs the real one."""

    def __init__(self, pipe, before_call=None):
        self.pipe = pipe
        self.calls: list[dict] = []
        self.before_call = before_call

    def __getattr__(self, name):
        return getattr(self.pipe, name)

    def __call__(self, **inputs):
        self.calls.append(inputs)
        if self.before_call is not None:
            self.before_call()
        return self.pipe(**inputs)


@pytest.fixture
def spies(tiny_renderer, monkeypatch):
    """The pipeline calls of the reference and the identity backends, by backend."""
    made = {}
    for name in ("reference_backend", "identity_backend"):
        backend = getattr(tiny_renderer, name)
        made[name] = PipeSpy(backend.pipe)
        monkeypatch.setattr(backend, "pipe", made[name])
    return made


@pytest.fixture
def friends(make_user, enrolled_cameo):
    """Two more people's cameos, usable by everyone (faces of insightface's group photo)."""
    cameos = []
    for name, index in (("dan", 2), ("erin", 4)):
        cameo = enrolled_cameo(
            make_user(name), permission=Permission.EVERYONE, face=clips.group_faces()[index], face_px=190
        )
        assert cameo.status == "active", cameo.rejection_reason
        cameos.append(cameo)
    return cameos


@pytest.fixture
def pet(make_user, enrolled_character):  # noqa: F811
    """carol's cat (scikit-image's sample photo), a character usable by everyone."""
    cameo = enrolled_character(
        make_user("carol"), images=[image_bytes(packaged_photo("chelsea"))], permission=Permission.EVERYONE
    )
    assert cameo.status == "active", cameo.rejection_reason
    return cameo


def request_job(user, cameos, **body) -> Generation:
    response = client_for(user).post(
        "/api/v1/generations",
        {**BODY, **body, "cameo_ids": [str(cameo.pk) for cameo in cameos]},
        format="json",
    )
    assert response.status_code == 202, response.json()
    return Generation.objects.get(pk=response.json()["id"])


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def assert_references_are(call: dict, cameos) -> None:
    received = call["reference_images"]
    assert len(received) == len(cameos)
    for image, cameo in zip(received, cameos, strict=True):
        assert np.array_equal(pixels(image), pixels(conditioning_image(cameo)))


# ---- routing -------------------------------------------------------------------------------------


def test_one_person_alone_goes_to_the_identity_model_and_anything_else_to_references():
    alice = identity("1", 1)
    person = ReferenceImage(cameo_id="1", kind="person", image=face_image(1))
    other = ReferenceImage(cameo_id="2", kind="person", image=face_image(2))
    pet = ReferenceImage(cameo_id="3", kind="character", image=face_image(3))
    assert route(render_request()) == "text"
    assert route(render_request(identity=alice)) == "identity"
    assert route(render_request(identity=alice, references=(person,))) == "identity"
    assert route(render_request(identity=alice, references=(person, other))) == "reference"
    assert route(render_request(identity=alice, references=(person, pet))) == "reference"
    assert route(render_request(references=(pet,))) == "reference"
    assert cameo_conditioning(render_request(identity=alice, references=(person,))) == {"1": "identity"}
    assert cameo_conditioning(render_request(identity=alice, references=(person, pet))) == {
        "1": "reference",
        "3": "reference",
    }
    assert cameo_conditioning(render_request()) == {}


def test_the_reference_backend_takes_every_reference_and_can_start_from_a_frame(tiny_renderer, spies):
    references = tuple(
        ReferenceImage(cameo_id=str(seed), kind="person", image=face_image(seed)) for seed in (1, 2, 3)
    )
    plain = tiny_renderer.generate(render_request(references=references))
    assert plain.shape == (9, 64, 64, 3) and plain.dtype == np.uint8
    assert np.array_equal(plain, tiny_renderer.generate(render_request(references=references)))
    assert tiny_renderer.model_id_for(render_request(references=references)).startswith("tiny:wan_vace@")
    first_call = spies["reference_backend"].calls[0]
    assert [pixels(image).tobytes() for image in first_call["reference_images"]] == [
        pixels(reference.image).tobytes() for reference in references
    ]
    assert "video" not in first_call

    continued = tiny_renderer.generate(render_request(references=references, init_image=face_image(9)))
    call = spies["reference_backend"].calls[-1]
    assert len(call["video"]) == len(call["mask"]) == 9
    assert np.array_equal(pixels(call["video"][0]), pixels(face_image(9)))
    assert np.asarray(call["mask"][0]).max() == 0 and np.asarray(call["mask"][1]).min() == 255
    assert continued.shape == plain.shape and not np.array_equal(plain, continued)


def test_a_missing_reference_to_video_checkpoint_is_an_error_naming_its_folder(tiny_renderer, tmp_path):
    tiny_root = Path(tiny_renderer.identity_backend.config.model_dir).parent
    models = tmp_path / "models"
    models.mkdir()
    for folder in ("consisid", "text_to_video", "image_to_video"):
        (models / folder).symlink_to(tiny_root / folder)
    with pytest.raises(CheckpointMissing) as caught:
        Renderer.load(BackendConfig(model_dir=models), name="diffusers")
    assert str(models / "reference_to_video") in str(caught.value)
    assert "WanVACEPipeline" in str(caught.value) and caught.value.code == "model_unavailable"


# ---- jobs through the worker ---------------------------------------------------------------------


def test_a_two_cameo_job_conditions_on_both_and_tells_both_owners(
    alice_cameo, user, friends, make_user, tiny_renderer, spies
):
    bob = make_user("bob")
    dan_cameo = friends[0]
    job = request_job(bob, [alice_cameo, dan_cameo])
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    assert done.model_id.startswith("tiny:wan_vace@")
    assert len(spies["reference_backend"].calls) == 1 and spies["identity_backend"].calls == []
    assert_references_are(spies["reference_backend"].calls[0], [alice_cameo, dan_cameo])

    post = Post.objects.get(pk=done.post_id)
    assert [ref["id"] for ref in post.cameo_refs] == [str(alice_cameo.pk), str(dan_cameo.pk)]
    assert set(post.cameo_owner_ids) == {user.pk, dan_cameo.owner_id}
    for owner_id in (user.pk, dan_cameo.owner_id):
        assert Notification.objects.filter(user_id=owner_id, kind="cameo_appearance", post=post).exists()
    record = Provenance.objects.get(post=post).record
    assert [(entry["id"], entry["conditioning"]) for entry in record["cameos"]] == [
        (str(alice_cameo.pk), "reference"),
        (str(dan_cameo.pk), "reference"),
    ]


def test_a_three_cameo_job_gives_the_model_three_references_in_the_job_order(
    alice_cameo, friends, make_user, tiny_renderer, spies
):
    cast = [friends[1], alice_cameo, friends[0]]
    job = request_job(make_user("bob"), cast)
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    assert_references_are(spies["reference_backend"].calls[0], cast)
    record = Provenance.objects.get(post_id=done.post_id).record
    assert [entry["id"] for entry in record["cameos"]] == [str(cameo.pk) for cameo in cast]
    assert {entry["conditioning"] for entry in record["cameos"]} == {"reference"}


def test_one_person_alone_stays_on_the_identity_model(alice_cameo, make_user, tiny_renderer, spies):
    job = request_job(make_user("bob"), [alice_cameo])
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    assert done.model_id.startswith("tiny:consisid@")
    assert spies["reference_backend"].calls == [] and len(spies["identity_backend"].calls) == 1
    record = Provenance.objects.get(post_id=done.post_id).record
    assert record["cameos"][0]["conditioning"] == "identity"


def test_a_character_alone_goes_to_the_reference_model_with_its_best_reference(
    pet, make_user, tiny_renderer, spies
):
    job = request_job(make_user("bob"), [pet], prompt="a cat chasing autumn leaves")
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    assert done.model_id.startswith("tiny:wan_vace@") and spies["identity_backend"].calls == []
    assert_references_are(spies["reference_backend"].calls[0], [pet])
    record = Provenance.objects.get(post_id=done.post_id).record
    assert [(entry["id"], entry["conditioning"]) for entry in record["cameos"]] == [
        (str(pet.pk), "reference")
    ]


def test_a_person_and_a_character_go_to_the_reference_model(
    alice_cameo, pet, make_user, tiny_renderer, spies
):
    job = request_job(make_user("bob"), [alice_cameo, pet], prompt="walking a cat on a lead")
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    assert_references_are(spies["reference_backend"].calls[0], [alice_cameo, pet])


def test_a_job_without_cameos_records_none(user, tiny_renderer):
    job = request_job(user, [])
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED and done.model_id.startswith("tiny:ltx2@")
    assert Provenance.objects.get(post_id=done.post_id).record["cameos"] == []


def test_a_remix_of_a_two_cameo_post_conditions_on_the_inherited_cameos_too(
    alice_cameo, friends, make_user, tiny_renderer, spies
):
    bob, carol = make_user("bob"), make_user("carol")
    dan_cameo, erin_cameo = friends
    source = worker.execute_generation(request_job(bob, [alice_cameo, dan_cameo]).pk, renderer=tiny_renderer)
    assert client_for(bob).post(f"/api/v1/posts/{source.post_id}/publish").status_code == 200
    remix = request_job(
        carol, [erin_cameo], prompt="now it rains", remix_of=str(source.post_id), mode="remix"
    )
    assert remix.likeness_ids == [erin_cameo.pk, alice_cameo.pk, dan_cameo.pk]
    done = worker.execute_generation(remix.pk, renderer=tiny_renderer)
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    assert_references_are(spies["reference_backend"].calls[-1], [erin_cameo, alice_cameo, dan_cameo])


# ---- how many cameos -----------------------------------------------------------------------------


def test_more_than_three_cameos_is_422_too_many_cameos(user, make_user):
    response = client_for(user).post(
        "/api/v1/generations", {**BODY, "cameo_ids": ["11", "12", "13", "14"]}, format="json"
    )
    assert response.status_code == 422, response.json()
    error = response.json()["error"]
    assert error["code"] == "too_many_cameos" and error["details"]["max"] == 3
    assert not Generation.objects.exists()


def test_inherited_cameos_count_towards_the_three(alice_cameo, friends, make_user, tiny_renderer):
    bob, carol = make_user("bob"), make_user("carol")
    dan_cameo, erin_cameo = friends
    source = worker.execute_generation(
        request_job(bob, [alice_cameo, dan_cameo, erin_cameo]).pk, renderer=tiny_renderer
    )
    assert client_for(bob).post(f"/api/v1/posts/{source.post_id}/publish").status_code == 200
    response = client_for(carol).post(
        "/api/v1/generations",
        {**BODY, "cameo_ids": ["999999"], "remix_of": str(source.post_id), "mode": "remix"},
        format="json",
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "too_many_cameos"
    plain_remix = client_for(carol).post(
        "/api/v1/generations", {**BODY, "remix_of": str(source.post_id), "mode": "remix"}, format="json"
    )
    assert plain_remix.status_code == 202, plain_remix.json()


# ---- consent for every cameo ---------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["start", "render", "store"])
def test_revoking_the_second_cameo_mid_job_blocks_it(
    stage,
    alice_cameo,
    friends,
    make_user,
    tiny_renderer,
    spies,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    bob = make_user("bob")
    dan_cameo = friends[0]
    job = request_job(bob, [alice_cameo, dan_cameo])

    def revoke():
        # The owner narrows who may use it: a new consent version. At "render" the revocation is
        # announced (on commit) and blocks the running job; at "store" only the recheck sees it.
        with django_capture_on_commit_callbacks(execute=stage == "render"):
            cameo_services.update_cameo(actor=dan_cameo.owner, cameo=dan_cameo, permission=Permission.ONLY_ME)

    if stage == "start":
        revoke()
    elif stage == "render":
        spies["reference_backend"].before_call = revoke
    else:
        original = worker.finish_frames
        monkeypatch.setattr(worker, "finish_frames", lambda frames, job: (revoke(), original(frames, job))[1])
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    done.refresh_from_db()
    assert done.status == GenerationStatus.BLOCKED and done.error_code == "consent_revoked"
    assert str(dan_cameo.pk) in done.error_message
    assert done.post_id is None and not Post.objects.filter(author=bob).exists()
    assert len(spies["reference_backend"].calls) == (0 if stage == "start" else 1)


def test_a_two_cameo_draft_cannot_be_published_once_the_second_revokes(
    alice_cameo, friends, make_user, tiny_renderer
):
    bob = make_user("bob")
    dan_cameo = friends[0]
    done = worker.execute_generation(request_job(bob, [alice_cameo, dan_cameo]).pk, renderer=tiny_renderer)
    cameo_services.update_cameo(actor=dan_cameo.owner, cameo=dan_cameo, permission=Permission.ONLY_ME)
    response = client_for(bob).post(f"/api/v1/posts/{done.post_id}/publish")
    assert response.status_code == 409 and response.json()["error"]["code"] == "consent_revoked"


class FaceRenderer:
    """Renders one face, as a model might reproduce someone's likeness."""

    def __init__(self, face: Image.Image):
        self.frame = clips.moving_face_frames(face, count=1, face_px=190)[0]

    def render(self, request, on_step=None):
        return Rendered(np.stack([self.frame] * request.num_frames))

    def model_id_for(self, request):
        return "face"


def test_the_likeness_scan_runs_on_multi_cameo_jobs(alice_cameo, friends, make_user):
    bob = make_user("bob")
    dan_cameo, erin_cameo = friends
    shows_dan = request_job(bob, [alice_cameo, dan_cameo])
    done = worker.execute_generation(shows_dan.pk, renderer=FaceRenderer(clips.group_faces()[2]))
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    shows_erin = request_job(bob, [alice_cameo, dan_cameo], prompt="friends on a beach")
    done = worker.execute_generation(shows_erin.pk, renderer=FaceRenderer(clips.group_faces()[4]))
    assert done.status == GenerationStatus.BLOCKED and done.error_code == "unconsented_likeness"


def test_the_likeness_scan_runs_on_character_jobs(pet, friends, make_user):
    job = request_job(make_user("bob"), [pet], prompt="a cat in a sunny window")
    done = worker.execute_generation(job.pk, renderer=FaceRenderer(clips.group_faces()[2]))
    assert done.status == GenerationStatus.BLOCKED and done.error_code == "unconsented_likeness"


# ---- revenue -------------------------------------------------------------------------------------


def test_revenue_of_a_two_cameo_post_pays_both_cameo_owners(
    alice_cameo, user, friends, make_user, tiny_renderer
):
    bob, staff = make_user("bob"), make_user("staffer", is_staff=True)
    dan_cameo = friends[0]
    done = worker.execute_generation(request_job(bob, [alice_cameo, dan_cameo]).pk, renderer=tiny_renderer)
    assert client_for(bob).post(f"/api/v1/posts/{done.post_id}/publish").status_code == 200
    response = client_for(staff).post(
        "/api/v1/revenue/events",
        {
            "event_id": "two-cameos",
            "post_id": str(done.post_id),
            "amount_minor": 10_000,
            "currency": "USD",
            "kind": "ad",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    splits = [(s["party"]["type"], s["party"]["id"], s["amount_minor"]) for s in response.json()["splits"]]
    owners = sorted([user.pk, dan_cameo.owner_id])
    assert splits == [
        ("platform", None, 3000),
        *[("cameo_owner", str(owner_id), 500) for owner_id in owners],
        ("creator", str(bob.pk), 6000),
    ]
    for owner in (user, dan_cameo.owner):
        earnings = client_for(owner).get("/api/v1/me/earnings").json()
        assert earnings["totals"] == [{"currency": "USD", "amount_minor": 500}]
    books = ledger.check_books()
    assert books.balanced and books.currency_totals == {"USD": 0}


# ---- the demo ------------------------------------------------------------------------------------


def test_the_demo_has_a_post_with_two_cameos_and_seeding_again_changes_nothing():
    from cameo.demo import seed_cameo_demo
    from generation.demo import seed_generation_demo
    from social.demo import seed_social_demo

    users = seed_social_demo()
    alice_cameo = seed_cameo_demo(users)
    posts = seed_generation_demo(users)
    together = [post for post in posts if len(post.cameo_refs) == 2]
    assert len(together) == 1 and together[0].status == "published"
    post = together[0]
    pet = Cameo.objects.get(handle="chelsea")
    assert [ref["id"] for ref in post.cameo_refs] == [str(alice_cameo.pk), str(pet.pk)]
    assert set(post.cameo_owner_ids) == {users["alice"].pk, users["bob"].pk}
    record = Provenance.objects.get(post=post).record
    assert {entry["conditioning"] for entry in record["cameos"]} == {"reference"}
    assert record["model"].startswith("tiny:wan_vace@")

    again = seed_generation_demo(users)
    assert [p.pk for p in again] == [p.pk for p in posts]
    assert Generation.objects.count() == len(posts)
