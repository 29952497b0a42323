"""Likeness lineage: a remix or continuation carries its source's cameos, and every rule that
guards a named cameo guards an inherited one (request, worker, store, publish, take-down,
provenance, revenue)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from cameo import services as cameo_services
from cameo.lineage import Likeness, job_likenesses
from cameo.models import Permission
from generation import services, worker
from generation.models import Generation, GenerationStatus
from remix.ledger import record_revenue_event
from social import services as social_services
from social.models import Block, Post, PostStatus
from tests.cameo import clips
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

BODY = {"prompt": "walking a dog along a beach at sunset", "duration_s": 1, "aspect_ratio": "1:1"}


@pytest.fixture(autouse=True)
def _no_broker(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


@pytest.fixture
def made_with(made_through_the_job):
    """A post by `author` made through the real job path, with `cameo_ids` or from `remix_of`."""
    return lambda author, **request: made_through_the_job(author, **{**BODY, **request})


def generate(user, **body):
    return client_for(user).post("/api/v1/generations", {**BODY, **body}, format="json")


def test_the_lineage_function_names_first_then_inherits_each_source_once():
    source = Post(pk=10, cameo_refs=[{"id": "3", "owner_username": "a"}, {"id": "4"}, {"bad": 1}])
    other = Post(pk=11, cameo_refs=[{"id": "4"}, {"id": "5"}])
    assert job_likenesses(cameo_ids=["4", 7], sources=[source, other]) == [
        Likeness(4),
        Likeness(7),
        Likeness(3, inherited_from=10),
        Likeness(5, inherited_from=11),
    ]


def test_a_remix_carries_its_sources_cameo_everywhere(alice_cameo, user, make_user, made_with, tiny_renderer):
    bob, carol = make_user("bob"), make_user("carol")
    source = made_with(bob, cameo_ids=[alice_cameo.pk])
    response = generate(carol, prompt="now in the snow", remix_of=str(source.pk), mode="remix")
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["cameo_ids"] == [] and body["inherited_cameo_ids"] == [str(alice_cameo.pk)]
    job = Generation.objects.get(pk=body["id"])
    assert job.likeness_ids == [alice_cameo.pk]
    assert job.cameo_consents[0]["inherited_from"] == source.pk
    assert "red scarf" in job.composed_prompt  # the owner's own description applies to her likeness
    assert worker.render_request(job).identity.cameo_id == str(alice_cameo.pk)
    done = worker.execute_generation(job.pk, renderer=tiny_renderer)
    remix = Post.objects.get(pk=done.post_id)
    assert [ref["id"] for ref in remix.cameo_refs] == [str(alice_cameo.pk)]
    assert remix.cameo_owner_ids == [user.pk]
    # The owner sees the draft among her appearances, reads its provenance, and gets her share.
    appearances = client_for(user).get(f"/api/v1/cameos/{alice_cameo.pk}/appearances").json()["results"]
    assert str(remix.pk) in [post["id"] for post in appearances]
    record = client_for(user).get(f"/api/v1/posts/{remix.pk}/provenance").json()["record"]
    assert record["cameos"][0]["inherited_from"] == str(source.pk)
    social_services.publish_post(actor=carol, post=remix)
    event = record_revenue_event(
        event_id="ad-1", post_id=remix.pk, amount_minor=10_000, currency="EUR", kind="ad"
    )
    parties = {(split.party.type, split.party.id): split.amount_minor for split in event.splits}
    assert parties[("cameo_owner", user.pk)] == 500
    # And she may take it down.
    assert client_for(user).delete(f"/api/v1/posts/{remix.pk}").status_code == 204
    assert Post.objects.get(pk=remix.pk).status == PostStatus.REMOVED


@pytest.mark.parametrize("mode", ["remix", "continue"])
def test_someone_the_owner_blocked_cannot_inherit_her_likeness(alice_cameo, user, make_user, made_with, mode):
    bob, mallory = make_user("bob"), make_user("mallory")
    source = made_with(bob, cameo_ids=[alice_cameo.pk])
    social_services.block_user(blocker=user, blocked=mallory)
    response = generate(mallory, remix_of=str(source.pk), mode=mode)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "cameo_not_permitted"
    assert error["details"] == {"cameo": str(alice_cameo.pk), "inherited_from": str(source.pk)}


def test_an_inherited_cameo_is_refused_once_erased_even_from_the_authors_own_post(
    alice_cameo, user, make_user, made_with
):
    bob = make_user("bob")
    published = made_with(bob, cameo_ids=[alice_cameo.pk])
    draft = made_with(bob, cameo_ids=[alice_cameo.pk], status=PostStatus.DRAFT)
    cameo_services.erase_cameo(actor=user, cameo=alice_cameo)
    refused = generate(bob, remix_of=str(published.pk), mode="continue")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "cameo_not_permitted"
    # A draft that could not be published any more is no source at all.
    refused = generate(bob, remix_of=str(draft.pk), mode="continue")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "consent_revoked"
    assert not Generation.objects.filter(user=bob, mode="continue").exists()


def test_an_inherited_cameos_restrictions_apply(alice_cameo, user, make_user, made_with):
    bob, carol = make_user("bob"), make_user("carol")
    source = made_with(bob, cameo_ids=[alice_cameo.pk])
    cameo_services.update_cameo(actor=user, cameo=alice_cameo, restrictions=["alcohol"])
    response = generate(carol, prompt="now drinking beer", remix_of=str(source.pk), mode="remix")
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"cameo": str(alice_cameo.pk), "theme": "alcohol"}


def test_narrowing_after_the_request_blocks_the_inheriting_job(
    alice_cameo, user, make_user, made_with, django_capture_on_commit_callbacks
):
    bob, carol = make_user("bob"), make_user("carol")
    source = made_with(bob, cameo_ids=[alice_cameo.pk])
    job, _ = services.request_generation(
        user=carol, request=services.GenerationRequest(**BODY, remix_of=source.pk, mode="continue")
    )
    with django_capture_on_commit_callbacks(execute=True):
        cameo_services.update_cameo(actor=user, cameo=alice_cameo, permission=Permission.ONLY_ME)
    assert Generation.objects.get(pk=job.pk).status == GenerationStatus.BLOCKED


def test_the_owner_takes_a_post_down_and_reads_its_provenance_across_blocks(
    alice_cameo, user, make_user, made_with
):
    bob = make_user("bob")
    post = made_with(bob, cameo_ids=[alice_cameo.pk])
    social_services.block_user(blocker=bob, blocked=user)
    assert Block.objects.filter(blocker=bob, blocked=user).exists()
    owner = client_for(user)
    assert owner.get(f"/api/v1/posts/{post.pk}/provenance").status_code == 200
    assert owner.delete(f"/api/v1/posts/{post.pk}").status_code == 204
    assert Post.objects.get(pk=post.pk).status == PostStatus.REMOVED
    assert owner.delete(f"/api/v1/posts/{post.pk}").status_code == 204  # idempotent
    # Nobody else gains anything from the carve-out.
    stranger = client_for(make_user("stranger"))
    assert stranger.delete(f"/api/v1/posts/{post.pk}").status_code == 404


def test_an_erased_cameo_stays_readable_to_its_owner_with_its_audit_trail(alice_cameo, user, make_user):
    owner = client_for(user)
    assert owner.delete(f"/api/v1/cameos/{alice_cameo.pk}").status_code == 204
    body = owner.get(f"/api/v1/cameos/{alice_cameo.pk}").json()
    assert body["status"] == "deleted"
    assert not {"face_crop", "verification_video", "template", "video_url"} & set(body)
    audit = owner.get(f"/api/v1/cameos/{alice_cameo.pk}/audit").json()["results"]
    assert audit[0]["action"] == "deleted"  # newest first: the erasure is the last entry
    # Nothing can be changed on it any more, and nobody else sees it.
    assert (
        owner.patch(f"/api/v1/cameos/{alice_cameo.pk}", {"display_name": "x"}, format="json").status_code
        == 404
    )
    assert owner.delete(f"/api/v1/cameos/{alice_cameo.pk}").status_code == 404
    other = client_for(make_user("bob"))
    assert other.get(f"/api/v1/cameos/{alice_cameo.pk}").status_code == 404
    assert other.get(f"/api/v1/cameos/{alice_cameo.pk}/audit").status_code == 404


def test_a_request_with_inherited_cameos_costs_the_same_queries_however_many(
    user,
    make_user,
    enrolled_cameo,
    made_with,
):
    bob, carol = make_user("bob"), make_user("carol")
    one = enrolled_cameo(user, permission=Permission.EVERYONE)
    others = [
        enrolled_cameo(
            make_user(name), permission=Permission.EVERYONE, face=clips.group_faces()[index], face_px=190
        )
        for name, index in (("dan", 2), ("erin", 4))
    ]
    cameos = [one, *others]
    assert all(cameo.status == "active" for cameo in cameos), [c.rejection_reason for c in cameos]
    single = made_with(bob, cameo_ids=[one.pk])
    triple = made_with(bob, cameo_ids=[cameo.pk for cameo in cameos])

    def queries_of(source):
        with CaptureQueriesContext(connection) as captured:
            response = generate(carol, remix_of=str(source.pk), mode="remix")
        assert response.status_code == 202, response.json()
        return len(captured.captured_queries)

    assert queries_of(single) == queries_of(triple)
