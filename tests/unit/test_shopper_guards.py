"""The arbiter's guard against two final tags that read alike (`Context.arbiter_distinct_words`)."""

from __future__ import annotations

from types import SimpleNamespace

from recgpt.agents.arbiter import distinct_words, finalise
from recgpt.agents.words import near_duplicate, near_duplicates
from recgpt.schema.context import Context
from recgpt.schema.state import FinalTag


def tag(words: str, category: str | None, rank: int) -> FinalTag:
    return FinalTag(tag=words, rationale="", persona_index=0, persona="p", category=category, rank=rank)


def test_near_duplicate_matches_repeats_contained_words_and_overlap_but_not_distinct_tags() -> None:
    assert near_duplicate("Thriller", "thriller")
    assert near_duplicate("Terminator", "Terminator 2")  # one's words inside the other's
    assert near_duplicate("photo paper", "photo paper inch x inches color paper with edge")
    assert not near_duplicate("gel pens", "ballpoint pens") and not near_duplicate("x inch", "x inch")  # filler only
    assert near_duplicates(["Drama", "Action", "drama"]) == [False, False, True]


def test_a_genre_shown_twice_is_shown_under_the_grounded_category_of_the_tag_that_misnamed_it() -> None:
    # MovieLens: an expert's "Thriller" grounded in Action, then Thriller filled from the evidence under its own name
    tags = [tag("Thriller", "Movies > Action", 1), tag("Comedy", "Movies > Comedy", 2), tag("Thriller", "Movies > Thriller", 3)]
    out, renamed = distinct_words(tags)
    assert [(t.tag, t.category) for t in out] == [("Action", "Movies > Action"), ("Comedy", "Movies > Comedy"),
                                                  ("Thriller", "Movies > Thriller")]
    assert renamed == [("Thriller", "Action")] and out[0].written == "Thriller"
    assert [t.category for t in out] == [t.category for t in tags] and [t.rank for t in out] == [1, 2, 3]


def test_the_later_of_a_title_pair_takes_its_genre_and_no_rename_makes_a_new_repeat() -> None:
    out, renamed = distinct_words([tag("Terminator", "Movies > Action", 1), tag("Terminator 2", "Movies > Sci-Fi", 2)])
    assert [t.tag for t in out] == ["Terminator", "Sci-Fi"] and renamed == [("Terminator 2", "Sci-Fi")]
    # the later one's genre is already shown: the earlier is renamed instead
    out, _ = distinct_words([tag("Terminator", "Movies > Action", 1), tag("Sci-Fi", "Movies > Sci-Fi", 2),
                             tag("Terminator 2", "Movies > Sci-Fi", 3)])
    assert [t.tag for t in out] == ["Action", "Sci-Fi", "Terminator 2"]
    assert not any(near_duplicates([t.tag for t in out]))


def test_a_pair_that_cannot_be_renamed_stays_and_distinct_tags_are_untouched() -> None:
    free = [tag("gel pens", None, 1), tag("gel pens refills", None, 2)]  # free tags have no category name to take
    assert distinct_words(free) == (free, [])
    clean = [tag("gel pens", "Office > Pens", 1), tag("sticky notes", "Office > Notes", 2)]
    assert distinct_words(clean) == (clean, [])


def test_finalise_renames_and_flags_only_when_the_context_asks() -> None:
    chosen = [tag("Thriller", "Movies > Action", 1), tag("Thriller", "Movies > Thriller", 2)]
    run = SimpleNamespace(flags=[])
    on = finalise(run, chosen, chosen, {}, 2, Context(tidy_tags=False))  # type: ignore[arg-type]
    assert [t.tag for t in on] == ["Action", "Thriller"] and run.flags[-1].startswith("arbiter_same_words: 1 ")
    run = SimpleNamespace(flags=[])
    off = finalise(run, chosen, chosen, {}, 2, Context(tidy_tags=False, arbiter_distinct_words=False))  # type: ignore[arg-type]
    assert [t.tag for t in off] == ["Thriller", "Thriller"] and not run.flags


def test_the_replay_script_parses_context_switches_and_refuses_unknown_ones() -> None:
    import pytest

    from tests.unit.scripts import load_script

    replay = load_script("arbiter_replay")
    assert replay.parse_overrides(["arbiter_distinct_words=false", "arbiter_prior=0.3", "num_tags=5"]) == {
        "arbiter_distinct_words": False, "arbiter_prior": 0.3, "num_tags": 5}
    with pytest.raises(SystemExit, match="no field 'arbiter_distinct'"):
        replay.parse_overrides(["arbiter_distinct=false"])
