"""`recgpt train grpo`: GRPO (TRL `GRPOTrainer`) on expert prompts from training-prefix cuts, with the
CRS or weighted-SUM tag reward (see `grpo_rewards.py`), dense by default.

Both earlier runs (1 prompt x 4 generations per step, lr 5e-5, no KL, sparse reward) collapsed onto one category for
73-84% of users. A run now trains inside the envelope the anchors train in (`stability_problems`: G >= 8, >= 16 prompts
per update, LoRA lr <= 1e-5, beta in [1e-3, 0.04] towards the starting policy, DAPO/Dr.GRPO loss with clip-higher), or
refuses to start; and `CollapseStop` ends a run whose recent rollouts name one category too often. That envelope is a
GPU's (128 completions per update); on CPU use `recgpt train sample-round` + `dpo`, or `--envelope off` for a smoke test.

Set explicitly, not left to TRL's defaults (which moved between releases): KL coefficient `beta`
against the reference (an adapter start with beta > 0 is merged first, see `starting_policy`), `loss_type`, `scale_rewards` (advantage scaling),
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

from pydantic import BaseModel

from recgpt.errors import RecGPTError
from recgpt.eval.metrics import path_at_level
from recgpt.training.configs import RM_MAX_LENGTH, GRPORunConfig
from recgpt.training.grpo_rewards import TOP_CATEGORY, TagRewards
from recgpt.training.rewards import AccuracyMix, Gates
from recgpt.training.runs import finish_run, latest_checkpoint, start_run
from recgpt.training.sft import use_bf16


def build_grpo_rows(config: GRPORunConfig) -> list[dict[str, Any]]:
    # deferred: the dataset and serving stack (a GPU box training from a reward table has the training stack only)
    from recgpt.services.resources import default_registry
    from recgpt.training.datasets import (
        expert_prompt,
        future_categories,
        grounding_vocabulary,
        training_cuts,
    )

    data = default_registry().dataset(config.dataset)
    cuts = training_cuts(data, future=config.future)
    if config.max_users is not None and config.max_users < len(cuts):
        cuts = random.Random(config.seed).sample(cuts, config.max_users)
    vocabulary = grounding_vocabulary(data, config.grounding)
    return [{"prompt": expert_prompt(data, cut, config.tags_per_expert, vocabulary=vocabulary),
             "target_categories": sorted(set().union(*(path_at_level(c, config.level) for c in future_categories(data, cut)))),
             "user_id": cut.user_id}
            for cut in cuts]


def stability_problems(config: GRPORunConfig) -> list[str]:
    """What puts a run outside the envelope the anchors train in (Rec-R1, MiniOneRec, TRL's LoRA guide); [] inside."""
    adapter = (Path(config.model) / "adapter_config.json").is_file()
    lora = config.lora_r > 0 or adapter
    prompts = config.per_device_train_batch_size * config.gradient_accumulation_steps / max(1, config.num_generations)
    problems = []
    if config.num_generations < 8:
        problems.append(f"num_generations {config.num_generations} < 8")
    if prompts < 16:
        problems.append(f"{prompts:g} prompts per update < 16 (batch_size x grad_accum / num_generations)")
    ceiling = 1e-5 if lora else 1e-6
    if config.learning_rate > ceiling:
        problems.append(f"learning_rate {config.learning_rate:g} > {ceiling:g} ({'LoRA' if lora else 'full fine-tuning'})")
    if not 1e-3 <= config.beta <= 0.04:
        problems.append(f"beta {config.beta:g} outside [0.001, 0.04]")
    if config.loss_type not in ("dapo", "dr_grpo"):
        problems.append(f"loss_type {config.loss_type} (dapo or dr_grpo)")
    if config.epsilon_high < config.epsilon:
        problems.append(f"epsilon_high {config.epsilon_high:g} < epsilon {config.epsilon:g}")
    if config.collapse_share <= 0:
        problems.append("the collapse stop is off (collapse_share 0)")
    return problems


def real_tag_rewards(config: GRPORunConfig) -> TagRewards:
    """The rewards on real components: the configured retriever's nearest category (R_acc; Chroma by default),
    MiniLM embeddings (R_div) and the trained reward model (R_align = sigmoid(score - its calibration offset) on
    prompt + answer, in the window it was trained with). The dataset and retriever are resolved once, as a graph's are."""
    from recgpt.services.resources import resolve  # deferred: as in build_grpo_rows
    from recgpt.training.datasets import future_categories, grounding_vocabulary, training_cuts

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
    dense = None
    if config.reward == "dense":
        from recgpt.training.sample_round import score_answer, served_ranker  # deferred: the served retriever's stack

        data = resources.dataset
        cuts = {cut.user_id: cut for cut in training_cuts(data, future=config.future)}
        rank = served_ranker(resources, config.depth, per_tag=60)

        # Training-prefix cuts: the scorer's validation statistics saw their futures, so r_rank is optimistic here
        # (sample-round's validation-target cuts avoid it); GRPO's rows are kept as they were for this GPU path.
        def dense(user: str, text: str) -> tuple[float, float]:
            cut = cuts[user]
            parts = score_answer(text, cut, future_categories(data, cut), vocabulary, config.level, config.depth, rank,
                                 resources.registry.embedder).parts
            return parts.leaf, parts.rank
    return TagRewards(map_categories=map_categories, embed=resources.registry.embedder, align=align, ground=ground, gates=gates,
                      dense=dense, mix=AccuracyMix.dense() if config.reward == "dense" else AccuracyMix.sparse())


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
    """(model for `GRPOTrainer`, its `peft_config`). An SFT LoRA output with beta 0 is loaded with its adapter trainable:
    GRPO goes on training it, so the result stays one adapter on the base. With beta > 0 TRL's KL reference would be the
    adapter-disabled base, not the SFT policy, so the adapter is merged into `<out>/start-merged` first and a new LoRA is
    trained on it: the reference is then the SFT policy (ship by exporting onto that merged model)."""
    if (Path(config.model) / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM  # deferred: peft (imports torch)

        if config.beta > 0:  # the KL must anchor to this policy: merge it, then train a new LoRA on it
            merged = Path(config.output_dir) / "start-merged"
            if not (merged / "config.json").is_file():
                from transformers import AutoTokenizer

                AutoPeftModelForCausalLM.from_pretrained(config.model).merge_and_unload().save_pretrained(str(merged))
                AutoTokenizer.from_pretrained(tokenizer_source(config.model)).save_pretrained(str(merged))
            from peft import LoraConfig

            return str(merged), LoraConfig(r=max(1, config.lora_r), lora_alpha=config.lora_alpha, target_modules="all-linear",
                                           task_type="CAUSAL_LM")
        return AutoPeftModelForCausalLM.from_pretrained(config.model, is_trainable=True), None
    if config.lora_r > 0:
        from peft import LoraConfig  # deferred: peft (imports torch)

        return config.model, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear",
                                        task_type="CAUSAL_LM")
    return config.model, None


def rollout_schema(config: GRPORunConfig) -> type[BaseModel] | None:
    """The schema serving decodes the expert's answer under, for constrained rollouts (None: unconstrained)."""
    if not config.constrained:
        return None
    from recgpt.agents.expert import grounded_expert_schema  # deferred: the agents (langchain) only for a real run
    from recgpt.services.resources import default_registry
    from recgpt.training.datasets import SERVED_RATIONALE_CHARS, grounding_vocabulary

    data = default_registry().dataset(config.dataset)
    return grounded_expert_schema(config.tags_per_expert, grounding_vocabulary(data, config.grounding), SERVED_RATIONALE_CHARS)


def run_grpo(config: GRPORunConfig, rewards: TagRewards, rows: list[dict[str, Any]] | None = None,
             schema: type[BaseModel] | dict[str, Any] | None = None) -> Path:
    """Train; returns the final model/adapter folder. `schema`: rollouts decode under it (`rollout_schema`)."""
    # deferred: datasets, transformers and trl (torch: seconds to import, paid only when training)
    from datasets import Dataset as HFDataset
    from transformers import AutoTokenizer
    from trl import GRPOTrainer

    from recgpt.training.trainer_configs import GRPOTrainerConfig, trainer_config

    if config.envelope == "stable" and (problems := stability_problems(config)):
        raise RecGPTError("GRPO settings outside the stable envelope: " + "; ".join(problems)
                          + " (--envelope off for a smoke test; on CPU use `recgpt train sample-round` and `dpo`)")
    out = start_run(config.output_dir, config)
    rows = rows if rows is not None else build_grpo_rows(config)
    rewards.rollout_log = out / "rollouts.jsonl"
    funcs, weights = rewards.functions(config.shaping)
    args = trainer_config(GRPOTrainerConfig, config, save_total_limit=2, report_to=[], reward_weights=weights,
                          bf16=use_bf16(config.precision, config.use_cpu))
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(config.model))
    model, peft_config = starting_policy(config)
    stop = CollapseStop(config.collapse_share, config.collapse_patience)
    trainer = GRPOTrainer(model=model, reward_funcs=funcs, args=args, train_dataset=HFDataset.from_list(rows),
                          processing_class=tokenizer, peft_config=peft_config, callbacks=[stop.callback()])
    if schema is not None:
        from recgpt.training.constrained import compile_schema, constrain_generation

        constrain_generation(trainer.model, compile_schema(tokenizer, schema, trainer.model.config.vocab_size))
    resumed_from = latest_checkpoint(out)
    trainer.train(resume_from_checkpoint=resumed_from)
    if stop.stopped_at is not None:
        print(f"GRPO stopped at step {stop.stopped_at}: {stop.reason}")
    return finish_run(out, trainer, tokenizer, resumed_from, prompts=len(rows), gates=asdict(rewards.gates),
                      reward_mix=asdict(rewards.mix), collapse_stop={"step": stop.stopped_at, "reason": stop.reason})


