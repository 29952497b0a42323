import string
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cameo.services import check_cameo_restrictions
from core.errors import ApiError
from core.text_embeddings import DIMENSIONS, embed_texts, similarity
from core.themes import contains_term, match_theme, normalize_text


def test_embeddings_are_normalised_and_deterministic():
    vectors = embed_texts(["a cat on a skateboard", "a cat on a skateboard", "quarterly tax report"])
    assert vectors.shape == (3, DIMENSIONS)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4
    assert float(vectors[0] @ vectors[1]) == pytest.approx(1.0, abs=1e-5)
    assert similarity("a kitten riding a skateboard", "a cat on a skateboard") > similarity(
        "quarterly tax report", "a cat on a skateboard"
    )


def test_normalize_folds_width_and_case():
    assert normalize_text("ＡＬＣＯＨＯＬ  Party") == "alcohol party"


@pytest.mark.parametrize(
    ("text", "term", "expected"),
    [
        ("a cold beer on the beach", "beer", True),
        ("ＢＥＥＲ time", "beer", True),
        ("beers for everyone", "beer", False),
        ("a male lead", "ale", False),
        ("我们去喝啤酒吧", "啤酒", True),
        ("カジノで遊ぶ", "カジノ", True),
    ],
)
def test_terms_match_on_word_boundaries_where_the_script_has_them(text, term, expected):
    assert contains_term(text, term) is expected


@pytest.mark.parametrize(
    ("text", "term", "expected"),
    [
        # A Latin term glued to a script without spaces, on either side or both.
        ("我和Zorbulon一起跳舞", "Zorbulon", True),
        ("Zorbulon一起跳舞", "Zorbulon", True),
        ("我和Zorbulon", "Zorbulon", True),
        ("ZorbulonがRunning", "Zorbulon", True),
        ("今日はZorbulonと踊る", "Zorbulon", True),
        ("タバコとbeerとワイン", "beer", True),
        ("私のbeer", "beer", True),
        ("ฉันดื่มbeerกับเพื่อน", "beer", True),
        ("ฉันเต้นกับZorbulon", "Zorbulon", True),
        ("ຂ້ອຍດື່ມbeerແລ້ວ", "beer", True),  # Lao
        ("ខ្ញុំផឹកbeerណាស់", "beer", True),  # Khmer
        ("ကျွန်တော်beerသောက်တယ်", "beer", True),  # Myanmar
        ("ངསbeerའཐུང", "beer", True),  # Tibetan
        ("Zorbulon이랑 춤을 췄다", "Zorbulon", True),  # Korean particle written onto the word
        ("ＢＥＥＲ喝完了", "beer", True),  # full-width letters, then Han
        # A term in a script without spaces, glued to Latin text.
        ("smokeタバコsmoke", "タバコ", True),
        ("drinking啤酒now", "啤酒", True),
        ("タバコを吸う", "タバコ", True),
        # Mixed terms: only the Latin edge needs a boundary.
        ("C罗进球了", "C罗", True),
        ("我喜欢C罗", "C罗", True),
        ("abc罗进球了", "C罗", False),
        ("a Hello Kitty猫 plush", "Hello Kitty猫", True),
        ("我的Hello Kitty猫咪", "Hello Kitty猫", True),
        ("Othello Kitty猫", "Hello Kitty猫", False),
        # Latin letters, digits and the underscore still end a word only at a boundary.
        ("a male lead", "ale", False),
        ("我和male lead", "ale", False),
        ("Mochizuki一起跳舞", "Mochi", False),
        ("我和Mochizuki", "Mochi", False),
        ("gin2 please", "gin", False),
        ("beer_time", "beer", False),
        ("我喝gin2", "gin", False),
    ],
)
def test_terms_next_to_scripts_without_spaces_need_no_boundary(text, term, expected):
    assert contains_term(text, term) is expected


def _chars(*ranges):
    return st.one_of(*(st.characters(min_codepoint=first, max_codepoint=last) for first, last in ranges))


# Letters that NFKC leaves alone, from Han, Hiragana, Katakana and Thai.
SPACELESS_LETTERS = _chars((0x4E00, 0x9FFF), (0x3041, 0x3096), (0x30A1, 0x30FA), (0x0E01, 0x0E30))
latin_terms = st.text(alphabet=string.ascii_letters, min_size=1, max_size=12)
latin_letters = st.sampled_from(string.ascii_letters)
spaceless_text = st.text(alphabet=SPACELESS_LETTERS, max_size=8)
spaceless_terms = st.text(alphabet=SPACELESS_LETTERS, min_size=1, max_size=6)
sides = st.sampled_from(["left", "right", "both"])


def glue(term, left, right, side):
    return (left if side != "right" else "") + term + (right if side != "left" else "")


