"""Grounded tags: the vocabulary is the catalogue's, the schema only admits it, and the graph searches inside it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from recgpt.agents.expert import grounded_expert_schema
from recgpt.graph import Context
from recgpt.schema.context import Context as RunContext
from recgpt.services.prefix import build_shared_prefix
from recgpt.services.resources import default_registry
from recgpt.tools.retrieval.grounding import CategoryVocabulary, category_vocabulary
from tests.conftest import write_jsonl
from tests.unit.fakes import DEAD_ENDPOINT, FakeLLM, FakeRetriever, fake_graph, fake_resources


def test_the_vocabulary_is_the_catalogue_s_leaves_with_unique_short_labels(small_dataset_dir: Path) -> None:
    dataset = default_registry().dataset(str(small_dataset_dir))
    leaf = category_vocabulary(dataset, "leaf")
    assert set(leaf.paths) == {item.category for item in dataset.items.values()}
    assert leaf.labels == leaf.paths == ("Office > Furniture > Chairs", "Office > Furniture > Lamps", "Office > Paper > Notebooks",
                                         "Office > Paper > Notes", "Office > Writing > Pens")
    assert all(leaf.path_of(label) == path for label, path in zip(leaf.labels, leaf.paths))
    assert leaf.path_of("Pens") is None and leaf.path_of("Office > Writing") is None
    l2 = category_vocabulary(dataset, "l2")
    assert l2.paths == ("Office > Furniture", "Office > Paper", "Office > Writing")
    with pytest.raises(ValueError, match="grounding level"):
        category_vocabulary(dataset, "genre")


def test_inner_nodes_are_not_offered(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    items = [{"item_id": "a", "title": "A4 paper", "category_path": ["Office", "Paper"]},
             {"item_id": "b", "title": "Generic office thing", "category_path": ["Office"]},  # an inner node
             {"item_id": "c", "title": "Ink refill", "category_path": ["Office", "Pens", "Refills"]},
             {"item_id": "d", "title": "Blade refill", "category_path": ["Office", "Cutters", "Refills"]}]
    write_jsonl(folder / "items.jsonl", items)
    write_jsonl(folder / "histories.jsonl", [{"user_id": "u", "interactions": [{"item_id": "a"}, {"item_id": "c"}]}])
    vocabulary = category_vocabulary(default_registry().dataset(str(folder)), "leaf")
    assert "Office" not in vocabulary.paths
    assert set(vocabulary.labels) == {"Office > Paper", "Office > Pens > Refills", "Office > Cutters > Refills"}
    assert vocabulary.prompt_block().splitlines() == ["- Office > Cutters > Refills", "- Office > Paper", "- Office > Pens > Refills"]
    with pytest.raises(ValueError, match="unique"):
        CategoryVocabulary(level="leaf", labels=("x", "x"), paths=("a", "b"))


def test_the_grounded_schema_admits_only_the_vocabulary(small_dataset_dir: Path) -> None:
    vocabulary = category_vocabulary(default_registry().dataset(str(small_dataset_dir)), "leaf")
    schema = grounded_expert_schema(2, vocabulary)
    tags = schema.model_json_schema()["$defs"]["GroundedExpertTag"]
    assert tags["properties"]["category"]["enum"] == list(vocabulary.labels)
    assert list(tags["properties"])[0] == "category"  # chosen before the free text is written
    ok = {"tags": [{"category": "Office > Writing > Pens", "tag": "gel pens", "rationale": "writes a lot"},
                   {"category": "Office > Furniture > Lamps", "tag": "desk lamp", "rationale": "evening work"}]}
    assert schema.model_validate(ok).tags[0].category == "Office > Writing > Pens"
    with pytest.raises(ValidationError):
        schema.model_validate({"tags": [{**ok["tags"][0], "category": "Books"}, ok["tags"][1]]})
    assert grounded_expert_schema(2, None).model_json_schema()["$defs"]["ExpertTag"]["properties"].keys() == {"tag", "rationale"}


def test_a_huge_vocabulary_compiles_in_the_server_grammar_engine() -> None:
    xgr = pytest.importorskip("xgrammar")
    import json

    labels = tuple(f"Category {n:04d} Supplies" for n in range(5000))
    vocabulary = CategoryVocabulary(level="leaf", labels=labels, paths=tuple(f"Shop > Dept {n % 50} > {label}" for n, label in enumerate(labels)))
    schema = grounded_expert_schema(5, vocabulary)
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo([chr(i) for i in range(32, 127)] + ['{"', '":', "Category", " Supplies"]))
    started = time.perf_counter()
    compiled = compiler.compile_json_schema(json.dumps(schema.model_json_schema()))
    assert compiled is not None and time.perf_counter() - started < 120


def test_the_catalogue_list_precedes_the_user_context_and_is_the_same_for_every_user(small_dataset_dir: Path) -> None:
    ctx = RunContext(base_url=DEAD_ENDPOINT, model="fake", grounding_list_max=100)
    first = asyncio.run(build_shared_prefix(ctx, fake_resources(small_dataset_dir), "u1", "test"))["shared_prefix"]
    second = asyncio.run(build_shared_prefix(ctx, fake_resources(small_dataset_dir), "u2", "test"))["shared_prefix"]
    opening = "<user_context>\nProfile"
    head = first[: first.index(opening)]
    assert "<catalogue_categories>" in head and "- Office > Writing > Pens" in head and head == second[: second.index(opening)]
    for off in (RunContext(base_url=DEAD_ENDPOINT, model="fake", grounding="off"),
                RunContext(base_url=DEAD_ENDPOINT, model="fake"),  # the default: the enum alone
                RunContext(base_url=DEAD_ENDPOINT, model="fake", grounding_list_max=3)):  # too long to list: enum only
        assert "<catalogue_categories>" not in asyncio.run(build_shared_prefix(off, fake_resources(small_dataset_dir), "u1", "test"))["shared_prefix"]
    with pytest.raises(ValueError, match="grounding"):
        RunContext(grounding="genre")


def test_grounded_tags_carry_their_category_into_retrieval(fake_llm: FakeLLM, small_dataset_dir: Path,
                                                           isolated_home: Path) -> None:
    made: list[FakeRetriever] = []

    def factory(dataset):  # noqa: ANN001, ANN202
        made.append(FakeRetriever(dataset))
        return made[-1]

    graph = fake_graph(small_dataset_dir, [], factory)
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")
    out = asyncio.run(graph.ainvoke({"user_id": "u1", "dataset": str(small_dataset_dir), "split": "test"}, context=ctx))
    paths = set(category_vocabulary(default_registry().dataset(str(small_dataset_dir)), "leaf").paths)
    assert out["tags"] and all(t.category in paths for t in out["tags"])
    assert made[0].categories == [t.category for t in out["tags"]]  # the retriever was asked inside each category
    dataset = default_registry().dataset(str(small_dataset_dir))
    history = set(out["history_item_ids"])
    shown: set[str] = set()
    for rec in out["recommendations"]:
        assert rec.category == rec.tag.category
        inside = [i for i in dataset.items.values() if i.category == rec.category and i.item_id not in history | shown]
        # the category's own items first (never one an earlier tag showed); one the history exhausts (the pens of u1)
        # is filled from elsewhere, until the 6-item shop runs dry
        assert [i.item_id for i in rec.items[: len(inside)]] == [i.item_id for i in inside][: len(rec.items)]
        assert not {i.item_id for i in rec.items} & shown
        shown |= {i.item_id for i in rec.items}
    assert shown
    ungrounded = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off", grounding="off")
    out = asyncio.run(graph.ainvoke({"user_id": "u1", "dataset": str(small_dataset_dir), "split": "test"}, context=ungrounded))
    assert all(t.category is None for t in out["tags"]) and all(r.category for r in out["recommendations"])


def test_exploring_experts_are_the_last_ones_and_need_grounding() -> None:
    from recgpt.agents.expert import explores

    ctx = RunContext(base_url=DEAD_ENDPOINT, num_personas=3, explore_experts=2)
    assert [explores(ctx, i) for i in range(3)] == [False, True, True]
    assert not any(explores(RunContext(base_url=DEAD_ENDPOINT, num_personas=3, explore_experts=2, grounding="off"), i) for i in range(3))
    with pytest.raises(ValueError, match="explore_experts must be in 0..num_personas \\(3\\), got 4"):
        RunContext(base_url=DEAD_ENDPOINT, num_personas=3, explore_experts=4)


def test_an_exploring_expert_is_offered_only_categories_the_history_lacks(fake_llm: FakeLLM, small_dataset_dir: Path,
                                                                         isolated_home: Path) -> None:
    from recgpt.agents.expert import unexplored

    dataset = default_registry().dataset(str(small_dataset_dir))
    vocabulary = category_vocabulary(dataset, "leaf")
    some = list(dataset.items)[:2]
    rest = unexplored(vocabulary, dataset, some)
    assert set(rest.paths) == set(vocabulary.paths) - {dataset.items[i].category for i in some}
    assert unexplored(vocabulary, dataset, list(dataset.items)) == vocabulary  # nothing left: all offered

    graph = fake_graph(small_dataset_dir, [])
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off", num_personas=3, explore_experts=1,
                  tags_per_expert=4, num_tags=5)
    out = asyncio.run(graph.ainvoke({"user_id": "u1", "dataset": str(small_dataset_dir), "split": "test"}, context=ctx))
    seen = {dataset.items[i].category for i in out["history_item_ids"]}
    explorer = [t for t in out["tag_pool"] if t.persona_index == 2]
    assert explorer and all(t.category not in seen for t in explorer)
    # the same fake, unconstrained, grounds the first expert's pen tags in the history's own pen category
    assert any(t.category in seen for t in out["tag_pool"] if t.persona_index == 0)
