"""The revenue ledger: double-entry journal entries in integer minor units.

Each revenue event becomes one journal entry. Its first posting takes the whole amount out of the
`external` account of the currency (where money arrives from: the ad network, the payment
processor); the others credit each party its split. The postings of an entry sum to zero per
currency; the database refuses a statement whose postings do not (migration 0003), and postings
are append-only (0002), so a refund is a new entry that mirrors the original one.

Events are recorded in batches (`record_revenue_events`; a single event is a batch of one): a
batch reads what is recorded under its ids, decides each event in order in Python, and writes all
new events, entries and postings in one statement.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from psycopg.errors import DeadlockDetected

from core.errors import ApiError, Conflict, NotFound, RuleRefusal
from remix.currencies import is_currency
from remix.models import (
    AccountOwner,
    EventKind,
    IntellectualProperty,
    JournalEntry,
    Posting,
    RevenueEvent,
    SplitRole,
)

WHOLE_BPS = 10_000


# ---- splitting: pure ----


@dataclass(frozen=True)
class Party:
    """Who receives a split. `id` is a user id, a rights holder id, or None for the platform."""

    type: str  # platform | rights_holder | cameo_owner | remix_source | creator
    id: int | None
    ip_id: int | None = None  # for rights holders: which licensed IP earned this share


@dataclass(frozen=True)
class Split:
    party: Party
    amount_minor: int


@dataclass(frozen=True)
class IpShare:
    ip_id: int
    rights_holder_id: int
    bps: int


@dataclass(frozen=True)
class SplitRates:
    platform_bps: int
    cameo_bps: int
    remix_bps: int

    @classmethod
    def from_settings(cls) -> SplitRates:
        return cls(
            platform_bps=settings.PLATFORM_FEE_BPS,
            cameo_bps=settings.CAMEO_SHARE_BPS,
            remix_bps=settings.REMIX_ROYALTY_BPS,
        )


def remix_source_bps(*, remix_bps: int, remix_sources: Sequence[int | None]) -> dict[int, int]:
    """The remix share in whole basis points per author of a source. `remix_sources` has one entry
    per source post, its author (None for a source deleted since): a remix or continuation has
    one, a stitch up to ten, and each source earns remix_bps / (number of sources) for its author,
    so an author of two of four sources earns half. Each author gets the floor of their exact
    share; the points the floors leave go one each to the largest remainders (ties to the lower
    user id), never past the floor of the authors' exact total. A deleted source earns no one."""
    count = len(remix_sources)
    if not count:
        return {}
    sources_by_author = Counter(author for author in remix_sources if author is not None)
    shares = {author: divmod(remix_bps * sources, count) for author, sources in sources_by_author.items()}
    leftover = remix_bps * sum(sources_by_author.values()) // count - sum(
        whole for whole, _ in shares.values()
    )
    by_remainder = sorted(shares, key=lambda author: (-shares[author][1], author))
    return {author: shares[author][0] + (author in by_remainder[:leftover]) for author in sorted(shares)}


def split_claims(
    *,
    rates: SplitRates,
    ip_shares: Sequence[IpShare],
    cameo_owner_ids: Iterable[int],
    remix_sources: Sequence[int | None],
    creator_id: int,
) -> list[tuple[Party, int]]:
    """The parties other than the creator with their basis points, in API.md's order: platform,
    licensed IP (by IP id), cameo owners other than the creator (by user id), the authors of the
    posts it was made from other than the creator (by user id; `remix_source_bps`)."""
    claims: list[tuple[Party, int]] = [(Party("platform", None), rates.platform_bps)]
    for share in sorted(ip_shares, key=lambda share: share.ip_id):
        claims.append((Party("rights_holder", share.rights_holder_id, share.ip_id), share.bps))
    for owner_id in sorted(set(cameo_owner_ids) - {creator_id}):
        claims.append((Party("cameo_owner", owner_id), rates.cameo_bps))
    for author_id, bps in remix_source_bps(remix_bps=rates.remix_bps, remix_sources=remix_sources).items():
        if author_id != creator_id:
            claims.append((Party("remix_source", author_id), bps))
    return claims


