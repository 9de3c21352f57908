import pytest

from cod_pipeline.counterfactuals.textclean import (
    clean_llm_output,
    diff_markdown,
    edited_words,
    normalized_edit_distance,
    word_tokens,
)

ORIG = "The movie was good."


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("The movie was bad.", "The movie was bad."),
        ("  The movie was bad.  \n", "The movie was bad."),
        ('"The movie was bad."', "The movie was bad."),
        ("'The movie was bad.'", "The movie was bad."),
        ("“The movie was bad.”", "The movie was bad."),
        ("`The movie was bad.`", "The movie was bad."),
        ("Counterfactual: The movie was bad.", "The movie was bad."),
        ("Output: The movie was bad.", "The movie was bad."),
        ("Sentence: The movie was bad.", "The movie was bad."),
        ("Flipped: The movie was bad.", "The movie was bad."),
        ("Flipped (negative): The movie was bad.", "The movie was bad."),
        ("Rewritten: \"The movie was bad.\"", "The movie was bad."),
        ("Here is the counterfactual:\nThe movie was bad.", "The movie was bad."),
        ("Sure! Here is the rewritten sentence:\n\n\"The movie was bad.\"\n\nI changed \"good\" to \"bad\".",
         "The movie was bad."),
        ("The movie was bad.\nExplanation: I changed good to bad.", "The movie was bad."),
        ("The movie was bad.\nNote: only one word changed.", "The movie was bad."),
        ("The movie was bad.\n(changed 'good' to 'bad')", "The movie was bad."),
        ("The movie was bad.\nThis flips the sentiment.", "The movie was bad."),
        ("The movie was bad.\nI changed good to bad.", "The movie was bad."),
        ("It's not good.", "It's not good."),
        ('"The movie was bad.', "The movie was bad."),
    ],
)
def test_clean_accepts(raw, expected):
    assert clean_llm_output(raw, ORIG) == (expected, None)


@pytest.mark.parametrize(
    "raw, reason",
    [
        ("", "empty"),
        ("   \n  ", "empty"),
        ('""', "empty"),
        ("Counterfactual:", "empty"),
        ("The movie was good.", "copy_of_input"),
        ("  the   MOVIE was GOOD. ", "copy_of_input"),
        ('"The movie was good."', "copy_of_input"),
        ("The movie was bad.\nThe acting was terrible.", "multiline"),
        ("The movie was bad.\nThe movie was awful.\nThe movie was poor.", "multiline"),
        ("Here is the sentence: The movie was bad.", "explanation"),
        ("As an AI language model, I cannot do that.", "explanation"),
        ("I changed good to bad: The movie was bad.", "explanation"),
        ("I replaced 'good' with 'bad'.", "explanation"),
    ],
)
def test_clean_rejects(raw, reason):
    assert clean_llm_output(raw, ORIG) == (None, reason)


def test_clean_none_is_empty():
    assert clean_llm_output(None, ORIG) == (None, "empty")


def test_word_tokens():
    assert word_tokens("Don't STOP, now!") == ["don", "'", "t", "stop", ",", "now", "!"]
    assert word_tokens("") == []


def test_edit_distances():
    assert edited_words(ORIG, "The movie was bad.") == 1
    assert edited_words(ORIG, ORIG.upper()) == 0
    assert edited_words("a b c", "a c") == 1
    assert edited_words("a b c", "x a b c y") == 2
    assert edited_words("", "a b") == 2
    assert normalized_edit_distance(ORIG, "The movie was bad.") == pytest.approx(1 / 5)
    assert normalized_edit_distance("a b", "a b c d") == pytest.approx(2 / 4)
    assert normalized_edit_distance("", "") == 0.0
    assert normalized_edit_distance("x", "y") == 1.0


def test_diff_markdown():
    assert diff_markdown(ORIG, "The movie was bad.") == "The movie was ~~good~~ **bad**."
    assert diff_markdown("a b c", "a c") == "a ~~b~~ c"
    assert diff_markdown("a c", "a b c") == "a **b** c"
    assert diff_markdown(ORIG, ORIG) == "The movie was good."
    # the CFE exactly as stored: no spaces inserted inside "There's" or "B-12"
    assert diff_markdown("There's a B-12 shot", "There's no B-12 shot") == "There's ~~a~~ **no** B-12 shot"
