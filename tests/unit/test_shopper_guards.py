"""Guards on what a shopper reads: the arbiter's distinct words (`Context.arbiter_distinct_words`) and the writer's own re-sampling budget (`Context.explanation_attempts`)."""

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


def test_the_writer_gets_its_own_re_sampling_budget(fake_llm, small_dataset_dir) -> None:  # noqa: ANN001
    import asyncio

    from recgpt.graph import build_graph
    from tests.unit.fakes import DEAD_ENDPOINT, fake_resources

    graph = build_graph(fake_resources(small_dataset_dir), plugins=[])
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", num_tags=5, schema_attempts=2, explanation_attempts=5,
                  explanation_mode="meta")
    out = asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"}, context=ctx))
    assert out["explanations"]
    writers = {a: n for a, n in fake_llm.attempts.items() if a.startswith("explain[")}
    assert writers and set(writers.values()) == {5}
    assert {n for a, n in fake_llm.attempts.items() if not a.startswith("explain[")} == {2}  # planner, experts, arbiter, style
    import pytest

    with pytest.raises(ValueError, match="explanation_attempts"):
        Context(explanation_attempts=0)


def test_the_fallback_sentence_names_the_latest_past_item_of_the_same_shelf() -> None:
    from recgpt.agents.explainer import fallback_sentence, past_item_like

    def item(title: str, category: str) -> SimpleNamespace:
        return SimpleNamespace(title=title, category=category)

    shop = SimpleNamespace(items={
        "old": item("Avery Address Labels, 750 per pack", "Office > Labels > Address Labels"),
        "new": item("Avery Shipping Labels (2 x 4 inches)", "Office > Labels > Shipping Labels"),
        "pen": item("Pilot G2 Gel Pens, 12 Pack", "Office > Writing > Gel Pens"),
        "same": item("Avery Address Labels, 30 per sheet", "Office > Labels > Address Labels")})
    leaf = "Office > Labels > Address Labels"
    assert past_item_like(shop, ["pen", "old", "new"], leaf) == (shop.items["old"].title, "Address Labels")  # leaf first
    assert past_item_like(shop, ["old", "new", "pen"], "Office > Labels > Mailing Labels") == (
        shop.items["new"].title, "Labels")  # else the latest under the second level
    assert past_item_like(shop, ["pen"], leaf) is None and past_item_like(shop, ["gone"], leaf) is None
    text = fallback_sentence("labels", "DigiOrange Labels, 30 per sheet", leaf, past_item_like(shop, ["old"], leaf))
    assert text == "Because you picked Avery Address Labels, you may like DigiOrange Labels, also in address labels."
    # a past item of the same short title says nothing: the plain sentence
    same = fallback_sentence("labels", "Avery Address Labels", leaf, past_item_like(shop, ["same"], leaf))
    assert same == "Picked for your interest in address labels: Avery Address Labels."
    from recgpt.eval.readability import explanation_defects

    assert explanation_defects(text, "DigiOrange Labels, 30 per sheet", leaf) == []


def test_the_explanation_send_carries_the_users_history(fake_llm, small_dataset_dir, monkeypatch) -> None:  # noqa: ANN001
    import asyncio

    from recgpt.agents import explainer
    from recgpt.errors import InvalidModelOutput
    from recgpt.graph import build_graph
    from tests.unit.fakes import DEAD_ENDPOINT, fake_resources

    resources = fake_resources(small_dataset_dir)
    graph = build_graph(resources, plugins=[])
    seen: list[list[str]] = []
    monkeypatch.setattr(explainer, "past_item_like", lambda dataset, history, category: seen.append(list(history)))
    # every writer call fails: each item gets the fallback sentence
    fake_llm.fail.update({f"explain[{i}]": InvalidModelOutput("cut") for i in resources.dataset.items})
    out = asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"},
                                    context=Context(base_url=DEAD_ENDPOINT, model="fake", num_tags=5,
                                                    explanation_mode="meta")))
    history = [e.item_id for e in resources.dataset.example("u1", "test").history]
    assert out["explanations"] and all(e.fallback for e in out["explanations"])
    assert seen and all(h == history for h in seen)


def test_the_default_explanation_is_grounded_in_the_history_and_asks_no_llm(fake_llm, small_dataset_dir) -> None:  # noqa: ANN001
    import asyncio

    from recgpt.agents.explainer import fallback_sentence, past_item_like
    from recgpt.graph import build_graph
    from tests.unit.fakes import DEAD_ENDPOINT, fake_resources

    resources = fake_resources(small_dataset_dir)
    graph = build_graph(resources, plugins=[])
    assert Context().explanation_mode == "grounded"
    out = asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"},
                                    context=Context(base_url=DEAD_ENDPOINT, model="fake", num_tags=5)))
    assert out["explanations"] and not [a for a in fake_llm.calls if a.startswith(("explain", "style"))]
    history = [e.item_id for e in resources.dataset.example("u1", "test").history]
    for e in out["explanations"]:
        assert e.mode == "grounded" and not e.fallback and e.error is None
        assert e.text == fallback_sentence(e.tag, e.title, e.category, past_item_like(resources.dataset, history, e.category))


def test_the_grounded_sentence_never_names_a_shelf_three_times() -> None:
    from recgpt.agents.explainer import fallback_sentence, repeated_phrase

    text = fallback_sentence("shipping labels", "Avery Internet Shipping Labels, Brown Kraft, 50 Labels",
                             "Office > Labels > Shipping Labels", ("Avery White Shipping Labels for Laser Printers", "Shipping Labels"))
    assert text == "Because you picked Avery White Shipping Labels for Laser Printers, you may like Avery Internet Shipping Labels."
    assert repeated_phrase(text) is None


def test_the_rendered_result_says_how_each_explanation_was_made() -> None:
    from rich.console import Console

    from recgpt.render import render_result
    from recgpt.schema.state import ItemExplanation

    def shown(*explanations: ItemExplanation) -> str:
        console = Console(record=True, width=200)
        render_result(console, {"user_id": "u1", "dataset": "office", "split": "test", "explanations": list(explanations)})
        return console.export_text()

    grounded = ItemExplanation(item_id="1", title="Pilot G2", category="Pens", tag="pens", mode="grounded",
                               text="Because you picked Pilot V5, you may like Pilot G2, also in pens.")
    out = shown(grounded)
    assert "Explanations (grounded in the history, no LLM call)" in out and "style guideline" not in out
    fell_back = ItemExplanation(item_id="2", title="Avery Labels", category="Labels", tag="labels", mode="meta",
                                text="Picked for your interest in labels: Avery Labels.", fallback=True)
    out = shown(fell_back)
    assert "meta-prompting" in out and "style guideline" in out and "made by code" in out
