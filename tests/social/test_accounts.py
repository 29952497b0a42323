from datetime import date, timedelta

import pytest
from django.utils import timezone

from social.models import User
from tests.conftest import PASSWORD, client_for

pytestmark = pytest.mark.django_db


def register(api, **overrides):
    body = {"username": "newbie", "password": PASSWORD, "birth_date": "1995-05-05", **overrides}
    return api.post("/api/v1/auth/register", body, format="json")


def test_register_returns_id_and_username(api):
    response = register(api, email="n@example.com")
    assert response.status_code == 201
    body = response.json()
    assert body == {"id": body["id"], "username": "newbie"}
    assert isinstance(body["id"], str)
    assert User.objects.get(pk=int(body["id"])).check_password(PASSWORD)


def test_register_same_username_in_other_case_is_taken(api):
    assert register(api).status_code == 201
    response = register(api, username="NEWBIE")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "username_taken"


def test_weak_password_is_refused_by_django_validators(api):
    response = register(api, password="123456")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert "password" in response.json()["error"]["details"]


def test_future_birth_date_is_refused(api):
    response = register(api, birth_date=(timezone.localdate() + timedelta(days=1)).isoformat())
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("years_ago", "minor"),
    [(17, True), (18, False), (40, False)],
)
def test_birth_date_decides_minors(api, years_ago, minor):
    today = timezone.localdate()
    birth = date(today.year - years_ago, today.month, 1 if today.day > 1 else today.day)
    assert register(api, birth_date=birth.isoformat()).status_code == 201
    tokens = api.post(
        "/api/v1/auth/token", {"username": "newbie", "password": PASSWORD}, format="json"
    ).json()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert api.get("/api/v1/me").json()["is_minor"] is minor


def test_turning_eighteen_tomorrow_is_still_a_minor():
    today = timezone.localdate()
    tomorrow = today + timedelta(days=1)
    user = User(birth_date=date(tomorrow.year - 18, tomorrow.month, tomorrow.day))
    assert user.is_minor


def test_token_pair_and_refresh(api, user):
    response = api.post("/api/v1/auth/token", {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    tokens = response.json()
    assert set(tokens) == {"access", "refresh"}
    refreshed = api.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200 and set(refreshed.json()) == {"access", "refresh"}
    assert refreshed.json()["refresh"] != tokens["refresh"]
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    assert api.get("/api/v1/me").json()["username"] == "alice"


def test_a_refresh_token_works_once(api, user):
    first = api.post("/api/v1/auth/token", {"username": "alice", "password": PASSWORD}, format="json").json()
    second = api.post("/api/v1/auth/token/refresh", {"refresh": first["refresh"]}, format="json").json()
    reused = api.post("/api/v1/auth/token/refresh", {"refresh": first["refresh"]}, format="json")
    assert reused.status_code == 401 and reused.json()["error"]["code"] == "token_invalid"
    # The rotated token goes on working, once.
    third = api.post("/api/v1/auth/token/refresh", {"refresh": second["refresh"]}, format="json")
    assert third.status_code == 200


def test_logout_ends_the_session(api, user):
    tokens = api.post("/api/v1/auth/token", {"username": "alice", "password": PASSWORD}, format="json").json()
    other = api.post("/api/v1/auth/token", {"username": "alice", "password": PASSWORD}, format="json").json()
    assert api.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code == 204
    assert api.post("/api/v1/auth/logout", {"refresh": tokens["refresh"]}, format="json").status_code == 204
    ended = api.post("/api/v1/auth/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert ended.status_code == 401 and ended.json()["error"]["code"] == "token_invalid"
    # Another session of the same person is not touched.
    assert (
        api.post("/api/v1/auth/token/refresh", {"refresh": other["refresh"]}, format="json").status_code
        == 200
    )
    for bad in ("nonsense", tokens["access"]):
        refused = api.post("/api/v1/auth/logout", {"refresh": bad}, format="json")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_invalid"


def test_wrong_password_is_401(api, user):
    response = api.post("/api/v1/auth/token", {"username": "alice", "password": "nope"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_bad_refresh_token_is_401(api):
    response = api.post("/api/v1/auth/token/refresh", {"refresh": "nonsense"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_invalid"


def test_me_shape(auth_client, user):
    body = auth_client.get("/api/v1/me").json()
    assert body["id"] == str(user.pk)
    assert body["username"] == "alice"
    assert body["is_minor"] is False
    assert body["tier"] == "free"
    assert body["quota"] == {"daily_limit": 30, "used_today": 0}
    assert {"display_name", "bio"} <= set(body)


def test_patch_me_changes_profile_only(auth_client, user):
    response = auth_client.patch("/api/v1/me", {"display_name": "Al", "bio": "hi"}, format="json")
    assert response.status_code == 200
    assert response.json()["display_name"] == "Al"
    user.refresh_from_db()
    assert (user.display_name, user.bio) == ("Al", "hi")
    refused = auth_client.patch("/api/v1/me", {"tier": "pro"}, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == {"tier": ["Unknown field."]}
    user.refresh_from_db()
    assert user.tier == "free"


def test_delete_me_deletes_the_account_and_its_tokens_stop_working(auth_client, user):
    assert auth_client.delete("/api/v1/me").status_code == 204
    assert not User.objects.filter(pk=user.pk).exists()
    assert auth_client.get("/api/v1/me").status_code == 401


def test_user_profile_by_username(auth_client, make_user):
    bob = make_user("bob")
    response = auth_client.get("/api/v1/users/BOB")
    assert response.status_code == 200
    assert response.json()["id"] == str(bob.pk)
    assert auth_client.get("/api/v1/users/nobody").status_code == 404


def test_user_profile_requires_auth(api, make_user):
    make_user("bob")
    assert api.get("/api/v1/users/bob").status_code == 401


@pytest.mark.django_db
def test_deleting_the_account_deletes_the_files_of_its_posts(
    make_user, test_video, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    from social.services import create_post

    author = make_user("leaving")
    posts = [create_post(author=author, video=test_video, status=status) for status in ("draft", "published")]
    names = [name for post in posts for name in (post.video.name, post.poster.name)]
    assert all(default_storage.exists(name) for name in names)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_for(author).delete("/api/v1/me").status_code == 204
    assert not any(default_storage.exists(name) for name in names)
