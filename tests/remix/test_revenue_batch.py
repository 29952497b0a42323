"""POST /revenue/events/batch and the batch service: each event as a single one, in request order."""

import itertools
from collections import Counter
from dataclasses import replace

import pytest
from django.contrib.auth.models import Permission
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ApiError
from remix import ledger, services
from remix.api.serializers import MAX_BATCH_EVENTS
from remix.ip import LicenceUse
from remix.models import JournalEntry, Posting, RevenueEvent
from tests.conftest import client_for

BATCH = "/api/v1/revenue/events/batch"
SINGLE = "/api/v1/revenue/events"


@pytest.fixture
def world(make_user, make_post, make_holder, make_ip, staff):
    """A remix with a cameo owner and a licensed IP, a plain post, and a staff client."""
    creator, source_author, owner = make_user("b_creator"), make_user("b_source"), make_user("b_owner")
    holder = make_holder(make_user("b_studio"), name="Batch Pictures")
    ip = make_ip(holder, name="Batch Bunny", revenue_share_bps=1500)
    remix = make_post(creator, remix_of=make_post(source_author), cameo_owner_ids=[owner.pk])
    services.record_licences(
        post=remix,
        uses=[LicenceUse(ip.pk, ip.name, holder.pk, holder.name, ip.current_policy_id, 1, "alias", 1.0)],
    )
    return {"remix": remix, "plain": make_post(creator), "staff": client_for(staff), "creator": creator}


def ad(world, event_id, amount=1000, **overrides):
    body = {"event_id": event_id, "post_id": world["remix"].pk, "amount_minor": amount, "currency": "usd"}
    return body | {"kind": "ad"} | overrides


def refund(world, event_id, original, amount=1000, **overrides):
    return ad(world, event_id, amount, kind="refund", reverses=original) | overrides


def post_batch(client, events):
    return client.post(BATCH, {"events": events}, format="json")


def summary(results):
    return [(result["event_id"], result["status"], result.get("error", {}).get("code")) for result in results]


def test_a_mixed_batch_answers_each_event_in_request_order(world):
    staff = world["staff"]
    single = staff.post(SINGLE, ad(world, "single-1", 700), format="json").json()
    earlier = post_batch(staff, [ad(world, "earlier-1", 900)]).json()["results"][0]
    events = [
        ad(world, "new-1", 1001),
        ad(world, "single-1", 700),  # recorded singly before
        ad(world, "single-1", 701),
        ad(world, "new-1", 1001),  # a duplicate inside the batch: the first decides
        ad(world, "new-1", 1002),
        ad(world, "no-post", post_id=10**12),
        ad(world, "bad-currency", currency="XTS"),
        refund(world, "refund-unknown", "never-recorded"),
        {"event_id": "malformed", "post_id": "x", "amount_minor": 5},
        ["not", "an", "event"],
        refund(world, "refund-new-1", "new-1", 1001),  # its original came first in this batch
        refund(world, "refund-earlier-1", "earlier-1", -900),
        refund(world, "refund-new-2", "new-2", 50),  # before its original
        ad(world, "new-2", 50, post_id=world["plain"].pk),
        refund(world, "refund-new-1-again", "new-1", 1001),
        refund(world, "refund-mismatch", "new-2", 49),
        ad(world, "tip-1", 3, kind="tip", currency="EUR"),
    ]
    response = post_batch(staff, events)
    assert response.status_code == 200
    results = response.json()["results"]
    assert summary(results) == [
        ("new-1", 201, None),
        ("single-1", 200, None),
        ("single-1", 409, "event_id_conflict"),
        ("new-1", 200, None),
        ("new-1", 409, "event_id_conflict"),
        ("no-post", 400, "not_found"),
        ("bad-currency", 400, "invalid"),
        ("refund-unknown", 400, "not_found"),
        ("malformed", 400, "invalid"),
        (None, 400, "invalid"),
        ("refund-new-1", 201, None),
        ("refund-earlier-1", 201, None),
        ("refund-new-2", 400, "not_found"),
        ("new-2", 201, None),
        ("refund-new-1-again", 409, "already_refunded"),
        ("refund-mismatch", 400, "refund_mismatch"),
        ("tip-1", 201, None),
    ]
    assert results[1]["splits"] == single["splits"]
    assert results[3]["splits"] == results[0]["splits"]
    assert sum(split["amount_minor"] for split in results[0]["splits"]) == 1001
    assert [s["amount_minor"] for s in results[10]["splits"]] == [
        -s["amount_minor"] for s in results[0]["splits"]
    ]
    assert [s["amount_minor"] for s in results[11]["splits"]] == [
        -s["amount_minor"] for s in earlier["splits"]
    ]
    assert set(results[8]["error"]["details"]) == {"post_id", "currency", "kind"}
    assert "splits" not in results[2] and "error" not in results[0]
    recorded = {"single-1", "earlier-1", "new-1", "refund-new-1", "refund-earlier-1", "new-2", "tip-1"}
    assert set(RevenueEvent.objects.values_list("event_id", flat=True)) == recorded
    assert JournalEntry.objects.count() == len(recorded)
    books = ledger.check_books()
    assert books.balanced and books.currency_totals == {"USD": 0, "EUR": 0}
    check = staff.get("/api/v1/revenue/check").json()
    assert check["balanced"] and check["entries"] == len(recorded)