def split_revenue(
    *,
    amount_minor: int,
    rates: SplitRates,
    ip_shares: Sequence[IpShare] = (),
    cameo_owner_ids: Iterable[int] = (),
    remix_sources: Sequence[int | None] = (),
    creator_id: int,
) -> list[Split]:
    """Split `amount_minor` (an integer >= 0) between the parties of a post, per API.md.

    Each party other than the creator gets its basis points of the whole; the creator the rest.
    When those basis points add up to more than 10,000, they shrink pro rata (each share becomes
    bps / total of the whole) and the creator gets nothing. Every exact share is floored; the minor
    units left over go one each to the largest remainders, ties in the order platform, rights
    holders, cameo owners, remix source, creator. The splits therefore always sum to
    `amount_minor`. Parties whose split is zero are left out.
    """
    if amount_minor < 0:
        raise ValueError("amount_minor must not be negative")
    claims = split_claims(
        rates=rates,
        ip_shares=ip_shares,
        cameo_owner_ids=cameo_owner_ids,
        remix_sources=remix_sources,
        creator_id=creator_id,
    )
    if any(bps < 0 for _, bps in claims):
        raise ValueError("basis points must not be negative")
    others_bps = sum(bps for _, bps in claims)
    if others_bps > WHOLE_BPS:
        denominator = others_bps
        creator_bps = 0
    else:
        denominator = WHOLE_BPS
        creator_bps = WHOLE_BPS - others_bps
    claims.append((Party("creator", creator_id), creator_bps))
    # Exact share = amount * bps / denominator; keep quotient and remainder in integers.
    floors = []
    remainders = []
    for _, bps in claims:
        quotient, remainder = divmod(amount_minor * bps, denominator)
        floors.append(quotient)
        remainders.append(remainder)
    leftover = amount_minor - sum(floors)
    by_remainder = sorted(range(len(claims)), key=lambda index: (-remainders[index], index))
    for index in by_remainder[:leftover]:
        floors[index] += 1
    return [
        Split(party=party, amount_minor=amount)
        for (party, _), amount in zip(claims, floors, strict=True)
        if amount
    ]


# ---- recording events ----

ROLE_BY_PARTY_TYPE = {
    "platform": SplitRole.PLATFORM,
    "rights_holder": SplitRole.RIGHTS_HOLDER,
    "cameo_owner": SplitRole.CAMEO_OWNER,
    "remix_source": SplitRole.REMIX_SOURCE,
    "creator": SplitRole.CREATOR,
}


def account_key(party: Party, currency: str) -> tuple[str, int, str]:
    if party.type == "platform":
        return (AccountOwner.PLATFORM, 0, currency)
    if party.type == "rights_holder":
        return (AccountOwner.RIGHTS_HOLDER, party.id, currency)
    return (AccountOwner.USER, party.id, currency)


# Accounts are looked up by the keys given as a JSON array of [owner_type, owner_id, currency], one
# unique-index lookup each (shaped as POST_PARTIES_SQL, see there).
_WANTED_ACCOUNTS = """
SELECT item->>0 AS owner_type, (item->>1)::bigint AS owner_id, item->>2 AS currency
  FROM jsonb_array_elements(%s::jsonb) AS item
"""
_FOUND_ACCOUNTS = """
SELECT account.id, account.owner_type, account.owner_id, account.currency
  FROM wanted
 CROSS JOIN LATERAL (
     SELECT id, owner_type, owner_id, currency FROM remix_ledgeraccount
      WHERE owner_type = wanted.owner_type AND owner_id = wanted.owner_id AND currency = wanted.currency
      LIMIT 1
 ) AS account
"""
FIND_ACCOUNTS_SQL = f"WITH wanted AS ({_WANTED_ACCOUNTS}) {_FOUND_ACCOUNTS}"
# The accounts, creating the missing ones in key order (as every writer does, so that two never wait
# on each other's new accounts). Only the missing ones are inserted: an INSERT of every key with ON
# CONFLICT DO NOTHING cost five to ten times more for a batch whose accounts all exist.
ACCOUNTS_SQL = f"""
WITH wanted AS ({_WANTED_ACCOUNTS}),
existing AS ({_FOUND_ACCOUNTS}),
created AS (
    INSERT INTO remix_ledgeraccount (owner_type, owner_id, currency, created_at)
    SELECT owner_type, owner_id, currency, now()
      FROM (
          SELECT owner_type, owner_id, currency FROM wanted
          EXCEPT
          SELECT owner_type, owner_id, currency FROM existing
      ) AS missing
     ORDER BY owner_type, owner_id, currency
    ON CONFLICT (owner_type, owner_id, currency) DO NOTHING
    RETURNING id, owner_type, owner_id, currency
)
SELECT id, owner_type, owner_id, currency FROM existing
UNION ALL
SELECT id, owner_type, owner_id, currency FROM created
"""


