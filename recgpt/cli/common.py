"""What the command groups share: the consoles, the model folder a `--model` names, the run's Context from options."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from recgpt.errors import RecGPTError
from recgpt.schema.context import Context
from recgpt.settings import get_settings

console = Console()
err_console = Console(stderr=True)


def warn_policy_domain(ctx: Context, dataset: str) -> None:
    """One warning line on stderr when the served policy was trained on another dataset than this run's."""
    from recgpt.services.endpoints import endpoint_of, served_model_identity
    from recgpt.tools.policy import domain_warning

    endpoint = endpoint_of(ctx)
    warning = domain_warning(served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key), dataset)
    if warning:
        err_console.print(f"warning: {warning}", style="yellow", soft_wrap=True)


def model_folder(model: str | Path | None = None, prepare: bool = True, policy: str = "trained") -> Path:
    """The folder `--model` names (registry name or folder; None: the default), prepared on first use.

    For a registry model, `policy` picks the trained policy recgpt ships for it (merged into the base on first use;
    the base when none ships) or the untrained base. A folder is served as it is."""
    from recgpt.tools.model_prep import DEFAULT_MODEL, REGISTRY, is_prepared, resolve_model
    from recgpt.tools.policy import POLICIES, PolicyError, resolve_policy, shipped_policy

    if policy not in POLICIES:
        raise PolicyError(f"--policy must be one of {', '.join(POLICIES)} (got {policy!r})")
    settings = get_settings()
    name = str(model) if model else DEFAULT_MODEL
    if prepare and name in REGISTRY and (policy == "trained" and shipped_policy(name) is not None):
        with console.status(f"preparing the trained policy of {name} (first run only: merge into the base)"):
            folder, what = resolve_policy(name, policy, settings.models_dir)
        console.print(f"serving the {what}")
        return folder
    if prepare and name in REGISTRY and policy == "trained":
        console.print(f"[dim]no trained policy ships for {name} yet: serving the base model[/]")
    target = resolve_model(model, settings.models_dir, prepare=False)
    if prepare and not is_prepared(target) and not Path(str(model or "")).is_dir():
        with console.status(f"preparing {target.name} (first run only)"):
            target = resolve_model(model, settings.models_dir)
    return target


def expert_policy(model: str | None) -> tuple[Path, dict[str, str], int]:
    """`--policy expert`: (base folder, the LoRA module serving the experts, max LoRA rank)."""
    from recgpt.services.endpoints import EXPERT_ADAPTER
    from recgpt.tools.model_prep import DEFAULT_MODEL, REGISTRY
    from recgpt.tools.policy import PolicyError, expert_adapter, lora_rank_limit

    name = model or DEFAULT_MODEL
    if name not in REGISTRY:
        raise PolicyError(f"--policy expert needs a registry model (one recgpt ships a policy for), not {name!r}")
    with console.status(f"preparing {name} and checking its shipped adapter (first run only)"):
        found = expert_adapter(get_settings().models_dir, name)
    if found is None:
        raise PolicyError(f"no trained policy ships for {name}: serve it with --policy base")
    base, adapter, card = found
    console.print(f"serving the base {name} for every agent and the trained policy {card.name} for the experts "
                  f"(LoRA module {EXPERT_ADAPTER})")
    return base, {EXPERT_ADAPTER: str(adapter)}, lora_rank_limit(card)


def served_weights(model: str | None, policy: str) -> tuple[Path, dict[str, str], int]:
    """What `serve` and `demo` start vLLM with for `--model`/`--policy`: (model folder, LoRA modules, max LoRA rank)."""
    if policy == "expert":
        return expert_policy(model)
    return model_folder(model, policy=policy), {}, 16


def default_model_folder(prepare: bool = True) -> Path:
    return model_folder(None, prepare=prepare, policy="base")  # the tokenizer: the same for base and trained


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
