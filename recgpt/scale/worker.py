"""One batch worker: the compiled graph, the dataset and the retriever, built once; then users, one call each.

`BatchWorker` is a plain class; the driver wraps it with `ray.remote` (so importing this module needs no Ray). Its
`run` never raises for a user: it returns a record whose `status` says what happened, `endpoint_failed` meaning the
endpoint (not the model) failed, so that the driver retries the user elsewhere instead of writing a degraded answer.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from recgpt.errors import EndpointError, RecGPTError
from recgpt.graph import build_graph
from recgpt.render import to_jsonable
from recgpt.runner import arecommend
from recgpt.schema.context import Context
from recgpt.services.resources import resolve
from recgpt.tools.llm import ENDPOINT_DOWN

OK, FAILED, ENDPOINT_FAILED = "ok", "failed", "endpoint_failed"


def user_record(user_id: str, state: dict[str, Any], endpoint: str, wall_s: float) -> dict[str, Any]:
    """What a batch keeps of a run: final tags, retrieved items per tag, explanations, flags and usage."""
    calls = state.get("calls", [])
    return {
        "user_id": user_id, "status": OK, "endpoint": endpoint, "worker": f"{os.uname().nodename}:{os.getpid()}",
        "tags": [{"rank": t.rank, "tag": t.tag, "category": t.category, "persona": t.persona} for t in state.get("tags", [])],
        "items": to_jsonable(state.get("recommendations", [])),
        "explanations": to_jsonable(state.get("explanations", [])),
        "flags": list(state.get("flags", [])),
        # which context the agents saw, byte for byte: two runs of one user can be told apart from LLM noise by it
        "prefix_sha256": hashlib.sha256(str(state.get("shared_prefix", "")).encode()).hexdigest()[:16],
        "llm_calls": len(calls), "prompt_tokens": sum(c.prompt_tokens for c in calls),
        "completion_tokens": sum(c.completion_tokens for c in calls), "wall_s": round(wall_s, 3),
    }


class BatchWorker:
    def __init__(self, dataset: str, split: str, context: dict[str, Any]) -> None:
        self.dataset, self.split, self.context = dataset, split, context
        Context(**context)  # a bad field fails here, once, not per user
        resources = resolve(dataset)
        resources.registry.prepare(resources.dataset, split, show_progress=False)  # built by the driver already: loads it
        self.graph = build_graph(resources)

    def pid(self) -> int:
        return os.getpid()

    async def run(self, user_id: str, endpoint: str) -> dict[str, Any]:
        started = time.perf_counter()
        ctx = Context(**{**self.context, "base_url": endpoint})
        try:
            state = await arecommend(user_id, self.dataset, self.split, ctx, graph=self.graph)
        except EndpointError as exc:
            return {"user_id": user_id, "status": ENDPOINT_FAILED, "endpoint": endpoint, "error": str(exc)}
        except RecGPTError as exc:  # the user's own problem (e.g. unknown id): written as failed, never dropped
            return {"user_id": user_id, "status": FAILED, "endpoint": endpoint, "error": str(exc), "tags": [], "items": [],
                    "explanations": [], "flags": [str(exc)]}
        if any(ENDPOINT_DOWN in flag for flag in state.get("flags", [])):
            return {"user_id": user_id, "status": ENDPOINT_FAILED, "endpoint": endpoint,
                    "error": next(f for f in state["flags"] if ENDPOINT_DOWN in f)}
        return user_record(user_id, state, endpoint, time.perf_counter() - started)