def accounts_for(keys: Iterable[tuple[str, int, str]]) -> dict[tuple[str, int, str], int]:
    """Account ids for (owner_type, owner_id, currency), creating missing accounts, in one statement.

    An account another transaction creates at the same moment is not in this statement's snapshot
    (the insert waits for it, then skips it), so the keys still missing are read once more."""
    wanted = set(keys)
    found = _account_ids(ACCOUNTS_SQL, wanted)
    missing = wanted - found.keys()
    if missing:
        found |= _account_ids(FIND_ACCOUNTS_SQL, missing)
    return found


def _account_ids(sql: str, keys: set[tuple[str, int, str]]) -> dict[tuple[str, int, str], int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, [json.dumps(sorted(keys))])
        return {(kind, owner, currency): pk for pk, kind, owner, currency in cursor.fetchall()}


# How the statements of a batch are shaped (bench/README.md, "Ledger in batches"): scalar subqueries
# rather than a join of six tables, which cost more to plan than to run; the ids as a JSON array, whose
# length the planner does not see, so that one plan serves batches of any length (with an array
# parameter PostgreSQL plans a batch of one afresh each time, which costs more than running it);
# posts found by a lateral lookup, so that the plan is a primary-key lookup per post whatever the
# size of the table.
POST_PARTIES_SQL = """
SELECT post.id AS post_id, post.author_id AS creator_id, post.cameo_owner_ids,
       CASE WHEN cardinality(post.source_ids) > 0
            THEN ARRAY(SELECT parent.author_id FROM unnest(post.source_ids) WITH ORDINALITY AS source (id, n)
                       LEFT JOIN social_post parent ON parent.id = source.id ORDER BY source.n)
            ELSE ARRAY(SELECT parent.author_id FROM social_post parent WHERE parent.id = post.remix_of_id)
       END AS remix_sources,
       (SELECT json_agg(json_build_object('ip_id', licence.ip_id, 'rights_holder_id', ip.rights_holder_id,
                                          'bps', policy.revenue_share_bps) ORDER BY licence.ip_id)
          FROM remix_iplicence licence
          JOIN remix_intellectualproperty ip ON ip.id = licence.ip_id
          JOIN remix_ippolicy policy ON policy.id = licence.policy_id
         WHERE licence.post_id = post.id) AS ip_shares
  FROM jsonb_array_elements_text(%s::jsonb) AS wanted(id)
 CROSS JOIN LATERAL (
     SELECT id, author_id, cameo_owner_ids, remix_of_id, source_ids FROM social_post WHERE id = wanted.id::bigint LIMIT 1
 ) AS post
"""


def post_split_facts(*, post_ids: Iterable[int]) -> dict[int, dict]:
    """What `split_revenue` needs to know about each of these posts, in one query: its creator,
    cameo owners, the authors of the posts it was made from, and its licensed IP with the share of the policy version
    each licence recorded (not the IP's current policy). Posts that do not exist are left out."""
    wanted = sorted(set(post_ids))
    if not wanted:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(POST_PARTIES_SQL, [json.dumps(wanted)])
        rows = _named_rows(cursor)
    return {
        row["post_id"]: {
            "ip_shares": [IpShare(**share) for share in row["ip_shares"] or []],
            "cameo_owner_ids": list(row["cameo_owner_ids"] or []),
            "remix_sources": list(row["remix_sources"] or []),
            "creator_id": row["creator_id"],
        }
        for row in rows
    }


def _named_rows(cursor) -> list[dict]:
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass(frozen=True)
class EventRequest:
    """A revenue event as received (`POST /revenue/events`, or one item of a batch)."""

    event_id: str
    post_id: int
    amount_minor: int
    currency: str
    kind: str
    reverses_event_id: str | None = None
    occurred_at: datetime | None = None

    def content(self) -> tuple:
        """What a replay of the event must repeat (the time it happened is not part of it)."""
        return (self.post_id, self.amount_minor, self.currency, self.kind, self.reverses_event_id)


