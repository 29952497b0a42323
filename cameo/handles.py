"""Handles: the `@name` of a cameo in prompts. Pure helpers; claiming and releasing one are writes
(cameo.services: `claim_handle`, `release_handle`).

The format is `models.HANDLE_PATTERN`; handles are stored in lower case, so `@Rex` and `@rex` are one
handle and the database's unique index on lower(handle) holds across persons and characters.
"""

from __future__ import annotations

import re
import unicodedata

from cameo.models import HANDLE_MAX_LENGTH, HANDLE_MIN_LENGTH, HANDLE_PATTERN
from core.errors import ApiError

_HANDLE_RE = re.compile(HANDLE_PATTERN)
FALLBACK_BASE = "cameo"
# Derived candidates tried in one query: base, base2, ..., base<CANDIDATES>.
CANDIDATES = 50


def is_valid_handle(value: str) -> bool:
    return bool(_HANDLE_RE.fullmatch(value))


def normalize_handle(raw: str) -> str:
    """The handle as stored (lower case, an `@` in front tolerated), or 400 `invalid`."""
    value = str(raw).strip().removeprefix("@").lower()
    if not is_valid_handle(value):
        raise ApiError(
            "A handle is 3-30 letters, digits, underscores or inner dots.",
            details={
                "handle": [
                    f"{HANDLE_MIN_LENGTH}-{HANDLE_MAX_LENGTH} of a-z, 0-9, _ and . (not first, last or "
                    "twice in a row)."
                ]
            },
        )
    return value


def handle_base(text: str) -> str:
    """A valid handle made from a username or a display name: accents dropped, other characters
    turned into `_`, dots tidied, short ones padded ("Jo" -> "jo_cameo"), room left for a number."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode().lower()
    base = re.sub(r"[^a-z0-9_.]+", "_", ascii_text)
    base = re.sub(r"\.{2,}", ".", base).strip("._")
    base = re.sub(r"_{2,}", "_", base)[: HANDLE_MAX_LENGTH - len(str(CANDIDATES))].strip(".")
    if len(base) < HANDLE_MIN_LENGTH:
        base = f"{base}_{FALLBACK_BASE}" if base else FALLBACK_BASE
    return base


def candidate_handles(text: str) -> list[str]:
    """`handle_base(text)`, then the same with 2, 3, ... appended: the free ones are the choice."""
    base = handle_base(text)
    return [base] + [f"{base}{number}" for number in range(2, CANDIDATES + 1)]
