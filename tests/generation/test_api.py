import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from generation.models import Generation, GenerationStatus
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

BODY = {"prompt": "a paper boat sailing down a rainy street", "duration_s": 4, "aspect_ratio": "9:16"}


def test_request_is_accepted_and_queued(auth_client, user):
    response = auth_client.post("/api/v1/generations", BODY, format="json")
    assert response.status_code == 202, response.json()
    job = response.json()
    assert job["status"] == "queued" and job["progress"] == 0
    assert job["mode"] == "create" and job["cameo_ids"] == [] and job["post_id"] is None
    assert job["error"] is None and isinstance(job["id"], str) and isinstance(job["seed"], int)
    assert Generation.objects.get(pk=job["id"]).user_id == user.pk


@pytest.mark.parametrize(
    "body",
    [
        {**BODY, "prompt": ""},
        {**BODY, "prompt": "x" * 2001},
        {**BODY, "aspect_ratio": "4:3"},
        {**BODY, "duration_s": 0},
        {**BODY, "duration_s": 999},
        {**BODY, "surprise": 1},
        {**BODY, "mode": "remix"},
    ],
)
def test_invalid_requests_are_400(auth_client, body):
    response = auth_client.post("/api/v1/generations", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not Generation.objects.exists()


def test_needs_authentication(api):
    assert api.post("/api/v1/generations", BODY, format="json").status_code == 401


def test_idempotency_key_returns_the_same_job(auth_client):
    first = auth_client.post("/api/v1/generations", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = auth_client.post("/api/v1/generations", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    other = auth_client.post("/api/v1/generations", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert first.json()["id"] == again.json()["id"] != other.json()["id"]
    assert Generation.objects.count() == 2


def test_an_idempotency_key_too_long_to_store_is_refused_not_cut(auth_client):
    prefix = "k" * 128
    first = auth_client.post("/api/v1/generations", BODY, format="json", HTTP_IDEMPOTENCY_KEY=prefix)
    longer = auth_client.post("/api/v1/generations", BODY, format="json", HTTP_IDEMPOTENCY_KEY=prefix + "-2")
    assert first.status_code == 202
    assert longer.status_code == 400 and longer.json()["error"]["code"] == "invalid"
    assert "Idempotency-Key" in longer.json()["error"]["details"]
    assert Generation.objects.count() == 1


def test_same_key_from_another_user_is_another_job(auth_client, make_user):
    first = auth_client.post("/api/v1/generations", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k")
    bob = client_for(make_user("bob"))
    second = bob.post("/api/v1/generations", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert first.json()["id"] != second.json()["id"]


def test_in_flight_cap_is_429_with_retry_after(auth_client, settings):
    settings.GENERATION_MAX_IN_FLIGHT = {"free": 2, "pro": 5}
    for _ in range(2):
        assert auth_client.post("/api/v1/generations", BODY, format="json").status_code == 202
    refused = auth_client.post("/api/v1/generations", BODY, format="json")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert int(refused["Retry-After"]) > 0
    assert refused.json()["error"]["details"]["reason"] == "in_flight"


def test_daily_quota_per_tier_is_429_until_midnight(auth_client, user, settings):
    settings.GENERATION_DAILY_LIMITS = {"free": 2, "pro": 3}
    settings.GENERATION_MAX_IN_FLIGHT = {"free": 10, "pro": 10}
    for _ in range(2):
        assert auth_client.post("/api/v1/generations", BODY, format="json").status_code == 202
    refused = auth_client.post("/api/v1/generations", BODY, format="json")
    assert refused.status_code == 429 and refused.json()["error"]["details"]["reason"] == "daily"
    assert 0 < int(refused["Retry-After"]) <= 86401
    me = auth_client.get("/api/v1/me").json()
    assert me["quota"] == {"daily_limit": 2, "used_today": 2}
    user.tier = "pro"
    user.save()
    assert auth_client.post("/api/v1/generations", BODY, format="json").status_code == 202


def test_yesterdays_and_failed_jobs_do_not_count(auth_client, user, settings):
    settings.GENERATION_DAILY_LIMITS = {"free": 1, "pro": 1}
    auth_client.post("/api/v1/generations", BODY, format="json")
    Generation.objects.update(created_at=timezone.now() - dt.timedelta(days=1))
    auth_client.post("/api/v1/generations", BODY, format="json")
    Generation.objects.filter(created_at__date=timezone.now().date()).update(status="failed")
    assert auth_client.post("/api/v1/generations", BODY, format="json").status_code == 202


@pytest.mark.parametrize(
    "prompt, rule",
    [
        ("Taylor Swift dancing in the rain", "protected_likeness"),
        ("president 特朗普 giving a speech", "protected_likeness"),
        ("a nude figure on a beach", "sexual_content"),
    ],
)
def test_moderation_refuses_before_anything_is_queued(auth_client, prompt, rule):
    response = auth_client.post("/api/v1/generations", {**BODY, "prompt": prompt}, format="json")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "prompt_rejected"
    assert response.json()["error"]["details"]["rule"] == rule
    assert not Generation.objects.exists()


def test_unknown_cameo_is_403_cameo_not_permitted(auth_client):
    response = auth_client.post("/api/v1/generations", {**BODY, "cameo_ids": ["999999"]}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "cameo_not_permitted"


def test_remix_of_an_invisible_post_is_404(auth_client):
    response = auth_client.post(
        "/api/v1/generations", {**BODY, "remix_of": "424242", "mode": "remix"}, format="json"
    )
    assert response.status_code == 404


def test_owner_reads_and_cancels_others_get_404(auth_client, make_user):
    job_id = auth_client.post("/api/v1/generations", BODY, format="json").json()["id"]
    stranger = client_for(make_user("mallory"))
    assert stranger.get(f"/api/v1/generations/{job_id}").status_code == 404
    assert stranger.post(f"/api/v1/generations/{job_id}/cancel").status_code == 404
    assert auth_client.get(f"/api/v1/generations/{job_id}").json()["status"] == "queued"
    cancelled = auth_client.post(f"/api/v1/generations/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["error"]["code"] == "cancelled"
    assert auth_client.post(f"/api/v1/generations/{job_id}/cancel").status_code == 200


def test_cancelling_a_finished_job_is_409(auth_client):
    job_id = auth_client.post("/api/v1/generations", BODY, format="json").json()["id"]
    Generation.objects.filter(pk=job_id).update(status=GenerationStatus.SUCCEEDED)
    response = auth_client.post(f"/api/v1/generations/{job_id}/cancel")
    assert response.status_code == 409 and response.json()["error"]["code"] == "generation_finished"


def test_list_is_newest_first_paged_and_pins_its_queries(auth_client, user, make_user, settings):
    settings.GENERATION_MAX_IN_FLIGHT = {"free": 100, "pro": 100}
    for index in range(7):
        created = auth_client.post(
            "/api/v1/generations", {**BODY, "prompt": f"a kite over the hills, take {index}"}, format="json"
        )
        assert created.status_code == 202, created.json()
    client_for(make_user("other")).post("/api/v1/generations", BODY, format="json")
    assert Generation.objects.filter(user=user).count() == 7
    seen, cursor = [], None
    counts = []
    while True:
        url = "/api/v1/generations?limit=3" + (f"&cursor={cursor}" if cursor else "")
        with CaptureQueriesContext(connection) as queries:
            page = auth_client.get(url).json()
        counts.append(len(queries))
        seen += [item["prompt"] for item in page["results"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"a kite over the hills, take {index}" for index in reversed(range(7))]
    with CaptureQueriesContext(connection) as big:
        assert len(auth_client.get("/api/v1/generations?limit=50").json()["results"]) == 7
    assert len(big) == counts[0] == counts[1]


def test_generations_are_in_the_openapi_schema(api):
    schema = api.get("/api/schema/?format=json").json()
    for path in [
        "/api/v1/generations",
        "/api/v1/generations/{generation_id}",
        "/api/v1/generations/{generation_id}/cancel",
        "/api/v1/posts/{post_id}/provenance",
        "/api/v1/provenance/verify",
    ]:
        assert path in schema["paths"], path
