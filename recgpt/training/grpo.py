"""`recgpt train grpo`: GRPO (TRL `GRPOTrainer`) on expert prompts from training-prefix cuts, with the
CRS or weighted-SUM tag reward (see `grpo_rewards.py`).

Set explicitly, not left to TRL's defaults (which moved between releases): KL coefficient `beta`
against the reference (for an adapter start, TRL's adapter-disabled base: the chain sets it to 0), `loss_type`, `scale_rewards` (advantage scaling),
the PPO clip `epsilon`, and the group size `num_generations`. TRL logs every reward component,
gate pass rate, KL and gradient norm per step to `<output_dir>/metrics.json`.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from recgpt.eval.metrics import path_at_level
from recgpt.services.resources import default_registry, resolve
from recgpt.training.configs import RM_MAX_LENGTH, GRPORunConfig
from recgpt.training.datasets import expert_prompt, future_categories, grounding_vocabulary, training_cuts
from recgpt.training.grpo_rewards import TagRewards
from recgpt.training.rewards import Gates
from recgpt.training.runs import finish_run, latest_checkpoint, start_run
from recgpt.training.sft import use_bf16


def build_grpo_rows(config: GRPORunConfig) -> list[dict[str, Any]]:
    data = default_registry().dataset(config.dataset)
    cuts = training_cuts(data, future=config.future)
    if config.max_users is not None and config.max_users < len(cuts):
        cuts = random.Random(config.seed).sample(cuts, config.max_users)
    vocabulary = grounding_vocabulary(data, config.grounding)
    return [{"prompt": expert_prompt(data, cut, config.tags_per_expert, vocabulary=vocabulary),
             "target_categories": sorted(set().union(*(path_at_level(c, config.level) for c in future_categories(data, cut))))}
            for cut in cuts]


def real_tag_rewards(config: GRPORunConfig) -> TagRewards:
    """The rewards on real components: the configured retriever's nearest category (R_acc; Chroma by default),
    MiniLM embeddings (R_div) and the trained reward model (R_align = sigmoid(score - its calibration offset) on
    prompt + answer, in the window it was trained with). The dataset and retriever are resolved once, as a graph's are."""
    resources = resolve(config.dataset)
    index = resources.retriever
    vocabulary = grounding_vocabulary(resources.dataset, config.grounding)

    def map_categories(tags: list[str]) -> list[frozenset[str]]:
        return [path_at_level(hits[0].category, config.level) if hits else frozenset() for hits in index.nearest_categories(tags, 1)]

    def ground(label: str) -> frozenset[str] | None:  # a grounded answer's category, as retrieval would use it
        path = vocabulary.path_of(label) if vocabulary is not None else None
        return path_at_level(path, config.level) if path else None

    if config.reward_model:
        # deferred: torch and transformers (the reward model's modules import them; a run without one never does)
        import torch

        from recgpt.training.reward_model import score_texts
        from recgpt.training.reward_train import load_reward_model

        model, tokenizer = load_reward_model(config.reward_model)
        window = reward_window(config.reward_model)
        offset = align_offset(config.reward_model)

        def align(prompts: list[str], answers: list[str]) -> list[float]:
            texts = [p + "\n" + a for p, a in zip(prompts, answers)]
            return torch.sigmoid(score_texts(model, tokenizer, texts, max_length=window) - offset).tolist()
    else:
        def align(prompts: list[str], answers: list[str]) -> list[float]:
            return [1.0] * len(answers)

    gates = Gates(align=Gates.align if align_gate_on(config) else 0.0, len=config.len_gate)
    return TagRewards(map_categories=map_categories, embed=resources.registry.embedder, align=align, ground=ground, gates=gates)


