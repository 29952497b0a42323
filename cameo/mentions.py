"""`@handle` mentions in prompts: finding them, resolving them to cameos, and writing each one the
way its owner describes it.

A mention is `@` and a handle (`models.HANDLE_BODY`, in any case: `@Rex` is `@rex`), where the `@`
follows the start, a space or punctuation, never a letter, a digit or one of `_.+-/@` (so
`ana@example.com`, `a.b@c.d` and `/u/@x` are no mentions), and where nothing of an address
follows (`@rex@example.com` is none). A dot that ends a sentence is not part of the handle.
Strings that cannot be handles (`@ab`: too short) are plain text. Resolving is a lookup only:
whether the requester may use the cameos is `cameo.lineage`'s decision, as for `cameo_ids`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from django.db.models.functions import Lower

from cameo.handles import is_valid_handle
from cameo.models import HANDLE_BODY, Cameo
from core.errors import RuleRefusal

# A job shows at most this many cameos (named, mentioned and inherited together).
MAX_CAMEOS_PER_JOB = 3

# The handle is an atomic group: no backtracking to a shorter handle that would dodge the `@`
# test after it (`@bob.smith@x.com` must not yield `@bob`). ASCII-only boundaries: in Chinese,
# `和@rex一起` mentions rex.
_MENTION = re.compile(rf"(?<![A-Za-z0-9_.@+\-/])@((?>{HANDLE_BODY}))(?![A-Za-z0-9_@])", re.IGNORECASE)


def _mention_matches(prompt: str):
    for match in _MENTION.finditer(prompt):
        handle = match.group(1).lower()
        if is_valid_handle(handle):
            yield match, handle


def find_mentions(prompt: str) -> list[str]:
    """The distinct handles `prompt` mentions, lower case, in order of first mention; 422
    `too_many_cameos` (details `{max, mentioned}`) for more than MAX_CAMEOS_PER_JOB."""
    handles = list(dict.fromkeys(handle for _match, handle in _mention_matches(prompt)))
    if len(handles) > MAX_CAMEOS_PER_JOB:
        raise RuleRefusal(
            f"A video shows at most {MAX_CAMEOS_PER_JOB} cameos.",
            code="too_many_cameos",
            details={"max": MAX_CAMEOS_PER_JOB, "mentioned": handles},
        )
    return handles


def resolve_mentions(*, handles: Sequence[str]) -> list[Cameo]:
    """The cameos holding `handles` (lower case, as `find_mentions` returns them), in that order,
    with their owners; 422 `unknown_mention` (details `{handle}`) for the first no cameo holds.
    One query."""
    if not handles:
        return []
    found = {
        cameo.handle: cameo
        for cameo in Cameo.objects.alias(handle_lower=Lower("handle"))
        .filter(handle_lower__in=list(handles))
        .select_related("owner")
        .defer("template_vector")
    }
    for handle in handles:
        if handle not in found:
            raise RuleRefusal(
                f"No cameo is called @{handle}.", code="unknown_mention", details={"handle": handle}
            )
    return [found[handle] for handle in handles]


def mentioned_cameos(prompt: str) -> list[Cameo]:
    """`resolve_mentions(handles=find_mentions(prompt))`."""
    return resolve_mentions(handles=find_mentions(prompt))


def describe_cameo(cameo: Cameo) -> str:
    """The cameo as its owner presents it: its display name, and its instructions after it."""
    name = cameo.display_name.strip() or cameo.handle or "the cameo"
    instructions = cameo.instructions.strip().rstrip(".")
    return f"{name} ({instructions})" if instructions else name


def compose_cameo_prompt(prompt: str, cameos: Sequence[Cameo]) -> str:
    """`prompt` with each mention of one of `cameos` written out: the first as `describe_cameo`
    (name and the owner's instructions), later ones by name alone. Mentions of other handles stay
    as they are. The instructions of every mentioned cameo are thus in the result once."""
    by_handle = {cameo.handle: cameo for cameo in cameos if cameo.handle}
    described: set[str] = set()
    pieces, position = [], 0
    for match, handle in _mention_matches(prompt):
        cameo = by_handle.get(handle)
        if cameo is None:
            continue
        pieces.append(prompt[position : match.start()])
        pieces.append(
            (cameo.display_name.strip() or handle) if handle in described else describe_cameo(cameo)
        )
        described.add(handle)
        position = match.end()
    pieces.append(prompt[position:])
    return "".join(pieces)
