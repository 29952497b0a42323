"""The theme matcher: does this prompt touch that theme?

Cameo owners list themes they refuse ("politics", "alcohol") and rights holders list themes their
characters must stay out of. A prompt touches a theme when either

1. keyword: the theme itself, or a word the lexicon below ties to it, occurs in the prompt after
   normalisation (NFKC, so full-width letters match half-width; case folded). A term needs a word
   boundary only where its edge letter and the neighbouring letter both belong to scripts written
   with spaces: "ale" does not match "male", but "beer" is found in "我想喝beer吧" and Chinese,
   Japanese, Korean and Thai terms match as substrings; or
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

# Unicode blocks of scripts that do not put spaces between words, so a word written in them gives no
# boundary to a neighbouring term. Whole blocks: their punctuation is not a word character anyway.
# Half-width kana and Hangul are left out because NFKC turns them into the full-width forms below.
# Hangul counts as spaceless: Korean spaces separate phrases, but particles and endings are written
# onto the word before them, Latin words included ("beer를", "Zorbulon이랑"); Hangul terms thus
# match as substrings ("맥주" in "맥주를"), accepting that a short one may hit inside a longer word.
_SPACELESS_BLOCKS = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1100, 0x11FF),  # Hangul Jamo
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer Symbols
    (0x2E80, 0x2FDF),  # CJK Radicals Supplement, Kangxi Radicals
    (0x3000, 0x303F),  # CJK Symbols and Punctuation (々, 〇)
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3100, 0x312F),  # Bopomofo
    (0x3130, 0x318F),  # Hangul Compatibility Jamo
    (0x31A0, 0x31BF),  # Bopomofo Extended
    (0x31F0, 0x31FF),  # Katakana Phonetic Extensions
    (0x3400, 0x4DBF),  # CJK Unified Ideographs Extension A
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xA960, 0xA97F),  # Hangul Jamo Extended-A
    (0xA9E0, 0xA9FF),  # Myanmar Extended-B
    (0xAA60, 0xAA7F),  # Myanmar Extended-A
    (0xAC00, 0xD7FF),  # Hangul Syllables, Hangul Jamo Extended-B
    (0xF900, 0xFAFF),  # CJK Compatibility Ideographs
    (0x1AFF0, 0x1B16F),  # Kana Extended-B, Kana Supplement, Kana Extended-A, Small Kana Extension
    (0x20000, 0x323AF),  # CJK Unified Ideographs Extensions B-I, CJK Compatibility Ideographs Supplement
)
_SPACELESS = "".join(rf"\U{first:08x}-\U{last:08x}" for first, last in _SPACELESS_BLOCKS)
# Compiled once: a pattern holding this class costs about 15 ms to compile (the re module expands
# its 40,000 BMP code points), so terms check their neighbours with it rather than embedding it.
_SPACELESS_CHAR = re.compile(f"[{_SPACELESS}]")


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


def _is_spaced_word_char(char: str) -> bool:
    """A word character (as `\\w`: letters, digits, underscore) of a script written with spaces."""
    return (char.isalnum() or char == "_") and _SPACELESS_CHAR.match(char) is None


class TermPattern:
    """Finds a normalised term in normalised text. An edge of the term written in a spaced script
    must not touch a word character of a spaced script ("ale" is not in "male", "gin" not in
    "gin2"); any other edge may touch anything ("beer" is in "喝beer吧", "C罗" in "C罗进球", "啤酒"
    in "喝啤酒")."""

    def __init__(self, term: str):
        self.term = term
        # A lookahead finds every start, overlapping ones included: a rejected hit must not hide
        # the next ("ab" in "aab").
        self._starts = re.compile(f"(?={re.escape(term)})")
        self._left_bounded = _SPACELESS_CHAR.match(term[0]) is None
        self._right_bounded = _SPACELESS_CHAR.match(term[-1]) is None

    def search(self, text: str) -> re.Match[str] | None:
        """The first occurrence on acceptable boundaries (a zero-width match at its start), or None."""
        for found in self._starts.finditer(text):
            start, end = found.start(), found.start() + len(self.term)
            if self._left_bounded and start > 0 and _is_spaced_word_char(text[start - 1]):
                continue
            if self._right_bounded and end < len(text) and _is_spaced_word_char(text[end]):
                continue
            return found
        return None


@lru_cache(maxsize=4096)
def term_pattern(term: str) -> TermPattern:
    """The matcher of `term`, normalised as prompts are (`normalize_text`)."""
    return TermPattern(normalize_text(term))


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
