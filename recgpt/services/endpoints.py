"""Which OpenAI-compatible endpoint (base URL, served model) an agent calls, resolved from the run's Context."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from recgpt.errors import EndpointError
from recgpt.schema.context import Context
from recgpt.tools.llm import Endpoint

if TYPE_CHECKING:
    from recgpt.tools.hybrid import HybridAssembler


@lru_cache(maxsize=16)
def _first_served_model(base_url: str, api_key: str) -> str:
    try:
        response = httpx.get(base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=10.0)
        response.raise_for_status()
        models = [m["id"] for m in response.json().get("data", [])]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise EndpointError(
            f"LLM endpoint {base_url} unreachable ({type(exc).__name__}); start one with `recgpt serve` or set RECGPT_BASE_URL"
        ) from None
    if not models:
        raise EndpointError(f"LLM endpoint {base_url} serves no model")
    return models[0]


def served_model_identity(base_url: str, model: str, api_key: str = "EMPTY") -> str:
    """What the server actually serves under `model`: its weights folder (`root`) and, when that folder
    is on this machine, the size and mtime of every weight file. Served names stay fixed
    ('recgpt-policy') across base, SFT and GRPO policies, so results are keyed by this instead.

    A server recgpt started records its dtype; any dtype but float32 (the former default, so that float32 results
    keep their keys) is appended as `<bfloat16>`: bf16 and float32 sample different answers. A server recgpt did not
    start is keyed by its weights alone."""
    from recgpt.settings import get_settings
    from recgpt.tools.server import recorded_dtype

    dtype = recorded_dtype(get_settings().run_dir, base_url)
    suffix = f"<{dtype}>" if dtype and dtype != "float32" else ""

    try:
        response = httpx.get(base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=10.0)
        response.raise_for_status()
        data = response.json().get("data", [])
        roots = [m.get("root") or m["id"] for m in data if m.get("id") == model]
    except (httpx.HTTPError, ValueError, KeyError):
        return model + suffix
    if not roots:
        return model + suffix
    # LoRA modules served beside this model change what the experts answer: they are part of its identity
    adapters = [(m["id"], m.get("root") or "") for m in data if m.get("parent") == model and m.get("id") != model]
    return weights_identity(model, Path(str(roots[0]))) + suffix + "".join(
        "+" + weights_identity(name, Path(str(root))) for name, root in sorted(adapters))


def weights_identity(name: str, folder: Path) -> str:
    """`name@folder[file:size:mtime,...]` for the folder's safetensors files (just `name@folder` when it is not here)."""
    weights = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    stamp = ",".join(f"{w.name}:{w.stat().st_size}:{int(w.stat().st_mtime)}" for w in weights)
    return f"{name}@{folder}" + (f"[{stamp}]" if stamp else "")


@lru_cache(maxsize=16)
def _hybrid_assembler(base_url: str, model: str, adaptor_dir: str, api_key: str) -> HybridAssembler:
    """The loaded assembler of one (endpoint, model, adaptor), once per process: `endpoint_of` runs on every agent call."""
    from pathlib import Path

    from recgpt.tools import hybrid

    return hybrid.load_assembler(base_url, model, Path(adaptor_dir) if adaptor_dir else None, api_key)


def endpoint_of(ctx: Context) -> Endpoint:
    """The policy endpoint. In text compression nothing is loaded; in hybrid it carries the entity adaptor's
    assembler (loaded once), and errors (no adaptor, wrong model, server without prompt embeds) surface here."""
    model = ctx.model or _first_served_model(ctx.base_url, ctx.api_key)
    assembler = _hybrid_assembler(ctx.base_url, model, ctx.adaptor_dir, ctx.api_key) if ctx.compression == "hybrid" else None
    return Endpoint(base_url=ctx.base_url, model=model, api_key=ctx.api_key,
                    timeout_s=ctx.request_timeout_s, max_retries=ctx.max_retries,
                    compression="hybrid" if assembler is not None else "text", assembler=assembler)


EXPERT_ADAPTER = "recgpt-expert"
"""Served name of the trained expert adapter when it is served as a LoRA module beside the base."""


@lru_cache(maxsize=16)
def _serves(base_url: str, name: str, api_key: str) -> bool:
    """Whether the endpoint lists `name` (asked once per process and endpoint: `expert_endpoint_of` runs per call)."""
    from recgpt.tools.server import served_models

    try:
        return name in served_models(base_url, api_key, timeout=10.0)
    except (httpx.HTTPError, ValueError, KeyError):
        return False  # the policy endpoint's own call then reports the unreachable server in one line


def expert_endpoint_of(ctx: Context) -> Endpoint:
    """The Distributed Experts' endpoint: the trained expert adapter where one is served beside the base (the
    policy was trained on the expert's task alone; as planner, arbiter, explainer or judge it is worse than the
    base), else the policy endpoint. Hybrid prompts stay on the policy model (its entity adaptor is the base's)."""
    policy = endpoint_of(ctx)
    name = ctx.expert_model
    if name in ("", "auto"):
        if ctx.compression == "hybrid" or not _serves(ctx.base_url, EXPERT_ADAPTER, ctx.api_key):
            return policy
        name = EXPERT_ADAPTER
    return Endpoint(base_url=ctx.base_url, model=name, api_key=ctx.api_key, timeout_s=ctx.request_timeout_s,
                    max_retries=ctx.max_retries)


def judge_endpoint_of(ctx: Context) -> Endpoint:
    """The judge may run on another endpoint/model than the policy (e.g. a larger model). It reads hybrid prompts
    only when it is the policy's own endpoint and model; any other judge gets the text prompt."""
    if not ctx.judge_base_url and not ctx.judge_model:
        return endpoint_of(ctx)
    base_url = ctx.judge_base_url or ctx.base_url
    model = ctx.judge_model or (ctx.model if base_url == ctx.base_url and ctx.model else _first_served_model(base_url, ctx.api_key))
    if ctx.compression == "hybrid" and base_url == ctx.base_url and model == (ctx.model or _first_served_model(ctx.base_url, ctx.api_key)):
        return endpoint_of(ctx)
    return Endpoint(base_url=base_url, model=model, api_key=ctx.api_key,
                    timeout_s=ctx.request_timeout_s, max_retries=ctx.max_retries)
