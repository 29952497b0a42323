"""The theme matcher: does this prompt touch that theme?

Cameo owners list themes they refuse ("politics", "alcohol") and rights holders list themes their
characters must stay out of. A prompt touches a theme when either

1. keyword: the theme itself, or a word the lexicon below ties to it, occurs in the prompt after
   normalisation (NFKC, so full-width letters match half-width; case folded). Scripts written with
   spaces match on word boundaries ("ale" does not match "male"); Chinese and Japanese, which have no
   spaces, match as substrings; or
2. semantic: the cosine similarity between the embedding of a clause of the prompt (or the whole
   prompt) and the theme's embedding reaches THEME_SIMILARITY_THRESHOLD. The theme's embedding is the
   mean of the theme and three phrasings of it ("a scene involving X", ...), which separates better
   than the bare word.

Threshold, measured with all-MiniLM-L6-v2 (the semantic stage alone, keywords off): 24 everyday
prompts ("dancing in the rain", "a night out in the city with friends", "relaxing at the beach bar
with a smoothie", ...) against 9 themes scored at most 0.336 ("dancing in the rain" vs alcohol);
12 prompts that touch a theme without naming it scored 0.15-0.61, 8 of them at least 0.427
("doing tequila shots at a wild party" vs intoxication 0.427, "a riot with police" vs violence
0.555). The default threshold, 0.40, leaves a 0.06 margin above every everyday prompt; the prompts
below it ("me voting at the ballot box", "lighting up a joint") are caught by the keyword stage.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from django.conf import settings

# Words tied to common themes, in the languages of our first markets. The theme's own words always
# count; this adds what people write instead.
THEME_LEXICON: dict[str, list[str]] = {
    "politics": [
        "politics",
        "political",
        "politician",
        "election",
        "elections",
        "vote",
        "voting",
        "campaign",
        "president",
        "presidential",
        "senator",
        "parliament",
        "congress",
        "prime minister",
        "party rally",
        "政治",
        "选举",
        "選挙",
        "总统",
        "總統",
        "議会",
        "议会",
        "政党",
    ],
    "alcohol": [
        "alcohol",
        "alcoholic",
        "beer",
        "beers",
        "wine",
        "whisky",
        "whiskey",
        "vodka",
        "tequila",
        "rum",
        "gin",
        "cocktail",
        "cocktails",
        "drunk",
        "booze",
        "champagne",
        "bar crawl",
        "酒",
        "啤酒",
        "白酒",
        "葡萄酒",
        "喝醉",
        "ビール",
        "酔っ",
    ],
    "violence": [
        "violence",
        "violent",
        "fight",
        "fighting",
        "punch",
        "punching",
        "stab",
        "stabbing",
        "gun",
        "guns",
        "knife",
        "blood",
        "bloody",
        "kill",
        "killing",
        "murder",
        "gore",
        "暴力",
        "打架",
        "杀",
        "殺",
        "血",
    ],
    "religion": [
        "religion",
        "religious",
        "church",
        "mosque",
        "temple",
        "prayer",
        "praying",
        "priest",
        "bible",
        "quran",
        "宗教",
        "教会",
        "寺",
        "祈祷",
    ],
    "gambling": [
        "gambling",
        "gamble",
        "casino",
        "poker",
        "betting",
        "slot machine",
        "roulette",
        "lottery",
        "赌博",
        "賭博",
        "赌场",
        "カジノ",
    ],
    "smoking": [
        "smoking",
        "smoke",
        "cigarette",
        "cigarettes",
        "cigar",
        "vape",
        "vaping",
        "tobacco",
        "吸烟",
        "抽烟",
        "タバコ",
    ],
    "drugs": [
        "drugs",
        "joint",
        "stoned",
        "drug",
        "cocaine",
        "heroin",
        "weed",
        "marijuana",
        "cannabis",
        "meth",
        "lsd",
        "毒品",
        "大麻",
    ],
    "sexual content": [
        "sex",
        "sexual",
        "sexy",
        "nude",
        "naked",
        "porn",
        "pornographic",
        "erotic",
        "nsfw",
        "lingerie",
        "stripper",
        "色情",
        "裸体",
        "裸",
    ],
    "weapons": [
        "weapon",
        "weapons",
        "gun",
        "guns",
        "rifle",
        "pistol",
        "knife",
        "bomb",
        "grenade",
        "武器",
        "枪",
        "銃",
    ],
}
THEME_ALIASES = {
    "sex": "sexual content",
    "sexual": "sexual content",
    "nudity": "sexual content",
    "drinking": "alcohol",
    "political": "politics",
    "tobacco": "smoking",
    "drug": "drugs",
    "faith": "religion",
    "gaming": "gambling",
    "guns": "weapons",
}
THEME_PHRASINGS = ("{}", "a scene involving {}", "a video about {}", "something related to {}")
_CLAUSE_SPLIT = re.compile(r"[.;,!?\n。！？；，、]+")
_NO_SPACE_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL")


@dataclass(frozen=True)
class ThemeMatch:
    theme: str
    how: str  # "keyword" or "semantic"
    score: float
    evidence: str = ""


def normalize_text(text: str) -> str:
    """NFKC (full-width and half-width forms become one), case folded, spaces collapsed."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split())


