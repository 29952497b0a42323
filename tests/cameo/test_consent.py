from datetime import date

import pytest

from cameo import services
from cameo.likeness import find_cameos_in_frames
from cameo.models import Appearance, Cameo, CameoAudit, CameoStatus, Permission
from core.storage import biometric_storage
from social.models import Block, Follow, Post, PostStatus
from social.services import create_post
from tests.cameo import clips
from tests.conftest import client_for
from tests.media import make_test_video

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(make_user):
    """The permission matrix: an owner and one user of each relation to them."""
    users = {
        name: make_user(name) for name in ["owner", "granted", "mutual", "follower", "stranger", "blocked"]
    }
    Follow.objects.create(follower=users["mutual"], followee=users["owner"])
    Follow.objects.create(follower=users["owner"], followee=users["mutual"])
    Follow.objects.create(follower=users["follower"], followee=users["owner"])
    Block.objects.create(blocker=users["owner"], blocked=users["blocked"])
    return users


def usable_ids(user):
    return {item["id"] for item in client_for(user).get("/api/v1/cameos/usable?limit=50").json()["results"]}


EXPECTED = {
    Permission.ONLY_ME: {"owner"},
    Permission.APPROVED: {"owner", "granted"},
    Permission.MUTUALS: {"owner", "granted", "mutual"},
    Permission.EVERYONE: {"owner", "granted", "mutual", "follower", "stranger"},
}


@pytest.mark.parametrize("permission", list(EXPECTED))
def test_permission_matrix_through_the_api(people, enrolled_cameo, permission):
    cameo = enrolled_cameo(people["owner"], permission=permission)
    assert cameo.status == CameoStatus.ACTIVE
    owner_client = client_for(people["owner"])
    assert owner_client.put(f"/api/v1/cameos/{cameo.pk}/grants/granted").status_code == 204
    for name, user in people.items():
        allowed = name in EXPECTED[permission]
        assert services.may_use(user=user, cameo=cameo) is allowed, name
        assert (str(cameo.pk) in usable_ids(user)) is allowed, name
        if allowed:
            assert services.authorize_cameo_use(user=user, cameo=cameo) == cameo.consent_version
        else:
            with pytest.raises(Exception) as refusal:
                services.authorize_cameo_use(user=user, cameo=cameo)
            assert refusal.value.code == "cameo_not_permitted"


def test_blocked_user_never_uses_even_with_a_grant(people, enrolled_cameo):
    cameo = enrolled_cameo(people["owner"], permission=Permission.EVERYONE)
    Block.objects.create(blocker=people["granted"], blocked=people["owner"])
    assert not services.may_use(user=people["granted"], cameo=cameo)
    assert client_for(people["blocked"]).get(f"/api/v1/cameos/{cameo.pk}").status_code == 404


def test_minor_cameo_is_capped_at_mutuals(make_user, enrolled_cameo):
    today = date.today()
    minor = make_user("teen", birth_date=date(today.year - 15, 1, 1))
    stranger = make_user("adult")
    cameo = enrolled_cameo(minor, permission=Permission.MUTUALS)
    response = client_for(minor).patch(
        f"/api/v1/cameos/{cameo.pk}", {"permission": "everyone"}, format="json"
    )
    assert response.status_code == 422
    # Even a stored "everyone" (set before a birthday correction, say) acts as mutuals.
    Cameo.objects.filter(pk=cameo.pk).update(permission=Permission.EVERYONE)
    cameo.refresh_from_db()
    assert not services.may_use(user=stranger, cameo=cameo)
    assert str(cameo.pk) not in usable_ids(stranger)


def test_narrowing_bumps_the_consent_version_and_is_audited(people, enrolled_cameo):
    owner = people["owner"]
    cameo = enrolled_cameo(owner, permission=Permission.EVERYONE)
    version = services.authorize_cameo_use(user=people["stranger"], cameo=cameo)
    client = client_for(owner)
    widened = client.patch(f"/api/v1/cameos/{cameo.pk}", {"display_name": "New name"}, format="json")
    assert widened.status_code == 200
    cameo.refresh_from_db()
    assert cameo.consent_version == version
    narrowed = client.patch(
        f"/api/v1/cameos/{cameo.pk}",
        {"permission": "mutuals", "restrictions": ["politics", "alcohol"], "instructions": "red scarf"},
        format="json",
    )
    assert narrowed.status_code == 200
    assert narrowed.json()["restrictions"] == ["politics", "alcohol"]
    cameo.refresh_from_db()
    assert cameo.consent_version == version + 1
    assert not services.consent_still_holds(user=people["mutual"], cameo_id=cameo.pk, consent_version=version)
    assert services.consent_still_holds(
        user=people["mutual"], cameo_id=cameo.pk, consent_version=cameo.consent_version
    )
    audit = client.get(f"/api/v1/cameos/{cameo.pk}/audit").json()["results"]
    assert [entry["action"] for entry in audit][:2] == ["updated", "updated"]
    assert audit[0]["before"]["permission"] == "everyone" and audit[0]["after"]["permission"] == "mutuals"
    assert audit[0]["actor"] == "owner"
    assert client_for(people["mutual"]).get(f"/api/v1/cameos/{cameo.pk}/audit").status_code == 404


