import pytest

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
