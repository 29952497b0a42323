"""1,000 revenue events posted by 16 concurrent clients, each event sent twice."""

import queue
import random
import threading
import time
from collections import Counter

import pytest
from django.db import connection
from django.db.models import Sum

from remix import ledger, services
from remix.ip import LicenceUse
from remix.models import JournalEntry, Posting, RevenueEvent

CLIENTS = 16
EVENTS = 1000


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_make_exactly_one_entry_per_event(make_user, make_post, make_holder, make_ip):
    creator, source_author, owner = make_user("c_creator"), make_user("c_source"), make_user("c_owner")
    holder = make_holder(make_user("c_studio"))
    ip = make_ip(holder, name="Relay Fox", revenue_share_bps=1200)
    post = make_post(creator, remix_of=make_post(source_author), cameo_owner_ids=[owner.pk])
    services.record_licences(
        post=post,
        uses=[LicenceUse(ip.pk, ip.name, holder.pk, holder.name, ip.current_policy_id, 1, "alias", 1.0)],
    )
    rng = random.Random(6)
    requests = [
        (f"concurrent-{n}", rng.randint(1, 1_000_000), rng.choice(["ad", "tip", "credit"]))
        for n in range(EVENTS)
    ]
    work = queue.Queue()
    for item in rng.sample(requests * 2, len(requests) * 2):
        work.put(item)
    results: list[tuple[str, bool, tuple]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client():
        try:
            while True:
                try:
                    event_id, amount, kind = work.get_nowait()
                except queue.Empty:
                    return
                recorded = ledger.record_revenue_event(
                    event_id=event_id, post_id=post.pk, amount_minor=amount, currency="USD", kind=kind
                )
                splits = tuple((s.party, s.amount_minor) for s in recorded.splits)
                with lock:
                    results.append((event_id, recorded.created, splits))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started

    assert errors == []
    assert len(results) == 2 * EVENTS
    assert RevenueEvent.objects.count() == EVENTS
    assert JournalEntry.objects.count() == EVENTS
    created = Counter(event_id for event_id, was_created, _ in results if was_created)
    assert len(created) == EVENTS and set(created.values()) == {1}
    by_event: dict[str, set] = {}
    for event_id, _, splits in results:
        by_event.setdefault(event_id, set()).add(splits)
    assert all(len(variants) == 1 for variants in by_event.values())  # replays returned the same splits

    expected: Counter = Counter()
    for variants in by_event.values():
        for party, amount in next(iter(variants)):
            expected[ledger.account_key(party, "USD")] += amount
    for key, amount in expected.items():
        owner_type, owner_id, _ = key
        assert ledger.balances(owner_type=owner_type, owner_id=owner_id)["USD"] == amount
    total = sum(amount for _, amount, _ in requests)
    assert Posting.objects.filter(role="source").aggregate(total=Sum("amount_minor"))["total"] == -total
    assert ledger.check_books().balanced
    assert elapsed < 60
