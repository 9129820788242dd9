"""The trained policies recgpt ships: a LoRA adapter per (base model, dataset), merged into that base on first use.

`recgpt train ship` writes `recgpt/policies/<base registry name>/<dataset>/` (the adapter, its sha256, the exact base
it was trained on, the dataset, the training config, the data hash and the metrics); `recgpt model prepare` and `recgpt serve` merge it
into the prepared base (`<models_dir>/<base folder>-policy-<adapter sha8>`), and vLLM serves the merged folder like
any model. Merging rather than serving a vLLM LoRA module keeps the served model one plain folder (same server
flags, prefix caching and structured outputs as the base, no LoRA kernels on CPU) at the cost of one merge
(seconds) per machine.

An adapter only means something on the weights and the catalogue it was trained on: the base's registry name and
GGUF sha256 are checked against the card before any merge, a card filed under another dataset's folder is refused,
and a mismatch is refused in one line. A dataset with no policy of its own is served what a measured check chose
(`recgpt.tools.serving.policy_choice`), never another dataset's policy by rule.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from recgpt.errors import RecGPTError
from recgpt.tools.serving.model_prep import MARKER, is_prepared, prepare_model, registry_entry, sha256_of

POLICIES_DIR = Path(__file__).resolve().parents[2] / "policies"
ADAPTER_FILE = "adapter_model.safetensors"
CARD_FILE = "policy.json"
MAX_ADAPTER_BYTES = 32 * 1024 * 1024
Policy = Literal["trained", "base"]
POLICIES: tuple[str, ...] = ("trained", "expert", "base")
"""trained: the shipped adapter merged into the base, serving every agent; expert: the base serves every agent and the
adapter (a vLLM LoRA module) only the Distributed Experts, the task it was trained on; base: the untrained model."""
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
"""The max LoRA ranks vLLM accepts (`--max-lora-rank`)."""


class PolicyError(RecGPTError):
    """A shipped policy that cannot be used: missing, corrupt, too large, or for another base model."""


class BaseIdentity(BaseModel):
    """The weights an adapter was trained on: the registry name and the GGUF sha256 the base was converted from."""

    name: str
    gguf_sha256: str


class PolicyCard(BaseModel):
    """`policy.json`: what a shipped adapter is and how it was made."""

    name: str = Field(description="The policy's name, e.g. 'office-grpo-crs'.")
    base: BaseIdentity
    adapter_sha256: str
    adapter_bytes: int
    lora: dict[str, Any] = Field(description="rank, alpha and target modules of the adapter.")
    training: dict[str, Any] = Field(default_factory=dict, description="The run configs of each training stage.")
    data_hash: str = Field(description="Content hash of the dataset the policy was trained on.")
    metrics: dict[str, Any] = Field(default_factory=dict)
    dataset: str = Field(default="", description=(
        "The dataset it was trained on (its name: office, movielens, a JSONL folder's name); cards written before "
        "policies were kept per dataset read it from their training stages."))

    @model_validator(mode="after")
    def _dataset_from_stages(self) -> "PolicyCard":
        if not self.dataset:
            found = next((stage.get("dataset") for stage in self.training.values() if isinstance(stage, dict) and stage.get("dataset")), None)
            self.dataset = dataset_key(str(found or self.data_hash.partition(":")[0]))
        return self


def dataset_key(dataset: str | Path) -> str:
    """The name policies are filed under: a built-in dataset's name, or a JSONL dataset folder's own name."""
    return Path(str(dataset)).name


def base_identity(base_dir: Path) -> BaseIdentity | None:
    """The identity a prepared registry model records (None for a folder recgpt did not prepare)."""
    try:
        marker = json.loads((base_dir / MARKER).read_text())
        return BaseIdentity(name=marker["name"], gguf_sha256=marker["gguf_sha256"])
    except (OSError, ValueError, KeyError, ValidationError):
        return None


def shipped_policies(base_name: str, policies_dir: Path = POLICIES_DIR) -> dict[str, Path]:
    """dataset -> folder of every policy shipped for registry model `base_name`."""
    return {card.parent.name: card.parent for card in sorted((policies_dir / base_name).glob(f"*/{CARD_FILE}"))}


def shipped_policy(base_name: str, dataset: str | Path, policies_dir: Path = POLICIES_DIR) -> Path | None:
    """The folder of the policy shipped for (registry model `base_name`, `dataset`); None when none ships. A card filed
    under this dataset's folder but trained on another is refused: serving it would pass one catalogue's policy off
    as another's."""
    folder = policies_dir / base_name / dataset_key(dataset)
    if not (folder / CARD_FILE).is_file():
        return None
    card = load_card(folder)
    if card.dataset != dataset_key(dataset):
        raise PolicyError(f"{folder} holds policy {card.name!r}, trained on {card.dataset}, not {dataset_key(dataset)}: "
                          f"ship it under {policies_dir / base_name / card.dataset}")
    return folder


