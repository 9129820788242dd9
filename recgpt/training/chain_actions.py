"""The steps of `recgpt train chain` done in Python rather than as `recgpt` commands: restoring the shipped SFT
adapter, shipping the validation-best policy, writing the report."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable

from recgpt.eval.report import write_report_files
from recgpt.services.resources import default_registry
from recgpt.settings import get_settings
from recgpt.tools.serving.model_prep import prepare_model
from recgpt.tools.serving.policy import POLICIES_DIR, load_card, ship_policy, shipped_policy
from recgpt.training.chain import ChainConfig
from recgpt.training.chain_summary import lineage, markdown, summarise, validation_choice
from recgpt.training.compose import compose_adapters


def sft_adapter(config: ChainConfig) -> Path:
    return config.runs / "sft" / "final"


def restore_shipped_sft(config: ChainConfig, policies_dir: Path = POLICIES_DIR) -> None:
    """Copy the SFT adapter shipped for (base, dataset) into the chain's runs, pointed at this machine's base."""
    shipped = shipped_policy(config.base, config.dataset, policies_dir)
    if shipped is None:
        raise FileNotFoundError(f"no policy ships for {config.base} on {config.key}: run the chain with --no-sft-from-shipped")
    out = sft_adapter(config)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copy2(shipped / name, out / name)
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = str(prepare_model(get_settings().models_dir, config.base))
    (out / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    card = load_card(shipped)
    (config.runs / "sft" / "run_config.json").write_text(json.dumps(card.training.get("sft", {}), indent=2))
    restored = json.dumps({"policy": card.name, "adapter_sha256": card.adapter_sha256})
    (config.runs / "sft" / "restored_from.json").write_text(restored)
    config.ledger.mkdir(parents=True, exist_ok=True)
    (config.ledger / "sft_restored_from.json").write_text(restored)  # a fresh machine's rerun restores it again


def ship_best(config: ChainConfig, say: Callable[[str], None] = print, policies_dir: Path = POLICIES_DIR) -> dict[str, Any]:
    """Ship the validation-best trained policy as (base, dataset)'s policy, if it beats the base on validation."""
    choice = validation_choice(config)
    best = choice["best"]
    if not choice["beats_base"]:
        say(f"ship: the best trained policy ({best}, {choice['metric']} {choice['scores'][best]:.3f}) does not beat the "
            f"base ({choice['base']:.3f}) on validation: nothing ships")
        return choice
    restored = config.runs / "sft" / "restored_from.json"
    if best == "sft" and restored.is_file():
        say(f"ship: SFT is the best and already ships ({json.loads(restored.read_text())['policy']})")
        return choice
    settings = get_settings()
    base_dir = prepare_model(settings.models_dir, config.base)
    adapters = lineage(config, best, sft_adapter(config))
    composed = compose_adapters(adapters, base_dir, config.runs / f"ship-{best}")
    training = {}
    for adapter in adapters:
        run_config = adapter.parent / "run_config.json"
        if run_config.is_file():
            training[adapter.parent.name] = json.loads(run_config.read_text())
    data = default_registry().dataset(config.dataset)
    card = ship_policy(composed, base_dir, policies_dir / config.base / config.key, f"{config.key}-{best}", training,
                       f"{config.key}:{data.content_hash()}", {"validation": choice}, dataset=config.dataset)
    say(f"ship: {card.name} ({card.adapter_bytes / 2**20:.1f} MiB) is now the policy of {config.base} on {config.key}")
    return choice


def write_report(config: ChainConfig, out: Path, say: Callable[[str], None] = print) -> Path:
    """`reports/training-chain-<dataset>.md/.json`; written by the chain's last stage, or any time before it (the
    stages still to run are then listed at the top)."""
    from recgpt.training.chain import Ledger, plan, sft_was_restored  # the plan names what is still to run

    summary = summarise(config)
    ledger = Ledger(config.ledger)
    summary["pending"] = [s.name for s in plan(config, sft_was_restored(config))
                          if s.name != "report" and not ledger.done(s.name)]
    models = {row.get("model") for row in summary["policies"].values() if row.get("model")}
    model = f"{config.base} (" + "; ".join(sorted(str(m) for m in models)) + ")" if models else config.base
    md, _, _ = write_report_files(out / f"training-chain-{config.key}", summary, model, markdown, lambda result, path: None)
    say(f"report {md}")
    return md
