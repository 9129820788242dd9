"""What the command groups share: the consoles, the model folder a `--model` names, the run's Context from options."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from recgpt.errors import RecGPTError
from recgpt.schema.context import Context
from recgpt.settings import get_settings

console = Console()
err_console = Console(stderr=True)


def model_folder(model: str | Path | None = None, prepare: bool = True) -> Path:
    """The folder `--model` names (registry name or folder; None: the default), prepared on first use."""
    from recgpt.tools.model_prep import is_prepared, resolve_model

    settings = get_settings()
    target = resolve_model(model, settings.models_dir, prepare=False)
    if prepare and not is_prepared(target) and not Path(str(model or "")).is_dir():
        with console.status(f"preparing {target.name} (first run only)"):
            target = resolve_model(model, settings.models_dir)
    return target


def default_model_folder(prepare: bool = True) -> Path:
    return model_folder(None, prepare=prepare)


def run_context(k: int | None, m: int | None, n: int | None, explanations: str | None = None, judge: str | None = None,
             compression: str | None = None, adaptor: Path | None = None) -> Context:
    ctx = Context()
    if compression is not None:
        ctx.compression = compression
    if adaptor is not None:
        ctx.adaptor_dir = str(adaptor)
    if explanations is not None:
        ctx.explanation_mode = explanations
    if judge is not None:
        ctx.judge_mode = judge
    if k is not None:
        ctx.num_personas = k
    if m is not None:
        ctx.tags_per_expert = m
    if n is not None:
        ctx.num_tags = n
    ctx.__post_init__()
    return ctx


def context_overrides(pairs: list[str]) -> dict:
    """`FIELD=VALUE` pairs as typed Context overrides; a bad name or value is one line naming it."""
    from dataclasses import fields

    types = {f.name: f.type for f in fields(Context)}
    out: dict = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        name = name.strip()
        if not sep or name not in types:
            raise RecGPTError(f"--set {pair!r}: expected FIELD=VALUE with FIELD one of the Context fields ({', '.join(types)})")
        kind = str(types[name])
        try:
            value: object = (float(raw) if kind.startswith("float") else int(raw) if kind.startswith("int")
                             else raw.lower() in ("1", "true", "yes") if kind == "bool" else raw)
        except ValueError:
            raise RecGPTError(f"--set {name}: {raw!r} is not a valid {kind}") from None
        out[name] = value
    try:
        Context(**out)
    except (TypeError, ValueError) as exc:
        raise RecGPTError(f"--set: {exc}") from None
    return out
