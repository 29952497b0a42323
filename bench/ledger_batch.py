"""Ledger benchmark: revenue events per second recorded in batches, against raw SQL of the same inserts.

    .venv/bin/python bench/ledger_batch.py --events 20000 --batch 1000 100

Without DATABASE_URL it starts an embedded PostgreSQL in DATA_DIR (default /tmp/remix-bench) and
migrates it; run it on a database meant for benchmarks, never on one with real data.

For each batch size, in turns (one batch of each in a row, so that every side sees the same load
of the shared machine), with fresh event ids for each side:
- service: `ledger.record_revenue_events` (the recorded events under the batch's ids, the posts'
  split facts, the splits, the accounts, one statement writing events, entries and postings with
  the balance check of migration 0003, the commit);
- raw SQL: the same rows (splits and account ids computed beforehand, outside the timing) in one
  transaction per batch: one multi-row INSERT per table (events, entries, postings), the rows sent
  as JSON arrays as the service sends them; with the balance check of migration 0003 (per statement);
- raw SQL, per-row check: the same under migration 0002's deferred per-row balance trigger;
- raw SQL, no check: the same with the balance trigger disabled (switched outside the timing);
- view: `POST /revenue/events/batch` called in-process (DRF parsing and per-event validation, the
  service, rendering; no HTTP server, no middleware).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from importlib import import_module

from harness import start_django
from ledger_throughput import BALANCE_TRIGGER, account_ids, make_world, planned_lines

RAW_EVENTS_SQL = """
INSERT INTO remix_revenueevent (event_id, post_id, amount_minor, currency, kind, created_at)
SELECT item->>0, (item->>1)::bigint, (item->>2)::bigint, 'USD', 'ad', %s FROM jsonb_array_elements(%s::jsonb) AS item
RETURNING id, event_id
"""
RAW_ENTRIES_SQL = """
INSERT INTO remix_journalentry (event_id, created_at)
SELECT event_id::bigint, %s FROM jsonb_array_elements_text(%s::jsonb) AS event(event_id)
RETURNING id, event_id
"""
RAW_POSTINGS_SQL = """
INSERT INTO remix_posting (entry_id, account_id, amount_minor, currency, role, position, post_id, ip_id, created_at)
SELECT (item->>0)::bigint, (item->>1)::bigint, (item->>2)::bigint, 'USD', item->>3, (item->>4)::smallint,
       (item->>5)::bigint, (item->>6)::bigint, %s
  FROM jsonb_array_elements(%s::jsonb) AS item