def trained_on(identity: str, policies_dir: Path = POLICIES_DIR) -> tuple[str, str] | None:
    """(policy name, training dataset) of a shipped policy a served-model identity names (its merged folder ends in
    `-policy-<adapter sha8>`, or the policy folder is served as a LoRA module: `+name@<policy folder>`); None for base
    weights or a policy that does not ship here."""
    marker = identity.partition("-policy-")[2][:8]
    for card_file in sorted(policies_dir.glob(f"*/*/{CARD_FILE}")):
        try:
            card = PolicyCard.model_validate_json(card_file.read_text())
        except (OSError, ValidationError):
            continue
        as_module = f"@{card_file.parent.resolve()}" in identity or f"@{card_file.parent}" in identity
        if (len(marker) == 8 and card.adapter_sha256.startswith(marker)) or as_module:
            return card.name, card.dataset
    return None


def load_card(policy_dir: Path) -> PolicyCard:
    try:
        return PolicyCard.model_validate_json((policy_dir / CARD_FILE).read_text())
    except (OSError, ValidationError) as exc:
        raise PolicyError(f"{policy_dir / CARD_FILE} is not a policy card: {str(exc).splitlines()[0]}") from exc


def verify_policy(policy_dir: Path, base_dir: Path) -> PolicyCard:
    """The card of `policy_dir` after checking the adapter's bytes and that `base_dir` holds the base it was trained on."""
    card = load_card(policy_dir)
    adapter = policy_dir / ADAPTER_FILE
    if not adapter.is_file() or sha256_of(adapter) != card.adapter_sha256:
        raise PolicyError(f"{adapter} is missing or does not match the sha256 in its card ({card.adapter_sha256[:12]}…)")
    found = base_identity(base_dir)
    if found != card.base:
        what = f"{found.name} (GGUF sha256 {found.gguf_sha256[:12]}…)" if found else "not a model recgpt prepared"
        raise PolicyError(f"policy {card.name!r} was trained on {card.base.name} (GGUF sha256 {card.base.gguf_sha256[:12]}…); "
                          f"{base_dir} is {what}")
    return card


