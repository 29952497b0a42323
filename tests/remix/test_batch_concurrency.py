"""Batches and single events racing for the same event ids: each event is recorded once."""

import random
import threading
import time
from collections import defaultdict

import pytest
from django.db import connection, transaction

from core.errors import ApiError
from remix import ledger, services
from remix.ip import LicenceUse
from remix.models import JournalEntry, LedgerAccount, RevenueEvent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def post(make_user, make_post, make_holder, make_ip):
    creator, source_author, owner = make_user("r_creator"), make_user("r_source"), make_user("r_owner")
    holder = make_holder(make_user("r_studio"))
    ip = make_ip(holder, name="Race Hare", revenue_share_bps=900)
    remix = make_post(creator, remix_of=make_post(source_author), cameo_owner_ids=[owner.pk])
    services.record_licences(
        post=remix,
        uses=[LicenceUse(ip.pk, ip.name, holder.pk, holder.name, ip.current_policy_id, 1, "alias", 1.0)],
    )
    return remix


def request_for(post, key: int) -> list[ledger.EventRequest]:
    """Event `key` (its content a function of the key), followed by its refund for every tenth key."""
    amount = 1 + key * 37 % 10_000
    event = ledger.EventRequest(
        event_id=f"race-{key}", post_id=post.pk, amount_minor=amount, currency="USD", kind="ad"
    )
    if key % 10:
        return [event]
    return [
        event,
        ledger.EventRequest(
            event_id=f"race-{key}-refund",
            post_id=post.pk,
            amount_minor=amount,
            currency="USD",
            kind="refund",
            reverses_event_id=event.event_id,
        ),
    ]


def test_overlapping_batches_and_single_events_record_each_event_once(post):
    rng = random.Random(7)
    keys_of = {"batch-a": range(0, 300), "batch-b": range(100, 400), "single": range(200, 300)}
    outcomes: dict[str, list] = defaultdict(list)
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(len(keys_of))

    orders = {name: rng.sample(list(keys), len(keys)) for name, keys in keys_of.items()}

    def client(name: str) -> None:
        requests = [request for key in orders[name] for request in request_for(post, key)]
        try:
            start.wait()
            if name == "single":
                results = [ledger.record_revenue_event(**vars(request)) for request in requests]
            else:
                results = []
                for at in range(0, len(requests), 60):
                    results += ledger.record_revenue_events(events=requests[at : at + 60])
            with lock:
                for request, result in zip(requests, results, strict=True):
                    outcomes[request.event_id].append(result)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(name,)) for name in keys_of]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert not [result for results in outcomes.values() for result in results if isinstance(result, ApiError)]
    event_ids = {request.event_id for key in range(400) for request in request_for(post, key)}
    assert set(outcomes) == event_ids
    assert RevenueEvent.objects.count() == JournalEntry.objects.count() == len(event_ids)
    for results in outcomes.values():
        assert [result.created for result in results].count(True) == 1
        assert len({tuple(result.splits) for result in results}) == 1
        assert len({result.event.pk for result in results}) == 1
    assert ledger.check_books().balanced


def test_a_batch_overtaken_by_a_concurrent_writer_decides_again(post, monkeypatch):
    writes = []

    def write_new(booked):
        writes.append(write(booked))
        return writes[-1]

    write = ledger._write_new
    monkeypatch.setattr(ledger, "_write_new", write_new)
    original = ledger.record_revenue_event(
        event_id="held-original", post_id=post.pk, amount_minor=500, currency="USD", kind="ad"
    )
    holding, held = threading.Event(), []

    def writer_that_holds_its_transaction() -> None:
        try:
            with transaction.atomic():
                held.append(
                    ledger.record_revenue_event(
                        event_id="held-1", post_id=post.pk, amount_minor=300, currency="USD", kind="tip"
                    )
                )
                ledger.record_revenue_event(
                    event_id="held-refund",
                    post_id=post.pk,
                    amount_minor=500,
                    currency="USD",
                    kind="refund",
                    reverses_event_id="held-original",
                )
                holding.set()
                time.sleep(0.5)  # the batch reads without seeing these, then waits on their ids
        finally:
            connection.close()

    writer = threading.Thread(target=writer_that_holds_its_transaction)
    writer.start()
    assert holding.wait(10)
    results = ledger.record_revenue_events(
        events=[
            ledger.EventRequest(
                event_id="after-1", post_id=post.pk, amount_minor=10, currency="USD", kind="ad"
            ),
            ledger.EventRequest(
                event_id="held-1", post_id=post.pk, amount_minor=300, currency="USD", kind="tip"
            ),
            ledger.EventRequest(
                event_id="other-refund",
                post_id=post.pk,
                amount_minor=500,
                currency="USD",
                kind="refund",
                reverses_event_id=original.event.event_id,
            ),
            ledger.EventRequest(
                event_id="after-2", post_id=post.pk, amount_minor=20, currency="USD", kind="ad"
            ),
        ]
    )
    writer.join()
    assert writes.count(False) == 1  # the batch's first write was skipped, and it decided again
    assert results[0].created and results[3].created
    assert not results[1].created and results[1].splits == held[0].splits
    assert results[1].event.pk == held[0].event.pk
    assert isinstance(results[2], ApiError) and results[2].code == "already_refunded"
    assert RevenueEvent.objects.count() == 5
    assert ledger.check_books().balanced


def test_accounts_a_concurrent_writer_creates_are_read_once_it_commits(
    post, make_user, make_post, monkeypatch
):
    fresh = make_post(make_user("r_fresh"))  # its creator has no account yet
    statements = []

    def account_ids(sql, keys):
        statements.append(sql)
        return find(sql, keys)

    find = ledger._account_ids
    monkeypatch.setattr(ledger, "_account_ids", account_ids)
    holding = threading.Event()

    def writer_that_holds_its_transaction() -> None:
        try:
            with transaction.atomic():
                ledger.record_revenue_event(
                    event_id="fresh-1", post_id=fresh.pk, amount_minor=100, currency="EUR", kind="ad"
                )
                holding.set()
                time.sleep(0.5)  # the batch does not see the new accounts, and waits to insert them
        finally:
            connection.close()

    writer = threading.Thread(target=writer_that_holds_its_transaction)
    writer.start()
    assert holding.wait(10)
    [result] = ledger.record_revenue_events(
        events=[
            ledger.EventRequest(
                event_id="fresh-2", post_id=fresh.pk, amount_minor=200, currency="EUR", kind="ad"
            )
        ]
    )
    writer.join()
    assert result.created
    assert statements[-2:] == [ledger.ACCOUNTS_SQL, ledger.FIND_ACCOUNTS_SQL]
    assert (
        LedgerAccount.objects.filter(owner_type="user", owner_id=fresh.author_id, currency="EUR").count() == 1
    )
    assert ledger.balances(owner_type="user", owner_id=fresh.author_id) == {"EUR": 70 + 140}
    assert ledger.check_books().balanced
