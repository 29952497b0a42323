import itertools
from datetime import date

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from social.feed import forget_kept_posts, recent_rankings
from social.services import register_user

_usernames = itertools.count(1)
PASSWORD = "a-Strong-passw0rd!"


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    # The for_you pools and recent rankings are kept in the process, outside the cache.
    forget_kept_posts()
    recent_rankings.clear()
    yield


@pytest.fixture
def api():
    return APIClient()


@pytest.fixture
def make_user(db):
    def make(username: str | None = None, *, birth_date: date = date(1990, 1, 1), **extra):
        name = username or f"user{next(_usernames)}"
        user = register_user(username=name, password=PASSWORD, birth_date=birth_date)
        for key, value in extra.items():
            setattr(user, key, value)
        if extra:
            user.save()
        return user

    return make


@pytest.fixture
def user(make_user):
    return make_user("alice")


def client_for(user) -> APIClient:
    from rest_framework_simplejwt.tokens import RefreshToken

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {RefreshToken.for_user(user).access_token}")
    return client


@pytest.fixture
def auth_client(user):
    return client_for(user)