def _is_spaceless_script(char: str) -> bool:
    name = unicodedata.name(char, "")
    return any(name.startswith(prefix) for prefix in _NO_SPACE_SCRIPTS)


@lru_cache(maxsize=4096)
def term_pattern(term: str) -> re.Pattern[str]:
    """A pattern for `term` with word boundaries where its script uses them."""
    normalized = normalize_text(term)
    escaped = re.escape(normalized)
    left = "" if _is_spaceless_script(normalized[0]) else r"(?<!\w)"
    right = "" if _is_spaceless_script(normalized[-1]) else r"(?!\w)"
    return re.compile(left + escaped + right)


def contains_term(text: str, term: str) -> bool:
    """Whether `term` occurs in `text` (normalised), on word boundaries where the script has them."""
    if not term.strip():
        return False
    return term_pattern(term).search(normalize_text(text)) is not None


def theme_terms(theme: str) -> list[str]:
    key = normalize_text(theme)
    key = THEME_ALIASES.get(key, key)
    terms = [normalize_text(theme), *THEME_LEXICON.get(key, [])]
    return list(dict.fromkeys(term for term in terms if term))


@lru_cache(maxsize=2048)
def _theme_vector(theme: str) -> bytes:
    from core.text_embeddings import embed_texts

    vectors = embed_texts([phrasing.format(theme) for phrasing in THEME_PHRASINGS])
    mean = vectors.mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32).tobytes()


def clauses(text: str) -> list[str]:
    parts = [part.strip() for part in _CLAUSE_SPLIT.split(text) if part.strip()]
    whole = text.strip()
    return list(dict.fromkeys([whole, *parts])) if whole else []


def semantic_score(text: str, theme: str) -> tuple[float, str]:
    """The best similarity of any clause of `text` to `theme`, and that clause."""
    from core.text_embeddings import embed_texts

    pieces = clauses(text)
    if not pieces:
        return 0.0, ""
    theme_vector = np.frombuffer(_theme_vector(normalize_text(theme)), dtype=np.float32)
    scores = embed_texts(pieces) @ theme_vector
    best = int(np.argmax(scores))
    return float(scores[best]), pieces[best]


def match_theme(text: str, themes: list[str], *, threshold: float | None = None) -> ThemeMatch | None:
    """The first theme in `themes` that `text` touches, or None."""
    themes = [theme for theme in themes if theme and theme.strip()]
    if not themes or not text.strip():
        return None
    for theme in themes:
        for term in theme_terms(theme):
            if contains_term(text, term):
                return ThemeMatch(theme=theme, how="keyword", score=1.0, evidence=term)
    limit = settings.THEME_SIMILARITY_THRESHOLD if threshold is None else threshold
    best: ThemeMatch | None = None
    for theme in themes:
        score, clause = semantic_score(text, theme)
        if score >= limit and (best is None or score > best.score):
            best = ThemeMatch(theme=theme, how="semantic", score=round(score, 4), evidence=clause)
    return best
