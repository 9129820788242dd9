"""The batch's pure parts: endpoint balancing with failover, and sharded output with resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recgpt.scale.endpoints import EndpointPool
from recgpt.scale.output import ShardWriter, done_users, read_records


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_least_in_flight_first_bounded_per_endpoint() -> None:
    pool = EndpointPool(["a", "b"], per_endpoint=2, clock=Clock())
    assert [pool.acquire() for _ in range(4)] == ["a", "b", "a", "b"]
    assert pool.acquire() is None and pool.capacity() == 0  # both at their bound
    pool.release("b", ok=True)
    assert pool.acquire() == "b" and pool.summary()["b"]["done"] == 1


def test_a_failing_endpoint_sits_out_its_cooldown_then_returns() -> None:
    clock = Clock()
    pool = EndpointPool(["a", "b"], per_endpoint=4, cooldown_s=30, clock=clock)
    first = pool.acquire()
    pool.release(first, ok=False)  # type: ignore[arg-type]
    assert pool.summary()["a"]["failures"] == 1 and pool.summary()["a"]["up"] == 0.0
    assert {pool.acquire() for _ in range(3)} == {"b"}  # all traffic on the healthy one
    clock.now = 31
    assert pool.acquire() == "a"  # back in rotation
    pool.release("a", ok=False)  # failing again at once: the cool-down doubles
    clock.now = 31 + 59
    assert pool.summary()["a"]["up"] == 0.0
    clock.now = 31 + 61
    assert pool.acquire() == "a"
    pool.release("a", ok=True)  # a success resets the back-off
    assert pool.acquire() == "a"
    pool.release("a", ok=False)
    clock.now = 31 + 61 + 31
    assert pool.summary()["a"]["up"] == 1.0
    pool.release("b", ok=None)  # a worker died: neither done nor the endpoint's fault
    assert pool.summary()["b"] == {"in_flight": 2, "done": 0, "failures": 0, "up": 1.0}


def test_all_down_says_when_the_first_comes_back() -> None:
    clock = Clock()
    pool = EndpointPool(["a", "b"], cooldown_s=10, clock=clock)
    pool.release(pool.acquire(), ok=False)  # type: ignore[arg-type]
    clock.now = 4
    pool.release(pool.acquire(), ok=False)  # type: ignore[arg-type]
    assert pool.acquire() is None and pool.next_retry_in() == pytest.approx(6)
    with pytest.raises(ValueError, match="at least one endpoint"):
        EndpointPool([])
    with pytest.raises(ValueError, match="listed twice"):
        EndpointPool(["a", "a"])


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_shards_resume_and_never_overwrite(fmt: str, tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, fmt, shard_size=2)
    for user in ("u1", "u2", "u3"):
        writer.write({"user_id": user, "status": "ok", "tags": [{"tag": "gel pens"}], "items": [], "explanations": [], "flags": []})
    writer.close()
    assert done_users(tmp_path) == {"u1", "u2", "u3"}
    assert len(list(tmp_path.glob(f"part-*.{fmt}"))) == 2
    again = ShardWriter(tmp_path, fmt, shard_size=2)  # a resumed run: new shard names
    again.write({"user_id": "u4", "status": "ok", "tags": [], "items": [], "explanations": [], "flags": []})
    again.close()
    records = read_records(tmp_path)
    assert sorted(r["user_id"] for r in records) == ["u1", "u2", "u3", "u4"]
    assert next(r for r in records if r["user_id"] == "u1")["tags"] == [{"tag": "gel pens"}]  # nested fields round-trip
    with pytest.raises(ValueError, match="format must be one of"):
        ShardWriter(tmp_path, "csv")


def test_a_torn_last_line_is_not_a_done_user(tmp_path: Path) -> None:
    (tmp_path / "part-00000.jsonl").write_text(json.dumps({"user_id": "u1"}) + "\n" + '{"user_id": "u2", "ta')
    assert done_users(tmp_path) == {"u1"}


def test_the_batch_report_names_the_model_and_counts_every_user_once(tmp_path: Path) -> None:
    from recgpt.scale.report import write_batch_report

    def row(workers: int, steady: float) -> dict:
        return {"workers": workers, "users": ["u1", "u2"], "per_worker": 8 // workers, "per_endpoint": 8, "done": 2,
                "skipped": 0, "failed": 0, "endpoint_retries": 1, "requeued_after_worker_death": 0, "wall_s": 60.0,
                "users_per_min": 2.0, "startup_s": 20.0, "served_users_per_min": steady, "users_written": 2,
                "distinct_users": 2, "llm_calls_per_user": 4.0, "prompt_tokens_per_user": 3000.0,
                "completion_tokens_per_user": 600.0, "user_wall_s_mean": 30.0,
                "endpoints": {"http://a/v1": {"done": 2, "failures": 1, "in_flight": 0, "up": 1.0}}}

    result = {"dataset": "office", "split": "full", "users": 2, "endpoints": ["http://a/v1"], "in_flight": 8,
              "context": {}, "rows": [row(1, 3.0), row(2, 4.5)]}
    md, js, png = write_batch_report(result, tmp_path / "batch-office", "Qwen-policy (bfloat16)", "recgpt batch-report")
    text = md.read_text()
    assert "**Qwen-policy (bfloat16)**" in text and "| 2 | 4 | 60.0 | 20.0 | 2.00 | 4.50 | 270 |" in text
    assert "| 1 | `http://a/v1` | 2 | 1 |" in text and "    recgpt batch-report" in text
    assert json.loads(js.read_text())["model"] == "Qwen-policy (bfloat16)"
    assert png is None or png.stat().st_size > 0
