"""`recgpt batch`: the driver. Starts (or joins) Ray, builds shared artefacts once, dispatches users, writes results.

- The retriever's artefacts (Chroma index, collaborative model) are built here once, before any worker starts; the
  collaborative model's file is put in Ray's object store and every worker writes it into its own cache if missing,
  so that no worker ever trains it (workers on other machines included).
- Users go one at a time to the worker with the fewest in flight (at most `per_worker` each), on the endpoint the
  `EndpointPool` picks; a result comes back to the driver, which writes it (exactly once) and frees the slots.
- A worker that dies loses only its in-flight users: they go back to the queue and Ray restarts the actor, which gets
  no users until it answers a probe (so nothing is sent to a dead process and bounced back). A user
  whose endpoint failed goes back to the queue too, and that endpoint sits out its cool-down.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from recgpt.errors import RecGPTError
from recgpt.scale.endpoints import EndpointPool
from recgpt.scale.output import ShardWriter, done_users
from recgpt.scale.worker import ENDPOINT_FAILED, BatchWorker
from recgpt.services.resources import default_registry
from recgpt.settings import get_settings
from recgpt.tools.retrieval.backends import COLLABORATIVE


class BatchConfig(BaseModel):
    dataset: str = "office"
    split: str = "full"
    users: list[str] = Field(description="User ids to run (already done ones are skipped: resume).")
    out: Path
    format: str = "jsonl"
    shard_size: int = Field(default=1000, ge=1)
    endpoints: list[str] = Field(min_length=1)
    per_endpoint: int = Field(default=8, ge=1, description="Users in flight per endpoint.")
    workers: int = Field(default=2, ge=1)
    per_worker: int = Field(default=8, ge=1, description="Users in flight per worker (its async concurrency).")
    ray_address: str | None = None
    cooldown_s: float = Field(default=30.0, ge=0, description="How long a failing endpoint stays out of rotation.")
    max_attempts: int = Field(default=5, ge=1, description="Endpoint failures a user may see before it is written as failed.")
    context: dict[str, Any] = Field(default_factory=dict, description="Context overrides of every user's run.")


@dataclass
class BatchStats:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    endpoint_retries: int = 0
    requeued_after_worker_death: int = 0
    started: float = field(default_factory=time.perf_counter)
    endpoints: dict[str, dict[str, float]] = field(default_factory=dict)

    finished: float | None = None
    ready: float | None = None  # when every worker had built its graph and retriever: start-up lies before it

    def elapsed_s(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    def users_per_min(self) -> float:
        elapsed = self.elapsed_s()
        return self.done / elapsed * 60 if elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"done": self.done, "skipped": self.skipped, "failed": self.failed, "endpoint_retries": self.endpoint_retries,
                "requeued_after_worker_death": self.requeued_after_worker_death, "wall_s": round(self.elapsed_s(), 3),
                "users_per_min": round(self.users_per_min(), 3), "startup_s": round(self.startup_s(), 3),
                "served_users_per_min": round(self.served_users_per_min(), 3), "endpoints": self.endpoints}

    def startup_s(self) -> float:
        return (self.ready - self.started) if self.ready is not None else self.elapsed_s()

    def served_users_per_min(self) -> float:
        """Users per minute once the workers were up (Ray and the workers' start-up excluded, the pipeline's fill
        included): what a run of many users approaches from below."""
        if self.ready is None:
            return 0.0
        span = (self.finished or time.perf_counter()) - self.ready
        return self.done / span * 60 if span > 0 else 0.0


MAX_PROBES = 20
"""Probes (each waits for Ray's restart of the actor) before a dead worker is given up for the rest of the run."""

RUNS_FILE = "runs.jsonl"
"""One line per `run_batch` call in the output folder: its config and counts (shards are `part-*`, so it is never read
as output)."""


def _log_run(config: BatchConfig, stats: BatchStats) -> None:
    entry = {"finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "workers": config.workers, "per_worker": config.per_worker,
             "per_endpoint": config.per_endpoint, "users": len(config.users), **stats.as_dict()}
    config.out.mkdir(parents=True, exist_ok=True)
    with (config.out / RUNS_FILE).open("a") as handle:
        handle.write(json.dumps(entry) + "\n")


def _collab_files(dataset: str, split: str) -> dict[str, bytes]:
    """The trained collaborative model(s) of the run, as bytes (empty when the retriever has none)."""
    settings = get_settings()
    if settings.retriever.strip() != COLLABORATIVE:
        return {}
    from recgpt.tools.retrieval.sequential import model_path  # deferred: torch (sequential imports it; seconds)

    path = model_path(default_registry().dataset(dataset), split, settings.collab_dir)
    return {path.name: path.read_bytes()} if path.is_file() else {}


class _ShippedWorker(BatchWorker):
    """A worker that first writes the driver's artefacts into its own cache (no-op where they already are)."""

    def __init__(self, dataset: str, split: str, context: dict[str, Any], collab: list[Any]) -> None:
        import ray  # deferred: ray (the optional `scale` extra; workers are built only by run_batch)

        # `collab` is [ObjectRef]: nested, so Ray passes the reference and the bytes are fetched here, on this node
        files: dict[str, bytes] = ray.get(collab[0]) if collab else {}
        folder = get_settings().collab_dir
        folder.mkdir(parents=True, exist_ok=True)
        for name, blob in files.items():
            target = folder / name
            if not target.is_file():
                staging = target.with_suffix(target.suffix + f".{id(self)}.tmp")
                staging.write_bytes(blob)
                staging.rename(target)
        super().__init__(dataset, split, context)


def run_batch(config: BatchConfig, on_progress: Any = None) -> BatchStats:
    """Run every not-yet-done user of `config`; returns the run's counts. `on_progress(stats)` is called per result."""
    import ray  # deferred: ray (the optional `scale` extra: importing this module must not need it)

    stats = BatchStats()
    finished = done_users(config.out)
    pending = deque(u for u in dict.fromkeys(config.users) if u not in finished)
    stats.skipped = len(config.users) - len(pending)
    if not pending:
        stats.finished = time.perf_counter()
        _log_run(config, stats)
        return stats
    default_registry().prepare(default_registry().dataset(config.dataset), config.split)  # once, here: workers load it
    pool = EndpointPool(config.endpoints, config.per_endpoint, config.cooldown_s)
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=config.ray_address, include_dashboard=False, log_to_driver=False,
                 **({} if config.ray_address else {"num_cpus": max(config.workers, 1)}))
    writer = ShardWriter(config.out, config.format, config.shard_size)
    try:
        collab = ray.put(_collab_files(config.dataset, config.split))
        actor = ray.remote(_ShippedWorker).options(max_restarts=-1, max_task_retries=0, max_concurrency=config.per_worker,
                                                   num_cpus=1 if not config.ray_address else 0.5)
        workers = [actor.remote(config.dataset, config.split, config.context, [collab]) for _ in range(config.workers)]
        try:
            ray.get([worker.pid.remote() for worker in workers])  # every worker has built its graph: start-up ends here
        except ray.exceptions.RayActorError as exc:  # its constructor failed (a bad dataset, say): no user can run
            raise RecGPTError(f"a batch worker could not start: {str(exc).splitlines()[0]}") from None
        stats.ready = time.perf_counter()
        in_flight: dict[Any, tuple[str, str, int]] = {}  # ref -> (user, endpoint, worker index)
        restarting: dict[Any, int] = {}  # probe ref -> index of a worker that died: no users for it until the probe answers
        load = [0] * len(workers)
        attempts: dict[str, int] = {}
        probes: dict[int, int] = {}  # worker index -> probes that found it still down
        lost: set[int] = set()  # workers that never came back: out of the rotation for good
        while pending or in_flight:  # a worker still restarting when every user is written is no reason to wait
            down = set(restarting.values()) | lost
            while pending and pool.capacity() > 0:
                ready_workers = [i for i in range(len(workers)) if i not in down and load[i] < config.per_worker]
                if not ready_workers:
                    break
                endpoint = pool.acquire()
                if endpoint is None:
                    break
                user = pending.popleft()
                index = min(ready_workers, key=load.__getitem__)
                in_flight[workers[index].run.remote(user, endpoint)] = (user, endpoint, index)
                load[index] += 1
            if not in_flight and not restarting:  # every endpoint is down: wait for the first to come back
                time.sleep(min(max(pool.next_retry_in(), 0.1), 5.0))
                continue
            ready, _ = ray.wait([*in_flight, *restarting], num_returns=1, timeout=5.0)
            for ref in ready:
                if ref in restarting:  # a restarted worker answered (or is still down: probe again)
                    index = restarting.pop(ref)
                    try:
                        ray.get(ref)
                        probes.pop(index, None)
                    except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                        probes[index] = probes.get(index, 0) + 1
                        if probes[index] < MAX_PROBES:
                            restarting[workers[index].pid.remote()] = index
                        else:
                            lost.add(index)
                            if len(lost) == len(workers):
                                raise RecGPTError(f"every batch worker died and none came back after {MAX_PROBES} probes; "
                                                  "rerun the same command to resume") from None
                    continue
                user, endpoint, index = in_flight.pop(ref)
                load[index] -= 1
                try:
                    record = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                    stats.requeued_after_worker_death += 1  # the user never finished: run it again (on the restarted actor or another)
                    pool.release(endpoint, ok=None)
                    pending.appendleft(user)
                    if index not in restarting.values():
                        restarting[workers[index].pid.remote()] = index  # Ray restarts the actor; users resume once it answers
                    continue
                if record["status"] == ENDPOINT_FAILED:
                    pool.release(endpoint, ok=False)
                    stats.endpoint_retries += 1
                    attempts[user] = attempts.get(user, 0) + 1
                    if attempts[user] < config.max_attempts:
                        pending.append(user)
                        continue
                    record = {**record, "status": "failed", "tags": [], "items": [], "explanations": [],
                              "flags": [f"gave up after {attempts[user]} endpoint failures: {record.get('error', '')}"]}
                else:
                    pool.release(endpoint, ok=True)
                writer.write(record)
                stats.done += 1
                stats.failed += record["status"] != "ok"
            stats.endpoints = pool.summary()
            if on_progress is not None:
                on_progress(stats)
    finally:
        writer.close()
        stats.finished = time.perf_counter()
        stats.endpoints = pool.summary()
        _log_run(config, stats)  # also for a run that stops on an error: its counts so far
        if started_ray:
            ray.shutdown()
    return stats


def load_users(dataset: str, split: str, users: int | None, user_file: Path | None, seed: int = 0) -> list[str]:
    """The users of a batch: the ids of `user_file` (one per line), else `users` sampled from the split (seed), else all."""
    if user_file is not None:
        if not user_file.is_file():
            raise RecGPTError(f"--user-file {user_file} does not exist")
        return [line.strip() for line in user_file.read_text().splitlines() if line.strip()]
    pool = sorted(default_registry().dataset(dataset).split_users(split))
    if users is None or users >= len(pool):
        return pool
    return random.Random(seed).sample(pool, users)
