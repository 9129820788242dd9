"""The judge's code checks: the defects they fail, the good outputs they pass, the evidence line, and that a dimension
a check decides costs no LLM call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from recgpt.agents.explainer import ExplanationOutput, invented_commerce_claim
from recgpt.agents.judge_checks import (
    explanation_check_failures,
    history_evidence,
    in_category,
    tag_check_failures,
)
from recgpt.eval.judge_labels import EXPLANATION_CORRUPTIONS, TAG_CORRUPTIONS, corrupt_explanation, corrupt_tag
from recgpt.graph import Context
from recgpt.graph.judge import build_judge_subgraph
from recgpt.services.resources import default_registry
from tests.unit.fakes import DEAD_ENDPOINT, FakeLLM, fake_resources

KNOWN = frozenset({"gel", "pens", "photo", "paper", "binder", "dividers", "index", "black", "ink", "cartridge", "desk",
                   "label", "printer", "printers", "office", "school", "supplies", "writing", "correction"})
TITLE = "Pilot G2 Retractable Gel Pens, Fine Point, Black Ink, 12 Pack"
CATEGORY = "Office Products > Office & School Supplies > Writing & Correction Supplies > Gel Pens"
GOOD_EXPLANATION = "Smooth black gel pens to keep your class notes neat, like the ones you reordered last month."


@pytest.mark.parametrize("kind", TAG_CORRUPTIONS)
def test_every_tag_corruption_of_the_labelled_set_fails_a_check(kind: str) -> None:
    assert tag_check_failures(corrupt_tag("black gel pens", CATEGORY, kind), KNOWN)


@pytest.mark.parametrize(("tag", "dimension"), [
    ("binder index dividers x inches yellow and white dividers for", "validity"),   # the demo's filler
    ("photo paper inch x inches color paper with edge protecters x", "validity"),
    ("black and gr", "validity"),                                                     # a cut word
    ("gelpp pens", "validity"),                                                       # neither shop nor English
    ("Office Products > Office & School Supplies > Writing", "specificity"),          # a pasted path
])
def test_literal_tag_defects_fail_their_dimension(tag: str, dimension: str) -> None:
    assert dimension in tag_check_failures(tag, KNOWN)


@pytest.mark.parametrize("tag", ["black gel pens", "photo paper", "desk label printer", "refillable ink cartridge"])
def test_a_tag_in_a_shoppers_words_passes_every_check(tag: str) -> None:
    assert tag_check_failures(tag, KNOWN) == {}


@pytest.mark.parametrize("kind", [k for k in EXPLANATION_CORRUPTIONS if k != "other_title"])
def test_every_literal_explanation_corruption_fails_a_check(kind: str) -> None:
    bad = corrupt_explanation(GOOD_EXPLANATION, TITLE, "Avery Binder Dividers", kind)
    assert explanation_check_failures(bad, TITLE, CATEGORY)


def test_praising_another_item_is_left_to_the_llm() -> None:
    """Whether the sentence is about *this* item is a reading task: no literal check claims it (the LLM's relevance and
    factuality do), so the report's per-kind rates show what the model itself sees."""
    bad = corrupt_explanation(GOOD_EXPLANATION, TITLE, "Avery Binder Dividers", "other_title")
    assert explanation_check_failures(bad, TITLE, CATEGORY) == {}


@pytest.mark.parametrize(("text", "dimension"), [
    ("The item matches the tone, audience, emotional angle, rhetorical device and seasonal framing of the user's history.",
     "clarity"),
    ("The ballpoint pens are assorted colors pack of r.", "clarity"),
    ("The item fits them because it's called a desktop label printer.", "informativeness"),
    ("Great pens, now with free shipping and a lifetime warranty.", "factuality"),
    ("Only $5 for a dozen pens you will love.", "factuality"),
])
def test_the_demos_bad_explanations_fail_their_dimension(text: str, dimension: str) -> None:
    title = "Desktop Label Printer" if "label printer" in text else TITLE
    assert dimension in explanation_check_failures(text, title, CATEGORY)


def test_a_good_explanation_passes_and_a_title_may_state_its_own_warranty() -> None:
    assert explanation_check_failures(GOOD_EXPLANATION, TITLE, CATEGORY) == {}
    assert invented_commerce_claim("It comes with a lifetime warranty.", "Desk Chair with Lifetime Warranty") is None
    assert invented_commerce_claim("It comes with a lifetime warranty.", "Desk Chair") == "lifetime warranty"


