"""A creator watches a job over the websocket, uses a licensed character, and the rights holder is
paid from the post's revenue."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from config.asgi import application
from generation import services, worker
from generation.models import Generation, GenerationStatus
from social.models import Post
from tests.conftest import client_for
from tests.generation.conftest import tiny_renderer  # noqa: F401 - a fixture used below
from tests.remix.conftest import make_holder, make_ip  # noqa: F401 - fixtures used below

BODY = {"duration_s": 2, "aspect_ratio": "1:1", "seed": 3}


@pytest.fixture(autouse=True)
def _run_jobs_in_process(monkeypatch):
    monkeypatch.setattr(services, "enqueue", lambda job_id: None)


@pytest.mark.django_db(transaction=True)
async def test_progress_and_completion_arrive_over_the_websocket(make_user, tiny_renderer):  # noqa: F811
    creator = await sync_to_async(make_user)("watcher")
    communicator = WebsocketCommunicator(application, f"/ws/events?token={AccessToken.for_user(creator)}")
    assert (await communicator.connect())[0]

    def request_and_run():
        response = client_for(creator).post(
            "/api/v1/generations", {**BODY, "prompt": "a lantern floating over a river"}, format="json"
        )
        assert response.status_code == 202, response.content
        return worker.execute_generation(int(response.json()["id"]), renderer=tiny_renderer)

    job = await sync_to_async(request_and_run)()
    assert job.status == GenerationStatus.SUCCEEDED
    events = []
    while True:
        event = await communicator.receive_json_from(timeout=30)
        events.append(event)
        if event["type"] == "notification":
            break
    kinds = [event["type"] for event in events]
    assert "generation.progress" in kinds
    finished = next(event for event in events if event["type"] == "generation.finished")
    assert finished == {
        "type": "generation.finished",
        "id": str(job.pk),
        "status": "succeeded",
        "post_id": str(job.post_id),
    }
    progress = [event["progress"] for event in events if event["type"] == "generation.progress"]
    assert progress == sorted(progress) and 0 < progress[-1] <= 1
    assert events[-1]["kind"] == "generation_finished"
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
def test_licensed_character_is_recorded_and_paid(make_user, make_holder, make_ip, tiny_renderer):  # noqa: F811
    studio_admin, creator, staff = make_user("studio"), make_user("maker"), make_user("ops", is_staff=True)
    holder = make_holder(studio_admin, name="Moonlight Studio")
    mochi = make_ip(
        holder, name="Mochi", aliases=["モチ"], description="a round white cat spirit", revenue_share_bps=1500
    )
    closed = make_ip(holder, name="Captain Comet", status="opted_out", description="a retro space captain")
    client = client_for(creator)

    refused = client.post(
        "/api/v1/generations", {**BODY, "prompt": "Captain Comet lands on Mars"}, format="json"
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "ip_not_licensed"
    assert refused.json()["error"]["details"]["ip"] == str(closed.pk)

    accepted = client.post("/api/v1/generations", {**BODY, "prompt": "モチ naps in a sunbeam"}, format="json")
    assert accepted.status_code == 202, accepted.content
    job = worker.execute_generation(int(accepted.json()["id"]), renderer=tiny_renderer)
    assert job.status == GenerationStatus.SUCCEEDED
    post = Post.objects.get(pk=job.post_id)
    shown = client.get(f"/api/v1/posts/{post.pk}").json()
    assert [item["id"] for item in shown["ip"]] == [str(mochi.pk)]
    assert client.post(f"/api/v1/posts/{post.pk}/publish").status_code == 200

    event = {
        "event_id": "ad-1",
        "post_id": str(post.pk),
        "amount_minor": 10_000,
        "currency": "USD",
        "kind": "ad",
    }
    paid = client_for(staff).post("/api/v1/revenue/events", event, format="json")
    assert paid.status_code == 201, paid.content
    by_type = {}
    for split in paid.json()["splits"]:
        by_type.setdefault(split["party"]["type"], []).append((split["party"]["id"], split["amount_minor"]))
    assert [amount for _, amount in by_type["platform"]] == [3000]
    assert by_type["rights_holder"] == [(str(holder.pk), 1500)]
    assert by_type["creator"] == [(str(creator.pk), 5500)]
    assert sum(split["amount_minor"] for split in paid.json()["splits"]) == 10_000
    assert client_for(staff).post("/api/v1/revenue/events", event, format="json").status_code == 200
    assert Generation.objects.filter(user=creator).count() == 1