@dataclass
class RecordedEvent:
    """An event as recorded, with its splits; `created` False for a replay."""

    booked: _Booked = field(repr=False)
    splits: list[Split]
    created: bool = True

    @property
    def event_id(self) -> str:
        return self.booked.request.event_id

    @cached_property
    def event(self) -> RevenueEvent:
        """The event's row (built when asked for: a batch's answer needs only the id)."""
        return self.booked.model()


Line = tuple[Party | None, str, int, int | None]  # (party, or None for the source; role; amount; ip_id)


def _posted_line(*, role: str, owner_id: int, ip_id: int | None, amount: int) -> Line:
    if role == SplitRole.SOURCE:
        return (None, role, amount, ip_id)
    return (Party(role, None if role == SplitRole.PLATFORM else owner_id, ip_id), role, amount, ip_id)


def _splits(lines: list[Line]) -> list[Split]:
    return [Split(party=party, amount_minor=amount) for party, _, amount, _ in lines if party]


def _normalised(request: EventRequest) -> EventRequest:
    """The request with its currency in capitals and a refund's amount negative; an ApiError (400,
    or 422 `invalid_refund`) when it cannot be an event whatever the books hold."""
    if not is_currency(request.currency):
        raise ApiError(
            "The currency is not an ISO 4217 code of money.",
            details={"currency": ["Not an ISO 4217 currency code."]},
        )
    amount_minor = request.amount_minor
    if request.kind == EventKind.REFUND:
        if not request.reverses_event_id:
            raise RuleRefusal("A refund names the event it reverses.", code="invalid_refund")
        if amount_minor == 0:
            raise ApiError("The amount must not be zero.", details={"amount_minor": ["Must not be zero."]})
        amount_minor = -abs(amount_minor)
    elif request.reverses_event_id:
        raise RuleRefusal("Only a refund may reverse an event.", code="invalid_refund")
    elif amount_minor <= 0:
        raise ApiError("The amount must be positive.", details={"amount_minor": ["Must be positive."]})
    return EventRequest(  # not dataclasses.replace, which costs more than the rest of this function
        event_id=request.event_id,
        post_id=request.post_id,
        amount_minor=amount_minor,
        currency=request.currency.upper(),
        kind=request.kind,
        reverses_event_id=request.reverses_event_id,
        occurred_at=request.occurred_at,
    )


@dataclass
class _Booked:
    """An event as a batch sees it: recorded before (read from the database) or new in this batch."""

    request: EventRequest  # normalised
    lines: list[Line]
    created_at: datetime
    pk: int | None = None  # of a new event: None until its ids are allocated
    reverses_pk: int | None = None
    refunded_by: str | None = None
    new: bool = False
    entry_pk: int | None = None

    def model(self) -> RevenueEvent:
        request = self.request
        event = RevenueEvent(
            pk=self.pk,
            event_id=request.event_id,
            post_id=request.post_id,
            amount_minor=request.amount_minor,
            currency=request.currency,
            kind=request.kind,
            reverses_id=self.reverses_pk,
            created_at=self.created_at,
        )
        event._state.adding = False
        return event


# Shaped as POST_PARTIES_SQL (see there).
RECORDED_EVENTS_SQL = """
SELECT event.id, event.event_id, event.post_id, event.amount_minor, event.currency, event.kind,
       event.reverses_id, event.created_at,
       (SELECT original.event_id FROM remix_revenueevent original WHERE original.id = event.reverses_id)
           AS reverses_event_id,
       (SELECT refund.event_id FROM remix_revenueevent refund WHERE refund.reverses_id = event.id) AS refunded_by,
       (SELECT json_agg(json_build_object('role', posting.role, 'owner_id', account.owner_id,
                                          'ip_id', posting.ip_id, 'amount', posting.amount_minor)
                        ORDER BY posting.position)
          FROM remix_journalentry entry
          JOIN remix_posting posting ON posting.entry_id = entry.id
          JOIN remix_ledgeraccount account ON account.id = posting.account_id
         WHERE entry.event_id = event.id) AS lines
  FROM jsonb_array_elements_text(%s::jsonb) AS wanted(event_id)
  JOIN remix_revenueevent event ON event.event_id = wanted.event_id
"""


