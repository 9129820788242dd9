"""Training data comes from the training prefix only: no held-out target in prompts or completions."""

from __future__ import annotations

import json
from pathlib import Path

from recgpt.agents.expert import grounded_expert_schema
from recgpt.data.dataset import Split
from recgpt.data.jsonl import load_jsonl
from recgpt.prompts.expert import RATIONALE_INSTRUCTION
from recgpt.schema.context import Context
from recgpt.training.datasets import (
    SERVED_RATIONALE_CHARS,
    future_categories,
    grounding_vocabulary,
    label_of,
    sft_example,
    target_tag,
    target_tags,
    training_cuts,
)


def test_cuts_stop_before_both_held_out_targets(small_dataset_dir: Path) -> None:
    data = load_jsonl(small_dataset_dir)
    cuts = training_cuts(data, future=1, min_context=1)
    assert cuts
    for cut in cuts:
        held_out = {data.example(cut.user_id, Split.validation).target.item_id, data.example(cut.user_id, Split.test).target.item_id}
        seen = [e.item_id for e in cut.context + cut.future]
        assert seen == [e.item_id for e in data.training_prefix(cut.user_id)]
        assert len(cut.context) >= 1 and len(cut.future) == 1
        # the prefix ends before the validation target, which ends before the test target
        history = data.user(cut.user_id).interactions
        assert len(seen) == len(history) - 2 and seen == [e.item_id for e in history[:-2]]
        assert held_out == {history[-2].item_id, history[-1].item_id}


def test_sft_example_has_no_held_out_target_and_exact_tag_count(small_dataset_dir: Path) -> None:
    data = load_jsonl(small_dataset_dir)
    for cut in training_cuts(data, future=1, min_context=1):
        example = sft_example(data, cut, m=4)
        text = json.dumps(example)
        for split in (Split.validation, Split.test):
            target = data.items[data.example(cut.user_id, split).target.item_id]
            if target.item_id not in {e.item_id for e in cut.context + cut.future}:
                assert target.title not in text
        tags = json.loads(example["completion"][0]["content"])["tags"]
        assert len(tags) == 4 and len({t["tag"] for t in tags}) == 4
        future_titles = {data.items[e.item_id].title for e in cut.future}
        assert not any(title in example["prompt"][0]["content"] for title in future_titles - {data.items[e.item_id].title for e in cut.context})
        assert future_categories(data, cut)


def test_target_tag_drops_brand_and_numbers_and_adds_the_leaf(small_dataset_dir: Path) -> None:
    data = load_jsonl(small_dataset_dir)
    item = next(iter(data.items.values())).model_copy(update={"title": "Pilot G2 Retractable Gel Pens, Fine Point, 12-Pack",
                                                               "category_path": ("Office", "Writing", "Gel Pens")})
    tag = target_tag(item)
    assert tag == "g retractable gel pens fine point pack"  # brand-like first word and numbers dropped
    desk = item.model_copy(update={"title": "Acme Sturdy Wooden Organizer", "category_path": ("Office", "Desk Accessories", "Trays")})
    assert target_tag(desk) == "sturdy wooden organizer trays"  # leaf head word appended when missing
    cut = training_cuts(data, future=1, min_context=1)[0]
    assert len(target_tags(data, cut, 6)) == 6


def test_grounded_sft_example_is_what_the_served_grounded_schema_accepts(small_dataset_dir: Path) -> None:
    data = load_jsonl(small_dataset_dir)
    vocabulary = grounding_vocabulary(data, "leaf")
    assert vocabulary is not None and grounding_vocabulary(data, "off") is None
    served = Context().expert_rationale_chars
    assert SERVED_RATIONALE_CHARS == served == 0  # the graph serves the expert without a rationale
    schema = grounded_expert_schema(4, vocabulary, served)
    assert all("rationale" not in d.get("properties", {}) for d in schema.model_json_schema()["$defs"].values())
    for cut in training_cuts(data, future=1, min_context=1):
        example = sft_example(data, cut, m=4, vocabulary=vocabulary)
        assert "rationale" not in example["completion"][0]["content"] and RATIONALE_INSTRUCTION not in example["prompt"][1]["content"]
        answer = schema.model_validate_json(example["completion"][0]["content"])  # the grammar's enum and patterns
        categories = [t.category for t in answer.tags]
        assert set(categories) <= set(vocabulary.labels)
        newest = data.items[cut.future[-1].item_id]
        if label_of(vocabulary, newest) is not None:  # the first tag is the next item's, in its own category
            assert categories[0] == label_of(vocabulary, newest) and answer.tags[0].tag == target_tag(newest)
        assert "category" in example["prompt"][1]["content"]  # the grounded expert's instructions
        for split in (Split.validation, Split.test):
            target = data.items[data.example(cut.user_id, split).target.item_id]
            if target.item_id not in {e.item_id for e in cut.context + cut.future}:
                assert target.title not in json.dumps(example)


def test_padding_names_new_categories_before_repeating(small_dataset_dir: Path) -> None:
    data = load_jsonl(small_dataset_dir)
    vocabulary = grounding_vocabulary(data, "leaf")
    assert vocabulary is not None
    m = min(3, len(vocabulary))
    for cut in training_cuts(data, future=1, min_context=1):
        tags = json.loads(sft_example(data, cut, m=m, vocabulary=vocabulary)["completion"][0]["content"])["tags"]
        padded = [t["category"] for t in tags[1:]]  # after the next item's own tag, every pad is a new category
        assert len(set(padded)) == len(padded) and "option" not in json.dumps(tags)
