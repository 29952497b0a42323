"""Protected likenesses in jobs: a prompt naming one is refused unless a cameo of the job is
verified as that person; an output showing one is blocked on the same condition."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from cameo.models import ProtectedLikeness
from generation import services, worker
from generation.models import Generation, GenerationStatus
from social.models import Post
from tests.cameo import clips
from tests.cameo.conftest import enrolled_cameo  # noqa: F401 - the cameo app's enrollment fixture
from tests.conftest import client_for
from tests.generation.test_cameo_jobs import FaceRenderer

pytestmark = pytest.mark.django_db

BODY = {"prompt": "walking a dog along a beach at sunset", "duration_s": 2, "aspect_ratio": "1:1"}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


@pytest.fixture
def staff_client(make_user):
    return client_for(make_user("ops", is_staff=True))


def verify(staff_client, cameo, likeness_id):
    response = staff_client.put(
        f"/api/v1/cameos/{cameo.pk}/verified-as", {"protected_likeness_id": str(likeness_id)}, format="json"
    )
    assert response.status_code == 200, response.json()


def generate(client, prompt, cameos=()):
    body = {**BODY, "prompt": prompt, "cameo_ids": [str(cameo.pk) for cameo in cameos]}
    return client.post("/api/v1/generations", body, format="json")


def assert_refused(response, name):
    assert response.status_code == 422, response.json()
    error = response.json()["error"]
    assert error["code"] == "prompt_rejected"
    assert error["details"]["rule"] == "protected_likeness" and error["details"]["name"] == name


def test_display_names_count_for_nothing_a_staff_verification_does(
    user,
    auth_client,
    enrolled_cameo,  # noqa: F811
    staff_client,
):
    user.display_name = "Taylor Swift"
    user.save(update_fields=["display_name"])
    cameo = enrolled_cameo(user, display_name="Taylor Swift")
    assert cameo.status == "active", cameo.rejection_reason
    prompt = "Taylor Swift dancing in the rain"
    assert_refused(generate(auth_client, prompt, [cameo]), "Taylor Swift")
    assert not Generation.objects.exists()
    verify(staff_client, cameo, ProtectedLikeness.objects.get(name="Taylor Swift").pk)
    accepted = generate(auth_client, prompt, [cameo])
    assert accepted.status_code == 202, accepted.json()
    # Verified as her, not as anyone else.
    assert_refused(generate(auth_client, "Taylor Swift and Elon Musk dancing", [cameo]), "Elon Musk")


@pytest.mark.parametrize(
    "prompt",
    ["霉霉在海边跳舞", "我和Taylor Swift跳舞", "dancing with TAYLOR   SWIFT", "泰勒·斯威夫特唱歌"],
)
def test_aliases_in_any_script_are_refused(auth_client, prompt):
    assert_refused(generate(auth_client, prompt), "Taylor Swift")


def test_an_entry_added_through_the_api_is_enforced_at_once(auth_client, staff_client):
    prompt = "张伟在公园里散步"
    assert generate(auth_client, prompt).status_code == 202
    created = staff_client.post(
        "/api/v1/protected-likenesses",
        {"name": "Zhang Wei", "aliases": ["张伟"], "reason": "by_request"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    assert_refused(generate(auth_client, prompt), "Zhang Wei")
    assert_refused(generate(auth_client, "a dance battle with zhang wei"), "Zhang Wei")
    assert staff_client.delete(f"/api/v1/protected-likenesses/{created.json()['id']}").status_code == 204
    assert generate(auth_client, prompt).status_code == 202


def test_the_rule_reads_the_registry_once(auth_client, django_assert_max_num_queries):
    from cameo import moderation

    with django_assert_max_num_queries(1):
        moderation.check_prompt(prompt="a quiet lake at dawn", cameos=[])


# --- the output scan --------------------------------------------------------------------------


@pytest.fixture
def tom_hanks(staff_client):
    """A protected likeness whose reference is the bundled portrait (a real face)."""
    buffer = io.BytesIO()
    clips.portrait().save(buffer, format="PNG")
    reference = SimpleUploadedFile("tom.png", buffer.getvalue(), content_type="image/png")
    response = staff_client.post(
        "/api/v1/protected-likenesses",
        {"name": "Tom Hanks", "reason": "public_figure", "reference": reference},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    return ProtectedLikeness.objects.get(pk=response.json()["id"])


@pytest.fixture
def square_frames(settings):
    settings.GENERATION_SIZES = {**settings.GENERATION_SIZES, "1:1": (112, 112)}


def run(user, cameos=()):
    job, _ = services.request_generation(
        user=user, request=services.GenerationRequest(**BODY, cameo_ids=[cameo.pk for cameo in cameos])
    )
    return worker.execute_generation(job.pk, renderer=FaceRenderer(clips.portrait()))


def test_an_output_showing_a_protected_reference_face_is_blocked(user, tom_hanks, square_frames):
    done = run(user)
    assert done.status == GenerationStatus.BLOCKED and done.error_code == "unconsented_likeness"
    assert not Post.objects.filter(author=user).exists()


def test_an_output_showing_another_face_is_not_blocked(user, staff_client, square_frames):
    buffer = io.BytesIO()
    clips.group_faces()[2].save(buffer, format="PNG")
    reference = SimpleUploadedFile("other.png", buffer.getvalue(), content_type="image/png")
    response = staff_client.post(
        "/api/v1/protected-likenesses",
        {"name": "Someone Else", "reason": "by_request", "reference": reference},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    done = run(user)
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message


def test_the_verified_persons_own_cameo_may_show_them(
    make_user,
    enrolled_cameo,  # noqa: F811
    tom_hanks,
    staff_client,
    square_frames,
):
    tom = make_user("tom")
    cameo = enrolled_cameo(tom, face=clips.portrait())
    assert cameo.status == "active", cameo.rejection_reason
    blocked = run(tom, [cameo])
    assert blocked.status == GenerationStatus.BLOCKED and blocked.error_code == "unconsented_likeness"
    verify(staff_client, cameo, tom_hanks.pk)
    done = run(tom, [cameo])
    assert done.status == GenerationStatus.SUCCEEDED, done.error_message
    assert Post.objects.filter(pk=done.post_id, author=tom).exists()