def _recorded_events(*, event_ids: Iterable[str]) -> dict[str, _Booked]:
    """The events already recorded under these ids, with their postings and refunds, in one query."""
    wanted = sorted(set(event_ids))
    booked: dict[str, _Booked] = {}
    if not wanted:
        return booked
    with connection.cursor() as cursor:
        cursor.execute(RECORDED_EVENTS_SQL, [json.dumps(wanted)])
        rows = _named_rows(cursor)
    for row in rows:
        fields = {name: row[name] for name in ("event_id", "post_id", "amount_minor", "currency", "kind")}
        booked[row["event_id"]] = _Booked(
            request=EventRequest(reverses_event_id=row["reverses_event_id"], **fields),
            lines=[_posted_line(**line) for line in row["lines"] or []],
            created_at=row["created_at"],
            pk=row["id"],
            reverses_pk=row["reverses_id"],
            refunded_by=row["refunded_by"],
        )
    return booked


def _decide(
    request: EventRequest,
    *,
    booked: dict[str, _Booked],
    facts: dict[int, dict],
    rates: SplitRates,
    now: datetime,
) -> RecordedEvent | ApiError:
    """What recording `request` does after the events in `booked`, as `POST /revenue/events` would
    answer it: a replay (200 or 409), a new event (added to `booked`), or a refusal."""
    original = None
    if request.reverses_event_id:
        original = booked.get(request.reverses_event_id)
        if original is None:
            return NotFound(
                "The event to reverse does not exist.", details={"reverses": request.reverses_event_id}
            )
    existing = booked.get(request.event_id)
    if existing is not None:
        if existing.request.content() != request.content():
            return Conflict(
                "Another event was recorded under this event_id.",
                code="event_id_conflict",
                details={"event_id": request.event_id},
            )
        return RecordedEvent(existing, _splits(existing.lines), created=False)
    if original is not None and original.refunded_by is not None:
        return Conflict(
            "This event was already refunded.",
            code="already_refunded",
            details={"reverses": original.request.event_id},
        )
    try:
        if original is not None:
            lines = _refund_lines(original, request)
            splits = _splits(lines)
        else:
            splits, lines = _split_lines(request, facts=facts, rates=rates)
    except ApiError as refusal:
        return refusal
    new = _Booked(request, lines, created_at=request.occurred_at or now, new=True)
    booked[request.event_id] = new
    if original is not None:
        original.refunded_by = request.event_id
    return RecordedEvent(new, splits, created=True)


def _split_lines(
    request: EventRequest, *, facts: dict[int, dict], rates: SplitRates
) -> tuple[list[Split], list[Line]]:
    """A new event's splits, and its entry: the whole amount out of the source, each split to its party."""
    post = facts.get(request.post_id)
    if post is None:
        raise NotFound("No such post.", details={"post_id": str(request.post_id)})
    splits = split_revenue(amount_minor=request.amount_minor, rates=rates, **post)
    lines: list[Line] = [(None, SplitRole.SOURCE, -request.amount_minor, None)]
    lines += [
        (split.party, ROLE_BY_PARTY_TYPE[split.party.type], split.amount_minor, split.party.ip_id)
        for split in splits
    ]
    return splits, lines


def _refund_lines(original: _Booked, request: EventRequest) -> list[Line]:
    """A refund mirrors the whole original entry, posting for posting."""
    if original.request.kind == EventKind.REFUND:
        raise RuleRefusal("A refund cannot be reversed.", code="invalid_refund")
    mismatched = {}
    if original.request.post_id != request.post_id:
        mismatched["post_id"] = str(original.request.post_id)
    if original.request.currency != request.currency:
        mismatched["currency"] = original.request.currency
    if original.request.amount_minor != -request.amount_minor:
        mismatched["amount_minor"] = original.request.amount_minor
    if mismatched:
        raise RuleRefusal(
            "A refund mirrors the whole original event.", code="refund_mismatch", details=mismatched
        )
    return [(party, role, -amount, ip_id) for party, role, amount, ip_id in original.lines]


