"""The revenue ledger: double-entry journal entries in integer minor units.

Each revenue event becomes one journal entry. Its first posting takes the whole amount out of the
`external` account of the currency (where money arrives from: the ad network, the payment
processor); the others credit each party its split. The postings of an entry sum to zero per
currency; the database refuses to commit one that does not (migration 0002), and postings are
append-only, so a refund is a new entry that mirrors the original one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from core.errors import ApiError, Conflict, NotFound, RuleRefusal
from remix.currencies import is_currency
from remix.models import (
    AccountOwner,
    EventKind,
    IntellectualProperty,
    JournalEntry,
    LedgerAccount,
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


def split_claims(
    *,
    rates: SplitRates,
    ip_shares: Sequence[IpShare],
    cameo_owner_ids: Iterable[int],
    remix_source_id: int | None,
    creator_id: int,
) -> list[tuple[Party, int]]:
    """The parties other than the creator with their basis points, in API.md's order: platform,
    licensed IP (by IP id), cameo owners other than the creator (by user id), the remixed post's
    author if not the creator."""
    claims: list[tuple[Party, int]] = [(Party("platform", None), rates.platform_bps)]
    for share in sorted(ip_shares, key=lambda share: share.ip_id):
        claims.append((Party("rights_holder", share.rights_holder_id, share.ip_id), share.bps))
    for owner_id in sorted(set(cameo_owner_ids) - {creator_id}):
        claims.append((Party("cameo_owner", owner_id), rates.cameo_bps))
    if remix_source_id is not None and remix_source_id != creator_id:
        claims.append((Party("remix_source", remix_source_id), rates.remix_bps))
    return claims


def split_revenue(
    *,
    amount_minor: int,
    rates: SplitRates,
    ip_shares: Sequence[IpShare] = (),
    cameo_owner_ids: Iterable[int] = (),
    remix_source_id: int | None = None,
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
        remix_source_id=remix_source_id,
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


ACCOUNTS_SQL = """
WITH wanted(owner_type, owner_id, currency) AS (VALUES {values}),
created AS (
    INSERT INTO remix_ledgeraccount (owner_type, owner_id, currency, created_at)
    SELECT owner_type, owner_id, currency, now() FROM wanted
    ON CONFLICT (owner_type, owner_id, currency) DO NOTHING
    RETURNING id, owner_type, owner_id, currency
)
SELECT id, owner_type, owner_id, currency FROM created
UNION ALL
SELECT account.id, account.owner_type, account.owner_id, account.currency
  FROM remix_ledgeraccount account
  JOIN wanted USING (owner_type, owner_id, currency)
"""


def accounts_for(keys: Iterable[tuple[str, int, str]]) -> dict[tuple[str, int, str], int]:
    """Account ids for (owner_type, owner_id, currency), creating missing accounts, in one statement.

    An account another transaction creates at the same moment is not in this statement's snapshot
    (the insert waits for it, then skips it), so any key still missing is read once more."""
    wanted = sorted(set(keys))
    found: dict[tuple[str, int, str], int] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            ACCOUNTS_SQL.format(values=", ".join(["(%s, %s::bigint, %s)"] * len(wanted))),
            [value for key in wanted for value in key],
        )
        for pk, kind, owner, currency in cursor.fetchall():
            found[(kind, owner, currency)] = pk
    missing = [key for key in wanted if key not in found]
    for kind, owner, currency in missing:
        found[(kind, owner, currency)] = LedgerAccount.objects.get(
            owner_type=kind, owner_id=owner, currency=currency
        ).pk
    return found


POST_PARTIES_SQL = """
SELECT post.author_id, post.cameo_owner_ids, parent.author_id,
       COALESCE(array_agg(licence.ip_id ORDER BY licence.ip_id) FILTER (WHERE licence.id IS NOT NULL), '{}'),
       COALESCE(array_agg(ip.rights_holder_id ORDER BY licence.ip_id) FILTER (WHERE licence.id IS NOT NULL), '{}'),
       COALESCE(array_agg(policy.revenue_share_bps ORDER BY licence.ip_id) FILTER (WHERE licence.id IS NOT NULL), '{}')
  FROM social_post post
  LEFT JOIN social_post parent ON parent.id = post.remix_of_id
  LEFT JOIN remix_iplicence licence ON licence.post_id = post.id
  LEFT JOIN remix_intellectualproperty ip ON ip.id = licence.ip_id
  LEFT JOIN remix_ippolicy policy ON policy.id = licence.policy_id
 WHERE post.id = %s
 GROUP BY post.id, parent.author_id