def test_in_category_compares_the_second_level_or_a_genre() -> None:
    path = ("Office Products", "Office & School Supplies", "Writing & Correction Supplies")
    assert in_category(path, (), "Office Products > Office & School Supplies > Paper")
    assert not in_category(path, (), "Office Products > Office Electronics")
    assert in_category((), ("Drama", "Romance"), "Drama") and not in_category((), ("Comedy",), "Drama")
    assert not in_category(path, (), "")


def test_history_evidence_counts_the_users_past_items_in_the_category(small_dataset_dir: Path, isolated_home: Path) -> None:
    dataset = default_registry().dataset(str(small_dataset_dir))
    history = [e.item_id for e in dataset.example("u1", "test").history]
    category = dataset.items[history[0]].category
    line = history_evidence(dataset, history, category)
    hits = sum(in_category(dataset.items[i].category_path, dataset.items[i].genres, category) for i in history)
    assert line == f"Catalogue evidence: {hits} of the user's {len(history)} past items lie in " \
                   f"{' > '.join(category.split(' > ')[:2])}." and hits >= 1
    assert history_evidence(dataset, [], category) == "" and history_evidence(dataset, history, "") == ""


def judge_once(resources: object, text: str, kind: str, ctx: Context, history: list[str]) -> object:
    graph = build_judge_subgraph(resources)  # type: ignore[arg-type]
    task = {"shared_prefix": "You are one agent of RecGPT.", "target_kind": kind, "target_id": "t", "text": text,
            "title": TITLE, "category": CATEGORY, "history_item_ids": history}
    return asyncio.run(graph.ainvoke(task, context=ctx))["judgements"][0]


