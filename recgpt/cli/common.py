"""What the command groups share: the consoles and the model folder (with its policy) a `--model` names."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from recgpt.services.endpoints import EXPERT_ADAPTER
from recgpt.settings import get_settings
from recgpt.tools.serving.model_prep import DEFAULT_MODEL, REGISTRY, is_prepared, resolve_model
from recgpt.tools.serving.policy import POLICIES, PolicyError, expert_adapter, lora_rank_limit, resolve_policy, shipped_policy

console = Console()
err_console = Console(stderr=True)


def model_folder(model: str | Path | None = None, prepare: bool = True, policy: str = "trained") -> Path:
    """The folder `--model` names (registry name or folder; None: the default), prepared on first use.

    For a registry model, `policy` picks the trained policy recgpt ships for it (merged into the base on first use;
    the base when none ships) or the untrained base. A folder is served as it is."""
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
