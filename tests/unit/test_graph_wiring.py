"""Graph logic with a fake LLM layer (the real one is covered by tests/integration)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from recgpt.agents import common
from recgpt.errors import EndpointError, InvalidModelOutput
from recgpt.graph import Context
from recgpt.prompts.explainer import RHETORICAL_DEVICES, TONES
from recgpt.schema.calls import LLMCall
from recgpt.services.resources import default_registry
from tests.unit.fakes import DEAD_ENDPOINT, FakeLLM, fake_graph  # noqa: E402


def run(dataset: Path, user: str = "u1", ctx: Context | None = None) -> dict[str, Any]:
    ctx = ctx or Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")
    graph = fake_graph(dataset)
    return asyncio.run(graph.ainvoke({"user_id": user, "dataset": str(dataset), "split": "test"}, context=ctx))


def test_graph_draws_every_agent_node(small_dataset_dir: Path) -> None:
    nodes = set(fake_graph(small_dataset_dir).get_graph(xray=True).nodes)
    assert {"compress", "planner", "expert", "arbiter", "retrieve"} <= nodes
    # the explanation and judge stages are nested subgraphs, visible node by node with xray
    assert {"explain:style", "explain:write", "judge:dimension", "judge:review", "judge:single"} <= nodes


def test_meta_explanations_and_agent_judge_run_inside_the_main_graph(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    fake_llm.grades["clarity"] = "neutral"
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="meta", judge_mode="agent")
    out = run(small_dataset_dir, ctx=ctx)
    explained = [r.items[0].item_id for r in out["recommendations"] if r.items]  # a 6-item shop runs dry: no repeats
    assert sorted(e.item_id for e in out["explanations"]) == sorted(explained)
    # the served style stage: tone and device drawn from the user context, the rest written by the planner
    assert all(e.mode == "meta" and e.guideline is not None and e.guideline.tone in TONES
               and e.guideline.rhetorical_device in RHETORICAL_DEVICES and e.guideline.audience == "students" and e.text
               for e in out["explanations"])
    assert fake_llm.calls.count("style[" + explained[0] + "]") >= 1
    tags = [j for j in out["judgements"] if j.target_kind == "tag"]
    expls = [j for j in out["judgements"] if j.target_kind == "explanation"]
    assert len(tags) == len(out["tags"]) and len(expls) == len(out["explanations"])
    assert all(len(j.verdicts) == 4 and j.overall == "Superior" for j in tags)  # 4 positives >= tau 3
    # clarity neutral: 6 positives >= tau 5 -> Superior; every dimension recorded in rubric order
    assert all([v.dimension for v in j.verdicts][:3] == ["relevance", "factuality", "clarity"] for j in expls)
    assert all(j.overall == "Superior" for j in expls)
    # the main graph hands the judge the user's history: its evaluators read the catalogue evidence line
    assert "Catalogue evidence:" in fake_llm.prompts["judge[explanation:relevance]"]


def test_an_explanation_that_only_restates_its_item_is_asked_for_once_more(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recgpt.agents import explainer

    said: dict[str, int] = {}

    async def writer(model: Any, messages: list[Any], schema: type, agent: str, *args: Any, **kwargs: Any) -> Any:
        if not agent.startswith("explain["):
            return await fake_llm(model, messages, schema, agent, *args, **kwargs)
        fake_llm.calls.append(agent)
        item = agent.split("[")[1].split("]")[0]
        said[item] = said.get(item, 0) + 1
        # the first answer says nothing but the item's name; the retry, told so, says what it does for the shopper
        text = ("You will like this item because it is called that." if said[item] == 1 else
                "After the pens you bought last month, this keeps your desk drawer tidy before the school term.")
        call = LLMCall(agent=agent, ok=True, attempts=1, latency_s=0.0, prompt_tokens=1, completion_tokens=1)
        return schema.model_validate({"explanation": text}), call

    monkeypatch.setattr(common, "acall_structured", writer)
    out = run(small_dataset_dir, ctx=Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="template"))
    assert out["explanations"] and all(e.text.startswith("After the pens") for e in out["explanations"])
    assert all(said[e.item_id] == 2 for e in out["explanations"])
    assert sum(c.endswith(":retry") for c in fake_llm.calls) == len(out["explanations"])
    assert explainer.adds_nothing("You will like this item because it is called that.", "Desk Drawer Organizer", "Desk Supplies")


def test_when_every_answer_fails_the_shopper_reads_a_plain_sentence_made_by_code(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recgpt.agents import explainer

    async def writer(model: Any, messages: list[Any], schema: type, agent: str, *args: Any, **kwargs: Any) -> Any:
        if not agent.startswith("explain["):
            return await fake_llm(model, messages, schema, agent, *args, **kwargs)
        fake_llm.calls.append(agent)
        try:  # what acall_structured raises once the schema's attempts are spent: InvalidModelOutput with its call
            schema.model_validate({"explanation": "You get coupon coupon coupon coupon coupon coupon for the desk."})
        except ValueError as exc:
            error = InvalidModelOutput(f"{agent}: {exc}")
            error.call = LLMCall(agent=agent, ok=False, attempts=2, latency_s=0.0, error=str(exc))  # type: ignore[attr-defined]
            raise error from None

    monkeypatch.setattr(common, "acall_structured", writer)
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="template")
    out = run(small_dataset_dir, ctx=ctx)
    assert out["explanations"] and all(e.fallback and e.error and "loop" in e.error for e in out["explanations"])
    assert all(e.text == f"Picked for your interest in {e.category.split(' > ')[-1].lower()}: "
                         f"{e.title.split(',')[0].split('(')[0].strip().rstrip('.')}." for e in out["explanations"])
    assert explainer.fallback_sentence("permanent markers assorted colors per", "Sharpie Chisel Tip Markers: 2 Black.",
                                       "Office > Markers > Permanent Markers") == (
        "Picked for your interest in permanent markers: Sharpie Chisel Tip Markers: 2 Black.")
    assert explainer.fallback_sentence("gel pens", "Pilot G2, 12 Pack") == "Picked for your interest in gel pens: Pilot G2."
    assert sum("fallback sentence" in f for f in out["flags"]) == len(out["explanations"])
    off = run(small_dataset_dir, ctx=Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="template",
                                            explanation_fallback=False))
    assert all(not e.fallback and e.text == "" and e.error for e in off["explanations"])


def test_unsampled_meta_lets_the_planner_write_every_field(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="meta", style_sampling=False)
    out = run(small_dataset_dir, ctx=ctx)
    assert out["explanations"] and all(e.guideline is not None and e.guideline.tone == "warm" for e in out["explanations"])


def test_sampled_style_is_reproducible_per_context_and_spreads_across_users() -> None:
    from recgpt.agents.explainer import sampled_style

    assert sampled_style("history of user 1", "item9") == sampled_style("history of user 1", "item9")
    draws = {tuple(sampled_style(f"history of user {n}", "item9").values()) for n in range(40)}
    assert len(draws) >= 20  # 100 combinations: 40 users almost never collapse onto few of them
    assert {d[0] for d in draws} <= set(TONES) and {d[1] for d in draws} <= set(RHETORICAL_DEVICES)


def test_template_mode_skips_the_style_stage_and_single_judge_makes_one_call(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="template", judge_mode="single")
    out = run(small_dataset_dir, ctx=ctx)
    assert not any(c.startswith("style[") for c in fake_llm.calls)
    assert all(e.mode == "template" and e.guideline is None for e in out["explanations"])
    n_targets = len(out["tags"]) + len(out["explanations"])
    assert sum(c.startswith("judge[") for c in fake_llm.calls) == n_targets
    assert all(j.mode == "single" and j.overall == "Average" and not j.verdicts for j in out["judgements"])


def test_failing_style_and_judge_calls_are_flagged_not_lost(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="meta", judge_mode="agent")
    first = run(small_dataset_dir, ctx=ctx)["recommendations"][0].items[0].item_id
    fake_llm.fail[f"style[{first}]"] = InvalidModelOutput("style: cut")
    fake_llm.fail["judge[explanation:safety]"] = InvalidModelOutput("judge: schema")
    out = run(small_dataset_dir, ctx=ctx)
    fallback = next(e for e in out["explanations"] if e.item_id == first)
    assert fallback.text and fallback.guideline is None and "template used" in (fallback.error or "")
    for j in (j for j in out["judgements"] if j.target_kind == "explanation"):
        assert any(v.dimension == "safety" and v.grade is None for v in j.verdicts)
        assert "evaluators_failed: safety" in j.flags and j.overall == "Superior"  # 6 positives still >= 5
    assert any(f.startswith("judge[explanation:safety]_failed") for f in out["flags"])


def test_full_run_fans_out_one_expert_per_persona(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    out = run(small_dataset_dir)
    assert sorted(fake_llm.calls) == ["arbiter", "expert[0]", "expert[1]", "expert[2]", "planner"]
    assert len(out["personas"]) == 3 and len(out["tag_pool"]) == 12
    assert [t.rank for t in out["tags"]] == [1, 2, 3, 4, 5]
    categories = [t.category for t in out["tags"]]
    assert len(set(categories)) == 5  # by default one final tag per category
    assert "arbiter_repeated_choices" in " ".join(out["flags"])  # the fake picked #2 twice
    history = set(out["history_item_ids"])
    assert history == {"p1", "n1", "p2"}  # the test target n2 is not in the prompt's history
    assert "Sticky notes" not in out["shared_prefix"]
    for rec in out["recommendations"]:
        assert not ({i.item_id for i in rec.items} & history)
        assert rec.category is not None
    shown = [i.item_id for rec in out["recommendations"] for i in rec.items]
    assert shown and len(shown) == len(set(shown))  # no item twice in one user's list (later tags may run dry)
    dry = [rec.tag.tag for rec in out["recommendations"] if not rec.items]
    assert [f for f in out["flags"] if "no item left" in f] == [
        f"retrieve: tag {t!r} has no item left (the history and the earlier tags hold every match)" for t in dry]
    assert sum(c.prompt_tokens for c in out["calls"]) == 500
    assert {t.node for t in out["timings"]} >= {"compress", "planner", "arbiter", "retrieve"}


def test_decode_cuts_run_the_whole_graph_without_rationales(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off", expert_rationale_chars=0, arbiter_reason_chars=0,
                  planner_evidence=False)
    out = run(small_dataset_dir, ctx=ctx)
    assert len(out["personas"]) == 3 and all(p.evidence == [] for p in out["personas"])
    assert len(out["tag_pool"]) == 12 and len(out["tags"]) == 5
    assert all(t.rationale == "" for t in out["tags"]) and all(t.category for t in out["tags"])


def test_one_failing_expert_leaves_a_flagged_partial_result(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    fake_llm.fail["expert[1]"] = InvalidModelOutput("expert[1]: invalid model output after 2 attempts")
    out = run(small_dataset_dir)
    assert len(out["tag_pool"]) == 8 and len(out["tags"]) == 5
    assert any(f.startswith("expert[1]_failed") for f in out["flags"])
    assert any(not c.ok and c.agent == "expert[1]" for c in out["calls"])


def test_planner_and_arbiter_failures_fall_back(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    fake_llm.fail["planner"] = InvalidModelOutput("planner: cut at max_tokens")
    fake_llm.fail["arbiter"] = InvalidModelOutput("arbiter: schema violation")
    out = run(small_dataset_dir)
    assert len(out["personas"]) == 1 and out["personas"][0].name.startswith("the user as")
    assert len(out["tags"]) == 4  # the single expert's 4 tags, all kept
    joined = " ".join(out["flags"])
    assert "planner_failed" in joined and "arbiter" not in joined  # pool <= N: no arbiter call needed


def test_all_experts_failing_gives_no_tags_flag(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    for i in range(3):
        fake_llm.fail[f"expert[{i}]"] = InvalidModelOutput("bad")
    out = run(small_dataset_dir)
    assert out["tags"] == [] and out["recommendations"] == []
    assert any(f.startswith("no_tags") for f in out["flags"])


def test_endpoint_errors_are_retried_by_the_node_then_raised(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    fake_llm.fail["planner"] = EndpointError("LLM endpoint down")
    with pytest.raises(EndpointError):
        run(small_dataset_dir)
    assert fake_llm.calls.count("planner") == 2  # RetryPolicy(max_attempts=2)


def test_empty_history_user_is_flagged_not_crashed(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake")
    out = asyncio.run(fake_graph(small_dataset_dir).ainvoke({"user_id": "u3", "dataset": str(small_dataset_dir), "split": "full"}, context=ctx))
    assert any(f.startswith("empty_history") for f in out["flags"])
    assert "new user" in out["shared_prefix"] and out["recommendations"]


def test_context_validates_its_bounds() -> None:
    with pytest.raises(ValueError, match="num_personas"):
        Context(num_personas=0)
    with pytest.raises(ValueError, match="K <= 8"):
        Context(num_personas=9)
    with pytest.raises(ValueError, match="expert_rationale_chars"):
        Context(expert_rationale_chars=61)


def test_an_endpoint_failure_after_the_planner_keeps_the_finished_work(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    fake_llm.fail["expert[1]"] = EndpointError("LLM endpoint http://x/v1 keeps failing (HTTP 500) after retries")
    fake_llm.fail["arbiter"] = EndpointError("LLM endpoint http://x/v1 unreachable or timing out (APITimeoutError)")
    out = run(small_dataset_dir)
    assert len(out["personas"]) == 3 and len(out["tag_pool"]) == 8  # the two healthy experts' tags are kept
    assert any(f.startswith("expert[1]_failed: endpoint_unavailable: LLM endpoint") for f in out["flags"])
    arbiter_flag = next(f for f in out["flags"] if f.startswith("arbiter_failed"))
    assert "endpoint_unavailable" in arbiter_flag and "round-robin" in arbiter_flag
    assert len(out["tags"]) == 5 and out["recommendations"]
    assert fake_llm.calls.count("expert[1]") == 1  # absorbed, not retried at node level (the client already retried)


def test_eval_redoes_a_user_whose_answer_the_endpoint_degraded(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    from recgpt.eval.harness import EvalConfig, UserResult, answer_with_graph

    fake_llm.fail["expert[0]"] = EndpointError("LLM endpoint http://x/v1 keeps failing (HTTP 503) after retries")
    config = EvalConfig(dataset=str(small_dataset_dir), split="test", users=1, k_tags=2, k_items=[1])
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")

    class NoIndex:
        def search_items(self, *args: Any) -> list:
            return []

    result = UserResult(user_id="u1", target_item="n2", target_labels={}, new_interest={})
    with pytest.raises(EndpointError, match="1 agent call"):
        asyncio.run(answer_with_graph(fake_graph(small_dataset_dir, []), NoIndex(), config, default_registry().dataset(str(small_dataset_dir)),
                                      ctx, "u1", [], result))