"""


def post_split_inputs(*, post_id: int) -> dict:
    """What `split_revenue` needs to know about a post, in one query: its creator, cameo owners,
    the remixed post's author, and its licensed IP with the share of the policy version each
    licence recorded (not the IP's current policy)."""
    with connection.cursor() as cursor:
        cursor.execute(POST_PARTIES_SQL, [post_id])
        row = cursor.fetchone()
    if row is None:
        raise NotFound("No such post.", details={"post_id": str(post_id)})
    creator_id, cameo_owner_ids, remix_source_id, ip_ids, holder_ids, shares = row
    return {
        "ip_shares": [
            IpShare(ip_id=ip_id, rights_holder_id=holder_id, bps=bps)
            for ip_id, holder_id, bps in zip(ip_ids, holder_ids, shares, strict=True)
        ],
        "cameo_owner_ids": list(cameo_owner_ids or []),
        "remix_source_id": remix_source_id,
        "creator_id": creator_id,
    }


@dataclass
class RecordedEvent:
    event: RevenueEvent
    splits: list[Split]
    created: bool = field(default=True)


def _same_request(event: RevenueEvent, *, post_id, amount_minor, currency, kind, reverses_event_id) -> bool:
    original_id = event.reverses.event_id if event.reverses_id else None
    return (
        event.post_id == post_id
        and event.amount_minor == amount_minor
        and event.currency == currency
        and event.kind == kind
        and original_id == reverses_event_id
    )


Line = tuple[Party | None, str, int, int | None]  # (party, or None for the source; role; amount; ip_id)


def _posted_lines(event: RevenueEvent) -> list[Line]:
    """The postings of an event's entry as lines, in the order they were written."""
    rows = (
        Posting.objects.filter(entry__event=event)
        .order_by("position")
        .values_list("role", "account__owner_id", "ip_id", "amount_minor")
    )
    return [
        (
            None
            if role == SplitRole.SOURCE
            else Party(role, None if role == SplitRole.PLATFORM else owner_id, ip_id),
            role,
            amount,
            ip_id,
        )
        for role, owner_id, ip_id, amount in rows
    ]


def splits_of(event: RevenueEvent) -> list[Split]:
    return [Split(party=party, amount_minor=amount) for party, _, amount, _ in _posted_lines(event) if party]


def _replay(existing: RevenueEvent, **request) -> RecordedEvent:
    if not _same_request(existing, **request):
        raise Conflict(
            "Another event was recorded under this event_id.",
            code="event_id_conflict",
            details={"event_id": existing.event_id},
        )
    return RecordedEvent(event=existing, splits=splits_of(existing), created=False)


WRITE_ENTRY_SQL = """
WITH entry AS (
    INSERT INTO remix_journalentry (event_id, created_at) VALUES (%s, %s) RETURNING id
)
INSERT INTO remix_posting (entry_id, account_id, amount_minor, currency, role, position, post_id, ip_id, created_at)
SELECT entry.id, line.account_id, line.amount_minor, %s, line.role, line.position, %s, line.ip_id, %s
  FROM entry, (VALUES {values}) AS line(account_id, amount_minor, role, position, ip_id)
"""
LINE_VALUES = "(%s::bigint, %s::bigint, %s::varchar, %s::smallint, %s::bigint)"


def _write_entry(*, event: RevenueEvent, lines: list[Line]) -> None:
    """Write the entry and its postings in one statement. The database checks the sum again at commit."""
    if sum(amount for _, _, amount, _ in lines) != 0:
        raise ValueError("a journal entry must sum to zero")
    source_key = (AccountOwner.EXTERNAL, 0, event.currency)
    keys = {source_key} | {account_key(party, event.currency) for party, _, _, _ in lines if party}
    account_ids = accounts_for(keys)
    values = []
    for position, (party, role, amount, ip_id) in enumerate(lines):
        account_id = account_ids[account_key(party, event.currency) if party else source_key]
        values += [account_id, amount, str(role), position, ip_id]
    with connection.cursor() as cursor:
        cursor.execute(
            WRITE_ENTRY_SQL.format(values=", ".join([LINE_VALUES] * len(lines))),
            [event.pk, event.created_at, event.currency, event.post_id, event.created_at, *values],
        )


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
    """Record a revenue event once and return its splits.

    The same `event_id` with the same content returns the first result (`created` False); with other
    content it is a 409. A refund (`kind` "refund", `reverses_event_id` set) mirrors the original
    entry posting for posting; its amount is the original's, given with either sign and stored
    negative. Concurrent duplicates are serialised by the unique index on `event_id`: the second
    insert waits for the first transaction and then reads its result.
    """
    if not is_currency(currency):
        raise ApiError(
            "The currency is not an ISO 4217 code of money.",
            details={"currency": ["Not an ISO 4217 currency code."]},
        )
    currency = currency.upper()
    if kind == EventKind.REFUND:
        if not reverses_event_id:
            raise RuleRefusal("A refund names the event it reverses.", code="invalid_refund")
        if amount_minor == 0:
            raise ApiError("The amount must not be zero.", details={"amount_minor": ["Must not be zero."]})
        amount_minor = -abs(amount_minor)
    elif reverses_event_id:
        raise RuleRefusal("Only a refund may reverse an event.", code="invalid_refund")
    elif amount_minor <= 0:
        raise ApiError("The amount must be positive.", details={"amount_minor": ["Must be positive."]})
    request = {
        "post_id": post_id,
        "amount_minor": amount_minor,
        "currency": currency,
        "kind": kind,
        "reverses_event_id": reverses_event_id,
    }
    with transaction.atomic():
        original = None
        if reverses_event_id:
            original = RevenueEvent.objects.filter(event_id=reverses_event_id).first()
            if original is None:
                raise NotFound(
                    "The event to reverse does not exist.", details={"reverses": reverses_event_id}
                )
        event = _insert_event(
            event_id=event_id,
            post_id=post_id,
            amount_minor=amount_minor,
            currency=currency,
            kind=kind,
            reverses=original,
            created_at=occurred_at,
        )
        if event is None:
            # Recorded before, or by a concurrent request that has committed by now (the insert
            # waited for it); or, for a refund, the original was refunded under another id.
            existing = RevenueEvent.objects.select_related("reverses").filter(event_id=event_id).first()
            if existing is not None:
                return _replay(existing, **request)
            raise Conflict(
                "This event was already refunded.",
                code="already_refunded",
                details={"reverses": reverses_event_id},
            )
        if original is not None:
            _check_refund_matches(original, post_id=post_id, amount_minor=amount_minor, currency=currency)
            mirrored = [
                (party, role, -amount, ip_id) for party, role, amount, ip_id in _posted_lines(original)
            ]
            _write_entry(event=event, lines=mirrored)
            splits = [Split(party=party, amount_minor=amount) for party, _, amount, _ in mirrored if party]
        else:
            splits = split_revenue(
                amount_minor=amount_minor,
                rates=rates or SplitRates.from_settings(),
                **post_split_inputs(post_id=post_id),
            )
            lines = [(None, SplitRole.SOURCE, -amount_minor, None)]
            lines += [
                (split.party, ROLE_BY_PARTY_TYPE[split.party.type], split.amount_minor, split.party.ip_id)
                for split in splits
            ]
            _write_entry(event=event, lines=lines)
    return RecordedEvent(event=event, splits=splits, created=True)


INSERT_EVENT_SQL = """
INSERT INTO remix_revenueevent (event_id, post_id, amount_minor, currency, kind, reverses_id, created_at)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT DO NOTHING
RETURNING id
"""


def _insert_event(
    *, created_at: datetime | None, reverses: RevenueEvent | None, **fields
) -> RevenueEvent | None:
    """Insert the event row unless one with this event_id (or a refund of the same original)
    exists; None then. One statement, no savepoint: the unique indexes decide."""
    event = RevenueEvent(created_at=created_at or timezone.now(), reverses=reverses, **fields)
    with connection.cursor() as cursor:
        cursor.execute(
            INSERT_EVENT_SQL,
            [
                event.event_id,
                event.post_id,
                event.amount_minor,
                event.currency,
                event.kind,
                reverses.pk if reverses else None,
                event.created_at,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    event.pk = row[0]
    event._state.adding = False
    return event


def _check_refund_matches(original: RevenueEvent, *, post_id: int, amount_minor: int, currency: str) -> None:
    if original.kind == EventKind.REFUND:
        raise RuleRefusal("A refund cannot be reversed.", code="invalid_refund")
    mismatched = {}
    if original.post_id != post_id:
        mismatched["post_id"] = str(original.post_id)
    if original.currency != currency:
        mismatched["currency"] = original.currency
    if original.amount_minor != -amount_minor:
        mismatched["amount_minor"] = original.amount_minor
    if mismatched:
        raise RuleRefusal(
            "A refund mirrors the whole original event.", code="refund_mismatch", details=mismatched
        )


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
