"""Opaque keyset cursors: `?cursor=&limit=`, `{"results": [...], "next_cursor": ...}`.

A cursor holds the sort key of the last item served, signed so that clients cannot forge one.
Keyset paging (WHERE key < last key) keeps a cursor valid while new rows arrive: rows inserted
above the cursor are not seen by that chain, and no row below it is repeated or skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core import signing
from django.db.models import Q, QuerySet

from core.errors import ApiError

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
CURSOR_SALT = "core.pagination.cursor"


@dataclass
class Page:
    items: list[Any]
    next_cursor: str | None


def encode_cursor(state: dict[str, Any], *, compress: bool = True) -> str:
    """The signed cursor; `compress=False` for a state that is packed already (zlib would only cost
    time)."""
    return signing.dumps(state, salt=CURSOR_SALT, compress=compress)


def decode_cursor(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    try:
        state = signing.loads(raw, salt=CURSOR_SALT)
    except signing.BadSignature as exc:
        raise ApiError(
            "The cursor is not valid.", code="invalid", details={"cursor": ["Invalid cursor."]}
        ) from exc
    if not isinstance(state, dict):
        raise ApiError("The cursor is not valid.", code="invalid", details={"cursor": ["Invalid cursor."]})
    return state


def read_limit(params, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    raw = params.get("limit")
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except (TypeError, ValueError) as exc:
        raise ApiError(details={"limit": ["Must be an integer."]}) from exc
    if limit < 1:
        raise ApiError(details={"limit": ["Must be at least 1."]})
    return min(limit, maximum)


def _to_json(value: Any) -> Any:
    return {"__dt__": value.isoformat()} if isinstance(value, datetime) else value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict) and "__dt__" in value:
        return datetime.fromisoformat(value["__dt__"])
    return value


def keyset_position(cursor: str | None, *, keys: int) -> list[Any] | None:
    """The sort key a cursor holds (None for the first page); 400 `invalid` for a malformed one."""
    state = decode_cursor(cursor)
    if state is None:
        return None
    try:
        last = [_from_json(value) for value in state["k"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiError(details={"cursor": ["Invalid cursor."]}) from exc
    if len(last) != keys:
        raise ApiError(details={"cursor": ["Invalid cursor."]})
    return last


def keyset_cursor(values: Sequence[Any]) -> str:
    """The cursor of the page after the row whose sort key is `values`."""
    return encode_cursor({"k": [_to_json(value) for value in values]})


def keyset_page(
    queryset: QuerySet,
    *,
    keys: Sequence[str],
    cursor: str | None,
    limit: int,
) -> Page:
    """One page of `queryset` in descending order of `keys` (the last key must be unique)."""
    last = keyset_position(cursor, keys=len(keys))
    if last is not None:
        after = Q()
        for position in range(len(keys)):
            clause = Q(**{f"{keys[position]}__lt": last[position]})
            for earlier in range(position):
                clause &= Q(**{keys[earlier]: last[earlier]})
            after |= clause
        queryset = queryset.filter(after)
    ordered = queryset.order_by(*[f"-{key}" for key in keys])
    rows = list(ordered[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        next_cursor = keyset_cursor([_attribute(rows[-1], key) for key in keys])
    return Page(items=rows, next_cursor=next_cursor)


def _attribute(row: Any, key: str) -> Any:
    value = row
    for part in key.split("__"):
        value = getattr(value, part)
    return value


def request_page(request, queryset: QuerySet, *, keys: Sequence[str]) -> Page:
    """`keyset_page` at the request's `?cursor=` with its `?limit=`: what every list endpoint reads."""
    return keyset_page(
        queryset, keys=keys, cursor=request.query_params.get("cursor"), limit=read_limit(request.query_params)
    )


def page_response_data(page: Page, serialized: list[Any]) -> dict[str, Any]:
    return {"results": serialized, "next_cursor": page.next_cursor}