def merge_policy(policy_dir: Path, base_dir: Path, out_dir: Path) -> Path:
    """Merge the adapter into the base's weights and write a servable folder (weights, tokenizer, marker)."""
    # deferred: torch, peft and transformers take seconds to import; only serving a trained policy merges
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    card = verify_policy(policy_dir, base_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.staging-") as tmp_name:
        staging = Path(tmp_name) / "model"
        base = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)  # merge exactly, then store bf16
        merged = PeftModel.from_pretrained(base, str(policy_dir)).merge_and_unload()
        merged.to(torch.bfloat16).save_pretrained(str(staging), safe_serialization=True)
        AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(str(staging))
        marker = json.loads((base_dir / MARKER).read_text())
        marker["policy"] = {"name": card.name, "adapter_sha256": card.adapter_sha256, "source": str(policy_dir)}
        (staging / MARKER).write_text(json.dumps(marker, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    return out_dir


def policy_folder(models_dir: Path, base_name: str, card: PolicyCard) -> Path:
    return models_dir / f"{registry_entry(base_name).folder}-policy-{card.adapter_sha256[:8]}"


def prepare_policy(models_dir: Path, base_name: str, dataset: str, policies_dir: Path = POLICIES_DIR,
                   force: bool = False) -> Path | None:
    """The merged trained policy of (registry model `base_name`, `dataset`), prepared (base and merge) on first use;
    None when no policy ships for them."""
    shipped = shipped_policy(base_name, dataset, policies_dir)
    if shipped is None:
        return None
    card = load_card(shipped)
    target = policy_folder(models_dir, base_name, card)
    if is_prepared(target) and not force:
        return target
    base = prepare_model(models_dir, base_name)
    return merge_policy(shipped, base, target)


def expert_adapter(models_dir: Path, base_name: str, dataset: str,
                   policies_dir: Path = POLICIES_DIR) -> tuple[Path, Path, PolicyCard] | None:
    """(prepared base folder, shipped adapter folder, its card) for serving the adapter as the experts' LoRA module;
    None when no policy ships for (`base_name`, `dataset`). The adapter is checked against the base first."""
    shipped = shipped_policy(base_name, dataset, policies_dir)
    if shipped is None:
        return None
    base = prepare_model(models_dir, base_name)
    return base, shipped, verify_policy(shipped, base)


def lora_rank_limit(card: PolicyCard) -> int:
    """The smallest `--max-lora-rank` vLLM accepts that fits the adapter's rank."""
    rank = int(card.lora.get("r", 8))
    return next((r for r in LORA_RANKS if r >= rank), LORA_RANKS[-1])


def ship_policy(adapter_dir: Path, base_dir: Path, out_dir: Path, name: str, training: dict[str, Any], data_hash: str,
                metrics: dict[str, Any], dataset: str = "") -> PolicyCard:
    """Copy a trained LoRA adapter (a PEFT output folder) into `out_dir` with its card; refuses an adapter over 32 MiB
    and a base recgpt did not prepare (its identity could not be checked later). `dataset`: what it was trained on
    (default: read from the training stages); serving looks it up under `<policies>/<base>/<dataset>/`."""
    adapter = adapter_dir / ADAPTER_FILE
    config_path = adapter_dir / "adapter_config.json"
    if not adapter.is_file() or not config_path.is_file():
        raise PolicyError(f"{adapter_dir} is not a LoRA adapter folder (needs {ADAPTER_FILE} and adapter_config.json)")
    size = adapter.stat().st_size
    if size > MAX_ADAPTER_BYTES:
        raise PolicyError(f"{adapter} is {size / 2**20:.1f} MiB; a shipped adapter must be at most 32 MiB (lower the rank "
                          "or the target modules)")
    base = base_identity(base_dir)
    if base is None:
        raise PolicyError(f"{base_dir} is not a model recgpt prepared; ship adapters trained on a registry model")
    config = json.loads(config_path.read_text())
    trained_on = Path(str(config.get("base_model_name_or_path") or ""))
    if str(trained_on) not in ("", ".") and trained_on.is_dir() and trained_on.resolve() != base_dir.resolve():
        raise PolicyError(f"{adapter_dir} was trained on {trained_on}, not on {base_dir}")
    card = PolicyCard(name=name, base=base, adapter_sha256=sha256_of(adapter), adapter_bytes=size,
                      lora={"r": config.get("r"), "alpha": config.get("lora_alpha"),
                            "target_modules": sorted(config.get("target_modules") or [])},
                      training=training, data_hash=data_hash, metrics=metrics, dataset=dataset_key(dataset) if dataset else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(adapter, out_dir / ADAPTER_FILE)
    config["base_model_name_or_path"] = base.name  # the training machine's path means nothing elsewhere
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2))
    (out_dir / CARD_FILE).write_text(card.model_dump_json(indent=2))
    return card


def resolve_policy(base_name: str, policy: str, models_dir: Path, dataset: str,
                   policies_dir: Path = POLICIES_DIR) -> tuple[Path, str]:
    """(folder to serve, what it is) for registry model `base_name` under `--policy`: the merged policy trained on
    `dataset` when one ships, else the base (the description says so). The measured choice for a dataset with no policy
    of its own is made above this (`recgpt.eval.policy_check`), which then names the dataset whose policy won."""
    if policy not in POLICIES:
        raise PolicyError(f"--policy must be one of {', '.join(POLICIES)} (got {policy!r})")
    shipped = shipped_policy(base_name, dataset, policies_dir) if policy == "trained" else None
    if shipped is not None:
        merged = prepare_policy(models_dir, base_name, dataset, policies_dir)
        assert merged is not None
        card = load_card(shipped)
        return merged, f"trained policy {card.name} (trained on {card.dataset})"
    what = f"base {base_name}" + (f" (no trained policy ships for it on {dataset_key(dataset)})" if policy == "trained" else "")
    return prepare_model(models_dir, base_name), what
