from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from recgpt.text_fields import clip_sentence, english_text, to_english_text


class Sample(BaseModel):
    text: english_text(10, min_chars=2)  # type: ignore[valid-type]


def test_english_text_bounds_length_and_script() -> None:
    assert Sample(text="ok fine!").text == "ok fine!"
    for bad in ("x", "x" * 11, "中文", 'say "hi"', "back\\slash", ", leading"):
        with pytest.raises(ValidationError):
            Sample(text=bad)


def test_to_english_text_always_fits_the_field() -> None:
    cleaned = to_english_text(', Stäbilo  "Boss" — highlighters, 10 pack and more', 10)
    assert Sample(text=cleaned).text == "Stbilo Bos"


def test_short_text_is_kept_whole() -> None:
    assert clip_sentence("  Great   pens for your desk  ", 50) == "Great pens for your desk"


def test_text_cut_at_the_bound_ends_at_its_last_sentence() -> None:
    text = "These pens match your gel refills. They also suit the upcoming exam seas"
    assert clip_sentence(text, len(text)) == "These pens match your gel refills."


def test_text_cut_without_a_sentence_end_ends_on_a_whole_word() -> None:
    text = "A sturdy stapler that keeps pace with every report you bind this wint"
    clipped = clip_sentence(text, len(text))
    assert clipped == "A sturdy stapler that keeps pace with every report you bind this..."
    assert len(clipped) <= len(text)


def test_a_long_explanation_is_clipped_to_its_word_bound_and_a_title_is_rejected() -> None:
    import pytest
    from pydantic import ValidationError

    from recgpt.agents.explainer import MAX_EXPLANATION_WORDS, ExplanationOutput

    long = "This paper suits your printer. " + " ".join(["so use it a lot"] * 9) + "."  # 45 words, under 240 chars
    kept = ExplanationOutput(explanation=long).explanation
    assert len(kept.split()) <= MAX_EXPLANATION_WORDS
    assert kept.startswith("This paper suits your printer.")
    assert kept.endswith((".", "..."))
    with pytest.raises(ValidationError, match="at least 8 words"):
        ExplanationOutput(explanation="HP Photo Paper Glossy, 50 sheets.")


class Closed(BaseModel):
    text: english_text(30, min_chars=5, sentence=True)  # type: ignore[valid-type]


def test_a_sentence_field_must_close_its_sentence() -> None:
    assert Closed(text="Fits your desk.").text == "Fits your desk."
    for bad in ("Fits your desk", "Fits your desk (1781586)", "x" * 30 + "."):
        with pytest.raises(ValidationError):
            Closed(text=bad)


def test_an_explanation_that_restates_the_title_is_recognised() -> None:
    from recgpt.agents.explainer import restates_title

    title = "The Paper Mate InkJoy 700 RT Retractable Medium Point Advanced Ink Pens, 4 Colored Ink White Body Pens"
    assert restates_title(title + " (1781586).", title)
    assert restates_title("Paper Mate InkJoy 700 RT Retractable Pens for you.", title)
    assert not restates_title("These InkJoy pens glide smoothly, so your weekly planning notes stay neat and colourful.", title)


def test_a_closing_fragment_is_recognised_and_a_full_sentence_is_not() -> None:
    from recgpt.text_fields import ends_on_a_fragment

    assert ends_on_a_fragment("These folders keep your desk tidy because It!")
    assert ends_on_a_fragment("A reliable stapler for every report and the.")
    assert ends_on_a_fragment("Great pens. Perfect for your")
    assert not ends_on_a_fragment("You will love it!")
    assert not ends_on_a_fragment("It keeps your desk tidy this winter.")
    assert not ends_on_a_fragment("Perfect for school. It fits in every bag.")


def test_an_explanation_ending_on_a_fragment_is_cut_to_its_last_sentence_or_resampled() -> None:
    import pytest
    from pydantic import ValidationError

    from recgpt.agents.explainer import ExplanationOutput

    kept = ExplanationOutput(explanation="These folders keep every project of yours in order at home. Perfect for It!").explanation
    assert kept == "These folders keep every project of yours in order at home."
    with pytest.raises(ValidationError, match="full sentence"):
        ExplanationOutput(explanation="These folders keep every project of yours in order because the.")
    whole = "These folders keep every project of yours in order, so you will love them!"
    assert ExplanationOutput(explanation=whole).explanation == whole
