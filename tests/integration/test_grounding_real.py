"""Grounded tags against the real server: the enum is enforced by the server's grammar, at catalogue size and at a
bring-your-own size of thousands of categories, and the whole graph runs grounded."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest

from recgpt.agents.expert import grounded_expert_schema, training_expert_instructions
from recgpt.graph import Context
from recgpt.runner import arecommend_many
from recgpt.services.resources import default_registry, endpoints_of
from recgpt.tools.retrieval.grounding import CategoryVocabulary, category_vocabulary
from tests.conftest import needs_shared_data

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PREFIX = ("You are one agent of RecGPT. <user_context>Profile: unknown. Behaviour history: bought 'Gel pens, 12 colours' "
          "and 'Spiral notebook A5 ruled'.</user_context>")


def _raw_categories(vllm_server: str, vocabulary: CategoryVocabulary, temperature: float, n: int) -> list[str]:
    """Every category value in `n` raw answers: no client-side validation or re-sampling, so what the server's grammar
    lets through is what is seen, even in an answer cut by max_tokens."""
    schema = grounded_expert_schema(3, vocabulary).model_json_schema()
    body = {"model": endpoints_of(Context()).policy.model, "temperature": temperature, "max_tokens": 300,
            "messages": [{"role": "system", "content": PREFIX}, {"role": "user", "content": training_expert_instructions(3, grounded=True)}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "ExpertOutput", "schema": schema}}}
    seen: list[str] = []
    for _ in range(n):
        response = httpx.post(vllm_server.rstrip("/") + "/chat/completions", json=body, timeout=300)
        response.raise_for_status()
        seen += re.findall(r'"category":\s*"([^"]*)"', response.json()["choices"][0]["message"]["content"] or "")
    return seen


def test_the_server_only_samples_categories_of_the_vocabulary(vllm_server: str) -> None:
    """At temperature 1.5 a 135M model writes anything it can. The raw answers are read (no client-side validation or
    re-sampling), and every category value in them, even in an answer cut by max_tokens, is one of the vocabulary's:
    that is the server's grammar at work."""
    labels = ("Gel Pens", "Notebooks", "Desk Lamps", "Office Chairs")
    vocabulary = CategoryVocabulary(level="leaf", labels=labels, paths=tuple(f"Office > {label}" for label in labels))
    seen = _raw_categories(vllm_server, vocabulary, 1.5, 4)
    assert seen and set(seen) <= set(labels), seen


def test_a_vocabulary_of_thousands_works_on_the_server(vllm_server: str) -> None:
    """A 3000-way enum compiles and constrains decoding within minutes. The raw answer is read, as above: CI's 135M
    model can ramble inside a tag's free text until max_tokens cuts it (one CI run did), but every category it wrote
    before the cut is still one of the vocabulary's, and the category comes first in each tag."""
    labels = tuple(f"Dept {n // 100} Shelf {n % 100}" for n in range(3000))
    vocabulary = CategoryVocabulary(level="leaf", labels=labels, paths=tuple(f"Shop > {label}" for label in labels))
    started = time.perf_counter()
    seen = _raw_categories(vllm_server, vocabulary, 0.3, 1)  # compiling the 3000-way enum is part of this first call
    assert seen and set(seen) <= set(labels), seen
    assert time.perf_counter() - started < 300, "a 3000-category grammar should compile and decode within minutes"


@needs_shared_data
def test_the_whole_graph_runs_grounded_with_evidence_on_real_office_users(vllm_server: str) -> None:
    """Short labels, the collaborative evidence block and in-category retrieval, on a real user and the real server."""
    leaves = set(category_vocabulary(default_registry().dataset("office"), "leaf").paths)
    ctx = Context(explanation_mode="off", evidence_categories=10, grounding_labels="short")
    [state] = asyncio.run(arecommend_many(["42"], "office", "test", ctx, concurrency=1))
    assert state["tags"], state["flags"]
    assert all(tag.category in leaves for tag in state["tags"])  # a short label maps back to its catalogue path
    assert "Collaborative evidence" in state["shared_prefix"] and state["category_shares"]
    history = set(state["history_item_ids"])
    shown: list[str] = []
    for rec in state["recommendations"]:
        assert rec.category == rec.tag.category and rec.items and not {i.item_id for i in rec.items} & history
        for item in rec.items:  # the category's own items; an ancestor's (or, the top level dry, neighbours) said so
            assert item.source in ("category", "parent", "semantic")
            if item.source == "category":
                assert item.category == rec.category or item.category.startswith(rec.category + " > ")
            elif item.source == "parent":
                top = rec.category.split(" > ")[0]
                assert item.category == top or item.category.startswith(top + " > ")
        shown += [i.item_id for i in rec.items]
    assert len(shown) == len(set(shown))  # no item twice in one user's list