def align_gate_on(config: GRPORunConfig) -> bool:
    """Whether CRS gates accuracy on R_align: `on`/`off` as asked; `auto` only when the reward model's held-out ranking
    accuracy (its run's metrics, on training users' held-out groups) beats chance by at least one binomial standard
    error. Says which, in one line, because it changes what CRS optimises."""
    if config.align_gate != "auto":
        return config.align_gate == "on"
    if not config.reward_model:
        return True  # R_align is 1 for every answer: the gate passes them all
    metrics = reward_run_file(config.reward_model, "metrics.json")
    accuracy, pairs = metrics.get("ranking_accuracy_after"), metrics.get("held_out_pairs") or 0
    if accuracy is None or not pairs:
        print(f"CRS alignment gate off: {Path(config.reward_model).parent / 'metrics.json'} reports no held-out ranking accuracy")
        return False
    margin = math.sqrt(0.25 / pairs)
    on = accuracy - 0.5 >= margin
    print(f"CRS alignment gate {'on' if on else 'off'}: the reward model ranks {pairs} held-out pairs at {accuracy:.3f} "
          f"({'at least' if on else 'less than'} one standard error, {margin:.3f}, above chance)")
    return on


def reward_run_file(reward_model: str | Path, name: str) -> dict[str, Any]:
    """A JSON file of the reward model's run (beside its `final` folder); {} when the run did not write it."""
    path = Path(reward_model).parent / name
    return json.loads(path.read_text()) if path.is_file() else {}


def reward_window(reward_model: str | Path) -> int:
    """The token window the reward model was trained with (its run's config): it scores what it saw."""
    return int(reward_run_file(reward_model, "run_config.json").get("max_length", RM_MAX_LENGTH))


def align_offset(reward_model: str | Path) -> float:
    """The reward model's calibration (`reward_train.align_calibration`, in its run's metrics beside `final`): R_align
    is sigmoid(score - offset), so that 0.5 separates Bad from the rest. 0 for a run that did not record one."""
    return float(reward_run_file(reward_model, "metrics.json").get("align_offset") or 0.0)


def tokenizer_source(model: str | Path) -> str:
    """Where the starting policy's tokenizer lives: the folder itself, or an adapter's base model (an SFT run's
    `final` holds the adapter weights only)."""
    folder = Path(model)
    adapter = folder / "adapter_config.json"
    if adapter.is_file() and not (folder / "tokenizer_config.json").is_file():
        return str(json.loads(adapter.read_text())["base_model_name_or_path"])
    return str(model)


def starting_policy(config: GRPORunConfig) -> tuple[Any, Any]:
    """(model for `GRPOTrainer`, its `peft_config`). An SFT LoRA output is loaded with its adapter trainable: GRPO
    goes on training it, so the result stays one adapter on the base. With beta > 0 TRL's KL reference is then the
    adapter-disabled base, not the SFT policy, which is why the chain trains with beta 0."""
    if (Path(config.model) / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM  # deferred: peft (imports torch)

        return AutoPeftModelForCausalLM.from_pretrained(config.model, is_trainable=True), None
    if config.lora_r > 0:
        from peft import LoraConfig  # deferred: peft (imports torch)

        return config.model, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear",
                                        task_type="CAUSAL_LM")
    return config.model, None


def run_grpo(config: GRPORunConfig, rewards: TagRewards, rows: list[dict[str, Any]] | None = None) -> Path:
    # deferred: datasets, transformers and trl (torch: seconds to import, paid only when training)
    from datasets import Dataset as HFDataset
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from recgpt.training.trainer_configs import GRPOTrainerConfig, trainer_config

    out = start_run(config.output_dir, config)
    rows = rows if rows is not None else build_grpo_rows(config)
    rewards.rollout_log = out / "rollouts.jsonl"
    funcs, weights = rewards.functions(config.shaping)
    args = trainer_config(GRPOTrainerConfig, config, save_total_limit=2, report_to=[], reward_weights=weights,
                          bf16=use_bf16(config.precision, config.use_cpu))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(config.model))
    model, peft_config = starting_policy(config)
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=HFDataset.from_list(rows),
                          processing_class=tokenizer, peft_config=peft_config)
    resumed_from = latest_checkpoint(out)
    trainer.train(resume_from_checkpoint=resumed_from)
    return finish_run(out, trainer, tokenizer, resumed_from, prompts=len(rows), gates=asdict(rewards.gates))
