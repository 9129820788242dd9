"""`recgpt batch` on a real local Ray cluster (2 workers) against the real vLLM server, 40 Office users.

Two endpoints: the session's server, and the same server behind a loopback proxy. Two vLLM-CPU engines side by side on
2 cores were seen to stall in start-up (see conftest), so the second "replica" is the proxy; for the batch it is a
separate endpoint all the same: its own URL, its own in-flight bound, and it can be stopped mid-run.

Against a one-process run: every user's shared prefix (the context all its agents read) must be byte-identical, so a
batch that mixed users up, built another context or ran another configuration fails exactly. Tags at temperature 0
are noisier: vLLM's CPU kernels are not batch-invariant (a greedy answer can change with what else the server is
computing), so two one-process runs of the same 40 users already differ: on 2026-11-30 they differed for 10 users.
With the collaborative evidence in the context (longer prompts) the batch differed for 16 in CI on 2026-12-06; the
bound `MAX_DIFFERENT` is that plus a margin, a coarse check next to the exact prefix one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recgpt.scale.driver import RUNS_FILE, load_users
from recgpt.scale.output import read_records
from tests.conftest import needs_shared_data
from tests.integration.conftest import _free_port as free_port
from tests.integration.faultproxy import FaultProxy

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(2400),
              needs_shared_data]

USERS = 40
MAX_DIFFERENT = 20  # of 40: the measured batch-against-one-process noise (16) plus a margin
# Cheap and deterministic: 2 personas x 2 tags, the arbiter skipped (pool <= N), no explanations, one sample per call
# (a cut answer is flagged, not re-sampled), greedy everywhere.
SETTINGS = {"num_personas": 2, "tags_per_expert": 2, "num_tags": 4, "items_per_tag": 3, "explanation_mode": "off",
            "schema_attempts": 1, "planner_temperature": 0.0, "expert_temperature": 0.0, "arbiter_temperature": 0.0}


def tags_of(records: list[dict]) -> dict[str, list[str]]:
    return {r["user_id"]: [t["tag"] for t in r["tags"]] for r in records}


def one_process_run(users: list[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each user's tags and prefix hash from a plain in-process run (as a batch record writes them)."""
    from recgpt.runner import arecommend_many
    from recgpt.scale.worker import user_record
    from recgpt.schema.context import Context

    states = asyncio.run(arecommend_many(users, "office", "full", Context(**SETTINGS), concurrency=8))
    records = [user_record(u, s, "local", 0.0) for u, s in zip(users, states)]
    return tags_of(records), {r["user_id"]: r["prefix_sha256"] for r in records}


def batch_command(out: Path, endpoints: list[str], user_file: Path) -> list[str]:
    args = [sys.executable, "-m", "recgpt.app", "batch", "--out", str(out), "--user-file", str(user_file),
            "--workers", "2", "--per-worker", "4", "--per-endpoint", "4"]
    for endpoint in endpoints:
        args += ["--endpoint", endpoint]
    for key, value in SETTINGS.items():
        args += ["--explanations", str(value)] if key == "explanation_mode" else ["--set", f"{key}={value}"]
    return args


def last_run(out: Path) -> dict:
    return json.loads((out / RUNS_FILE).read_text().splitlines()[-1])


def run_until(args: list[str], out: Path, when_done: int, action: object, timeout: float = 900) -> subprocess.CompletedProcess:
    """Start `args`; once `when_done` users are written, call `action()`; wait for the run to end."""
    env = dict(os.environ, COLUMNS="300", PYTHONUNBUFFERED="1")
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    acted = False
    while process.poll() is None and time.monotonic() < deadline:
        if not acted and out.is_dir() and len(read_records(out)) >= when_done:
            action()  # type: ignore[operator]
            acted = True
        time.sleep(0.5)
    stdout, stderr = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
    assert acted, f"the run ended before {when_done} users were written: {stderr[-2000:]}"
    return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)


