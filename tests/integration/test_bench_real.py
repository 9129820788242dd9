"""`recgpt bench`'s token accounting against a real vLLM server (its /metrics), V1 and V2 in one run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from recgpt.eval.bench import BenchConfig, run_bench, write_bench_report

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def test_bench_reads_server_tokens_and_prefix_cache_for_both_pipelines(vllm_server: str, tmp_path: Path) -> None:
    result = asyncio.run(run_bench(BenchConfig(users=2, serial_users=1, saturation=2, k_tags=3, pipelines=["v1", "v1-raw", "v2"],
                                               setups=["architecture", "paper"]), show_progress=False))
    v1, v2 = result["pipelines"]["v1"], result["pipelines"]["v2"]
    assert set(result["comparisons"]) == {"architecture", "paper"} and result["comparisons"]["paper"]["baseline"] == "v1-raw"
    for phases in (v1, v2, result["pipelines"]["v1-raw"]):
        for phase in phases.values():
            assert phase["server_idle_at_start"]  # no earlier test's leftover requests in the counters
            # the server saw what the client sent (same prompts, every attempt counted on both sides)
            assert phase["prompt_tokens_server_per_user"] == pytest.approx(phase["prompt_tokens_sent_per_user"], rel=0.05)
            assert 0 < phase["prompt_tokens_computed_per_user"] <= phase["prompt_tokens_server_per_user"]
            assert phase["completion_tokens_per_user"] > 0 and phase["server_requests_per_user"] >= 1
            assert 0 < phase["llm_busy_s_per_user"] <= phase["wall_s_per_user"]
            assert 0 < phase["server_busy_s_per_user"] <= phase["elapsed_s"] / phase["users"] + 0.5
            rows = phase["per_user"]  # per user as well as in total
            assert len(rows) == phase["users"] and all(r["llm_calls"] >= 1 and r["wall_s"] >= r["llm_busy_s"] for r in rows)
            assert sum(r["prompt_tokens_sent"] for r in rows) / len(rows) == pytest.approx(phase["prompt_tokens_sent_per_user"])
    assert v1["saturated"]["calls_per_user"] >= 6 - 1e-9 or v1["saturated"]["flagged_users"]  # mine + predict x 3 routes
    # V2's experts and arbiter reuse the planner's cached context: a large share of its prompt is not recomputed
    assert v2["saturated"]["prefix_cache_hit_rate"] > 0.3
    assert 0 <= v1["saturated"]["route_duplicate_rate"] <= 1
    md, js, _ = write_bench_report(result, tmp_path, "recgpt-test")
    assert "prefill computed per user v2/v1-raw" in md.read_text() and js.is_file()
