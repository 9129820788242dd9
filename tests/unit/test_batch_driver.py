"""The batch driver on a real local Ray with stand-in workers (no LLM): exactly-once output, resume, a worker killed
mid-run, an endpoint failing mid-run. The real-server version is tests/integration/test_batch_real.py."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from recgpt.scale import driver
from recgpt.scale.driver import BatchConfig, run_batch
from recgpt.scale.output import read_records
from recgpt.scale.worker import ENDPOINT_FAILED
from recgpt.services.resources import Registry

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
BAD = "http://127.0.0.1:9/v1"


class StandInWorker:
    """Answers like a worker; on BAD it reports an endpoint failure; user 'die' kills its process once."""

    def __init__(self, dataset: str, split: str, context: dict[str, Any], collab: list[Any]) -> None:
        self.marker = Path(context["marker"])

    def pid(self) -> int:
        return os.getpid()

    async def run(self, user_id: str, endpoint: str) -> dict[str, Any]:
        if endpoint == BAD:
            return {"user_id": user_id, "status": ENDPOINT_FAILED, "endpoint": endpoint, "error": "down"}
        if user_id == "die" and not self.marker.exists():
            self.marker.write_text("died once")
            os._exit(1)
        return {"user_id": user_id, "status": "ok", "endpoint": endpoint, "worker": os.getpid(), "tags": [{"tag": user_id}],
                "items": [], "explanations": [], "flags": []}


@pytest.fixture()
def stand_in(monkeypatch: pytest.MonkeyPatch, isolated_home: Path) -> None:
    monkeypatch.setattr(driver, "_ShippedWorker", StandInWorker)
    monkeypatch.setattr(Registry, "prepare", lambda *a, **k: None)  # no index: the stand-in workers retrieve nothing
    repo = str(Path(__file__).resolve().parents[2])
    monkeypatch.setenv("PYTHONPATH", repo + os.pathsep + os.environ.get("PYTHONPATH", ""))  # workers import this module


def test_every_user_once_despite_a_dead_worker_and_a_failing_endpoint(stand_in: None, small_dataset_dir: Path,
                                                                    tmp_path: Path) -> None:
    users = [f"user{i}" for i in range(12)] + ["die"]
    seen: list[int] = []
    config = BatchConfig(dataset=str(small_dataset_dir), users=users, out=tmp_path / "out", endpoints=["http://good/v1", BAD],
                         per_endpoint=3, workers=2, per_worker=2, cooldown_s=0.5, context={"marker": str(tmp_path / "died")})
    stats = run_batch(config, on_progress=lambda s: seen.append(s.done))
    records = read_records(tmp_path / "out")
    assert sorted(r["user_id"] for r in records) == sorted(users)  # each exactly once
    assert all(r["status"] == "ok" and r["endpoint"] == "http://good/v1" for r in records)
    # only the dead worker's in-flight users (at most --per-worker) ran again: the restarting actor got none meanwhile
    assert 1 <= stats.requeued_after_worker_death <= 2 and stats.endpoint_retries >= 1 and stats.done == len(users)
    assert stats.endpoints[BAD]["failures"] >= 1 and stats.endpoints["http://good/v1"]["done"] == len(users)
    assert seen and seen[-1] == len(users)
    # a rerun finds everything done: nothing is redone
    again = run_batch(config)
    assert again.done == 0 and again.skipped == len(users) and len(read_records(tmp_path / "out")) == len(users)