def kill_one_worker() -> None:
    import psutil

    workers = [p for p in psutil.process_iter(["cmdline"]) if any("_ShippedWorker" in part for part in (p.info["cmdline"] or []))]
    assert workers, "no Ray worker process found"
    os.kill(workers[0].pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def user_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("batch-users") / "users.txt"
    path.write_text("\n".join(load_users("office", "full", USERS, None)) + "\n")
    return path


@pytest.fixture(scope="module")
def proxy(vllm_server: str) -> FaultProxy:
    proxy = FaultProxy(vllm_server.removesuffix("/v1"), free_port()).up()
    yield proxy
    proxy.close()


def test_batch_on_two_workers_and_two_endpoints(vllm_server: str, proxy: FaultProxy, user_file: Path, tmp_path: Path) -> None:
    users = user_file.read_text().split()
    endpoints = [vllm_server, proxy.base_url]

    # 1. a plain run: every user once, both endpoints used, tags as a one-process run's (within the run-to-run noise)
    out = tmp_path / "plain"
    done = subprocess.run(batch_command(out, endpoints, user_file), env=dict(os.environ, COLUMNS="300"),
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-2000:]
    records = read_records(out)
    assert sorted(r["user_id"] for r in records) == sorted(users)
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records if r["status"] != "ok"]
    assert {r["endpoint"] for r in records} == set(endpoints)
    assert len({r["worker"] for r in records}) == 2  # both Ray workers ran users
    summary = last_run(out)
    assert summary["done"] == USERS and summary["failed"] == 0 and summary["workers"] == 2
    (reference, prefixes), batch = one_process_run(users), tags_of(records)
    assert {r["user_id"]: r["prefix_sha256"] for r in records} == prefixes  # each user's exact context
    differ = [u for u in users if batch[u] != reference[u]]
    print(f"tags differ from the one-process run for {len(differ)} of {USERS} users")
    assert all(r["tags"] or r["flags"] for r in records)  # no tags only with the flags saying why (a cut answer, say)
    assert len(differ) <= MAX_DIFFERENT, f"{len(differ)} of {USERS} users' tags differ from the one-process run: {differ}"
    assert "users/min" in done.stdout and "40 users written" in done.stdout

    # 2. a Ray worker killed mid-run: every user once; only the dead worker's in-flight users ran again
    out = tmp_path / "worker-killed"
    run = run_until(batch_command(out, endpoints, user_file), out, 8, kill_one_worker)
    assert run.returncode == 0, run.stderr[-2000:]
    records = read_records(out)
    assert sorted(r["user_id"] for r in records) == sorted(users) and all(r["status"] == "ok" for r in records)
    summary = last_run(out)
    assert 1 <= summary["requeued_after_worker_death"] <= 4  # at most the dead worker's in-flight users (--per-worker 4)
    assert summary["done"] == USERS
    assert re.search(r"[1-4] users requeued after a worker died", run.stdout)

    # 3. one endpoint stopped mid-run: its users complete on the other
    out = tmp_path / "endpoint-stopped"
    try:
        run = run_until(batch_command(out, endpoints, user_file), out, 8, proxy.down)
    finally:
        proxy.up()
    assert run.returncode == 0, run.stderr[-2000:]
    records = read_records(out)
    assert sorted(r["user_id"] for r in records) == sorted(users) and all(r["status"] == "ok" for r in records)
    summary = last_run(out)
    late = summary["endpoints"][vllm_server]["done"]
    assert summary["endpoints"][proxy.base_url]["failures"] >= 1 and late >= USERS - 8
    assert summary["endpoint_retries"] >= 1

    # 4. a rerun over a finished folder redoes nothing
    again_run = subprocess.run(batch_command(out, endpoints, user_file), capture_output=True, text=True, timeout=600)
    assert again_run.returncode == 0 and last_run(out)["done"] == 0 and len(read_records(out)) == USERS
