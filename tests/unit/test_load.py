"""`recgpt load` on the fake LLM layer: every started run has one outcome, nothing is lost, the report is written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from recgpt.errors import EndpointError, InvalidModelOutput
from recgpt.eval.load import LoadConfig, percentile, run_load, write_load_report
from recgpt.graph import Context
from tests.unit.fakes import DEAD_ENDPOINT, FakeLLM, fake_graph


def test_load_accounts_for_every_run_and_writes_the_report(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path, tmp_path: Path) -> None:
    fake_llm.fail["expert[1]"] = InvalidModelOutput("expert: schema")  # absorbed: flagged results
    config = LoadConfig(dataset=str(small_dataset_dir), split="full", concurrency=6, duration_s=1.5, sample_every_s=0.2)
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")
    seen: list[str] = []
    result = asyncio.run(run_load(config, ctx, fake_graph(small_dataset_dir, []), progress=lambda r: seen.append(r.outcome)))
    assert result["lost"] == 0 and result["started"] == result["finished"] == len(seen) >= 6
    assert result["outcomes"]["unhandled"] == 0 and result["outcomes"]["flagged"] == result["finished"]
    assert result["latency_s"]["p50"] is not None and len(result["memory_samples"]) >= 2
    md, js, png = write_load_report(result, tmp_path, "fake")
    assert "| **0** |" in md.read_text() and json.loads(js.read_text())["lost"] == 0 and png is not None and png.exists()


def test_errors_and_unhandled_exceptions_are_counted_not_raised(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path) -> None:
    fake_llm.fail["planner"] = EndpointError("LLM endpoint http://x/v1 unreachable")
    config = LoadConfig(dataset=str(small_dataset_dir), split="full", concurrency=2, duration_s=0.5)
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")
    result = asyncio.run(run_load(config, ctx, fake_graph(small_dataset_dir, [])))
    assert result["outcomes"]["error"] == result["finished"] >= 2 and result["lost"] == 0
    assert "unreachable" in result["errors"][0][0]
    fake_llm.fail["planner"] = ZeroDivisionError("a bug")
    result = asyncio.run(run_load(config, ctx, fake_graph(small_dataset_dir, [])))
    assert result["outcomes"]["unhandled"] == result["finished"] >= 2
    assert result["errors"][0][0].startswith("ZeroDivisionError")


def test_percentiles() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile([1.0, 2.0, 3.0, 4.0], 95) == 4.0