def test_a_dimension_a_check_fails_is_negative_without_an_llm_call(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    resources = fake_resources(small_dataset_dir)
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", judge_mode="agent")
    broken = "The ballpoint pens are assorted colors pack of r."
    judgement = judge_once(resources, broken, "explanation", ctx, [])
    assert judgement.overall == "Bad" and "code_check" in judgement.flags
    clarity = next(v for v in judgement.verdicts if v.dimension == "clarity")
    assert clarity.grade == "negative" and clarity.reason.startswith("code check:")
    assert "judge[explanation:clarity]" not in fake_llm.calls and "judge[explanation:relevance]" in fake_llm.calls
    # checks off: the LLM grades every dimension, as in the paper
    fake_llm.calls.clear()
    off = judge_once(resources, broken, "explanation", Context(base_url=DEAD_ENDPOINT, model="fake", judge_mode="agent",
                                                               judge_code_checks=False), [])
    assert "judge[explanation:clarity]" in fake_llm.calls and off.overall == "Superior"


def test_the_single_judge_skips_its_call_when_a_check_fails_and_reads_the_evidence_otherwise(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    resources = fake_resources(small_dataset_dir)
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", judge_mode="single")
    bad = judge_once(resources, "Great pens, now with free shipping.", "explanation", ctx, [])
    assert bad.overall == "Bad" and bad.flags == ["code_check"] and not fake_llm.calls
    dataset = resources.dataset
    history = [e.item_id for e in dataset.example("u1", "test").history]
    judge_once(resources, GOOD_EXPLANATION, "explanation", ctx, history)
    assert fake_llm.calls == ["judge[explanation:single]"]
    assert "Catalogue evidence:" in fake_llm.prompts["judge[explanation:single]"]


def test_a_tag_set_is_checked_tag_by_tag() -> None:
    """A reward sample is an expert's whole answer joined by ';': words repeated across its tags are no filler."""
    assert tag_check_failures("photo paper; glossy photo paper; photo paper refills", KNOWN) == {}
    fails = tag_check_failures("black gel pens; binder dividers x inches", KNOWN)
    assert "binder dividers x inches" in fails["validity"]


class _LogprobModel:
    """A chat model whose one-token answer has the given first-token alternatives (token -> probability)."""

    def __init__(self, alternatives: dict[str, float]) -> None:
        self.alternatives = alternatives
        self.bound: dict[str, object] = {}

    def bind(self, **kwargs: object) -> _LogprobModel:
        self.bound = kwargs
        return self

    async def ainvoke(self, messages: object) -> object:
        import math

        from langchain_core.messages import AIMessage

        top = [{"token": t, "logprob": math.log(p)} for t, p in self.alternatives.items()]
        return AIMessage(content="x", response_metadata={"logprobs": {"content": [{"token": "x", "logprob": 0.0, "top_logprobs": top}]}},
                         usage_metadata={"input_tokens": 50, "output_tokens": 1, "total_tokens": 51})


def test_the_yes_probability_sums_every_spelling_and_renormalises() -> None:
    from recgpt.errors import InvalidModelOutput
    from recgpt.tools.llm import acall_yes_probability

    model = _LogprobModel({"Yes": 0.3, " yes": 0.1, "No": 0.2, "The": 0.4})
    p, call = asyncio.run(acall_yes_probability(model, [], "judge[tag:relevance]", "http://x"))  # type: ignore[arg-type]
    assert p == pytest.approx(0.4 / 0.6) and call.ok and call.completion_tokens == 1
    assert model.bound == {"logprobs": True, "top_logprobs": 20, "max_tokens": 1}
    p_a, _ = asyncio.run(acall_yes_probability(_LogprobModel({"A": 0.2, "B": 0.6}), [], "judge[pairwise]", "http://x",  # type: ignore[arg-type]
                                               yes=frozenset({"a"}), no=frozenset({"b"})))
    assert p_a == pytest.approx(0.25)
    with pytest.raises(InvalidModelOutput, match="neither"):
        asyncio.run(acall_yes_probability(_LogprobModel({"The": 0.9}), [], "judge", "http://x"))  # type: ignore[arg-type]


def test_probability_scoring_thresholds_each_dimension_and_can_be_rethresholded_offline(
        small_dataset_dir: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recgpt.agents import common
    from recgpt.eval.explain_judge import rethreshold
    from recgpt.schema.state import LLMCall

    asked: list[str] = []

    async def fake_yes(model: object, prompt: list, agent: str, base_url: str, yes: object = None, no: object = None) -> tuple:
        asked.append(agent)
        assert prompt[-1].content.endswith("Answer with one word: yes or no.")
        p = {"relevance": 0.9, "consistency": 0.35, "specificity": 0.1}.get(agent.split(":")[-1].rstrip("]"), 0.6)
        return p, LLMCall(agent=agent, ok=True, attempts=1, latency_s=0.0)

    monkeypatch.setattr(common, "acall_yes_probability", fake_yes)
    resources = fake_resources(small_dataset_dir)
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", judge_mode="agent", judge_scoring="probability")
    judgement = judge_once(resources, "white desk paper", "tag", ctx, [])  # English words: no code check fails
    grades = {v.dimension: (v.grade, v.p_yes) for v in judgement.verdicts}
    assert grades == {"relevance": ("positive", 0.9), "consistency": ("neutral", 0.35), "specificity": ("negative", 0.1),
                      "validity": ("positive", 0.6)}
    assert judgement.overall == "Bad" and len(asked) == 4
    looser = rethreshold(judgement, Context(judge_no_threshold=0.05, judge_yes_threshold=0.3))
    assert [v.grade for v in looser.verdicts] == ["positive", "positive", "neutral", "positive"]
    single = judge_once(resources, "white desk paper", "tag", Context(base_url=DEAD_ENDPOINT, model="fake", judge_mode="single",
                                                                     judge_scoring="probability"), [])
    assert single.overall == "Superior" and single.p_yes == 0.6
    assert rethreshold(single, Context(judge_yes_threshold=0.7)).overall == "Average"


def test_the_writer_resamples_a_sentence_that_invents_a_price() -> None:
    """The demo's "The item sells electronic cigarettes for $5.99 per pack." for a Velcro fastener: the judge failed it,
    but the shopper read it; the writer now re-samples it (and falls back to the plain sentence if every answer does)."""
    with pytest.raises(ValueError, match="not a price or warranty"):
        ExplanationOutput(explanation="The item sells electronic cigarettes for $5.99 per pack.")
    assert ExplanationOutput(explanation=GOOD_EXPLANATION).explanation == GOOD_EXPLANATION
