"""The rules a prompt must pass before anything is enqueued (422 `prompt_rejected`), and the ones a
cameo's own `instructions` must pass, since every job using the cameo renders them.

1. Protected likenesses: naming a person in the staff-kept registry (`ProtectedLikeness`, by name or
   alias) is allowed only when one of the job's cameos is verified by staff as that person.
   Display names count for nothing: anyone can call their cameo anything.
2. Sexual content, for everyone (the theme matcher's `sexual content` theme: keywords in several
   languages, and semantic similarity).
3. A minor's cameo in a prompt that touches a theme unsafe for minors.
4. Any theme a cameo's owner refuses (the cameo app's restriction check, details `{cameo, theme}`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from core.errors import RuleRefusal
from core.themes import contains_term, match_theme

SEXUAL_THEMES = ["sexual content"]
# Above the theme matcher's default: for a rule applied to every prompt of every user, a short
# neutral prompt ("video 2") scored above the default against "sexual content"; explicit words are
# caught by the keyword stage whatever this is.
SEXUAL_SIMILARITY_THRESHOLD = 0.5
UNSAFE_FOR_MINORS = ["sexual content", "violence", "weapons", "alcohol", "smoking", "drugs", "gambling"]


def _reject(message: str, **details: Any) -> RuleRefusal:
    return RuleRefusal(message, code="prompt_rejected", details=details)


def named_protected_likenesses(text: str) -> list[tuple[int, str]]:
    """(id, name) of every registry entry that `text` names, by name or alias: one query (the
    registry is small and staff-kept; a new entry counts from the next check on, in every process)."""
    from cameo.models import ProtectedLikeness

    entries = ProtectedLikeness.objects.order_by("id").values_list("id", "name", "aliases")
    return [
        (likeness_id, name)
        for likeness_id, name, aliases in entries
        if any(contains_term(text, term) for term in (name, *aliases))
    ]


def _check_protected_likeness(text: str, *, verified_ids: Iterable[int | None], **details: Any) -> None:
    allowed = {likeness_id for likeness_id in verified_ids if likeness_id is not None}
    for likeness_id, name in named_protected_likenesses(text):
        if likeness_id not in allowed:
            raise _reject(
                f"“{name}” is a protected likeness: only their own verified cameo may show them.",
                **details,
                rule="protected_likeness",
                name=name,
            )


def _check_sexual(text: str, **details: Any) -> None:
    sexual = match_theme(text, SEXUAL_THEMES, threshold=SEXUAL_SIMILARITY_THRESHOLD)
    if sexual is not None:
        raise _reject("This asks for sexual content.", **details, rule="sexual_content", theme=sexual.theme)


def check_prompt(*, prompt: str, cameos: Sequence = ()) -> None:
    """Raises 422 `prompt_rejected` (details name the rule) or returns quietly. `cameos`: every
    Cameo of the job (with `owner` loaded)."""
    _check_protected_likeness(prompt, verified_ids=[cameo.verified_as_id for cameo in cameos])
    _check_sexual(prompt)
    minors = [cameo for cameo in cameos if cameo.owner.is_minor]
    if minors:
        unsafe = match_theme(prompt, UNSAFE_FOR_MINORS)
        if unsafe is not None:
            raise _reject(
                "The prompt is not suitable for a minor's cameo.",
                rule="minor_unsafe",
                cameo=str(minors[0].pk),
                theme=unsafe.theme,
            )
    if cameos:
        from cameo.services import check_cameo_restrictions

        for cameo in cameos:
            check_cameo_restrictions(cameo=cameo, prompt=prompt)


def check_instructions(*, owner, instructions: str, verified_as=None) -> None:
    """The prompt rules that apply to a cameo's own description, which every job using the cameo
    renders: sexual content; a protected likeness, unless the cameo is verified as that person
    (`verified_as`: a ProtectedLikeness or its id); themes unsafe for minors when the owner is one.
    422 `prompt_rejected` with details `{field: "instructions", rule, ...}`."""
    if not instructions.strip():
        return
    field = {"field": "instructions"}
    _check_protected_likeness(instructions, verified_ids=[getattr(verified_as, "pk", verified_as)], **field)
    _check_sexual(instructions, **field)
    if owner.is_minor:
        unsafe = match_theme(instructions, UNSAFE_FOR_MINORS)
        if unsafe is not None:
            raise _reject(
                "These instructions are not suitable for a minor's cameo.",
                **field,
                rule="minor_unsafe",
                theme=unsafe.theme,
            )
