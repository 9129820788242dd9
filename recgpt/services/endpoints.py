"""Which OpenAI-compatible endpoint (base URL, served model) an agent calls, resolved from the run's Context."""

from __future__ import annotations

from functools import lru_cache
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
    from pathlib import Path

    from recgpt.settings import get_settings
    from recgpt.tools.server import recorded_dtype

    dtype = recorded_dtype(get_settings().run_dir, base_url)
    suffix = f"<{dtype}>" if dtype and dtype != "float32" else ""

    try:
        response = httpx.get(base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=10.0)
        response.raise_for_status()
        roots = [m.get("root") or m["id"] for m in response.json().get("data", []) if m.get("id") == model]
    except (httpx.HTTPError, ValueError, KeyError):
        return model + suffix
    if not roots:
        return model + suffix
    folder = Path(str(roots[0]))
    weights = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    stamp = ",".join(f"{w.name}:{w.stat().st_size}:{int(w.stat().st_mtime)}" for w in weights)
    return f"{model}@{folder}" + (f"[{stamp}]" if stamp else "") + suffix


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