ALLOCATE_IDS_SQL = """
WITH sequences AS (
    SELECT pg_get_serial_sequence('remix_revenueevent', 'id')::regclass AS events,
           pg_get_serial_sequence('remix_journalentry', 'id')::regclass AS entries
)
SELECT nextval(sequences.events) AS event_pk, nextval(sequences.entries) AS entry_pk
  FROM sequences, generate_series(1, %s)
"""
# The rows WRITE_EVENTS_SQL reads, each sent as a JSON array of these columns in this order (arrays
# cost less than objects to encode here and to parse in PostgreSQL: bench/README.md).
EVENT_COLUMNS = {
    "id": "bigint",
    "entry_id": "bigint",
    "event_id": "varchar",
    "post_id": "bigint",
    "amount_minor": "bigint",
    "currency": "varchar",
    "kind": "varchar",
    "reverses_id": "bigint",
    "created_at": "timestamptz",
}
POSTING_COLUMNS = {
    "entry_id": "bigint",
    "account_id": "bigint",
    "amount_minor": "bigint",
    "currency": "varchar",
    "role": "varchar",
    "position": "smallint",
    "post_id": "bigint",
    "ip_id": "bigint",
    "created_at": "timestamptz",
}


def _json_rows(parameter: str, columns: dict[str, str]) -> str:
    fields = ", ".join(
        f"(item->>{index})::{sql_type} AS {name}" for index, (name, sql_type) in enumerate(columns.items())
    )
    return f"SELECT {fields} FROM jsonb_array_elements(%({parameter})s::jsonb) AS item"


WRITE_EVENTS_SQL = f"""
WITH incoming AS ({_json_rows("events", EVENT_COLUMNS)}),
events AS (
    INSERT INTO remix_revenueevent (id, event_id, post_id, amount_minor, currency, kind, reverses_id, created_at)
    SELECT id, event_id, post_id, amount_minor, currency, kind, reverses_id, created_at
      FROM incoming
     ORDER BY event_id
    ON CONFLICT DO NOTHING
    RETURNING id
),
entries AS (
    INSERT INTO remix_journalentry (id, event_id, created_at) SELECT entry_id, id, created_at FROM incoming
),
postings AS (
    INSERT INTO remix_posting ({", ".join(POSTING_COLUMNS)})
    {_json_rows("lines", POSTING_COLUMNS)}
)
SELECT count(*) FROM events
"""


def _write_new(booked: dict[str, _Booked]) -> bool:
    """Write the new events of `booked`, their entries and postings in one statement, after one that
    creates missing accounts and one that takes their ids from the sequences (so that a refund can
    name an original of the same batch, and no row has to be matched to another by a join). The
    rows go as JSON arrays, which cost less to send than PostgreSQL arrays.

    False, and the caller rolls back, when a concurrent transaction recorded one of these event ids,
    or refunded one of these originals, first: the unique indexes make the insert wait for it and
    skip the row (the entries and postings written for it fail no check before the rollback: foreign
    keys are checked at commit). The database checks that each entry balances (migration 0003)."""
    new = [item for item in booked.values() if item.new]
    if not new:
        return True
    keys = {(AccountOwner.EXTERNAL, 0, item.request.currency) for item in new}
    keys |= {account_key(party, item.request.currency) for item in new for party, *_ in item.lines if party}
    account_ids = accounts_for(keys)
    with connection.cursor() as cursor:
        cursor.execute(ALLOCATE_IDS_SQL, [len(new)])
        for item, (event_pk, entry_pk) in zip(new, cursor.fetchall(), strict=True):
            item.pk, item.entry_pk = event_pk, entry_pk
        for item in new:
            if item.request.reverses_event_id:
                item.reverses_pk = booked[item.request.reverses_event_id].pk
        times = {item.created_at: item.created_at.isoformat() for item in new}
        events = [_event_row(item, times) for item in new]
        lines = [line for item in new for line in _line_rows(item, account_ids, times)]
        cursor.execute(WRITE_EVENTS_SQL, {"events": json.dumps(events), "lines": json.dumps(lines)})
        (written,) = cursor.fetchone()
    return written == len(new)


