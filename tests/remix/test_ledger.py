"""The ledger through its service: entries, idempotency, refunds, and what the database enforces."""

import itertools
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.utils import DatabaseError
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import ApiError
from remix import ledger, services
from remix.ip import LicenceUse
from remix.models import AccountOwner, JournalEntry, Posting, RevenueEvent

_ids = itertools.count(1)


def new_event_id():
    return f"evt-{next(_ids)}"


@pytest.fixture
def remix_post(make_user, make_post, make_holder, make_ip):
    """A post by `creator` remixing `source_author`'s post, with two cameo owners and a licensed IP."""
    creator = make_user("creator")
    source_author = make_user("source_author")
    owners = [make_user("owner_a"), make_user("owner_b")]
    holder = make_holder(make_user("studio_admin"))
    ip = make_ip(holder, name="Mochi", revenue_share_bps=1500)
    source = make_post(source_author)
    post = make_post(creator, remix_of=source, cameo_owner_ids=[owners[0].pk, owners[1].pk, creator.pk])
    use = LicenceUse(ip.pk, ip.name, holder.pk, holder.name, ip.current_policy_id, 1, "alias", 1.0)
    services.record_licences(post=post, uses=[use])
    return {
        "post": post,
        "creator": creator,
        "source_author": source_author,
        "owners": owners,
        "holder": holder,
        "ip": ip,
    }


def record(post, amount=10_000, **extra):
    arguments = {
        "event_id": new_event_id(),
        "post_id": post.pk,
        "amount_minor": amount,
        "currency": "USD",
        "kind": "ad",
    }
    return ledger.record_revenue_event(**(arguments | extra))


def test_an_event_is_one_balanced_entry_with_the_splits_of_api_md(remix_post):
    recorded = record(remix_post["post"])
    parties = [(s.party.type, s.party.id, s.amount_minor) for s in recorded.splits]
    owner_a, owner_b = remix_post["owners"]
    assert parties == [
        ("platform", None, 3000),
        ("rights_holder", remix_post["holder"].pk, 1500),
        ("cameo_owner", owner_a.pk, 500),
        ("cameo_owner", owner_b.pk, 500),
        ("remix_source", remix_post["source_author"].pk, 1000),
        ("creator", remix_post["creator"].pk, 3500),
    ]
    postings = list(Posting.objects.filter(entry__event=recorded.event).order_by("position"))
    assert sum(p.amount_minor for p in postings) == 0
    assert postings[0].role == "source" and postings[0].amount_minor == -10_000
    assert ledger.party_balance(ledger.Party("creator", remix_post["creator"].pk), "USD") == 3500
    assert ledger.balances(owner_type=AccountOwner.EXTERNAL)["USD"] == -10_000


def test_the_licence_share_is_the_one_of_the_recorded_policy_version(remix_post):
    services.update_ip(actor=None, ip_id=remix_post["ip"].pk, policy={"revenue_share_bps": 4000})
    recorded = record(remix_post["post"])
    assert [s.amount_minor for s in recorded.splits if s.party.type == "rights_holder"] == [1500]


def test_a_replay_changes_nothing_and_returns_the_same_splits(remix_post):
    first = record(remix_post["post"], event_id="tip-1", kind="tip")
    again = record(remix_post["post"], event_id="tip-1", kind="tip")
    assert first.created and not again.created
    assert again.splits == first.splits
    assert JournalEntry.objects.count() == 1


@pytest.mark.parametrize("change", [{"amount_minor": 9999}, {"currency": "EUR"}, {"kind": "credit"}])
def test_the_same_event_id_with_other_content_is_a_conflict(remix_post, change):
    record(remix_post["post"], event_id="ad-1")
    with pytest.raises(ApiError) as refused:
        record(remix_post["post"], event_id="ad-1", **change)
    assert refused.value.status_code == 409
    assert refused.value.code == "event_id_conflict"


def test_a_refund_mirrors_the_original_and_restores_every_balance(remix_post):
    post = remix_post["post"]
    original = record(post, amount=777)
    refund = record(post, amount=777, kind="refund", reverses_event_id=original.event.event_id)
    assert [s.amount_minor for s in refund.splits] == [-s.amount_minor for s in original.splits]
    assert refund.event.amount_minor == -777
    for account_id in Posting.objects.values_list("account_id", flat=True).distinct():
        assert sum(Posting.objects.filter(account_id=account_id).values_list("amount_minor", flat=True)) == 0


