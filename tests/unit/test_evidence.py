"""Collaborative evidence: its content and order, its rendering in the user context, the knob that turns it off, and
no held-out target in it (hand-made data, a tiny real SASRec; no server)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from recgpt.data.dataset import Dataset
from recgpt.data.records import Interaction, Item, UserHistory
from recgpt.schema.context import Context
from recgpt.services.prefix import build_shared_prefix, evidence_block
from recgpt.services.resources import Registry, Resources
from recgpt.tools.retrieval.evidence import CategoryShare, Evidence, NextAfter, category_mass, collaborative_evidence
from recgpt.tools.retrieval.grounding import category_vocabulary, short_labels
from recgpt.tools.retrieval.sequential import load_or_train
from tests.unit.fakes import FakeRetriever

TINY = dict(dim=16, layers=1, heads=1, maxlen=4, epochs=20, batch_size=16, lr=1e-2, dropout=0.1)
DEAD = "http://127.0.0.1:9/v1"


def item(item_id: str, title: str, *path: str) -> Item:
    return Item(item_id=item_id, title=title, category_path=path)


def shop() -> Dataset:
    """Every user buys a pen, then ink, then a notebook; the last purchase (every test target) is a desk lamp, a
    category no training interaction holds. The validation target is the notebook."""
    items = [item("pen", "Red gel pen", "Office", "Writing", "Pens"),
             item("ink", "Blue ink refill", "Office", "Writing", "Refills"),
             item("nb", "Spiral notebook", "Office", "Paper", "Notebooks"),
             item("lamp", "Desk lamp LED", "Office", "Furniture", "Lamps")]
    users = [UserHistory(user_id=f"u{n}", interactions=[Interaction(item_id=i) for i in ("pen", "ink", "nb", "lamp")])
             for n in range(30)]
    return Dataset(name="shop", items={i.item_id: i for i in items}, users={u.user_id: u for u in users})


class StubModel:
    def __init__(self, logits: dict[str, float]) -> None:
        self.logits = logits

    def knows_any(self, history: Sequence[str]) -> bool:
        return any(i in self.logits for i in history)

    def score(self, history: Sequence[str], item_ids: Sequence[str]) -> list[float]:
        return [self.logits.get(i, float("-inf")) for i in item_ids]


def test_category_mass_sums_the_softmax_per_category_without_history_items_largest_first() -> None:
    data = shop()
    vocabulary = category_vocabulary(data, "leaf")
    model = StubModel({"pen": 50.0, "ink": 0.0, "nb": 0.0, "lamp": 0.0})  # the history's pen would dominate: left out
    shares = category_mass(model, ["pen"], data, vocabulary)
    assert [s.label for s in shares] == ["Office > Furniture > Lamps", "Office > Paper > Notebooks", "Office > Writing > Refills"]
    assert all(s.share == pytest.approx(1 / 3, abs=1e-4) for s in shares)  # ties keep vocabulary order (kept to 1e-4)
    model = StubModel({"pen": 0.0, "ink": 2.0, "nb": 0.0, "lamp": 0.0})
    shares = category_mass(model, ["pen"], data, vocabulary)
    assert shares[0].label == "Office > Writing > Refills" and sum(s.share for s in shares) == pytest.approx(1.0, abs=1e-3)
    assert category_mass(StubModel({}), ["pen"], data, vocabulary) == []  # a model that knows nothing says nothing


def test_evidence_lists_the_next_categories_after_the_latest_distinct_items_newest_first() -> None:
    data = shop()
    vocabulary = category_vocabulary(data, "leaf", "short")
    evidence = collaborative_evidence(data, "test", None, ["pen", "ink"], vocabulary, m=5, after_items=2)
    assert evidence.likely == ()  # no model: the transitions alone
    assert [(a.item_id, a.categories) for a in evidence.after] == [
        ("ink", (("Paper > Notebooks", 30),)), ("pen", (("Writing > Refills", 30),))]
    # on validation the notebook (its target) is not counted: nothing followed the ink there, so it is left out
    later = collaborative_evidence(data, "validation", None, ["pen", "ink"], vocabulary, m=5, after_items=2)
    assert [a.item_id for a in later.after] == ["pen"]
    assert collaborative_evidence(data, "validation", None, ["pen"], vocabulary, m=0).after == ()  # 0 = off
    assert not collaborative_evidence(data, "validation", None, [], vocabulary, m=5)


def test_no_held_out_target_reaches_the_evidence() -> None:
    """Test split: the lamp is every user's test target and nothing else; validation: the notebook is every user's
    validation target. Neither the SASRec mass nor the next-category counts may name them for their split."""
    data = shop()
    vocabulary = category_vocabulary(data, "leaf")
    for split, target_category in (("test", "Office > Furniture > Lamps"), ("validation", "Office > Paper > Notebooks")):
        model = _trained(data, split)
        for user_id in data.split_users(split):
            history = [e.item_id for e in data.example(user_id, split).history]
            evidence = collaborative_evidence(data, split, model, history, vocabulary, m=10, after_items=3)
            assert target_category not in evidence.labels, (split, evidence)
            assert evidence.after  # the counts exist, they just never saw the target
    # the same data with the targets in training (split `full`, serving) does count them: the test can fail
    full = collaborative_evidence(data, "full", None, ["pen", "ink", "nb"], vocabulary, m=10, after_items=1)
    assert "Office > Furniture > Lamps" in full.labels


_MODELS: dict[str, object] = {}


def _trained(data: Dataset, split: str) -> object:
    if split not in _MODELS:
        import tempfile
        from pathlib import Path

        _MODELS[split] = load_or_train(data, split, Path(tempfile.mkdtemp()), hparams=TINY)
    return _MODELS[split]


def test_the_block_renders_shares_and_counts_and_is_empty_without_evidence() -> None:
    assert evidence_block(Evidence()) == ""
    text = evidence_block(Evidence(likely=(CategoryShare("Paper > Notebooks", 0.184), CategoryShare("Pens", 0.001)),
                                   after=(NextAfter("p", "A " * 50 + "pen", (("Paper > Notebooks", 7),)),)))
    lines = text.splitlines()
    assert lines[0] == "" and lines[1].startswith("Collaborative evidence")
    assert "- Paper > Notebooks: 18%" in lines and "- Pens: 1%" in lines  # never shown as 0%
    assert lines[-1].endswith('...": Paper > Notebooks (7)') and len(lines[-1]) < 100  # long titles are clipped


def _resources(data: Dataset, split_models: dict[str, object]) -> Resources:
    registry = Registry()
    registry.sasrec = lambda dataset, split, *a, **k: split_models[split]  # type: ignore[method-assign]
    return Resources(dataset=data, retriever=FakeRetriever(data), registry=registry, name="shop")


def test_the_user_context_carries_the_block_after_the_history_only_when_asked() -> None:
    data = shop()
    resources = _resources(data, {"test": _trained(data, "test")})
    off = asyncio.run(build_shared_prefix(Context(base_url=DEAD, evidence_categories=0), resources, "u1", "test", "2026-11-25"))
    on = asyncio.run(build_shared_prefix(Context(base_url=DEAD, evidence_categories=3), resources, "u1", "test", "2026-11-25"))
    assert "Collaborative evidence" not in off["shared_prefix"]
    history_end = on["shared_prefix"].index("Collaborative evidence")
    assert on["shared_prefix"].index("Spiral notebook") < history_end < on["shared_prefix"].rindex("</user_context>")
    assert "Lamps" not in on["shared_prefix"][history_end:]  # the test target's category, never trained on
    # with the block off the prefix is the one recgpt built before the block existed (no stray line)
    assert off["shared_prefix"] == on["shared_prefix"][:history_end].rstrip("\n") + "\n</user_context>"


def test_a_missing_sequential_model_leaves_the_counts_flagged() -> None:
    data = shop()
    registry = Registry()

    def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("no training sequences")

    registry.sasrec = broken  # type: ignore[method-assign]
    resources = Resources(dataset=data, retriever=FakeRetriever(data), registry=registry, name="shop")
    out = asyncio.run(build_shared_prefix(Context(base_url=DEAD, evidence_categories=3), resources, "u1", "test", "2026-11-25"))
    assert any(f.startswith("evidence_partial:") for f in out["flags"])
    assert "Bought next by other shoppers" in out["shared_prefix"]


def test_short_labels_drop_the_shared_root_and_keep_two_levels_unless_they_collide() -> None:
    paths = ["Movies > Action", "Movies > Drama"]
    assert short_labels(paths) == ["Action", "Drama"]
    paths = ["A > X > Pens > Gel", "A > Y > Pens > Gel", "A > Y > Paper", "B > Q"]
    assert short_labels(paths) == ["X > Pens > Gel", "Y > Pens > Gel", "Y > Paper", "B > Q"]
    data = shop()
    vocabulary = category_vocabulary(data, "leaf", "short")
    assert vocabulary.labels == ("Furniture > Lamps", "Paper > Notebooks", "Writing > Pens", "Writing > Refills")
    assert vocabulary.path_of("Writing > Pens") == "Office > Writing > Pens"
    assert vocabulary.label_of("Office > Writing > Pens") == "Writing > Pens" and vocabulary.label_of("Office") is None
    with pytest.raises(ValueError, match="grounding labels"):
        category_vocabulary(data, "leaf", "bare")


def test_no_item_shows_twice_in_one_users_list() -> None:
    from recgpt.graph.nodes import distinct_items
    from recgpt.schema.state import RetrievedItem

    def hits(*ids: str) -> list[RetrievedItem]:
        return [RetrievedItem(item_id=i, title=i, category="c", distance=0.0) for i in ids]

    kept = distinct_items([hits("ream", "pen", "ink"), hits("ream", "pad", "clip"), hits("ream", "pen")], 2)
    assert [[h.item_id for h in tag] for tag in kept] == [["ream", "pen"], ["pad", "clip"], []]


def test_the_arbiter_reads_each_pooled_tags_collaborative_mass(fake_llm: object, small_dataset_dir: object) -> None:
    from recgpt.agents.arbiter import evidence_note
    from recgpt.graph import build_graph
    from tests.unit.fakes import fake_resources

    assert evidence_note("A > B", {"A > B": 0.084}) == " (evidence 8%)"
    assert evidence_note("A > C", {"A > B": 0.084}) == " (evidence <1%)"  # a category SASRec gives nothing
    assert evidence_note("A > B", {}) == "" and evidence_note(None, {"A > B": 0.5}) == ""  # evidence off; a free tag
    registry = Registry()
    logits = {"p1": 0.0, "p2": 0.0, "n1": 0.0, "n2": 3.0, "d1": 0.0, "c1": 0.0}
    registry.sasrec = lambda dataset, split, *a, **k: StubModel(logits)  # type: ignore[method-assign]
    graph = build_graph(fake_resources(small_dataset_dir, registry=registry), plugins=[])
    context = dict(base_url=DEAD, model="fake", num_tags=5, tags_per_expert=4, explanation_mode="off")
    state = asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"}, context=Context(**context, evidence_categories=3)))
    assert state["category_shares"]["Office > Paper > Notes"] > 0.5  # the stub model favours n2
    prompt = fake_llm.prompts["arbiter"]  # type: ignore[attr-defined]
    assert "(evidence " in prompt and "purchase-sequence model" in prompt
    asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"}, context=Context(**context, evidence_categories=3,
                                                                                arbiter_evidence=False)))
    assert "(evidence " not in fake_llm.prompts["arbiter"]  # type: ignore[attr-defined]
    asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"}, context=Context(**context, evidence_categories=0)))
    assert "(evidence " not in fake_llm.prompts["arbiter"] and "Collaborative" not in fake_llm.prompts["arbiter"]  # type: ignore[attr-defined]


def test_a_multi_genre_item_counts_towards_each_of_its_genres() -> None:
    films = [Item(item_id="toy", title="Toy Story", category_path=("Movies", "Animation"), genres=("Animation", "Comedy")),
             Item(item_id="gold", title="GoldenEye", category_path=("Movies", "Action"), genres=("Action",)),
             Item(item_id="four", title="Four Rooms", category_path=("Movies", "Comedy"), genres=("Comedy",))]
    users = [UserHistory(user_id=f"u{n}", interactions=[Interaction(item_id=i) for i in ("gold", "toy", "four", "gold")])
             for n in range(3)]
    data = Dataset(name="films", items={i.item_id: i for i in films}, users={u.user_id: u for u in users})
    vocabulary = category_vocabulary(data, "leaf", "short")
    assert vocabulary.labels == ("Action", "Animation", "Comedy")
    shares = {s.label: s.share for s in category_mass(StubModel({"toy": 0.0, "four": 0.0, "gold": 0.0}), ["gold"], data, vocabulary)}
    assert shares == pytest.approx({"Comedy": 0.75, "Animation": 0.25}, abs=1e-4)  # toy's half-share each, four's whole
    after = collaborative_evidence(data, "test", None, ["toy"], vocabulary, m=3, after_items=1).after
    assert after[0].categories == (("Comedy", 3),)
    after = collaborative_evidence(data, "test", None, ["gold"], vocabulary, m=3, after_items=1).after
    assert after[0].categories == (("Animation", 3), ("Comedy", 3))


def test_the_arbiters_choice_combines_with_the_collaborative_prior() -> None:
    from recgpt.agents.arbiter import with_prior
    from recgpt.schema.state import FinalTag, ProposedTag

    pool = [ProposedTag(tag=t, rationale="", persona_index=i, persona="p", category=c)
            for i, (t, c) in enumerate([("pens", "A > Pens"), ("ink", "A > Ink"), ("lamp", "A > Lamps"), ("free", None)])]
    chosen = [FinalTag(**pool[p].model_dump(), rank=r) for r, p in ((1, 2), (2, 0))]  # the arbiter: lamp, then pens
    shares = {"A > Ink": 0.4, "A > Pens": 0.2, "A > Lamps": 0.01}
    assert with_prior(pool, chosen, shares, 2, 0.0) == chosen  # weight 0: the arbiter's choice
    assert with_prior(pool, chosen, {}, 2, 0.7) == chosen  # no evidence: nothing to combine with
    by_mass = with_prior(pool, chosen, shares, 2, 1.0)
    assert [t.tag for t in by_mass] == ["ink", "pens"] and [t.rank for t in by_mass] == [1, 2]
    # choice: lamp 1, pens 1/2; mass: ink 1, pens 1/2, lamp 1/40. At 0.4: lamp .61, pens .50, ink .40; at 0.6: ink .60,
    # pens .50, lamp .42
    assert [t.tag for t in with_prior(pool, chosen, shares, 2, 0.4)] == ["lamp", "pens"]
    assert [t.tag for t in with_prior(pool, chosen, shares, 2, 0.6)] == ["ink", "pens"]


def test_distinct_categories_keep_one_final_tag_per_category() -> None:
    from recgpt.agents.arbiter import distinct_categories
    from recgpt.schema.state import FinalTag, ProposedTag

    pool = [ProposedTag(tag=t, rationale="", persona_index=i % 2, persona="p", category=c) for i, (t, c) in enumerate([
        ("photo paper", "A > Photo Paper"), ("photo paper inch x inches color paper", "A > Photo Paper"),
        ("gel pens", "A > Pens"), ("ink", "A > Ink"), ("lamp", "A > Lamps"), ("Free Words", None), ("free  words", None)])]
    chosen = [FinalTag(**pool[p].model_dump(), rank=r) for r, p in ((1, 0), (2, 1), (3, 5), (4, 6))]
    final, replaced = distinct_categories(pool, chosen, 4, {"A > Lamps": 0.3, "A > Ink": 0.1})
    # the second Photo Paper tag and the repeated free words go; the largest shares among new categories fill in
    assert [t.tag for t in final] == ["photo paper", "Free Words", "lamp", "ink"] and replaced == 2
    assert [t.rank for t in final] == [1, 2, 3, 4]
    final, _ = distinct_categories(pool, chosen, 4, {})  # no evidence: pool order
    assert [t.tag for t in final] == ["photo paper", "Free Words", "gel pens", "ink"]
    few = pool[:2]
    final, replaced = distinct_categories(few, [FinalTag(**t.model_dump(), rank=i + 1) for i, t in enumerate(few)], 2, {})
    assert [t.tag for t in final] == ["photo paper"] and replaced == 1  # nothing new to fill with: fewer tags, no repeat


def test_the_places_a_pool_leaves_empty_are_filled_from_the_evidence() -> None:
    from recgpt.agents.arbiter import EVIDENCE_PERSONA, fill_from_evidence
    from recgpt.schema.state import FinalTag

    chosen = [FinalTag(tag="thrillers", rationale="", persona_index=0, persona="p", category="Movies > Thriller", rank=1),
              FinalTag(tag="free words", rationale="", persona_index=1, persona="p", category=None, rank=2)]
    shares = {"Movies > Drama": 0.4, "Movies > Thriller": 0.3, "Movies > Comedy": 0.2, "Movies > Horror": 0.0}
    final, filled = fill_from_evidence(chosen, 4, shares, {"Movies > Drama": "Drama"})
    # the named category is skipped, the rest by share; a label from the map, else the path's last level
    assert [(t.tag, t.category, t.rank) for t in final] == [("thrillers", "Movies > Thriller", 1), ("free words", None, 2),
                                                          ("Drama", "Movies > Drama", 3), ("Comedy", "Movies > Comedy", 4)]
    assert filled == 2 and all(t.persona == EVIDENCE_PERSONA and t.persona_index == -1 for t in final[2:])
    assert fill_from_evidence(chosen, 10, shares, {})[1] == 2  # a zero share is no evidence: never filled
    assert fill_from_evidence(chosen, 2, shares, {}) == (chosen, 0) and fill_from_evidence(chosen, 4, {}, {}) == (chosen, 0)


def test_with_short_labels_the_history_speaks_the_enums_labels() -> None:
    from recgpt.tools.context.compression import compress_history

    data = shop()
    vocabulary = category_vocabulary(data, "leaf", "short")
    history = data.example("u1", "test").history
    text = compress_history(history, data.items, category_label=vocabulary.label_of).text
    assert "· Writing > Pens:" in text and "Office > Writing" not in text
    assert "· Office > Writing > Pens:" in compress_history(history, data.items).text  # the default: full paths
    resources = _resources(data, {"test": _trained(data, "test")})
    out = asyncio.run(build_shared_prefix(Context(base_url=DEAD, grounding_labels="short"), resources, "u1", "test", "2026-11-25"))
    assert "· Writing > Pens:" in out["shared_prefix"]


def test_an_evidence_expert_chooses_only_among_the_likeliest_categories(fake_llm: object, small_dataset_dir: object) -> None:
    from recgpt.agents.expert import likeliest
    from recgpt.graph import build_graph
    from tests.unit.fakes import fake_resources

    data = shop()
    vocabulary = category_vocabulary(data, "leaf")
    top = likeliest(vocabulary, {"Office > Writing > Refills": 0.5, "Office > Furniture > Lamps": 0.3, "Office > Paper > Notebooks": 0.1}, 2)
    assert top.paths == ("Office > Furniture > Lamps", "Office > Writing > Refills")  # the two largest, vocabulary order
    assert likeliest(vocabulary, {}, 2) is vocabulary  # no evidence: the whole enum
    registry = Registry()
    logits = {"p1": 0.0, "p2": 0.0, "n1": 0.0, "n2": 0.0, "d1": 4.0, "c1": 3.0}
    registry.sasrec = lambda dataset, split, *a, **k: StubModel(logits)  # type: ignore[method-assign]
    graph = build_graph(fake_resources(small_dataset_dir, registry=registry), plugins=[])
    ctx = Context(base_url=DEAD, model="fake", explanation_mode="off", evidence_experts=1, evidence_candidates=2)
    state = asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"}, context=ctx))
    first = {t.category for t in state["tag_pool"] if t.persona_index == 0}
    assert first <= {"Office > Furniture > Lamps", "Office > Furniture > Chairs"}  # d1's and c1's categories
    assert "likely next categories of the collaborative evidence" in fake_llm.prompts["expert[0]"]  # type: ignore[attr-defined]
    assert "collaborative evidence" not in fake_llm.prompts["expert[1]"]  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="evidence_experts"):
        Context(num_personas=2, evidence_experts=2, explore_experts=1)


def test_the_graph_fills_empty_places_from_the_evidence_when_asked(fake_llm: object, small_dataset_dir: object) -> None:
    from recgpt.agents.arbiter import EVIDENCE_PERSONA
    from recgpt.graph import build_graph
    from tests.unit.fakes import fake_resources

    registry = Registry()
    logits = {"p1": 0.0, "p2": 0.0, "n1": 0.0, "n2": 0.0, "d1": 4.0, "c1": 3.0}
    registry.sasrec = lambda dataset, split, *a, **k: StubModel(logits)  # type: ignore[method-assign]
    graph = build_graph(fake_resources(small_dataset_dir, registry=registry), plugins=[])
    from recgpt.errors import InvalidModelOutput

    for agent in ("expert[1]", "expert[2]"):  # one expert left: its 4 tags name 4 of the shop's 5 categories
        fake_llm.fail[agent] = InvalidModelOutput(f"{agent}: cut")  # type: ignore[attr-defined]
    ctx = Context(base_url=DEAD, model="fake", explanation_mode="off", num_tags=5, arbiter_fill_from_evidence=False)
    assert Context().arbiter_fill_from_evidence  # on by default (validation on both datasets)
    plain = asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"}, context=ctx))
    filled = asyncio.run(graph.ainvoke({"user_id": "u1", "split": "test"},
                                       context=dataclasses.replace(ctx, arbiter_fill_from_evidence=True)))
    named = {t.category for t in plain["tags"]}
    extra = [t for t in filled["tags"] if t.persona == EVIDENCE_PERSONA]
    assert [t.category for t in extra] == ["Office > Paper > Notes"]  # the one category the evidence has and no tag named
    assert "Office > Paper > Notes" not in named and len(filled["tags"]) == len(plain["tags"]) + 1
    assert [t.rank for t in filled["tags"]] == list(range(1, len(filled["tags"]) + 1))
    assert any(f.startswith("arbiter_filled_from_evidence") for f in filled["flags"])
    assert not any(t.persona == EVIDENCE_PERSONA for t in plain["tags"])
