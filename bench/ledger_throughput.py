"""Ledger benchmark: revenue events per second, and a rights-holder statement over many events.

    .venv/bin/python bench/ledger_throughput.py --events 2000 --statement-events 1000000

Without DATABASE_URL it starts an embedded PostgreSQL in DATA_DIR (default /tmp/remix-bench) and
migrates it; run it on a database meant for benchmarks, never on one with real data.

1. Events per second: `--events` events recorded one by one through `ledger.record_revenue_event`
   (idempotency check, party lookup, split, accounts, entry, postings, the deferred balance check
   at commit), against raw SQL doing the same inserts (event, entry, postings) in one transaction
   per event with the splits computed beforehand, in the same run on the same tables.
2. Statement: `--statement-events` events for posts that license IP of one rights holder, spread
   over a year, loaded with COPY (the balance trigger is switched off while loading and the books
   are checked afterwards); then the time of `ledger.statement_of_rights_holder` over the year
   against the raw SQL of the same aggregate, each the best of `--repeat` runs.
"""

from __future__ import annotations

import argparse
import io
import random
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

from harness import start_django

BALANCE_TRIGGER = "remix_posting_entries_balance"  # remix/migrations/0003_batch_revenue_events.py


def make_world(tag: str, posts: int):
    """Users, a verified rights holder with five opted-in IP, and `posts` licensed posts (5% remixes,
    20% with a cameo owner)."""
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from remix.models import IntellectualProperty, IpLicence, IpPolicy, RightsHolder, RightsHolderMember
    from social.models import Post, User

    password = make_password(None)
    users = User.objects.bulk_create(
        [User(username=f"{tag}-u{n}", password=password, birth_date="1990-01-01") for n in range(200)]
    )
    holder = RightsHolder.objects.create(name=f"{tag} studio", verified=True, verified_at=timezone.now())
    RightsHolderMember.objects.create(rights_holder=holder, user=users[0], role="admin")
    ips = []
    for n in range(5):
        ip = IntellectualProperty.objects.create(rights_holder=holder, name=f"{tag} character {n}")
        ip.current_policy = IpPolicy.objects.create(
            ip=ip, version=1, status="opted_in", revenue_share_bps=500 + 250 * n
        )
        ip.save(update_fields=["current_policy"])
        ips.append(ip)
    rng = random.Random(tag)
    now = timezone.now()
    made = Post.objects.bulk_create(
        [
            Post(
                author=users[rng.randrange(len(users))],
                status="published",
                published_at=now,
                prompt="bench",
                cameo_owner_ids=[users[rng.randrange(len(users))].pk] if rng.random() < 0.2 else [],
            )
            for _ in range(posts)
        ]
    )
    remixes = []
    for post in made:
        if rng.random() < 0.05:
            post.remix_of = made[rng.randrange(len(made))]
            remixes.append(post)
    Post.objects.bulk_update(remixes, ["remix_of"])
    IpLicence.objects.bulk_create(
        [
            IpLicence(post=post, ip=ip, policy_id=ip.current_policy_id)
            for post in made
            for ip in [rng.choice(ips)]
        ]
    )
    return holder, made


def planned_lines(post_ids: list[int], amounts: list[int]):
    """For each event, the postings the service would write: (owner_type, owner_id, role, amount, ip_id)."""
    from remix.ledger import ROLE_BY_PARTY_TYPE, SplitRates, account_key, post_split_facts, split_revenue

    rates = SplitRates.from_settings()
    inputs_by_post = post_split_facts(post_ids=post_ids)
    plans = []
    for post_id, amount in zip(post_ids, amounts, strict=True):
        splits = split_revenue(amount_minor=amount, rates=rates, **inputs_by_post[post_id])
        lines = [("external", 0, "source", -amount, None)]
        for split in splits:
            owner_type, owner_id, _ = account_key(split.party, "USD")
            lines.append(
                (
                    owner_type,
                    owner_id,
                    ROLE_BY_PARTY_TYPE[split.party.type],
                    split.amount_minor,
                    split.party.ip_id,
                )
            )
        plans.append(lines)
    return plans


def account_ids(plans) -> dict[tuple[str, int], int]:
    from remix.ledger import accounts_for

    keys = {(owner_type, owner_id, "USD") for lines in plans for owner_type, owner_id, *_ in lines}
    return {(kind, owner): pk for (kind, owner, _), pk in accounts_for(keys).items()}