def _event_row(item: _Booked, times: dict[datetime, str]) -> list:
    """The event's row in EVENT_COLUMNS' order."""
    request = item.request
    return [
        item.pk,
        item.entry_pk,
        request.event_id,
        request.post_id,
        request.amount_minor,
        request.currency,
        request.kind,
        item.reverses_pk,
        times[item.created_at],
    ]


def _line_rows(
    item: _Booked, account_ids: dict[tuple[str, int, str], int], times: dict[datetime, str]
) -> list[list]:
    """The event's postings, each in POSTING_COLUMNS' order."""
    currency, post_id = item.request.currency, item.request.post_id
    source = account_ids[(AccountOwner.EXTERNAL, 0, currency)]
    created_at = times[item.created_at]
    return [
        [
            item.entry_pk,
            account_ids[account_key(party, currency)] if party else source,
            amount,
            currency,
            str(role),
            position,
            post_id,
            ip_id,
            created_at,
        ]
        for position, (party, role, amount, ip_id) in enumerate(item.lines)
    ]


class _Overtaken(Exception):
    """A concurrent transaction recorded one of the batch's events first."""


def record_revenue_events(
    *, events: Sequence[EventRequest], rates: SplitRates | None = None
) -> list[RecordedEvent | ApiError]:
    """Record revenue events, in order, each exactly as `record_revenue_event` would record it alone
    after the ones before it: for each, its RecordedEvent (`created` False for a replay) or the
    ApiError the single event would raise. A refused event records nothing and refuses no other.

    One transaction and at most five statements, whatever the number of events: the events already
    recorded under the batch's ids (and the originals its refunds name) with their postings; the
    posts' split facts; the accounts; the new rows' ids; one statement writing every new event,
    entry and posting. When a concurrent writer records one of the ids between the read and the
    write (the unique indexes make the insert wait for it, then skip the row), the transaction is
    rolled back and the batch decided again on what is now recorded; each such round sees at least
    one more of the batch's ids recorded by others, so the rounds are bounded."""
    rates = rates or SplitRates.from_settings()
    requests: list[EventRequest | ApiError] = []
    for event in events:
        try:
            requests.append(_normalised(event))
        except ApiError as refusal:
            requests.append(refusal)
    valid = [request for request in requests if isinstance(request, EventRequest)]
    if not valid:
        return requests
    ids = {request.event_id for request in valid} | {
        r.reverses_event_id for r in valid if r.reverses_event_id
    }
    for _ in range(2 * len(ids) + 2):  # each round learns an event or a refund recorded by another writer
        try:
            with transaction.atomic():
                outcomes, booked = _decide_all(requests, event_ids=ids, rates=rates)
                if _write_new(booked):
                    return outcomes
                raise _Overtaken
        except _Overtaken:
            continue
        except OperationalError as error:
            # Two batches that name the same events in another order can deadlock; one of them is
            # rolled back by PostgreSQL and decides again.
            if not isinstance(error.__cause__, DeadlockDetected):
                raise
    raise RuntimeError("revenue events kept being recorded concurrently")


def _decide_all(
    requests: list[EventRequest | ApiError], *, event_ids: set[str], rates: SplitRates
) -> tuple[list[RecordedEvent | ApiError], dict[str, _Booked]]:
    """Each request's outcome, in order, over what is recorded now; `booked` then holds the new events."""
    booked = _recorded_events(event_ids=event_ids)
    facts = post_split_facts(
        post_ids=[
            request.post_id
            for request in requests
            if isinstance(request, EventRequest)
            and not request.reverses_event_id
            and request.event_id not in booked
        ]
    )
    now = timezone.now()
    outcomes = [
        request
        if isinstance(request, ApiError)
        else _decide(request, booked=booked, facts=facts, rates=rates, now=now)
        for request in requests
    ]
    return outcomes, booked


def record_revenue_event(
    *,
    event_id: str,
    post_id: int,
    amount_minor: int,
    currency: str,
    kind: str,
    reverses_event_id: str | None = None,
    rates: SplitRates | None = None,
    occurred_at: datetime | None = None,
) -> RecordedEvent:
    """Record a revenue event once and return its splits (a batch of one).

    The same `event_id` with the same content returns the first result (`created` False); with other
    content it is a 409. A refund (`kind` "refund", `reverses_event_id` set) mirrors the original
    entry posting for posting; its amount is the original's, given with either sign and stored
    negative. Concurrent duplicates are serialised by the unique index on `event_id`: the second
    insert waits for the first transaction, and the second request then reads its result.
    """
    request = EventRequest(
        event_id=event_id,
        post_id=post_id,
        amount_minor=amount_minor,
        currency=currency,
        kind=kind,
        reverses_event_id=reverses_event_id,
        occurred_at=occurred_at,
    )
    [outcome] = record_revenue_events(events=[request], rates=rates)
    if isinstance(outcome, ApiError):
        raise outcome
    return outcome