"""


@contextmanager
def balance_check(mode: str, raw):
    """The entry-balance check while the block runs: "statement" (migration 0003, as installed),
    "per row" (migration 0002's deferred per-row trigger), "off". Switched outside the timing."""
    migration = import_module("remix.migrations.0003_batch_revenue_events")
    switch = {
        "statement": ("", ""),
        "per row": (
            migration.DROP_PER_STATEMENT_CHECK + migration.PER_ROW_CHECK,
            migration.DROP_PER_ROW_CHECK + migration.PER_STATEMENT_CHECK,
        ),
        "off": (
            f"ALTER TABLE remix_posting DISABLE TRIGGER {BALANCE_TRIGGER}",
            f"ALTER TABLE remix_posting ENABLE TRIGGER {BALANCE_TRIGGER}",
        ),
    }[mode]
    if switch[0]:
        with raw.transaction(), raw.cursor() as cursor:
            cursor.execute(switch[0])
    try:
        yield
    finally:
        if switch[1]:
            with raw.transaction(), raw.cursor() as cursor:
                cursor.execute(switch[1])


def raw_batch(raw, *, event_ids, post_ids, amounts, plans, accounts) -> None:
    """The rows the service writes for these events, in three statements and one transaction; the
    rows go as JSON arrays, as the service sends them."""
    now = datetime.now(UTC)
    with raw.transaction(), raw.cursor() as cursor:
        events = [list(event) for event in zip(event_ids, post_ids, amounts, strict=True)]
        cursor.execute(RAW_EVENTS_SQL, [now, json.dumps(events)])
        event_pks = {event_id: pk for pk, event_id in cursor.fetchall()}
        cursor.execute(RAW_ENTRIES_SQL, [now, json.dumps([event_pks[event_id] for event_id in event_ids])])
        entry_by_event = {event_pk: pk for pk, event_pk in cursor.fetchall()}
        lines = [
            [
                entry_by_event[event_pks[event_id]],
                accounts[(kind, owner)],
                amount,
                role,
                position,
                post_id,
                ip_id,
            ]
            for event_id, post_id, plan in zip(event_ids, post_ids, plans, strict=True)
            for position, (kind, owner, role, amount, ip_id) in enumerate(plan)
        ]
        cursor.execute(RAW_POSTINGS_SQL, [now, json.dumps(lines)])


def bench_batches(count: int, size: int, *, view: bool) -> dict[str, float]:
    from django.contrib.auth import get_user_model
    from django.db import connection
    from rest_framework.test import APIRequestFactory, force_authenticate

    from remix import ledger
    from remix.api.views import RevenueEventBatchView

    tag = f"b{size}-{int(time.time() * 1000)}"
    _, posts = make_world(tag, posts=200)
    staff = get_user_model().objects.create(username=f"{tag}-staff", is_staff=True, birth_date="1990-01-01")
    rng = random.Random(size)
    post_ids = [rng.choice(posts).pk for _ in range(count)]
    amounts = [rng.randint(1, 100_000) for _ in range(count)]
    plans = planned_lines(post_ids, amounts)
    accounts = account_ids(plans)
    connection.ensure_connection()
    raw = connection.connection
    factory, batch_view = APIRequestFactory(), RevenueEventBatchView.as_view()

    def through_service(numbers: range) -> None:
        ledger.record_revenue_events(
            events=[
                ledger.EventRequest(
                    event_id=f"{tag}-svc-{n}",
                    post_id=post_ids[n],
                    amount_minor=amounts[n],
                    currency="USD",
                    kind="ad",
                )
                for n in numbers
            ]
        )

    def through_raw_sql(numbers: range, *, check: str) -> None:
        with balance_check(check, raw):
            started = time.perf_counter()
            raw_batch(
                raw,
                event_ids=[f"{tag}-raw-{check}-{n}" for n in numbers],
                post_ids=[post_ids[n] for n in numbers],
                amounts=[amounts[n] for n in numbers],
                plans=[plans[n] for n in numbers],
                accounts=accounts,
            )
            return time.perf_counter() - started

    def through_view(numbers: range) -> None:
        body = {
            "events": [
                {
                    "event_id": f"{tag}-view-{n}",
                    "post_id": post_ids[n],
                    "amount_minor": amounts[n],
                    "currency": "USD",
                    "kind": "ad",
                }
                for n in numbers
            ]
        }
        request = factory.post(
            "/api/v1/revenue/events/batch", json.dumps(body), content_type="application/json"
        )
        force_authenticate(request, user=staff)
        response = batch_view(request)
        response.render()
        assert response.status_code == 200 and b'"status":201' in response.content

    def timed(side):
        def run(numbers: range) -> float:
            started = time.perf_counter()
            side(numbers)
            return time.perf_counter() - started

        return run

    sides = {
        "service": timed(through_service),
        "raw SQL": lambda numbers: through_raw_sql(numbers, check="statement"),
        "raw SQL, per-row check": lambda numbers: through_raw_sql(numbers, check="per row"),
        "raw SQL, no check": lambda numbers: through_raw_sql(numbers, check="off"),
    }
    if view:
        sides["view"] = timed(through_view)
    seconds = dict.fromkeys(sides, 0.0)
    for start in range(0, count, size):
        numbers = range(start, min(start + size, count))
        for name, side in sides.items():
            seconds[name] += side(numbers)
    return {name: count / spent for name, spent in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events per side and batch size")
    parser.add_argument("--batch", type=int, nargs="+", default=[1000, 100])
    parser.add_argument("--no-view", action="store_true", help="leave out the in-process view")
    args = parser.parse_args()
    with ExitStack() as stack:
        start_django(stack, "/tmp/remix-bench")
        from remix.ledger import check_books

        for size in args.batch:
            rates = bench_batches(args.events, size, view=not args.no_view)
            figures = "  ".join(f"{name} {rate:,.0f}/s" for name, rate in rates.items())
            print(f"batches of {size}, {args.events} events each side: {figures}")
            print(
                f"  service / raw SQL {rates['service'] / rates['raw SQL']:.2f}; raw SQL with the per-statement "
                f"check / no check {rates['raw SQL'] / rates['raw SQL, no check']:.2f}; with the per-row "
                f"check / no check {rates['raw SQL, per-row check'] / rates['raw SQL, no check']:.2f}"
            )
        print(f"books balanced: {check_books().balanced}")


if __name__ == "__main__":
    main()
