"""The authorization-and-consent matrix: every path a likeness takes into a video, every way its
owner can withdraw consent, at every point of a job's life. The invariant: no post that carries
a likeness without current consent is ever published.

Paths: a job that names the cameo (create), and a remix or continuation of a source that carries
it, the source being published (another author's), a draft (the requester's own) or removed
(the requester's draft that the cameo owner took down). Changes: the owner narrows the
permission, revokes the requester's grant, either side blocks the other, the owner erases the
cameo, staff suspend the owner's account; and, as the control that shows the matrix can fail,
no change. Points: before the request, between request and worker start, during the render,
between store and publish. Every case runs the services and the real worker with the tiny model.
"""

import io
import itertools
from dataclasses import dataclass

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from cameo import services as cameo_services
from cameo.identity import pad_template
from cameo.models import Appearance, Cameo, CameoStatus, Permission
from cameo.sample_media import portrait
from core.errors import ApiError
from generation import services, worker
from generation.models import Generation, GenerationStatus
from social import services as social_services
from social.models import Post, PostStatus
from tests.media import make_test_video

pytestmark = pytest.mark.django_db

PATHS = [
    ("create", None),
    *[(mode, state) for mode in ("remix", "continue") for state in ("published", "draft", "removed")],
]
CHANGES = [
    "none",
    "narrow",
    "revoke_grant",
    "requester_blocks_owner",
    "owner_blocks_requester",
    "delete_cameo",
    "owner_suspended",
]
POINTS = ["before_request", "before_start", "during_render", "before_publish"]
BODY = {"prompt": "a walk along the harbour", "duration_s": 1, "aspect_ratio": "1:1"}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


@pytest.fixture(scope="module")
def source_video(tmp_path_factory):
    return make_test_video(tmp_path_factory.mktemp("matrix") / "source.mp4", size=(64, 64))


def active_cameo(owner) -> Cameo:
    """An active cameo as enrollment leaves one (template, aligned crop), made directly: enrollment
    is not what this matrix tests, and it would cost seconds per case."""
    crop = io.BytesIO()
    portrait().save(crop, format="PNG")
    template = np.random.default_rng(owner.pk).standard_normal(128).astype(np.float32)
    cameo = Cameo(
        owner=owner,
        display_name="Alice",
        status=CameoStatus.ACTIVE,
        permission=Permission.APPROVED,
        template_vector=pad_template(template / np.linalg.norm(template)),
        template_dim=128,
        template_version=1,
        encoder="dlib",
        encoder_version="test",
    )
    cameo.face_crop.save("face.png", ContentFile(crop.getvalue()), save=False)
    cameo.save()
    return cameo


@dataclass
class World:
    owner: object
    requester: object
    author: object
    cameo: Cameo


def source_post(world: World, state: str, video) -> Post:
    """A post that carries the cameo: another author's published post, or the requester's draft
    (taken down by the cameo's owner for `removed`)."""
    author = world.author if state == "published" else world.requester
    post = social_services.create_post(
        author=author,
        video=str(video),
        prompt="a quiet harbour at dawn",
        cameo_owner_ids=[world.owner.pk],
        cameo_refs=[{"id": str(world.cameo.pk), "owner_username": world.owner.username}],
    )
    cameo_services.record_appearances(post=post, uses=[(world.cameo, world.cameo.consent_version)])
    if state == "published":
        return social_services.publish_post(actor=author, post=post)
    if state == "removed":
        return social_services.take_down_post(actor=world.owner, post=post)
    return post


def apply_change(world: World, change: str, capture) -> None:
    """The change, with its after-commit effects (blocking jobs in flight) run as they would be."""
    cameo = Cameo.objects.get(pk=world.cameo.pk)
    with capture(execute=True):
        if change == "narrow":
            cameo_services.update_cameo(actor=world.owner, cameo=cameo, permission=Permission.ONLY_ME)
        elif change == "revoke_grant":
            cameo_services.revoke_grant(actor=world.owner, cameo=cameo, grantee=world.requester)
        elif change == "requester_blocks_owner":
            social_services.block_user(blocker=world.requester, blocked=world.owner)
        elif change == "owner_blocks_requester":
            social_services.block_user(blocker=world.owner, blocked=world.requester)
        elif change == "delete_cameo":
            cameo_services.erase_cameo(actor=world.owner, cameo=cameo)
        elif change == "owner_suspended":
            type(world.owner).objects.filter(pk=world.owner.pk).update(is_active=False)
        else:
            assert change == "none"