def test_revoking_a_grant_bumps_the_version(people, enrolled_cameo):
    cameo = enrolled_cameo(people["owner"], permission=Permission.APPROVED)
    services.grant_use(actor=people["owner"], cameo=cameo, grantee=people["granted"])
    version = services.authorize_cameo_use(user=people["granted"], cameo=cameo)
    response = client_for(people["owner"]).delete(f"/api/v1/cameos/{cameo.pk}/grants/granted")
    assert response.status_code == 204
    assert not services.consent_still_holds(
        user=people["granted"], cameo_id=cameo.pk, consent_version=version
    )


def test_restrictions_refuse_prompts_that_touch_them(user, enrolled_cameo):
    cameo = enrolled_cameo(user)
    services.update_cameo(actor=user, cameo=cameo, restrictions=["alcohol"])
    cameo.refresh_from_db()
    with pytest.raises(Exception) as refusal:
        services.check_cameo_restrictions(cameo=cameo, prompt="me drinking beer at a bar")
    assert refusal.value.code == "prompt_rejected"
    assert refusal.value.details == {"cameo": str(cameo.pk), "theme": "alcohol"}
    services.check_cameo_restrictions(cameo=cameo, prompt="me surfing at sunset")


def test_requests_to_use_reach_the_owner(people, enrolled_cameo):
    cameo = enrolled_cameo(people["owner"], permission=Permission.APPROVED)
    stranger = client_for(people["stranger"])
    response = stranger.post(f"/api/v1/cameos/{cameo.pk}/requests", {"message": "for my film"}, format="json")
    assert response.status_code == 202
    assert stranger.get(f"/api/v1/cameos/{cameo.pk}/requests").status_code == 404
    listed = client_for(people["owner"]).get(f"/api/v1/cameos/{cameo.pk}/requests").json()["results"]
    assert [item["requester"]["username"] for item in listed] == ["stranger"]
    kinds = client_for(people["owner"]).get("/api/v1/notifications").json()["results"]
    assert any(item["kind"] == "cameo_request" for item in kinds)


def _post_with_cameo(author, cameo, tmp_path, status=PostStatus.DRAFT):
    video = tmp_path / f"clip-{author.pk}-{cameo.pk}.mp4"
    make_test_video(video)
    post = create_post(author=author, video=str(video), prompt="a walk on the beach")
    services.record_appearances(post=post, uses=[(cameo, cameo.consent_version)])
    return post


def test_appearances_list_other_peoples_drafts_and_owner_can_take_down(
    people, enrolled_cameo, tmp_path, django_assert_max_num_queries
):
    owner, mutual = people["owner"], people["mutual"]
    cameo = enrolled_cameo(owner, permission=Permission.MUTUALS)
    drafts = [_post_with_cameo(mutual, cameo, tmp_path) for _ in range(3)]
    owner_client = client_for(owner)
    for limit in (1, 3):
        with django_assert_max_num_queries(6):
            response = owner_client.get(f"/api/v1/cameos/{cameo.pk}/appearances?limit={limit}")
        assert response.status_code == 200
        assert len(response.json()["results"]) == limit
    listed = owner_client.get(f"/api/v1/cameos/{cameo.pk}/appearances").json()["results"]
    assert {item["id"] for item in listed} == {str(post.pk) for post in drafts}
    assert all(item["status"] == "draft" for item in listed)
    assert owner_client.get(f"/api/v1/posts/{drafts[0].pk}").status_code == 200
    assert client_for(people["stranger"]).get(f"/api/v1/posts/{drafts[0].pk}").status_code == 404
    assert client_for(mutual).get(f"/api/v1/cameos/{cameo.pk}/appearances").status_code == 404
    assert owner_client.delete(f"/api/v1/posts/{drafts[1].pk}").status_code in (200, 204)
    assert Post.objects.get(pk=drafts[1].pk).status == PostStatus.REMOVED
    listed = owner_client.get(f"/api/v1/cameos/{cameo.pk}/appearances").json()["results"]
    assert {item["id"]: item["status"] for item in listed}[str(drafts[1].pk)] == "removed"
    assert client_for(people["stranger"]).delete(f"/api/v1/posts/{drafts[0].pk}").status_code == 404