@settings(max_examples=200)
@given(term=latin_terms, left=spaceless_terms, right=spaceless_terms, side=sides)
def test_a_latin_term_is_found_next_to_any_text_without_spaces(term, left, right, side):
    assert contains_term(glue(term, left, right, side), term)


@settings(max_examples=200)
@given(term=latin_terms, left=latin_letters, right=latin_letters, side=sides)
def test_a_latin_term_glued_to_a_latin_letter_is_not_found(term, left, right, side):
    assert not contains_term(glue(term, left, right, side), term)


@settings(max_examples=200)
@given(
    term=spaceless_terms,
    left=st.text(alphabet=string.ascii_letters + " ", max_size=12),
    right=st.text(alphabet=string.ascii_letters + " ", max_size=12),
)
def test_a_term_without_spaces_is_found_inside_any_latin_text(term, left, right):
    assert contains_term(left + term + right, term)


@settings(max_examples=200)
@given(latin=latin_terms, han=spaceless_terms, letter=latin_letters, around=spaceless_text)
def test_a_mixed_term_needs_a_boundary_only_at_its_latin_edge(latin, han, letter, around):
    term = latin + han
    assert contains_term(around + term + letter + around, term)
    assert not contains_term(around + letter + term + around, term)


@pytest.mark.parametrize(
    ("prompt", "themes", "theme", "how"),
    [
        ("me holding a beer at the stadium", ["alcohol"], "alcohol", "keyword"),
        ("我在酒吧喝醉了", ["alcohol"], "alcohol", "keyword"),
        ("me at a campaign rally giving a speech, crowds cheering", ["politics"], "politics", "keyword"),
        ("a senator debating a new law in parliament", ["politics"], "politics", "keyword"),
        ("me betting everything at the poker table", ["gambling"], "gambling", "keyword"),
        ("a glass of whisky and a bottle of wine", ["Alcohol"], "Alcohol", "keyword"),
        ("praying quietly at dawn", ["religion"], "religion", "keyword"),
    ],
)
def test_prompts_that_touch_a_theme_are_caught(prompt, themes, theme, how):
    match = match_theme(prompt, themes)
    assert match is not None
    assert (match.theme, match.how) == (theme, how)


@pytest.mark.parametrize(
    ("prompt", "theme"),
    [
        ("doing tequila shots at a party", "drinking"),
        ("a priest blessing the crowd at mass", "faith"),
        ("playing slot machines in Las Vegas", "games of chance"),
    ],
)
def test_theme_touched_without_being_named(prompt, theme):
    match = match_theme(prompt, [theme])
    assert match is not None and match.how in {"semantic", "keyword"}


def test_semantic_stage_alone_catches_unnamed_theme():
    match = match_theme("a brutal street brawl with knives drawn", ["violence"])
    assert match is not None
    match = match_theme("doing tequila shots at a wild party", ["intoxication"])
    assert match is not None and match.how == "semantic"


@pytest.mark.parametrize(
    "prompt",
    [
        "me surfing a giant wave at sunset",
        "a cat playing piano in a jazz club",
        "playing chess with my grandfather",
        "cooking pasta in a cozy kitchen",
        "a birthday party with cake and balloons",
        "dancing in the rain",
        "a night out in the city with friends",
        "relaxing at the beach bar with a smoothie",
    ],
)
def test_everyday_prompts_touch_no_refused_theme(prompt):
    assert match_theme(prompt, ["politics", "alcohol", "violence", "religion", "gambling"]) is None


def test_no_themes_or_empty_prompt_match_nothing():
    assert match_theme("anything at all", []) is None
    assert match_theme("   ", ["politics"]) is None


def refused_theme(restrictions, prompt):
    cameo = SimpleNamespace(pk=7, restrictions=restrictions)
    with pytest.raises(ApiError) as refused:
        check_cameo_restrictions(cameo=cameo, prompt=prompt)
    assert (refused.value.status_code, refused.value.code) == (422, "prompt_rejected")
    return refused.value.details["theme"]


@pytest.mark.parametrize(
    "prompt",
    [
        "我想喝beer",
        "我想喝beer吧",
        "ฉันดื่มbeerกับเพื่อน",
        "me and wineを飲む",
        "Friday night, whisky喝到天亮",
    ],
)
def test_cameo_restrictions_catch_latin_words_inside_other_scripts(prompt):
    assert refused_theme(["alcohol"], prompt) == "alcohol"


@pytest.mark.parametrize("prompt", ["我是drummer", "a drummer on stage"])  # "rum" inside a longer word
def test_cameo_restrictions_let_a_term_inside_a_longer_latin_word_through(prompt):
    check_cameo_restrictions(cameo=SimpleNamespace(pk=7, restrictions=["alcohol"]), prompt=prompt)
