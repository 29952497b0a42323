"""Guardians (API.md, teens): a minor's code, the link, the controls and what they do at once,
unlinking from either side, and the notifications and audit entries on the way."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from cameo import services as cameo_services
from cameo.models import Cameo, CameoAudit, Permission
from core.errors import ApiError
from remix.services import check_remix_allowed
from social import guardians
from social.models import (
    CameoPermissionCap,
    GuardianAudit,
    GuardianCode,
    GuardianLink,
    Notification,
    NotificationKind,
    Post,
)
from social.services import block_user, follow_user
from tests.cameo.conftest import (
    clip,
    enrolled_cameo,  # noqa: F401 - the cameo app's enrollment fixture
    upload,
)
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

GENERATION = {"prompt": "a paper boat sailing down a rainy street", "duration_s": 4, "aspect_ratio": "9:16"}


def teen_birth_date():
    return timezone.localdate() - timedelta(days=14 * 365)


@pytest.fixture
def teen(make_user):
    return make_user("teen", birth_date=teen_birth_date())


@pytest.fixture
def parent(make_user):
    return make_user("parent")


def error_of(response):
    return response.status_code, response.json()["error"]["code"]


def ask_code(user) -> str:
    response = client_for(user).post("/api/v1/me/guardian-code")
    assert response.status_code == 201, response.json()
    return response.json()["code"]


def link(parent, teen, **controls):
    guardians.link_guardian(guardian=parent, code=guardians.request_guardian_code(teen=teen).code)
    if controls:
        guardians.set_controls(guardian=parent, teen_username=teen.username, **controls)


def kinds_of(user, kind):
    return list(Notification.objects.filter(user=user, kind=kind).order_by("id"))


def test_link_controls_and_unlink_through_the_api_tell_both_sides(teen, parent, make_user):
    teen_client, parent_client = client_for(teen), client_for(parent)
    code_response = teen_client.post("/api/v1/me/guardian-code")
    assert code_response.status_code == 201
    code = code_response.json()["code"]
    assert len(code) == guardians.CODE_LENGTH and set(code) <= set(guardians.CODE_ALPHABET)
    expires_at = code_response.json()["expires_at"]
    assert timezone.now() + timedelta(hours=23) < timezone.datetime.fromisoformat(expires_at)

    # Typed by hand: any case, with a dash in the middle.
    typed = f"{code[:4].lower()}-{code[4:]}"
    linked = parent_client.post("/api/v1/guardians/link", {"code": typed}, format="json")
    assert linked.status_code == 201, linked.json()
    defaults = {
        "personalised": False,
        "daily_scroll_limit": 100,
        "cameo_permission_cap": "mutuals",
        "remix_of_my_posts": True,
    }
    assert linked.json() == {"teen": {"id": str(teen.pk), "username": "teen"}, "controls": defaults}
    # Used once.
    other_adult = client_for(make_user("stranger"))
    assert error_of(other_adult.post("/api/v1/guardians/link", {"code": code}, format="json")) == (
        422,
        "guardian_code_invalid",
    )
    for user, other in ((teen, parent), (parent, teen)):
        (notification,) = kinds_of(user, "guardian_linked")
        assert notification.actor_id == other.pk

    me = teen_client.get("/api/v1/me").json()
    assert me["guardian"] == {"id": str(parent.pk), "username": "parent"}
    assert me["controls"] == defaults
    assert parent_client.get("/api/v1/me").json()["controls"] is None

    controls_url = "/api/v1/guardians/teens/teen/controls"
    assert parent_client.get(controls_url).json() == defaults
    # Nobody but the guardian reaches the controls, the teen included.
    assert other_adult.get(controls_url).status_code == 404
    assert teen_client.get(controls_url).status_code == 404
    assert other_adult.put(controls_url, {"personalised": True}, format="json").status_code == 404

    changed = parent_client.put(controls_url, {"daily_scroll_limit": 30, "personalised": True}, format="json")
    assert changed.status_code == 200
    assert changed.json() == {**defaults, "daily_scroll_limit": 30, "personalised": True}
    for user, role in ((teen, "teen"), (parent, "guardian")):
        (notification,) = kinds_of(user, "guardian_controls_changed")
        assert notification.data["role"] == role and notification.data["by"] == "parent"
        assert notification.data["after"] == {"personalised": True, "daily_scroll_limit": 30}
        assert notification.data["before"] == {"personalised": False, "daily_scroll_limit": 100}
    assert teen_client.get("/api/v1/me").json()["controls"]["daily_scroll_limit"] == 30
    # The same values again change nothing and tell nobody.
    assert parent_client.put(controls_url, {"daily_scroll_limit": 30}, format="json").status_code == 200
    assert len(kinds_of(teen, "guardian_controls_changed")) == 1
    listed = client_for(teen).get("/api/v1/notifications").json()["results"]
    assert "guardian_controls_changed" in {item["kind"] for item in listed}

    assert parent_client.delete("/api/v1/guardians/teens/teen").status_code == 204
    for user in (teen, parent):
        (notification,) = kinds_of(user, "guardian_unlinked")
        assert notification.data["by"] == "parent"
    assert parent_client.get(controls_url).status_code == 404
    assert parent_client.delete("/api/v1/guardians/teens/teen").status_code == 404
    assert teen_client.get("/api/v1/me").json()["controls"] is None
    assert [entry.action for entry in GuardianAudit.objects.filter(teen=teen).order_by("id")] == [
        "linked",
        "controls_changed",
        "unlinked",
    ]

    # Linked again, the teen ends it this time; the guardian is told.
    assert (
        parent_client.post("/api/v1/guardians/link", {"code": ask_code(teen)}, format="json").status_code
        == 201
    )
    assert teen_client.delete("/api/v1/me/guardian").status_code == 204
    assert kinds_of(parent, "guardian_unlinked")[-1].data == {"role": "guardian", "by": "teen"}
    assert kinds_of(teen, "guardian_unlinked")[-1].actor_id == parent.pk
    assert error_of(teen_client.delete("/api/v1/me/guardian")) == (404, "not_found")
    assert not GuardianLink.objects.exists()


def test_who_may_ask_and_redeem(teen, parent, make_user):
    assert error_of(client_for(parent).post("/api/v1/me/guardian-code")) == (403, "not_a_minor")
    younger = make_user("sibling", birth_date=teen_birth_date())
    code = ask_code(teen)
    redeem = {"code": code}
    assert error_of(client_for(younger).post("/api/v1/guardians/link", redeem, format="json")) == (
        403,
        "guardian_must_be_adult",
    )
    for wrong in ("ZZZZZZZZ", ""):
        response = client_for(parent).post("/api/v1/guardians/link", {"code": wrong}, format="json")
        assert response.status_code in (400, 422)
    assert error_of(client_for(parent).post("/api/v1/guardians/link", {}, format="json")) == (400, "invalid")
    # A new code replaces the old one.
    newer = ask_code(teen)
    assert newer != code
    assert error_of(client_for(parent).post("/api/v1/guardians/link", redeem, format="json")) == (
        422,
        "guardian_code_invalid",
    )
    # An expired code is refused as an unknown one.
    GuardianCode.objects.filter(teen=teen).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert error_of(client_for(parent).post("/api/v1/guardians/link", {"code": newer}, format="json")) == (
        422,
        "guardian_code_invalid",
    )
    # Across a block, nobody links.
    block_user(blocker=teen, blocked=parent)
    response = client_for(parent).post("/api/v1/guardians/link", {"code": ask_code(teen)}, format="json")
    assert error_of(response) == (403, "blocked")


def test_a_teen_has_one_guardian(teen, parent, make_user):
    link(parent, teen)
    assert error_of(client_for(teen).post("/api/v1/me/guardian-code")) == (409, "already_has_guardian")
    # A code made before the link (or by hand) cannot make a second guardian.
    GuardianCode.objects.create(teen=teen, code="ABCDEFGH", expires_at=timezone.now() + timedelta(hours=1))
    other = client_for(make_user("other_parent"))
    assert error_of(other.post("/api/v1/guardians/link", {"code": "ABCDEFGH"}, format="json")) == (
        409,
        "already_has_guardian",
    )
    # The database says so too, and a code names one teen.
    with pytest.raises(IntegrityError), transaction.atomic():
        GuardianLink.objects.create(teen=teen, guardian=make_user("third"))
    with pytest.raises(IntegrityError), transaction.atomic():
        GuardianCode.objects.create(
            teen=make_user("kid", birth_date=teen_birth_date()),
            code="ABCDEFGH",
            expires_at=timezone.now(),
        )


def test_controls_are_validated(teen, parent):
    link(parent, teen)
    url = "/api/v1/guardians/teens/teen/controls"
    client = client_for(parent)
    for body in (
        {"cameo_permission_cap": "everyone"},
        {"daily_scroll_limit": -1},
        {"daily_scroll_limit": "lots"},
        {"bedtime": "21:00"},
    ):
        assert error_of(client.put(url, body, format="json")) == (400, "invalid"), body
    # null: back to the default.
    client.put(url, {"daily_scroll_limit": 5}, format="json")
    assert client.put(url, {"daily_scroll_limit": None}, format="json").json()["daily_scroll_limit"] == 100
    assert GuardianLink.objects.get(teen=teen).daily_scroll_limit is None


def test_controls_lapse_when_the_teen_comes_of_age(teen, parent, make_post):
    link(parent, teen, remix_of_my_posts=False)
    post = make_post(teen)
    assert post.remix_allowed is False
    teen.birth_date = timezone.localdate() - timedelta(days=19 * 365)
    teen.save()
    # Their own choices again, and the guardian changes nothing more; either may still unlink.
    assert make_post(teen).remix_allowed is True
    assert client_for(teen).get("/api/v1/me").json()["controls"] is None
    refused = client_for(parent).put(
        "/api/v1/guardians/teens/teen/controls", {"remix_of_my_posts": False}, format="json"
    )
    assert error_of(refused) == (403, "not_a_minor")
    assert client_for(parent).delete("/api/v1/guardians/teens/teen").status_code == 204


def test_the_cap_values_are_the_cameo_permissions_a_minor_may_have():
    assert CameoPermissionCap.values == [p for p in Permission.values if p != Permission.EVERYONE]


def test_lowering_the_cap_lowers_cameos_at_once_and_refuses_a_raise(
    teen,
    parent,
    make_user,
    enrolled_cameo,  # noqa: F811
):
    friend = make_user("friend")
    follow_user(follower=friend, followee=teen)
    follow_user(follower=teen, followee=friend)
    cameo = enrolled_cameo(teen, permission=Permission.MUTUALS)
    assert cameo.status == "active", cameo.rejection_reason
    version = cameo_services.authorize_cameo_use(user=friend, cameo=cameo)
    link(parent, teen)

    response = client_for(parent).put(
        "/api/v1/guardians/teens/teen/controls", {"cameo_permission_cap": "only_me"}, format="json"
    )
    assert response.status_code == 200
    cameo.refresh_from_db()
    assert cameo.permission == Permission.ONLY_ME
    assert cameo.consent_version == version + 1
    # A job authorised under the old consent fails its recheck.
    assert not cameo_services.consent_still_holds(user=friend, cameo_id=cameo.pk, consent_version=version)
    entry = CameoAudit.objects.filter(cameo_id_value=cameo.pk).latest("id")
    assert (entry.action, entry.actor_id) == ("capped_by_guardian", parent.pk)
    assert (entry.before, entry.after) == ({"permission": "mutuals"}, {"permission": "only_me"})
    trail = client_for(teen).get(f"/api/v1/cameos/{cameo.pk}/audit").json()["results"]
    assert trail[0]["action"] == "capped_by_guardian"

    raise_it = client_for(teen).patch(f"/api/v1/cameos/{cameo.pk}", {"permission": "approved"}, format="json")
    assert error_of(raise_it) == (403, "guardian_control")
    assert raise_it.json()["error"]["details"] == {"control": "cameo_permission_cap", "cap": "only_me"}
    # A new cameo cannot start above the cap either.
    with pytest.raises(ApiError) as refused:
        cameo_services.start_enrollment(
            owner=teen,
            video=upload(clip("enrollment_clip")),
            display_name="again",
            permission=Permission.APPROVED,
        )
    assert refused.value.code == "guardian_control"

    # Raising the cap lowers nothing and lets the teen widen again, up to it.
    client_for(parent).put(
        "/api/v1/guardians/teens/teen/controls", {"cameo_permission_cap": "approved"}, format="json"
    )
    assert Cameo.objects.get(pk=cameo.pk).permission == Permission.ONLY_ME
    widened = client_for(teen).patch(f"/api/v1/cameos/{cameo.pk}", {"permission": "approved"}, format="json")
    assert widened.status_code == 200 and widened.json()["permission"] == "approved"
    # Once unlinked, the cap is gone.
    client_for(teen).delete("/api/v1/me/guardian")
    widened = client_for(teen).patch(f"/api/v1/cameos/{cameo.pk}", {"permission": "mutuals"}, format="json")
    assert widened.status_code == 200


def test_remix_of_my_posts_off_stops_remixes_at_once(teen, parent, make_user, make_post):
    remixer = make_user("remixer")
    post = make_post(teen)
    assert check_remix_allowed(user=remixer, source_post=post).pk == post.pk
    link(parent, teen)

    client_for(parent).put(
        "/api/v1/guardians/teens/teen/controls", {"remix_of_my_posts": False}, format="json"
    )
    assert Post.objects.get(pk=post.pk).remix_allowed is False
    refused = client_for(remixer).post(
        "/api/v1/generations", {**GENERATION, "remix_of": str(post.pk), "mode": "remix"}, format="json"
    )
    assert error_of(refused) == (403, "remix_not_allowed")
    # New posts start closed, and the teen cannot open one while the control says no.
    later = make_post(teen)
    assert later.remix_allowed is False
    reopen = client_for(teen).patch(f"/api/v1/posts/{post.pk}", {"remix_allowed": True}, format="json")
    assert error_of(reopen) == (403, "guardian_control")
    assert (
        client_for(teen).patch(f"/api/v1/posts/{post.pk}", {"caption": "hi"}, format="json").status_code
        == 200
    )

    client_for(parent).put(
        "/api/v1/guardians/teens/teen/controls", {"remix_of_my_posts": True}, format="json"
    )
    reopen = client_for(teen).patch(f"/api/v1/posts/{post.pk}", {"remix_allowed": True}, format="json")
    assert reopen.status_code == 200 and reopen.json()["remix_allowed"] is True
    assert check_remix_allowed(user=remixer, source_post=post).pk == post.pk


def test_the_schema_documents_the_guardian_endpoints(auth_client):
    paths = auth_client.get("/api/schema/", {"format": "json"}).json()["paths"]
    statuses = {
        ("/api/v1/me/guardian-code", "post"): {"201", "401", "403", "409"},
        ("/api/v1/guardians/link", "post"): {"201", "400", "403", "409", "422", "429"},
        ("/api/v1/guardians/teens/{username}/controls", "put"): {"200", "400", "403", "404"},
        ("/api/v1/guardians/teens/{username}", "delete"): {"204", "404"},
        ("/api/v1/me/guardian", "delete"): {"204", "404"},
        ("/api/v1/me/feed", "put"): {"200", "400", "403"},
        ("/api/v1/feed", "get"): {"200", "429"},
        ("/api/v1/cameos/{cameo_id}", "patch"): {"403"},
    }
    for (path, method), expected in statuses.items():
        assert expected <= set(paths[path][method]["responses"]), (path, method)
    assert "Retry-After" in paths["/api/v1/feed"]["get"]["responses"]["429"]["headers"]


@pytest.mark.parametrize("deleted", ["teen", "parent"])
def test_deleting_either_account_tells_the_other_side(teen, parent, deleted):
    from social.services import delete_account

    link(parent, teen)
    gone, other = (teen, parent) if deleted == "teen" else (parent, teen)
    delete_account(user=gone)
    told = kinds_of(other, NotificationKind.GUARDIAN_UNLINKED)
    assert len(told) == 1 and told[0].actor_id is None
    assert told[0].data == {
        "role": "guardian" if other == parent else "teen",
        "by": gone.username,
        "reason": "account_deleted",
    }
    assert not GuardianLink.objects.exists()
    if deleted == "parent":
        # The teen's trail keeps the end, and the teen may ask another adult.
        assert GuardianAudit.objects.filter(teen=teen, action="account_deleted").exists()
        assert client_for(teen).post("/api/v1/me/guardian-code").status_code == 201
