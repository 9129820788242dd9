"""What the command groups share: the consoles and the model folder (with its policy) a `--model` and a dataset name."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from recgpt.services.endpoints import EXPERT_ADAPTER
from recgpt.settings import get_settings
from recgpt.tools.serving.model_prep import DEFAULT_MODEL, REGISTRY, is_prepared, resolve_model
from recgpt.tools.serving.policy import (
    POLICIES,
    PolicyError,
    dataset_key,
    expert_adapter,
    lora_rank_limit,
    prepare_policy,
    resolve_policy,
    shipped_policies,
    shipped_policy,
)
from recgpt.tools.serving.policy_choice import BASE

console = Console()
err_console = Console(stderr=True)


def model_folder(model: str | Path | None = None, prepare: bool = True, policy: str = "trained", dataset: str = "office",
                 port: int = 8000, check_users: int | None = None) -> Path:
    """The folder `--model` names (registry name or folder; None: the default), prepared on first use.

    For a registry model, `policy` picks the trained policy recgpt ships for (that model, `dataset`) (merged into the
    base on first use) or the untrained base. A dataset with no policy of its own gets what a policy-alone check on its
    validation users chose (`recgpt.eval.policy_check`, run once, on `port`, and remembered). A folder is served as
    it is."""
    if policy not in POLICIES:
        raise PolicyError(f"--policy must be one of {', '.join(POLICIES)} (got {policy!r})")
    settings = get_settings()
    name = str(model) if model else DEFAULT_MODEL
    if prepare and name in REGISTRY and policy == "trained" and shipped_policy(name, dataset) is not None:
        with console.status(f"preparing the trained policy of {name} for {dataset_key(dataset)} (first run only: merge into the base)"):
            folder, what = resolve_policy(name, policy, settings.models_dir, dataset)
        console.print(f"serving the {what} for dataset {dataset_key(dataset)}")
        return folder
    if prepare and name in REGISTRY and policy == "trained" and shipped_policies(name):
        return _checked_choice(name, dataset, port, check_users)
    if prepare and name in REGISTRY and policy == "trained":
        console.print(f"[dim]no trained policy ships for {name} yet: serving the base model[/]")
    target = resolve_model(model, settings.models_dir, prepare=False)
    if prepare and not is_prepared(target) and not Path(str(model or "")).is_dir():
        with console.status(f"preparing {target.name} (first run only)"):
            target = resolve_model(model, settings.models_dir)
    return target


def _checked_choice(name: str, dataset: str, port: int, check_users: int | None) -> Path:
    """The weights a policy-alone check chose for a dataset with no policy of its own (run now when none is stored)."""
    from recgpt.eval.policy_check import CHECK_USERS, policy_choice_for  # deferred: the eval stack

    settings = get_settings()
    choice = policy_choice_for(name, dataset, settings.models_dir, settings.home, settings.run_dir, port,
                               check_users or CHECK_USERS, console)
    assert choice is not None  # policies ship for `name`, none for this dataset: there is something to choose
    console.print(choice.notice(), soft_wrap=True)
    if choice.chosen == BASE:
        return resolve_model(name, settings.models_dir)
    folder = prepare_policy(settings.models_dir, name, choice.chosen)
    assert folder is not None
    return folder


def expert_policy(model: str | None, dataset: str = "office") -> tuple[Path, dict[str, str], int]:
    """`--policy expert`: (base folder, the LoRA module serving the experts, max LoRA rank)."""
    name = model or DEFAULT_MODEL
    if name not in REGISTRY:
        raise PolicyError(f"--policy expert needs a registry model (one recgpt ships a policy for), not {name!r}")
    with console.status(f"preparing {name} and checking its shipped adapter (first run only)"):
        found = expert_adapter(get_settings().models_dir, name, dataset)
    if found is None:
        raise PolicyError(f"no trained policy ships for {name} on {dataset_key(dataset)}: serve it with --policy base or trained")
    base, adapter, card = found
    console.print(f"serving the base {name} for every agent and the trained policy {card.name} for the experts "
                  f"(LoRA module {EXPERT_ADAPTER})")
    return base, {EXPERT_ADAPTER: str(adapter)}, lora_rank_limit(card)


def served_weights(model: str | None, policy: str, dataset: str = "office", port: int = 8000,
                   check_users: int | None = None) -> tuple[Path, dict[str, str], int]:
    """What `serve` and `demo` start vLLM with for `--model`/`--policy`/`--dataset`: (model folder, LoRA modules, max
    LoRA rank)."""
    if policy == "expert":
        return expert_policy(model, dataset)
    return model_folder(model, policy=policy, dataset=dataset, port=port, check_users=check_users), {}, 16


def default_model_folder(prepare: bool = True) -> Path:
    return model_folder(None, prepare=prepare, policy="base")  # the tokenizer: the same for base and trained
