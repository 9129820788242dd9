"""Durable runs (SQLite checkpointer) on the fake LLM layer; tests/integration kills a real run with SIGKILL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from recgpt.errors import RecGPTError
from recgpt.graph import Context
from recgpt.runner import arecommend_durable
from tests.unit.fakes import DEAD_ENDPOINT, FakeLLM, fake_resources


class Crash(Exception):
    """Not an error the graph handles: the run stops here, like a killed process."""


def test_an_interrupted_run_resumes_without_redoing_finished_agents(
        fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path, tmp_path: Path) -> None:
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")
    db = tmp_path / "ck.sqlite"
    fake_llm.fail["expert[2]"] = Crash("process died")
    with pytest.raises(Crash):
        asyncio.run(arecommend_durable("u1", "t1", fake_resources(small_dataset_dir), "test", ctx, db, plugins=[]))
    assert sorted(fake_llm.calls) == ["expert[0]", "expert[1]", "expert[2]", "planner"]
    fake_llm.fail.clear()
    fake_llm.calls.clear()
    state, status = asyncio.run(arecommend_durable("u1", "t1", fake_resources(small_dataset_dir), "test", ctx, db, plugins=[]))
    assert status == "resumed"
    assert sorted(fake_llm.calls) == ["arbiter", "expert[2]"]  # the planner and two experts were not asked again
    assert len(state["tag_pool"]) == 12 and len(state["tags"]) == 5
    assert sorted(c.agent for c in state["calls"]) == ["arbiter", "expert[0]", "expert[1]", "expert[2]", "planner"]
    fake_llm.calls.clear()
    again, status = asyncio.run(arecommend_durable("u1", "t1", fake_resources(small_dataset_dir), "test", ctx, db, plugins=[]))
    assert status == "finished earlier" and fake_llm.calls == [] and again["tags"] == state["tags"]


def test_a_thread_belongs_to_one_user(fake_llm: FakeLLM, small_dataset_dir: Path, isolated_home: Path, tmp_path: Path) -> None:
    ctx = Context(base_url=DEAD_ENDPOINT, model="fake", explanation_mode="off")
    asyncio.run(arecommend_durable("u1", "t1", fake_resources(small_dataset_dir), "test", ctx, tmp_path / "ck.sqlite", plugins=[]))
    with pytest.raises(RecGPTError, match="thread 't1' holds user u1 .* not user u2"):
        asyncio.run(arecommend_durable("u2", "t1", fake_resources(small_dataset_dir), "test", ctx, tmp_path / "ck.sqlite", plugins=[]))