def test_replaying_a_batch_changes_nothing_and_returns_the_same_splits(world):
    events = [ad(world, f"replay-{n}", 100 + n) for n in range(5)] + [
        refund(world, "replay-r", "replay-0", 100)
    ]
    first = post_batch(world["staff"], events).json()["results"]
    postings = Posting.objects.count()
    again = post_batch(world["staff"], list(reversed(events))).json()["results"]
    assert [r["status"] for r in first] == [201] * 6 and [r["status"] for r in again] == [200] * 6
    assert list(reversed(again)) == [r | {"status": 200} for r in first]
    assert Posting.objects.count() == postings
    single = world["staff"].post(SINGLE, events[2], format="json")
    assert single.status_code == 200 and single.json()["splits"] == first[2]["splits"]


def test_a_refused_event_records_nothing_so_a_later_one_with_its_id_is_new(world):
    results = post_batch(
        world["staff"],
        [
            ad(world, "retry-1", post_id=10**12),
            {"event_id": "retry-1"},
            ad(world, "retry-1"),
            ad(world, "retry-1"),
        ],
    ).json()["results"]
    assert [r["status"] for r in results] == [400, 400, 201, 200]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"events": []},
        {"events": "ev-1"},
        {"events": [{"event_id": "x"}], "extra": 1},
        {"events": [{"event_id": f"x{n}"} for n in range(MAX_BATCH_EVENTS + 1)]},
    ],
)
def test_a_batch_that_is_no_list_of_1_to_1000_events_is_400(world, body):
    response = world["staff"].post(BATCH, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    assert not RevenueEvent.objects.exists()


def test_a_batch_is_json(world):
    response = world["staff"].post(BATCH, {"events": "x"}, format="multipart")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media"


def test_a_batch_of_1000_events_is_recorded(world):
    events = [ad(world, f"big-{n}", 1 + n) for n in range(MAX_BATCH_EVENTS)]
    results = post_batch(world["staff"], events).json()["results"]
    assert [r["event_id"] for r in results] == [e["event_id"] for e in events]
    assert {r["status"] for r in results} == {201}
    assert RevenueEvent.objects.count() == MAX_BATCH_EVENTS
    assert ledger.check_books().balanced


@pytest.fixture
def service_account(make_user):
    user = make_user("ad_server")
    user.user_permissions.add(
        Permission.objects.get(content_type__app_label="remix", codename="record_revenue_events")
    )
    return user


@pytest.mark.parametrize("path", [BATCH, SINGLE])
def test_who_may_record_events(world, api, service_account, path):
    event = ad(world, "who-1")
    body = {"events": [event]} if path == BATCH else event
    assert api.post(path, body, format="json").status_code == 401
    assert client_for(world["creator"]).post(path, body, format="json").status_code == 403
    assert not RevenueEvent.objects.exists()
    response = client_for(service_account).post(path, body, format="json")
    assert response.status_code == (200 if path == BATCH else 201)
    assert world["staff"].post(path, body, format="json").status_code == 200


def test_a_batch_costs_the_same_queries_whatever_its_length(world, django_assert_num_queries):
    staff = world["staff"]

    def mixed(tag, size):
        post_batch(staff, [ad(world, f"{tag}-old-0"), ad(world, f"{tag}-old-1")])
        new = [
            ad(world, f"{tag}-{n}", 100 + n, post_id=world[("remix", "plain")[n % 2]].pk) for n in range(size)
        ]
        refunds = [
            refund(world, f"{tag}-r{n}", f"{tag}-{n}", 100 + n, post_id=new[n]["post_id"]) for n in range(2)
        ]
        replays = [
            ad(world, f"{tag}-old-0"),
            ad(world, f"{tag}-old-1", 7),
            refund(world, f"{tag}-r-old", f"{tag}-old-1"),
        ]
        return new + refunds + replays + [ad(world, f"{tag}-gone", post_id=10**12)]

    # The JWT's user; the transaction's savepoint; the recorded events (replays, refund originals)
    # with their postings; the posts' split facts; the accounts; the new rows' ids; one statement
    # writing every event, entry and posting; the savepoint's release.
    for size in (3, 40):
        events = mixed(f"q{size}", size)
        with django_assert_num_queries(8):
            response = post_batch(staff, events)
        assert Counter(r["status"] for r in response.json()["results"]) == {
            201: size + 3,
            200: 1,
            409: 1,
            400: 1,
        }
    with django_assert_num_queries(4):  # only replays: the user, the savepoint, the read, the release
        post_batch(staff, [ad(world, "q3-old-0"), ad(world, "q40-0", 100)])
    assert ledger.check_books().balanced


def test_the_schema_documents_the_batch(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/revenue/events/batch"]["post"]
    assert {"200", "400", "401", "403", "413", "415"} <= set(operation["responses"])
    request_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    events = schema["components"]["schemas"][request_ref.rsplit("/", 1)[1]]["properties"]["events"]
    assert (events["minItems"], events["maxItems"]) == (1, MAX_BATCH_EVENTS)
    assert events["items"]["$ref"].endswith("/RevenueEventRequestRequest")
    response_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    results = schema["components"]["schemas"][response_ref.rsplit("/", 1)[1]]["properties"]["results"]
    result = schema["components"]["schemas"][results["items"]["$ref"].rsplit("/", 1)[1]]
    assert set(result["properties"]) == {"event_id", "status", "splits", "error"}
    error_ref = operation["responses"]["401"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref.endswith("/Error")


# ---- the batch against single events (hypothesis) ----

_runs = itertools.count(1)

EVENTS = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5),  # which event id
        st.sampled_from(["ad", "tip", "refund"]),
        st.integers(min_value=-1, max_value=10**9),  # amount (0 and -1 are refused but for refunds)
        st.sampled_from(["remix", "plain", "remix", "missing"]),
        st.sampled_from(["USD", "EUR", "usd", "XTS"]),
        st.integers(min_value=1, max_value=4),  # a refund reverses the event sent this many before
        # "repeat": the last event of this id and kind again; "mirror": a refund of what its original was
        st.sampled_from(["own", "repeat", "mirror", "mirror"]),
    ),
    min_size=1,
    max_size=12,
)