def test_a_refund_must_match_and_happens_once(remix_post):
    post = remix_post["post"]
    original = record(post, amount=500)
    with pytest.raises(ApiError) as mismatch:
        record(post, amount=499, kind="refund", reverses_event_id=original.event.event_id)
    assert (mismatch.value.status_code, mismatch.value.code) == (422, "refund_mismatch")
    record(post, amount=500, kind="refund", reverses_event_id=original.event.event_id)
    with pytest.raises(ApiError) as twice:
        record(post, amount=500, kind="refund", reverses_event_id=original.event.event_id)
    assert (twice.value.status_code, twice.value.code) == (409, "already_refunded")
    with pytest.raises(ApiError) as unknown:
        record(post, amount=500, kind="refund", reverses_event_id="nope")
    assert unknown.value.status_code == 404
    with pytest.raises(ApiError) as not_refund:
        record(post, amount=500, kind="tip", reverses_event_id=original.event.event_id)
    assert not_refund.value.code == "invalid_refund"


def test_an_event_for_an_unknown_post_is_404_and_writes_nothing(db):
    with pytest.raises(ApiError) as missing:
        ledger.record_revenue_event(event_id="x", post_id=999999, amount_minor=5, currency="USD", kind="ad")
    assert missing.value.status_code == 404
    assert not RevenueEvent.objects.exists()


def test_the_database_refuses_an_unbalanced_entry(remix_post):
    recorded = record(remix_post["post"])
    account = Posting.objects.filter(entry__event=recorded.event).first().account
    event = RevenueEvent.objects.create(
        event_id="manual", post_id=1, amount_minor=5, currency="USD", kind="ad"
    )
    entry = JournalEntry.objects.create(event=event)
    with pytest.raises(IntegrityError, match="does not balance"), transaction.atomic():
        Posting.objects.create(
            entry=entry,
            account=account,
            amount_minor=5,
            currency="USD",
            role="creator",
            position=0,
            post_id=1,
        )
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def test_postings_are_append_only(remix_post):
    recorded = record(remix_post["post"])
    posting = Posting.objects.filter(entry__event=recorded.event).first()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Posting.objects.filter(pk=posting.pk).update(amount_minor=0)
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Posting.objects.filter(pk=posting.pk).delete()


def test_the_books_check_sees_balanced_books(remix_post):
    original = record(remix_post["post"], amount=12_345)
    record(remix_post["post"], amount=12_345, kind="refund", reverses_event_id=original.event.event_id)
    record(remix_post["post"], amount=3, currency="EUR")
    result = ledger.check_books()
    assert result.balanced
    assert result.entries == 3
    assert result.currency_totals == {"USD": 0, "EUR": 0}


def test_statement_groups_by_ip_and_post_within_the_period(remix_post, make_post):
    holder, ip = remix_post["holder"], remix_post["ip"]
    now = timezone.now()
    record(remix_post["post"], amount=1000, occurred_at=now - timedelta(days=40))
    record(remix_post["post"], amount=1000, occurred_at=now - timedelta(days=2))
    record(remix_post["post"], amount=2000, occurred_at=now - timedelta(days=1))
    statement = ledger.statement_of_rights_holder(
        rights_holder_id=holder.pk, start=now - timedelta(days=30), end=now
    )
    assert statement["lines"] == [
        {
            "ip_id": ip.pk,
            "ip_name": "Mochi",
            "post_id": remix_post["post"].pk,
            "currency": "USD",
            "events": 2,
            "amount_minor": 450,
        }
    ]
    assert statement["totals"] == [{"currency": "USD", "amount_minor": 450}]


# ---- properties against the real database ----


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(amount=st.integers(min_value=1, max_value=10**12), refund=st.booleans())
def test_replays_change_nothing_and_refunds_restore_balances(remix_post, amount, refund):
    post = remix_post["post"]
    before = _balances()
    first = record(post, amount=amount)
    after_first = _balances()
    replay = record(post, amount=amount, event_id=first.event.event_id)
    assert replay.splits == first.splits
    assert _balances() == after_first
    assert sum(s.amount_minor for s in first.splits) == amount
    if refund:
        record(post, amount=amount, kind="refund", reverses_event_id=first.event.event_id)
        assert _balances() == before


def _balances():
    from django.db.models import Sum

    rows = Posting.objects.values("account_id").annotate(total=Sum("amount_minor"))
    return {row["account_id"]: row["total"] for row in rows if row["total"]}
