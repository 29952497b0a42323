"""Revenue events, earnings, statements and the books check through HTTP."""

import csv
import io

import pytest

from remix import services
from remix.ip import LicenceUse
from tests.conftest import client_for


@pytest.fixture
def setup(make_user, make_post, make_holder, make_ip, staff):
    creator, source_author = make_user("earner"), make_user("origin")
    studio_admin = make_user("studio_boss")
    holder = make_holder(studio_admin, name="Paper Moon")
    ip = make_ip(holder, name="Moon Rabbit", revenue_share_bps=2000)
    post = make_post(creator, remix_of=make_post(source_author))
    services.record_licences(
        post=post,
        uses=[LicenceUse(ip.pk, ip.name, holder.pk, holder.name, ip.current_policy_id, 1, "alias", 1.0)],
    )
    return {
        "creator": creator,
        "source_author": source_author,
        "studio_admin": studio_admin,
        "holder": holder,
        "ip": ip,
        "post": post,
        "staff": client_for(staff),
    }


def event(setup, **overrides):
    body = {
        "event_id": "ev-1",
        "post_id": setup["post"].pk,
        "amount_minor": 1001,
        "currency": "jpy",
        "kind": "tip",
    } | overrides
    return setup["staff"].post("/api/v1/revenue/events", body, format="json")


def test_an_event_is_split_and_a_replay_returns_the_same(setup):
    first = event(setup)
    assert first.status_code == 201
    splits = first.json()["splits"]
    assert sum(split["amount_minor"] for split in splits) == 1001
    assert splits[0] == {
        "party": {"type": "platform", "id": None},
        "amount_minor": 300,
    }  # 300.3 floored; the .4 of the creator wins the unit
    assert splits[1]["party"] == {
        "type": "rights_holder",
        "id": str(setup["holder"].pk),
        "ip_id": str(setup["ip"].pk),
    }
    assert [s["party"]["type"] for s in splits] == ["platform", "rights_holder", "remix_source", "creator"]
    again = event(setup)
    assert again.status_code == 200 and again.json() == first.json()
    other = event(setup, amount_minor=1002)
    assert other.status_code == 409 and other.json()["error"]["code"] == "event_id_conflict"


def test_refund_through_http(setup):
    event(setup)
    refund = event(setup, event_id="ev-1-refund", kind="refund", reverses="ev-1")
    assert refund.status_code == 201
    assert sum(split["amount_minor"] for split in refund.json()["splits"]) == -1001
    check = setup["staff"].get("/api/v1/revenue/check").json()
    assert check["balanced"] and check["currency_totals"] == {"JPY": 0} and check["entries"] == 2


@pytest.mark.parametrize(
    ("overrides", "status", "code"),
    [
        ({"amount_minor": 0}, 400, "invalid"),
        ({"currency": "EURO"}, 400, "invalid"),
        ({"currency": "ABC"}, 400, "invalid"),
        ({"currency": "xts"}, 400, "invalid"),
        ({"currency": "XAU"}, 400, "invalid"),
        ({"kind": "gift"}, 400, "invalid"),
        ({"post_id": 10**9}, 404, "not_found"),
        ({"kind": "refund"}, 422, "invalid_refund"),
        ({"kind": "refund", "reverses": "missing"}, 404, "not_found"),
        ({"kind": "refund", "reverses": "ev-0", "amount_minor": 0}, 400, "invalid"),
        ({"surprise": 1}, 400, "invalid"),
    ],
)
def test_bad_events_are_refused(setup, overrides, status, code):
    event(setup, event_id="ev-0")
    response = event(setup, **overrides)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_only_staff_post_events_or_check_the_books(setup, api):
    body = {"event_id": "x", "post_id": setup["post"].pk, "amount_minor": 5, "currency": "USD", "kind": "ad"}
    creator = client_for(setup["creator"])
    assert creator.post("/api/v1/revenue/events", body, format="json").status_code == 403
    assert api.post("/api/v1/revenue/events", body, format="json").status_code == 401
    assert creator.get("/api/v1/revenue/check").status_code == 403


def test_my_earnings_over_a_period(setup):
    event(setup, event_id="a", amount_minor=10_000, currency="USD", kind="ad")
    event(setup, event_id="b", amount_minor=5_000, currency="USD", kind="credit")
    earnings = client_for(setup["creator"]).get("/api/v1/me/earnings").json()
    assert earnings["totals"] == [{"currency": "USD", "amount_minor": 4000 + 2000}]
    assert earnings["lines"][0]["role"] == "creator" and earnings["lines"][0]["events"] == 2
    source = client_for(setup["source_author"]).get("/api/v1/me/earnings").json()
    assert source["totals"] == [{"currency": "USD", "amount_minor": 1500}]
    empty = client_for(setup["creator"]).get("/api/v1/me/earnings?from=2020-01-01&to=2020-02-01").json()
    assert empty["totals"] == [] and empty["from"].startswith("2020-01-01")
    bad = client_for(setup["creator"]).get("/api/v1/me/earnings?from=yesterday")
    assert bad.status_code == 400 and "from" in bad.json()["error"]["details"]
    assert (
        client_for(setup["creator"]).get("/api/v1/me/earnings?from=2021-01-02&to=2021-01-01").status_code
        == 400
    )


def test_statements_are_for_members_in_json_and_csv(setup):
    event(setup, event_id="a", amount_minor=10_000, currency="USD", kind="ad")
    event(setup, event_id="b", amount_minor=999, currency="EUR", kind="ad")
    url = f"/api/v1/rights-holders/{setup['holder'].pk}/statement"
    assert client_for(setup["creator"]).get(url).status_code == 403
    assert client_for(setup["creator"]).get("/api/v1/rights-holders/999999/statement").status_code == 404
    statement = client_for(setup["studio_admin"]).get(url).json()
    assert statement["totals"] == [
        {"currency": "EUR", "amount_minor": 200},
        {"currency": "USD", "amount_minor": 2000},
    ]
    assert {line["ip_name"] for line in statement["lines"]} == {"Moon Rabbit"}
    response = client_for(setup["studio_admin"]).get(url + "?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [(row["currency"], row["amount_minor"], row["post_id"]) for row in rows] == [
        ("EUR", "200", str(setup["post"].pk)),
        ("USD", "2000", str(setup["post"].pk)),
    ]


@pytest.mark.parametrize(
    "query",
    [
        "to=0001-01-01",
        "from=2021-02-30",
        "to=2021-01-01T25:00:00",
        "from=%00",
        "from=0001-01-01T00:00:00%2B05:00",  # before year 1 in UTC
    ],
)
def test_odd_periods_are_400(setup, query):
    response = client_for(setup["creator"]).get(f"/api/v1/me/earnings?{query}")
    assert response.status_code == 400


def test_a_period_with_any_valid_offset_is_read_in_utc(setup):
    # +23:59 is a valid ISO 8601 offset that PostgreSQL would refuse to parse.
    response = client_for(setup["creator"]).get("/api/v1/me/earnings?from=2021-01-02T00:00:00%2B23:59")
    assert response.status_code == 200
    assert response.json()["from"] == "2021-01-01T00:01:00Z"