# ---- reading the books ----


def balances(*, owner_type: str, owner_id: int = 0) -> dict[str, int]:
    """Balance per currency of one party's accounts."""
    rows = (
        Posting.objects.filter(account__owner_type=owner_type, account__owner_id=owner_id)
        .values("currency")
        .annotate(total=Sum("amount_minor"))
    )
    return {row["currency"]: row["total"] for row in rows}


def party_balance(party: Party, currency: str) -> int:
    kind, owner, _ = account_key(party, currency)
    return balances(owner_type=kind, owner_id=owner).get(currency, 0)


@dataclass
class BooksCheck:
    balanced: bool
    entries: int
    postings: int
    unbalanced_entries: list[int]
    currency_totals: dict[str, int]
    events_without_entry: int


def check_books() -> BooksCheck:
    """Whether every entry, and so the whole ledger, sums to zero per currency."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT entry_id FROM remix_posting GROUP BY entry_id, currency "
            "HAVING SUM(amount_minor) <> 0 ORDER BY entry_id LIMIT 100"
        )
        unbalanced = [row[0] for row in cursor.fetchall()]
        cursor.execute("SELECT currency, SUM(amount_minor), COUNT(*) FROM remix_posting GROUP BY currency")
        totals = {}
        postings = 0
        for currency, total, count in cursor.fetchall():
            totals[currency] = int(total)
            postings += count
    entries = JournalEntry.objects.count()
    missing = RevenueEvent.objects.filter(entry__isnull=True).count()
    balanced = not unbalanced and all(total == 0 for total in totals.values()) and missing == 0
    return BooksCheck(
        balanced=balanced,
        entries=entries,
        postings=postings,
        unbalanced_entries=unbalanced,
        currency_totals=totals,
        events_without_entry=missing,
    )


def earnings_of_user(*, user_id: int, start: datetime, end: datetime) -> dict:
    """A user's postings in [start, end): totals per currency and lines per post and role."""
    postings = Posting.objects.filter(
        account__owner_type=AccountOwner.USER,
        account__owner_id=user_id,
        created_at__gte=start,
        created_at__lt=end,
    )
    lines = list(
        postings.values("post_id", "role", "currency")
        .annotate(amount_minor=Sum("amount_minor"), events=Count("entry_id"))
        .order_by("currency", "post_id", "role")
    )
    return {"totals": _totals_by_currency(lines), "lines": lines}


def statement_of_rights_holder(*, rights_holder_id: int, start: datetime, end: datetime) -> dict:
    """A rights holder's postings in [start, end), by IP and post, with totals per currency."""
    postings = Posting.objects.filter(
        account__owner_type=AccountOwner.RIGHTS_HOLDER,
        account__owner_id=rights_holder_id,
        created_at__gte=start,
        created_at__lt=end,
    )
    lines = list(
        postings.values("ip_id", "post_id", "currency")
        .annotate(amount_minor=Sum("amount_minor"), events=Count("entry_id"))
        .order_by("ip_id", "post_id", "currency")
    )
    names = dict(
        IntellectualProperty.objects.filter(pk__in={line["ip_id"] for line in lines}).values_list(
            "id", "name"
        )
    )
    for line in lines:
        line["ip_name"] = names.get(line["ip_id"], "")
    return {"lines": lines, "totals": _totals_by_currency(lines)}


def _totals_by_currency(lines: list[dict]) -> list[dict]:
    """Per currency, the sum of the lines' exact integer amounts (no second query over the postings)."""
    totals: dict[str, int] = {}
    for line in lines:
        totals[line["currency"]] = totals.get(line["currency"], 0) + line["amount_minor"]
    return [{"currency": currency, "amount_minor": amount} for currency, amount in sorted(totals.items())]