class ChangingRenderer:
    """The tiny model, with the consent change made once the render has begun."""

    def __init__(self, renderer, change):
        self.renderer, self.change = renderer, change

    def render(self, request, on_step=None):
        def step(index, total):
            if index == 1:
                self.change()
            if on_step is not None:
                on_step(index, total)

        return self.renderer.render(request, step)

    def model_id_for(self, request):
        return self.renderer.model_id_for(request)


def run_case(world: World, path: tuple, change: str, point: str, *, renderer, video, capture) -> str:
    """Drives one case and returns its outcome: `refused`, `blocked`, `publish_refused` or
    `published`."""
    mode, state = path
    request = services.GenerationRequest(**BODY)
    if mode == "create":
        request.cameo_ids = [world.cameo.pk]
    else:
        request.remix_of, request.mode = source_post(world, state, video).pk, mode
    if point == "before_request":
        apply_change(world, change, capture)
    try:
        job, _ = services.request_generation(user=world.requester, request=request)
    except ApiError:
        return "refused"
    assert sorted(job.likeness_ids) == [world.cameo.pk]
    if point == "before_start":
        apply_change(world, change, capture)
    if point == "during_render":
        renderer = ChangingRenderer(renderer, lambda: apply_change(world, change, capture))
    worker.execute_generation(job.pk, renderer=renderer)
    done = Generation.objects.get(pk=job.pk)
    if done.status != GenerationStatus.SUCCEEDED:
        assert done.status == GenerationStatus.BLOCKED, (done.error_code, done.error_message)
        assert done.error_code == "consent_revoked" and done.post_id is None
        return "blocked"
    post = Post.objects.get(pk=done.post_id)
    assert post.cameo_owner_ids == [world.owner.pk]
    if point == "before_publish":
        apply_change(world, change, capture)
    try:
        social_services.publish_post(actor=world.requester, post=post)
    except ApiError as refusal:
        assert (refusal.status_code, refusal.code) == (409, "consent_revoked")
        return "publish_refused"
    return "published"


def published_without_consent(requester) -> list[int]:
    """The requester's published posts that carry a likeness they may not use now at the consent
    version it was authorised under (in this matrix every post of theirs carries one)."""
    offending = []
    for post in Post.objects.filter(author=requester, status=PostStatus.PUBLISHED):
        uses = Appearance.objects.filter(post=post).values_list("cameo_id", "consent_version")
        if not uses or cameo_services.lapsed_consents(user=requester, uses=uses):
            offending.append(post.pk)
    return offending


CASES = list(itertools.product(PATHS, CHANGES, POINTS))


@pytest.mark.parametrize(
    ("path", "change", "point"),
    CASES,
    ids=[f"{mode}-{state or 'none'}-{change}-{point}" for (mode, state), change, point in CASES],
)
def test_no_likeness_is_published_without_current_consent(
    path, change, point, make_user, tiny_renderer, source_video, django_capture_on_commit_callbacks
):
    owner, requester, author = make_user(), make_user(), make_user()
    cameo = active_cameo(owner)
    for grantee in (requester, author):
        cameo_services.grant_use(actor=owner, cameo=cameo, grantee=grantee)
    world = World(owner=owner, requester=requester, author=author, cameo=cameo)
    started = timezone.now()

    outcome = run_case(
        world,
        path,
        change,
        point,
        renderer=tiny_renderer,
        video=source_video,
        capture=django_capture_on_commit_callbacks,
    )

    assert published_without_consent(requester) == []
    if path[1] == "removed":
        assert outcome == "refused"  # a taken-down video is nobody's source
    elif change == "none":
        assert outcome == "published"  # the control: consent that holds lets the video through
        published = Post.objects.get(author=requester, status=PostStatus.PUBLISHED, created_at__gte=started)
        assert published.cameo_refs[0]["id"] == str(cameo.pk)
    else:
        expected = {
            "before_request": "refused",
            "before_start": "blocked",
            "during_render": "blocked",
            "before_publish": "publish_refused",
        }[point]
        assert outcome == expected
        assert (
            not Generation.objects.filter(user=requester, status=GenerationStatus.SUCCEEDED)
            .exclude(post__status=PostStatus.DRAFT)
            .exists()
        )
