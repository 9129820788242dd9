"""The V1 multi-route baseline's wiring (fake LLM) and the benchmark's accounting (pure functions)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from recgpt.agents import v1_route
from recgpt.errors import InvalidModelOutput
from recgpt.eval.bench import busy_seconds, ratios
from recgpt.graph import Context
from recgpt.graph.v1 import build_v1_graph
from recgpt.prompts.v1 import ROUTES
from recgpt.schema.calls import LLMCall
from tests.unit.fakes import fake_resources

DEAD_ENDPOINT = "http://127.0.0.1:9/v1"


class FakeRoutes:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.fail = fail or set()
        self.prompts: list[tuple[str, str]] = []

    async def __call__(self, model: Any, messages: list[Any], schema: type, agent: str, base_url: str, attempts: int = 2):
        self.prompts.append((agent, messages[0].content))
        if agent in self.fail:
            error = InvalidModelOutput(f"{agent}: broken")
            error.call = LLMCall(agent=agent, ok=False, attempts=attempts, latency_s=0.0)  # type: ignore[attr-defined]
            raise error
        if "interests" in schema.model_fields:
            data = {"interests": ["writing", "desk comfort", "paper"]}
        else:
            route = agent.split("[")[1].split("]")[0]
            shared = ["gel pens", "desk lamp"]  # every route proposes these two: cross-route duplicates
            data = {"tags": [{"tag": t, "rationale": "r"} for t in shared + [f"{route} notebook", f"{route} chair"]]}
        return schema.model_validate(data), LLMCall(agent=agent, ok=True, attempts=1, latency_s=0.01, prompt_tokens=100, completion_tokens=10)


def run_v1(dataset: Path, ctx: Context) -> dict[str, Any]:
    return asyncio.run(build_v1_graph(fake_resources(dataset)).ainvoke({"user_id": "u1", "dataset": str(dataset), "split": "test"}, context=ctx))


def test_v1_routes_each_reread_the_context_behind_their_own_role(monkeypatch, small_dataset_dir: Path, isolated_home: Path) -> None:
    fake = FakeRoutes()
    monkeypatch.setattr(v1_route, "acall_structured", fake)
    state = run_v1(small_dataset_dir, Context(base_url=DEAD_ENDPOINT, model="fake", tags_per_expert=4, num_tags=5))
    assert len(state["calls"]) == 2 * len(ROUTES)  # mine + predict per route
    firsts = {p for _, p in fake.prompts}
    assert len(firsts) == len(ROUTES)  # no system prompt shared across routes (V1 layout) ...
    assert all("<user_context>" in p for p in firsts)  # ... yet each holds the whole context
    # 12 candidates, "gel pens" and "desk lamp" proposed by all 3 routes: 4 duplicates
    assert state["route_duplicate_rate"] == pytest.approx(4 / 12)
    tags = [t.tag for t in state["tags"]]
    assert len(tags) == 5 and len(set(tags)) == 5
    # round-robin over routes with duplicates dropped where they recur: the shared tags keep their first
    # proposer, then every route's own tags follow in route order
    assert [(t.persona, t.tag) for t in state["tags"]][:2] == [("behaviour", "gel pens"), ("behaviour", "desk lamp")]
    assert {t.persona for t in state["tags"]} == set(ROUTES)
    assert state["recommendations"]  # retrieval ran on the union


def test_a_failing_v1_route_is_flagged_and_the_others_still_answer(monkeypatch, small_dataset_dir: Path, isolated_home: Path) -> None:
    monkeypatch.setattr(v1_route, "acall_structured", FakeRoutes(fail={"v1[season]:predict"}))
    state = run_v1(small_dataset_dir, Context(base_url=DEAD_ENDPOINT, model="fake", tags_per_expert=4, num_tags=5))
    assert any(f.startswith("v1_route_season_failed") for f in state["flags"])
    assert {t.persona for t in state["tags"]} == {"behaviour", "trend"}
    assert any(c.agent == "v1[season]:mine" for c in state["calls"])  # the successful first call is still accounted


def test_busy_seconds_is_the_union_of_call_intervals() -> None:
    calls = [LLMCall(agent="a", ok=True, attempts=1, started_at=100.0, latency_s=5.0),
             LLMCall(agent="b", ok=True, attempts=1, started_at=102.0, latency_s=5.0),   # overlaps a: +2
             LLMCall(agent="c", ok=True, attempts=1, started_at=103.0, latency_s=1.0),   # inside: +0
             LLMCall(agent="d", ok=True, attempts=1, started_at=110.0, latency_s=2.0),   # disjoint: +2
             LLMCall(agent="e", ok=False, attempts=0, latency_s=3.0)]                    # never started: ignored
    assert busy_seconds(calls) == pytest.approx(9.0)
    assert busy_seconds([]) == 0.0


def test_ratios_state_each_goal() -> None:
    def phase(computed: float, upm: float, hr: float, overhead: float) -> dict[str, Any]:
        return {"prompt_tokens_computed_per_user": computed, "users_per_min": upm, "overhead_share": overhead,
                "quality": {"cat_hr@10_l2": hr, "item_hr@30": 0.1}}

    r = ratios({"v1": {"saturated": phase(3000, 1.0, 0.10, 0.01), "serial": {"users_per_min": 2.0}},
                "v2": {"saturated": phase(1000, 3.0, 0.12, 0.02), "serial": {"users_per_min": 3.0}}})
    assert r["v2_over_v1_prefill_computed"] == pytest.approx(1 / 3) and r["goal_prefill_at_most_0.40"]
    assert r["v2_over_v1_users_per_min_saturated"] == pytest.approx(3.0) and r["goal_throughput_at_least_2.5"]
    assert r["goal_quality_not_worse"] and r["goal_overhead_below_5pct"]
    assert r["v2_over_v1_users_per_min_serial"] == pytest.approx(1.5)
    worse = ratios({"v1": {"saturated": phase(1000, 1.0, 0.2, 0.01)}, "v2": {"saturated": phase(900, 1.1, 0.1, 0.2)}})
    assert not worse["goal_prefill_at_most_0.40"] and not worse["goal_throughput_at_least_2.5"]
    assert not worse["goal_quality_not_worse"] and not worse["goal_overhead_below_5pct"]
    assert ratios({"v2": {"saturated": phase(1, 1, 1, 0)}}) == {}


def test_setups_choose_their_pipelines_and_each_comparison_states_its_goals() -> None:
    from recgpt.eval.bench import markdown, pipelines_for

    assert pipelines_for(["architecture"]) == ["v1", "v2"]
    assert pipelines_for(["paper"]) == ["v1-raw", "v2"]
    assert pipelines_for(["architecture", "paper"], hybrid=True) == ["v1", "v1-raw", "v2", "v2-hybrid"]
    assert pipelines_for(["architecture"], hybrid=True) == ["v1", "v2"]  # hybrid belongs to the paper setup

    def phase(computed: float, upm: float) -> dict[str, Any]:
        return {"prompt_tokens_computed_per_user": computed, "users_per_min": upm, "overhead_share": 0.01, "server_busy_s_per_user": upm,
                "completion_tokens_per_user": 100.0, "quality": {"cat_hr@10_l2": 0.1}}

    pipelines = {"v1": {"saturated": phase(2000, 1.0)}, "v1-raw": {"saturated": phase(9000, 0.5)}, "v2": {"saturated": phase(1000, 1.5)}}
    paper = ratios(pipelines, "v1-raw", "v2")
    assert paper["v2_over_v1_prefill_computed"] == pytest.approx(1000 / 9000) and paper["goal_prefill_at_most_0.40"]
    assert paper["v2_over_v1_users_per_min_saturated"] == pytest.approx(3.0) and paper["baseline"] == "v1-raw"
    result = {"config": {"dataset": "movielens", "split": "test", "seed": 0, "users": 2, "serial_users": 0, "saturation": 2,
                         "k_tags": 3, "setups": ["architecture", "paper"]},
              "pipelines": {k: {"saturated": {**v["saturated"], "calls_per_user": 1, "failed_users": 0, "flagged_users": 0}}
                            for k, v in pipelines.items()},
              "comparisons": {"architecture": ratios(pipelines), "paper": paper}}
    md = markdown(result, "m")
    assert "## Goals, architecture setup (v2 against v1" in md and "## Goals, paper setup (v2 against v1-raw" in md
    assert "prefill computed per user v2/v1-raw = **0.11** (goal ≤ 0.40: met)" in md and "--setup architecture,paper" in md
    assert "users/min v2/v1 = **1.50** at saturation (goal ≥ 2.5: not met by 1.00)" in md  # how far from the goal
    assert "what limits users/min" in md
    assert "V2-hybrid against V2-text" not in md  # no hybrid row, no such section
    pipelines["v2-hybrid"] = {"saturated": {**phase(600, 1.2), "calls_per_user": 1, "failed_users": 0, "flagged_users": 0}}
    md = markdown({**result, "pipelines": {**result["pipelines"], "v2-hybrid": pipelines["v2-hybrid"]}}, "m")
    assert "- users/min v2-hybrid/v2 = **0.80** at saturation (goal ≥ 1.00: not met by 0.20); — serially" in md
    assert "prefill computed per user v2-hybrid/v2 = 0.60" in md and "--hybrid" in md


def test_the_limit_note_splits_engine_time_into_prefill_and_decode() -> None:
    from recgpt.eval.bench import goal_verdict, limit_note

    assert goal_verdict(0.52, 0.40, at_most=True) == "not met by 0.12" and goal_verdict(3.0, 2.5, at_most=False) == "met"
    assert goal_verdict(None, 2.5, at_most=False) == "not measured"
    v1 = {"server_prefill_s_per_user": 30.0, "server_decode_s_per_user": 10.0, "completion_tokens_per_user": 900}
    v2 = {"server_prefill_s_per_user": 5.0, "server_decode_s_per_user": 15.0, "completion_tokens_per_user": 700}
    note = limit_note(v1, v2, "v1-raw", "v2")
    assert "75% of request time in prefill and 25% in decode for v1-raw" in note and "25% / 75% for v2" in note
    assert "v2 generates 700" in note


def test_tokens_are_accounted_per_agent_role() -> None:
    from recgpt.eval.bench import agent_role, tokens_by_role

    assert agent_role("expert[2]") == "expert" and agent_role("v1[season]:mine") == "v1:mine" and agent_role("planner") == "planner"
    calls = [LLMCall(agent="expert[0]", ok=True, attempts=1, latency_s=1, prompt_tokens=100, completion_tokens=40),
             LLMCall(agent="expert[1]", ok=True, attempts=1, latency_s=1, prompt_tokens=110, completion_tokens=50),
             LLMCall(agent="arbiter", ok=True, attempts=1, latency_s=1, prompt_tokens=300, completion_tokens=20)]
    assert tokens_by_role(calls) == {"expert": [210, 90], "arbiter": [300, 20]}
