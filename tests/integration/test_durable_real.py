"""Durable runs against the real vLLM server, with a real SIGKILL: a killed `recommend --thread` resumes without
redoing the agent calls that had finished, and a killed batch evaluation resumes per user."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from recgpt.settings import get_settings
from tests.conftest import needs_shared_data

pytestmark = [pytest.mark.slow, pytest.mark.integration,
              needs_shared_data]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "recgpt.app", *args]


def wait_for(predicate, process: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"the run ended before {what}: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def finished_experts(db: Path) -> int:
    """Expert tasks whose writes the checkpointer has saved (the `tag_pool` channel is written only by experts)."""
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(DISTINCT task_id) FROM writes WHERE channel = 'tag_pool'").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def valid_lines(store: Path) -> list[str]:
    """Complete JSON lines (a SIGKILL may cut the last line short; the store skips such a line when loading)."""
    lines = []
    for line in store.read_text().splitlines():
        try:
            json.loads(line)
        except ValueError:
            continue
        lines.append(line)
    return lines


def test_killed_recommend_thread_resumes_without_redoing_finished_calls(vllm_server: str, tmp_path: Path) -> None:
    db = tmp_path / "checkpoints.sqlite"
    args = ("recommend", "--user", "5", "--split", "test", "--personas", "3", "--tags-per-expert", "3", "--tags", "3", "--explanations", "off",
            "--thread", "killed-once", "--checkpoints", str(db), "--json")
    env = dict(os.environ, RECGPT_BASE_URL=vllm_server)
    first = subprocess.Popen(cli(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: finished_experts(db) >= 1, first, 600, "an expert finished")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    killed_at = time.time()
    done_before_kill = finished_experts(db)
    resumed = subprocess.run(cli(*args), env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    assert "killed-once: resumed" in resumed.stderr
    state = json.loads(resumed.stdout)
    calls = state["calls"]
    before = [c for c in calls if c["started_at"] < killed_at]
    agents = Counter(c["agent"] for c in calls)
    assert all(n == 1 for n in agents.values()), agents  # no agent asked twice
    # the planner and every expert that had finished come from the killed run, not from new requests
    assert "planner" in {c["agent"] for c in before}
    assert sum(c["agent"].startswith("expert[") for c in before) >= done_before_kill >= 1
    assert state["tags"] and state["recommendations"]
    again = subprocess.run(cli(*args), env=env, capture_output=True, text=True, timeout=300)
    assert "killed-once: finished earlier" in again.stderr and json.loads(again.stdout)["tags"] == state["tags"]


def test_killed_batch_evaluation_resumes_per_user(vllm_server: str, tmp_path: Path) -> None:
    seed = str(int(time.time()) % 100000)  # a user sample (and result store) no earlier run has touched
    args = ("eval", "--method", "expert", "--users", "6", "--tags", "3", "--seed", seed, "--concurrency", "2",
            "--out", str(tmp_path / "reports"))
    env = dict(os.environ, RECGPT_BASE_URL=vllm_server)
    eval_dir = get_settings().home / "eval"
    existing = set(eval_dir.glob("expert-*.jsonl")) if eval_dir.exists() else set()

    def new_store() -> Path | None:
        fresh = [p for p in eval_dir.glob("expert-*.jsonl") if p not in existing] if eval_dir.exists() else []
        return fresh[0] if fresh else None

    first = subprocess.Popen(cli(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (s := new_store()) is not None and len(s.read_text().splitlines()) >= 1, first, 600,
             "a first user stored")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    store = new_store()
    stored_before = {json.loads(line)["user_id"]: line for line in valid_lines(store)}
    assert 1 <= len(stored_before) < 6
    resumed = subprocess.run(cli(*args), env=env, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr
    lines = valid_lines(store)
    per_user = Counter(json.loads(line)["user_id"] for line in lines)
    assert len(per_user) == 6 and all(n == 1 for n in per_user.values()), per_user  # every user once, none redone
    assert all(line in lines for line in stored_before.values())  # what the killed run stored is kept as it was
