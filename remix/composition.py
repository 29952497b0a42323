"""The prompt the model sees for a remix or a continuation."""

from __future__ import annotations

from typing import Literal

MAX_PROMPT_CHARS = 2000
ELLIPSIS = "…"
# Below this many characters a cut source says too little to be worth keeping.
MIN_SOURCE_CHARS = 40
TEMPLATES = {
    "remix": "{instruction} (remix of: {source})",
    "continue": "{instruction} (continuing the story of: {source})",
}


def _squash(text: str) -> str:
    return " ".join(text.split())


def _cut_at_word(text: str, budget: int) -> str:
    """`text` shortened to at most `budget` characters, ending on a whole word plus an ellipsis."""
    if len(text) <= budget:
        return text
    head = text[: budget - len(ELLIPSIS)]
    space = head.rfind(" ")
    if space >= (budget - len(ELLIPSIS)) // 2:
        head = head[:space]
    return head.rstrip(" ,;:.") + ELLIPSIS


def compose_remix_prompt(*, source_prompt: str, instruction: str, mode: Literal["remix", "continue"]) -> str:
    """Compose the model's prompt from the source post's prompt and the remixer's instruction.

    The rule:
    1. Runs of whitespace in both texts become one space; ends are stripped.
    2. The remixer's instruction leads, because it is what the new video is about; the source prompt
       follows as context, in the mode's template:
       - remix:    "<instruction> (remix of: <source prompt>)"
       - continue: "<instruction> (continuing the story of: <source prompt>)"
    3. An empty source gives the instruction alone; an empty instruction gives the source alone.
    4. The result never exceeds MAX_PROMPT_CHARS (2000, the API's prompt limit). The instruction is
       kept whole; when the whole does not fit, the source is cut at a word boundary and ends with
       "…". If that leaves the source fewer than MIN_SOURCE_CHARS (40) characters, the source is
       dropped and the instruction alone is used (cut to 2000 characters if it is longer).
    """
    if mode not in TEMPLATES:
        raise ValueError(f"mode must be 'remix' or 'continue', not {mode!r}")
    source = _squash(source_prompt)
    wish = _squash(instruction)
    if not source:
        return wish[:MAX_PROMPT_CHARS]
    if not wish:
        return _cut_at_word(source, MAX_PROMPT_CHARS)
    template = TEMPLATES[mode]
    composed = template.format(instruction=wish, source=source)
    if len(composed) <= MAX_PROMPT_CHARS:
        return composed
    budget = MAX_PROMPT_CHARS - len(template.format(instruction=wish, source=""))
    if budget < MIN_SOURCE_CHARS:
        return wish[:MAX_PROMPT_CHARS]
    return template.format(instruction=wish, source=_cut_at_word(source, budget))