def event_requests(events, *, tag, posts) -> list:
    requests, last_by_id = [], {}
    for which, kind, amount, post, currency, back, how in events:
        original = requests[-back] if back <= len(requests) else None
        request = ledger.EventRequest(
            event_id=f"{tag}-{which}" + ("-refund" if kind == "refund" else ""),
            post_id=posts[post],
            amount_minor=amount,
            currency=currency,
            kind=kind,
            reverses_event_id=(original.event_id if original else f"{tag}-unknown")
            if kind == "refund"
            else None,
        )
        if how == "repeat" and (which, kind) in last_by_id:
            request = last_by_id[(which, kind)]
        elif how == "mirror" and kind == "refund" and original:
            request = replace(
                request,
                post_id=original.post_id,
                currency=original.currency,
                amount_minor=original.amount_minor,
            )
        last_by_id[(which, kind)] = request
        requests.append(request)
    return requests


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=EVENTS)
def test_a_batch_records_what_single_events_record(world, events):
    """The same events, under fresh ids, recorded one by one and then as one batch: the same
    answers, splits and movements of every balance."""
    posts = {"remix": world["remix"].pk, "plain": world["plain"].pk, "missing": 10**12}
    single_tag, batch_tag = f"s{next(_runs)}", f"b{next(_runs)}"

    def outcome(result):
        if isinstance(result, ApiError):
            return (result.status_code, result.code)
        return (result.created, [(s.party, s.amount_minor) for s in result.splits])

    before = _balances()
    singles = []
    for request in event_requests(events, tag=single_tag, posts=posts):
        try:
            singles.append(outcome(ledger.record_revenue_event(**vars(request))))
        except ApiError as refusal:
            singles.append(outcome(refusal))
    after_singles = _balances()
    batch = [
        outcome(result)
        for result in ledger.record_revenue_events(events=event_requests(events, tag=batch_tag, posts=posts))
    ]
    after_batch = _balances()
    assert batch == singles
    accounts = set(before) | set(after_singles) | set(after_batch)
    assert {account: after_singles.get(account, 0) - before.get(account, 0) for account in accounts} == {
        account: after_batch.get(account, 0) - after_singles.get(account, 0) for account in accounts
    }
    assert ledger.check_books().balanced


def _balances():
    rows = Posting.objects.values("account_id").annotate(total=Sum("amount_minor"))
    return {row["account_id"]: row["total"] for row in rows}