def test_publishing_rechecks_consent(people, enrolled_cameo, tmp_path):
    owner, mutual = people["owner"], people["mutual"]
    cameo = enrolled_cameo(owner, permission=Permission.MUTUALS)
    first, second = _post_with_cameo(mutual, cameo, tmp_path), _post_with_cameo(mutual, cameo, tmp_path)
    author = client_for(mutual)
    assert author.post(f"/api/v1/posts/{first.pk}/publish").status_code == 200
    services.update_cameo(actor=owner, cameo=cameo, permission=Permission.ONLY_ME)
    refused = author.post(f"/api/v1/posts/{second.pk}/publish")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "consent_revoked"
    assert Post.objects.get(pk=second.pk).status == PostStatus.DRAFT


def test_delete_erases_biometrics_at_once_and_keeps_an_audit_trail(
    people, enrolled_cameo, tmp_path, django_capture_on_commit_callbacks
):
    owner = people["owner"]
    cameo = enrolled_cameo(owner, permission=Permission.MUTUALS)
    crop_name = cameo.face_crop.name
    post = _post_with_cameo(people["mutual"], cameo, tmp_path)
    assert biometric_storage().exists(crop_name)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(owner).delete(f"/api/v1/cameos/{cameo.pk}").status_code == 204
    cameo.refresh_from_db()
    assert cameo.status == CameoStatus.DELETED
    assert cameo.template_vector is None and not cameo.face_crop and not cameo.verification_video
    assert not biometric_storage().exists(crop_name)
    actions = list(CameoAudit.objects.filter(cameo_id_value=cameo.pk).values_list("action", flat=True))
    assert "deleted" in actions
    assert all(
        "template" not in str(entry.after) for entry in CameoAudit.objects.filter(cameo_id_value=cameo.pk)
    )
    assert not services.consent_still_holds(
        user=people["mutual"],
        cameo_id=cameo.pk,
        consent_version=Appearance.objects.get(post=post).consent_version,
    )
    # The owner still reads the erased cameo (no media) and its trail; nobody else does.
    erased = client_for(owner).get(f"/api/v1/cameos/{cameo.pk}")
    assert erased.status_code == 200 and erased.json()["status"] == "deleted"
    assert client_for(people["mutual"]).get(f"/api/v1/cameos/{cameo.pk}").status_code == 404


def test_deleting_the_account_erases_its_cameos(user, enrolled_cameo, django_capture_on_commit_callbacks):
    cameo = enrolled_cameo(user)
    crop_name = cameo.face_crop.name
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(user).delete("/api/v1/me").status_code == 204
    assert not Cameo.objects.filter(pk=cameo.pk).exists()
    assert not biometric_storage().exists(crop_name)
    assert CameoAudit.objects.filter(cameo_id_value=cameo.pk, action="deleted").exists()


def test_likeness_search_finds_active_cameos_in_frames(make_user, enrolled_cameo):
    portrait_cameo = enrolled_cameo(make_user("tom"))
    other = enrolled_cameo(make_user("other"), face=clips.group_faces()[2], face_px=190)
    frames = clips.moving_face_frames(count=2)
    matches = find_cameos_in_frames(frames)
    assert [match.cameo_id for match in matches] == [portrait_cameo.pk]
    assert find_cameos_in_frames(frames, exclude_cameo_ids=[portrait_cameo.pk]) == []
    other_frames = clips.moving_face_frames(clips.group_faces()[2], count=1, face_px=190)
    assert [match.cameo_id for match in find_cameos_in_frames(other_frames)] == [other.pk]
    assert find_cameos_in_frames(clips.moving_face_frames(clips.group_faces()[4], count=1, face_px=190)) == []


@pytest.mark.parametrize(
    ("permission", "minor_owner", "who_may_ask"),
    [
        (Permission.ONLY_ME, False, set()),
        (Permission.APPROVED, False, {"granted", "mutual", "follower", "stranger"}),
        (Permission.MUTUALS, False, {"granted", "mutual", "follower", "stranger"}),
        (Permission.APPROVED, True, {"granted", "mutual"}),
        (Permission.MUTUALS, True, {"granted", "mutual"}),
    ],
)
def test_a_cameos_detail_and_requests_reach_only_those_who_may_use_it_or_ask(
    people, enrolled_cameo, permission, minor_owner, who_may_ask
):
    from datetime import date

    owner = people["owner"]
    if minor_owner:
        owner.birth_date = date.today().replace(year=date.today().year - 15)
        owner.save(update_fields=["birth_date"])
    cameo = enrolled_cameo(owner, permission=permission)
    services.grant_use(actor=owner, cameo=cameo, grantee=people["granted"])
    for name in ["granted", "mutual", "follower", "stranger", "blocked"]:
        client = client_for(people[name])
        detail = client.get(f"/api/v1/cameos/{cameo.pk}")
        ask = client.post(f"/api/v1/cameos/{cameo.pk}/requests", {"message": "may I?"}, format="json")
        if name in who_may_ask:
            assert (detail.status_code, ask.status_code) == (200, 202), name
        else:
            # Strangers to a minor's cameo, anyone for an only_me cameo, blocked people: nothing.
            assert (detail.status_code, ask.status_code) == (404, 404), name