class CollapseStop:
    """Ends a run whose rollouts converge on one category: when the logged `top_category_share` (the share of the recent
    rollouts naming the most named category) is at or above `share` for `patience` logs in a row. `share` 0 only
    monitors. The step and the reason go into the run's metrics."""

    def __init__(self, share: float, patience: int) -> None:
        self.share, self.patience = share, max(1, patience)
        self.streak = 0
        self.stopped_at: int | None = None
        self.reason = ""

    def observe(self, step: int, logs: dict[str, float]) -> bool:
        """True when the run must stop now."""
        value = logs.get(f"rewards/{TOP_CATEGORY}/mean")
        if value is None or self.share <= 0:
            return False
        self.streak = self.streak + 1 if value >= self.share else 0
        if self.streak >= self.patience and self.stopped_at is None:
            self.stopped_at = step
            self.reason = (f"collapse: {value:.0%} of the recent rollouts name one category ({self.patience} logs in a row "
                           f"at or above {self.share:.0%})")
            return True
        return False

    def callback(self) -> Any:
        from transformers import TrainerCallback  # deferred: transformers (imports torch)

        monitor = self

        class _Callback(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **_: Any) -> None:
                if logs and monitor.observe(state.global_step, logs):
                    control.should_training_stop = True

        return _Callback()
