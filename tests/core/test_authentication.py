"""Bearer tokens: verified once per process, yet expiry, deactivation and deletion apply at once."""

import time
from datetime import timedelta

import pytest
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken

from core.authentication import checked_tokens, user_by_id

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _forget_checked_tokens():
    checked_tokens.clear()
    yield
    checked_tokens.clear()


def _client(token) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_a_checked_token_is_refused_once_it_expires(make_user):
    token = AccessToken.for_user(make_user("shortlived"))
    token.set_exp(lifetime=timedelta(seconds=2))
    client = _client(token)
    assert client.get("/api/v1/me").status_code == 200
    assert checked_tokens.get(str(token).encode()) is not None
    time.sleep(2.1)
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] in {"token_not_valid", "token_invalid", "not_authenticated"}


def test_a_forged_token_is_never_remembered(make_user):
    token = str(AccessToken.for_user(make_user("forger")))
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert _client(forged).get("/api/v1/me").status_code == 401
    assert checked_tokens.get(forged.encode()) is None


def test_deactivation_and_deletion_apply_to_a_checked_token(make_user):
    user = make_user("leaving")
    client = _client(AccessToken.for_user(user))
    assert client.get("/api/v1/me").status_code == 200
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert client.get("/api/v1/me").status_code == 401
    user.delete()
    assert client.get("/api/v1/me").status_code == 401


def test_user_by_id_reads_every_field(make_user):
    user = make_user("complete", display_name="Complete", bio="all fields")
    loaded = user_by_id(user.pk)
    for field in type(user)._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(user, field.attname), field.name
    assert user_by_id(10**12) is None
    assert user_by_id("not-a-number") is None
