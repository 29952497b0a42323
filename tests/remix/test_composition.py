import pytest

from remix.composition import MAX_PROMPT_CHARS, MIN_SOURCE_CHARS, compose_remix_prompt


def test_remix_puts_the_instruction_first_and_the_source_as_context():
    composed = compose_remix_prompt(
        source_prompt="a cat surfing a wave at sunset", instruction="make it snowing", mode="remix"
    )
    assert composed == "make it snowing (remix of: a cat surfing a wave at sunset)"


def test_continue_names_the_story_it_continues():
    composed = compose_remix_prompt(
        source_prompt="a cat surfing a wave", instruction="the cat reaches the beach", mode="continue"
    )
    assert composed == "the cat reaches the beach (continuing the story of: a cat surfing a wave)"


def test_whitespace_is_collapsed():
    composed = compose_remix_prompt(source_prompt="  a \n cat\t ", instruction=" in   space ", mode="remix")
    assert composed == "in space (remix of: a cat)"


def test_empty_parts_fall_back_to_the_other():
    assert compose_remix_prompt(source_prompt="", instruction="a dog", mode="remix") == "a dog"
    assert compose_remix_prompt(source_prompt="a dog", instruction="  ", mode="continue") == "a dog"


def test_long_source_is_cut_at_a_word_and_the_instruction_kept_whole():
    instruction = "turn the whole scene into watercolour " * 10
    source = "word " * 600
    composed = compose_remix_prompt(source_prompt=source, instruction=instruction, mode="remix")
    assert len(composed) <= MAX_PROMPT_CHARS
    assert composed.startswith(instruction.strip())
    assert composed.endswith("…)")
    assert "wor…" not in composed  # cut between words, not inside one


def test_instruction_that_leaves_too_little_room_drops_the_source():
    instruction = "x" * (MAX_PROMPT_CHARS - MIN_SOURCE_CHARS)
    composed = compose_remix_prompt(source_prompt="y " * 100, instruction=instruction, mode="continue")
    assert composed == instruction


def test_an_instruction_over_the_limit_is_cut_to_it():
    composed = compose_remix_prompt(source_prompt="a cat", instruction="z" * 2500, mode="remix")
    assert composed == "z" * MAX_PROMPT_CHARS


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError):
        compose_remix_prompt(source_prompt="a", instruction="b", mode="create")