def bench_events(count: int) -> dict[str, float]:
    from django.db import connection

    from remix import ledger

    _, posts = make_world(f"ev{int(time.time())}", posts=200)
    rng = random.Random(1)
    post_ids = [rng.choice(posts).pk for _ in range(count)]
    amounts = [rng.randint(1, 100_000) for _ in range(count)]
    run = int(time.time() * 1000)
    plans = planned_lines(post_ids, amounts)
    accounts = account_ids(plans)
    connection.ensure_connection()
    raw = connection.connection  # the psycopg connection under Django's

    def through_service(n: int) -> None:
        ledger.record_revenue_event(
            event_id=f"svc-{run}-{n}", post_id=post_ids[n], amount_minor=amounts[n], currency="USD", kind="ad"
        )

    def through_raw_sql(n: int) -> None:
        with raw.transaction(), raw.cursor() as cursor:
            now = datetime.now(UTC)
            cursor.execute(
                "INSERT INTO remix_revenueevent (event_id, post_id, amount_minor, currency, kind, created_at) "
                "VALUES (%s, %s, %s, 'USD', 'ad', %s) RETURNING id",
                (f"raw-{run}-{n}", post_ids[n], amounts[n], now),
            )
            event_pk = cursor.fetchone()[0]
            cursor.execute(
                "INSERT INTO remix_journalentry (event_id, created_at) VALUES (%s, %s) RETURNING id",
                (event_pk, now),
            )
            entry_pk = cursor.fetchone()[0]
            lines = plans[n]
            cursor.execute(
                "INSERT INTO remix_posting (entry_id, account_id, amount_minor, currency, role, position, "
                "post_id, ip_id, created_at) VALUES "
                + ", ".join(["(%s, %s, %s, 'USD', %s, %s, %s, %s, %s)"] * len(lines)),
                [
                    value
                    for position, (kind, owner, role, amount, ip_id) in enumerate(lines)
                    for value in (
                        entry_pk,
                        accounts[(kind, owner)],
                        amount,
                        role,
                        position,
                        post_ids[n],
                        ip_id,
                        now,
                    )
                ],
            )

    # Alternate blocks of 50 so that both sides see the same machine load (it is shared).
    service_s = raw_s = 0.0
    for block in range(0, count, 50):
        numbers = range(block, min(block + 50, count))
        started = time.perf_counter()
        for n in numbers:
            through_service(n)
        service_s += time.perf_counter() - started
        started = time.perf_counter()
        for n in numbers:
            through_raw_sql(n)
        raw_s += time.perf_counter() - started
    return {"events": count, "service_per_s": count / service_s, "raw_sql_per_s": count / raw_s}


def copy_rows(cursor, table: str, columns: list[str], rows) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for n, row in enumerate(rows, 1):
            buffer.write("\t".join("\\N" if value is None else str(value) for value in row) + "\n")
            if n % 50_000 == 0:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())


def seed_statement(count: int, chunk: int = 100_000) -> tuple[int, dict[str, float]]:
    from django.db import connection

    holder, posts = make_world(f"st{int(time.time())}", posts=10_000)
    rng = random.Random(2)
    start = datetime.now(UTC) - timedelta(days=365)
    tag = int(time.time())
    plan_s = copy_s = 0.0
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE remix_posting DISABLE TRIGGER {BALANCE_TRIGGER}")
        try:
            for offset in range(0, count, chunk):
                size = min(chunk, count - offset)
                started = time.perf_counter()
                post_ids = [rng.choice(posts).pk for _ in range(size)]
                amounts = [rng.randint(1, 100_000) for _ in range(size)]
                times = [
                    (start + timedelta(seconds=rng.uniform(0, 365 * 86400 - 60))).isoformat()
                    for _ in range(size)
                ]
                plans = planned_lines(post_ids, amounts)
                accounts = account_ids(plans)
                plan_s += time.perf_counter() - started
                started = time.perf_counter()
                cursor.execute("SELECT COALESCE(MAX(id), 0) FROM remix_revenueevent")
                first_event = cursor.fetchone()[0] + 1
                cursor.execute("SELECT COALESCE(MAX(id), 0) FROM remix_journalentry")
                first_entry = cursor.fetchone()[0] + 1
                raw = cursor.cursor
                copy_rows(
                    raw,
                    "remix_revenueevent",
                    ["id", "event_id", "post_id", "amount_minor", "currency", "kind", "created_at"],
                    (
                        (
                            first_event + n,
                            f"st-{tag}-{offset + n}",
                            post_ids[n],
                            amounts[n],
                            "USD",
                            "ad",
                            times[n],
                        )
                        for n in range(size)
                    ),
                )
                copy_rows(
                    raw,
                    "remix_journalentry",
                    ["id", "event_id", "created_at"],
                    ((first_entry + n, first_event + n, times[n]) for n in range(size)),
                )
                copy_rows(
                    raw,
                    "remix_posting",
                    [
                        "entry_id",
                        "account_id",
                        "amount_minor",
                        "currency",
                        "role",
                        "position",
                        "post_id",
                        "ip_id",
                        "created_at",
                    ],
                    (
                        (
                            first_entry + n,
                            accounts[(kind, owner)],
                            amount,
                            "USD",
                            role,
                            position,
                            post_ids[n],
                            ip_id,
                            times[n],
                        )
                        for n in range(size)
                        for position, (kind, owner, role, amount, ip_id) in enumerate(plans[n])
                    ),
                )
                copy_s += time.perf_counter() - started
        finally:
            cursor.execute(f"ALTER TABLE remix_posting ENABLE TRIGGER {BALANCE_TRIGGER}")
        for table in ("remix_revenueevent", "remix_journalentry"):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            )
        cursor.execute("ANALYZE remix_posting")
    return holder.pk, {"split_and_plan_s": plan_s, "copy_s": copy_s}


