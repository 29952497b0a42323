"""Sign-in limits hold against a client that writes its own X-Forwarded-For, per username across
addresses, and on the admin's sign-in form."""

import contextlib

import pytest
from django.core.cache import cache

from social.api.throttles import AuthRateThrottle, UsernameRateThrottle

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def rates(**changed):
    originals = {cls: cls.THROTTLE_RATES for cls in (AuthRateThrottle, UsernameRateThrottle)}
    for cls in originals:
        cls.THROTTLE_RATES = {**cls.THROTTLE_RATES, **changed}
    cache.clear()
    try:
        yield
    finally:
        for cls, original in originals.items():
            cls.THROTTLE_RATES = original


def sign_in(api, username="victim", forwarded_for=None):
    headers = {} if forwarded_for is None else {"HTTP_X_FORWARDED_FOR": forwarded_for}
    return api.post(
        "/api/v1/auth/token", {"username": username, "password": "guess"}, format="json", **headers
    )


def test_a_new_forwarded_for_header_per_attempt_buys_no_new_attempts(api):
    with rates(auth="3/min", auth_username="1000/min"):
        statuses = [sign_in(api, f"user{n}", forwarded_for=f"10.0.0.{n}").status_code for n in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


def test_behind_a_trusted_proxy_each_client_address_has_its_own_limit(api, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    with rates(auth="2/min", auth_username="1000/min"):
        first = [sign_in(api, "a", forwarded_for="spoofed, 192.0.2.1").status_code for _ in range(3)]
        # The proxy appends the address it saw; what the client wrote before it changes nothing.
        spoofed = sign_in(api, "a", forwarded_for="198.51.100.9, 192.0.2.1").status_code
        other = sign_in(api, "a", forwarded_for="192.0.2.2").status_code
    assert first == [401, 401, 429] and spoofed == 429 and other == 401


def test_one_username_is_limited_from_any_number_of_addresses(api, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    with rates(auth="1000/min", auth_username="3/min"):
        statuses = [sign_in(api, "Victim", forwarded_for=f"192.0.2.{n}").status_code for n in range(4)]
        other_user = sign_in(api, "someone", forwarded_for="192.0.2.99").status_code
        same_user_other_case = sign_in(api, " VICTIM ", forwarded_for="192.0.2.98").status_code
        response = sign_in(api, "victim", forwarded_for="192.0.2.97")
    assert statuses == [401, 401, 401, 429] and other_user == 401 and same_user_other_case == 429
    assert response.json()["error"]["code"] == "rate_limited" and int(response["Retry-After"]) >= 1


def test_the_admin_sign_in_form_is_limited_too(client):
    with rates(auth="3/min", auth_username="1000/min"):
        statuses = [
            client.post("/admin/login/", {"username": f"staff{n}", "password": "guess"}).status_code
            for n in range(4)
        ]
        response = client.post("/admin/login/", {"username": "staff", "password": "guess"})
    assert statuses == [200, 200, 200, 429]
    assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert client.get("/admin/login/").status_code == 200  # reading the form is not an attempt


def test_follows_comments_and_cameo_requests_are_limited_per_user_reads_are_not(make_user, test_video):
    from core.throttles import WriteRateThrottle
    from social.services import create_post
    from tests.conftest import client_for

    original = WriteRateThrottle.THROTTLE_RATES
    WriteRateThrottle.THROTTLE_RATES = {**original, "follow": "3/min", "comment": "2/min"}
    cache.clear()
    try:
        fan, star = make_user("fan"), make_user("star")
        client = client_for(fan)
        follows = [client.put(f"/api/v1/users/{star.username}/follow").status_code for _ in range(4)]
        post = create_post(author=star, video=test_video, status="published")
        comments = [
            client.post(f"/api/v1/posts/{post.pk}/comments", {"text": "hi"}, format="json").status_code
            for _ in range(3)
        ]
        reads = {client.get(f"/api/v1/posts/{post.pk}/comments").status_code for _ in range(5)}
        other = client_for(make_user("other")).put(f"/api/v1/users/{star.username}/follow").status_code
    finally:
        WriteRateThrottle.THROTTLE_RATES = original
    assert follows == [204, 204, 204, 429]
    assert comments == [201, 201, 429] and reads == {200}
    assert other == 204  # per user