STATEMENT_SQL = """
SELECT line.ip_id, ip.name, line.post_id, line.currency, line.events, line.amount_minor
  FROM (
      SELECT p.ip_id, p.post_id, p.currency, COUNT(p.entry_id) AS events, SUM(p.amount_minor) AS amount_minor
        FROM remix_posting p
        JOIN remix_ledgeraccount a ON a.id = p.account_id
       WHERE a.owner_type = 'rights_holder' AND a.owner_id = %s AND p.created_at >= %s AND p.created_at < %s
       GROUP BY p.ip_id, p.post_id, p.currency
  ) AS line
  LEFT JOIN remix_intellectualproperty ip ON ip.id = line.ip_id
 ORDER BY line.ip_id, line.post_id, line.currency
"""


def bench_statement(holder_id: int, repeat: int) -> dict[str, float]:
    from django.db import connection

    from remix import ledger

    end = datetime.now(UTC) + timedelta(days=1)
    start = end - timedelta(days=400)
    service_times, raw_times = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        statement = ledger.statement_of_rights_holder(rights_holder_id=holder_id, start=start, end=end)
        service_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(STATEMENT_SQL, [holder_id, start, end])
            rows = cursor.fetchall()
        raw_times.append(time.perf_counter() - started)
    assert len(rows) == len(statement["lines"])
    assert sum(row[5] for row in rows) == sum(t["amount_minor"] for t in statement["totals"])
    return {
        "statement_lines": len(rows),
        "service_s": min(service_times),
        "raw_sql_s": min(raw_times),
        "events_in_statement": sum(line["events"] for line in statement["lines"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--statement-events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--statement-holder",
        type=int,
        help="time the statement of this already seeded rights holder; seed nothing",
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        start_django(stack, "/tmp/remix-bench")
        if args.events:
            figures = bench_events(args.events)
            print(
                f"events: {figures['events']}  service {figures['service_per_s']:.0f}/s  "
                f"raw SQL {figures['raw_sql_per_s']:.0f}/s  ratio {figures['raw_sql_per_s'] / figures['service_per_s']:.2f}x"
            )
        if args.statement_holder:
            figures = bench_statement(args.statement_holder, args.repeat)
            print(
                f"statement over {figures['events_in_statement']} events ({figures['statement_lines']} lines): "
                f"service {figures['service_s']:.2f} s  raw SQL {figures['raw_sql_s']:.2f} s  "
                f"ratio {figures['service_s'] / figures['raw_sql_s']:.2f}x"
            )
        elif args.statement_events:
            holder_id, seeding = seed_statement(args.statement_events)
            print(
                f"seeded {args.statement_events} events: splits {seeding['split_and_plan_s']:.1f} s, COPY {seeding['copy_s']:.1f} s"
            )
            from remix.ledger import check_books

            started = time.perf_counter()
            books = check_books()
            print(
                f"books balanced: {books.balanced} ({books.postings} postings, check {time.perf_counter() - started:.1f} s)"
            )
            figures = bench_statement(holder_id, args.repeat)
            print(
                f"statement over {figures['events_in_statement']} events ({figures['statement_lines']} lines): "
                f"service {figures['service_s']:.2f} s  raw SQL {figures['raw_sql_s']:.2f} s  "
                f"ratio {figures['service_s'] / figures['raw_sql_s']:.2f}x"
            )


if __name__ == "__main__":
    main()
