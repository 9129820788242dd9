"""The run configs of the training commands, one dataclass per command, in the manner of TRL's `GRPOConfig`:
every field documented in `metadata["help"]` (with `metadata["choices"]` where only some values are valid).

`recgpt train <command> --help` is generated from these fields (`recgpt/training/cli.py`), so this module
imports the standard library only: the CLI reads them without loading torch or TRL. Each training module
re-exports its config (`from recgpt.training.sft import SFTRunConfig` keeps working)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(kw_only=True)
class SFTRunConfig:
    """Every knob of an SFT run (written to `<output_dir>/run_config.json`)."""

    model: str = field(metadata={"help": "HF model directory (the prepared default model, or any causal LM)."})
    output_dir: Path = field(metadata={"help": "Run directory: checkpoints, logs, final adapter/model."})
    dataset: str = field(default="office", metadata={"help": "office, movielens or a JSONL dataset folder."})
    max_users: int | None = field(default=None, metadata={"help": "Subsample of training users (None = all)."})
    future: int = field(default=3, metadata={"help": "Next interactions of the training prefix used as targets."})
    tags_per_expert: int = field(default=5, metadata={"help": "M: tags in each target completion."})
    grounding: str = field(default="leaf", metadata={"help": (
        "Category grounding of prompts and answers, as served (Context.grounding): leaf, l2 or off."),
        "choices": ("leaf", "l2", "off")})
    epochs: float = field(default=1.0, metadata={"help": "Passes over the examples."})
    max_steps: int = field(default=-1, metadata={"help": "Stop after this many optimiser steps (-1 = epochs decide)."})
    learning_rate: float = field(default=2e-4, metadata={"help": "2e-4 suits LoRA; use ~2e-5 for full fine-tuning."})
    batch_size: int = field(default=4, metadata={"help": "Per-device batch size."})
    grad_accum: int = field(default=4, metadata={"help": "Gradient accumulation steps (GPU: raise batch_size instead)."})
    max_length: int = field(default=2048, metadata={"help": "Token limit of prompt + completion."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank; 0 = full fine-tuning."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    logging_steps: int = field(default=10, metadata={"help": "Log every N steps."})
    save_steps: int = field(default=100, metadata={"help": "Checkpoint every N steps (resume point)."})
    seed: int = field(default=0, metadata={"help": "Seed of sampling and training."})
    use_cpu: bool = field(default=True, metadata={"help": "Force CPU (False on GPU machines)."})
    precision: str = field(default="auto", metadata={"help": (
        "Mixed precision of the forward/backward: auto (bfloat16 where the CPU or GPU has native bf16, else float32), "
        "bfloat16 or float32. LoRA weights and optimiser state stay float32."), "choices": ("auto", "bfloat16", "float32")})
    rows_file: str | None = field(default=None, metadata={"help": (
        "Train on these prepared examples (a JSONL that `recgpt train sft --export-rows` wrote) instead of building them "
        "from the dataset: for a GPU machine that has the model but not the dataset or the serving stack.")})


@dataclass(kw_only=True)
class GRPORunConfig:
    """Every knob of a GRPO run (written to `<output_dir>/run_config.json`)."""

    model: str = field(metadata={"help": (
        "Starting policy, also the KL reference: an SFT LoRA output (its `final` folder: GRPO trains that adapter further, "
        "so the result is one shippable adapter on the base) or a plain model folder.")})
    output_dir: Path = field(metadata={"help": "Run directory."})
    shaping: str = field(default="crs", metadata={"help": "crs (gated accuracy) or sum (weighted sum baseline).",
                                                           "choices": ("crs", "sum")})
    reward_model: str | None = field(default=None, metadata={"help": "Judge-as-a-Reward model dir for R_align (None: R_align = 1, gate always open)."})
    align_gate: str = field(default="auto", metadata={"help": (
        "CRS's alignment gate (R_align >= 0.5): on, off, or auto, which keeps it only when the reward model ranks its "
        "held-out pairs better than chance by one standard error (a reward model at chance would drop accurate "
        "answers at random)."), "choices": ("auto", "on", "off")})
    len_gate: float = field(default=0.5, metadata={"help": (
        "CRS's length gate tau_l on R_len (the mean per-tag score of the 6-11-word band). 0.5 is the paper's; set it to "
        "what the task's own target tags reach (Office's grounded targets: median 0.5, 10th percentile 0.2), or the "
        "gate drops correct answers and rewards padding.")})
    level: str = field(default="l2", metadata={"help": "Category level of R_acc: l2 or leaf (Office), genre (MovieLens)."})
    dataset: str = field(default="office", metadata={"help": "Dataset of the prompts."})
    max_users: int | None = field(default=256, metadata={"help": "Training users sampled for prompts (None = all)."})
    future: int = field(default=3, metadata={"help": "Next interactions whose categories R_acc rewards."})
    tags_per_expert: int = field(default=5, metadata={"help": "M tags asked for in each prompt."})
    grounding: str = field(default="leaf", metadata={"help": (
        "Category grounding of prompts and answers, as served (Context.grounding): leaf, l2 or off."),
        "choices": ("leaf", "l2", "off")})
    num_generations: int = field(default=4, metadata={"help": "Group size G (samples per prompt)."})
    max_completion_length: int = field(default=256, metadata={"help": "Completion token limit."})
    temperature: float = field(default=0.8, metadata={"help": "Sampling temperature of the rollouts (the experts' serving temperature)."})
    beta: float = field(default=0.04, metadata={"help": (
        "KL coefficient to the reference: the starting model, except for an adapter start, where TRL's reference is the "
        "adapter-disabled base (0 drops the term and its forward pass; the chain uses 0).")})
    loss_type: str = field(default="grpo", metadata={"help": "grpo | dapo | dr_grpo | bnpo (TRL loss_type)."})
    scale_rewards: str = field(default="group", metadata={"help": "Advantage scaling: group | batch | none."})
    epsilon: float = field(default=0.2, metadata={"help": "PPO-style clip range."})
    lora_r: int = field(default=0, metadata={"help": "LoRA rank for a plain starting model (0: full fine-tuning); an adapter start keeps its own."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (with --lora-r)."})
    learning_rate: float = field(default=1e-5, metadata={"help": "Optimiser learning rate."})
    lr_schedule: str = field(default="constant", metadata={"help": (
        "Learning-rate schedule (transformers' lr_scheduler_type). constant: a run resumed from a checkpoint that kept "
        "only the adapter and trainer state (what the chain's ledger keeps across machines) continues at the same "
        "rate; linear decays to 0 at max_steps."), "choices": ("constant", "linear", "cosine")})
    batch_size: int = field(default=4, metadata={"help": "Per-device batch (completions); a multiple of num_generations."})
    grad_accum: int = field(default=1, metadata={"help": "Gradient accumulation steps."})
    max_steps: int = field(default=50, metadata={"help": "Optimiser steps."})
    logging_steps: int = field(default=1, metadata={"help": "Log every N steps."})
    save_steps: int = field(default=25, metadata={"help": "Checkpoint every N steps."})
    seed: int = field(default=0, metadata={"help": "Seed."})
    use_cpu: bool = field(default=True, metadata={"help": "Force CPU."})
    precision: str = field(default="auto", metadata={"help": (
        "Autocast of rollouts' scoring forward/backward: auto (bfloat16 where the CPU or GPU has native bf16, else "
        "float32), bfloat16 or float32. The base keeps its checkpoint dtype; LoRA weights and optimiser state stay "
        "float32."), "choices": ("auto", "bfloat16", "float32")})


RM_MAX_LENGTH = 768
"""Token window of the reward model. Inputs are cut from the *left*: the answer and the expert's
instructions (at the end) are always seen; only the oldest history lines can fall outside."""


@dataclass(kw_only=True)
class RewardRunConfig:
    """Every knob of a reward-model run (written to `<output_dir>/run_config.json`)."""

    model: str = field(metadata={"help": "Base causal LM whose trunk gets the scalar value head."})
    groups: Path = field(metadata={"help": "Reward groups JSONL from `recgpt train reward-data`."})
    output_dir: Path = field(metadata={"help": "Run directory."})
    loss_type: str = field(default="listwise", metadata={"help": "listwise (S > A > B within a group) or pointwise (BCE to 1/.5/0).",
                                                                 "choices": ("listwise", "pointwise")})
    held_out: float = field(default=0.25, metadata={"help": "Share of groups held out for ranking accuracy."})
    epochs: float = field(default=2.0, metadata={"help": "Passes over the training groups."})
    learning_rate: float = field(default=2e-5, metadata={"help": "Learning rate (full fine-tuning of trunk + head)."})
    groups_per_batch: int = field(default=1, metadata={"help": "Groups per optimiser step (each group is G texts)."})
    max_length: int = field(default=RM_MAX_LENGTH, metadata={"help": "Token window (left-truncated)."})
    mixed_only: bool = field(default=False, metadata={"help": (
        "Train only on groups whose samples got different grades (held-out groups are kept whole): a group graded "
        "alike orders nothing, so the listwise loss learns nothing from it, and on 2 CPU cores it costs a full step.")})
    logging_steps: int = field(default=5, metadata={"help": "Log every N steps."})
    save_steps: int = field(default=100, metadata={"help": "Checkpoint every N steps."})
    seed: int = field(default=0, metadata={"help": "Seed of the split and of training."})
    use_cpu: bool = field(default=True, metadata={"help": "Force CPU."})
    dtype: str = field(default="float32", metadata={"help": "Training dtype: float32 (CPU), bfloat16 or auto (the checkpoint's) on GPUs."})


@dataclass(kw_only=True)
class RewardDataConfig:
    """Every knob of a reward-data run (written next to the groups file)."""

    output: Path = field(metadata={"help": "JSONL of reward groups (one RewardGroup per line)."})
    dataset: str = field(default="office", metadata={"help": "Dataset whose training prefixes give the prompts."})
    max_users: int = field(default=24, metadata={"help": "Prompts (training users) sampled."})
    samples: int = field(default=4, metadata={"help": "G: policy answers sampled per prompt (the group)."})
    tags_per_expert: int = field(default=5, metadata={"help": "M tags per answer (as in SFT/GRPO)."})
    grounding: str = field(default="leaf", metadata={"help": (
        "Category grounding of prompts and answers, as served (Context.grounding): leaf, l2 or off."),
        "choices": ("leaf", "l2", "off")})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the policy answers."})
    judge_mode: str = field(default="agent", metadata={"help": (
        "agent (per-dimension evaluators + Senior Reviewer), single (one call), or rules (the categories of the cut's "
        "next interactions: the fallback when the LLM judge cannot separate users; see recgpt/training/rule_judge.py)."),
        "choices": ("agent", "single", "rules")})
    future: int = field(default=3, metadata={"help": "Cut position (as in SFT): the prompt's history ends before these."})
    seed: int = field(default=1, metadata={"help": "Seed of the user sample (differs from SFT's 0 by default)."})
    shuffled_negatives: int = field(default=0, metadata={"help": (
        "In-batch negatives per group: judged answers of other users (seeded derangement) graded Bad by construction. "
        "Gives the listwise loss a user-relevance signal when the judge grades (nearly) everything alike.")})
    concurrency: int = field(default=16, metadata={"help": "LLM calls in flight."})


@dataclass
class AdaptorTrainConfig:
    """`recgpt train adaptor` settings (every field is a CLI option)."""

    model: str = field(metadata={"help": "The frozen LLM's Hugging Face directory (the one vLLM serves)."})
    output_dir: Path = field(metadata={"help": "Run directory: config, metrics, the adaptor (in `adaptor/`)."})
    dataset: str = field(default="office", metadata={"help": "Catalogue and training prefixes to learn from."})
    hidden_dim: int = field(default=1024, metadata={"help": "Adaptor hidden width."})
    perception_entities: int = field(default=800, metadata={"help": "Catalogue entities for self-perception training."})
    heldout_entities: int = field(default=200, metadata={"help": "Entities never trained on: self-perception accuracy."})
    distill_users: int = field(default=48, metadata={"help": "Training-prefix expert prompts with frozen-LLM full-text targets (0 = off)."})
    distill_max_items: int = field(default=20, metadata={"help": "History items listed in a distillation prompt."})
    distill_max_new_tokens: int = field(default=96, metadata={"help": "Length of the frozen LLM's greedy answer used as target."})
    epochs: int = field(default=2, metadata={"help": "Passes over all examples."})
    batch_size: int = field(default=16, metadata={"help": "Self-perception examples per step (distillation: 1 per step)."})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    seed: int = field(default=0, metadata={"help": "Entity split, shuffling and initialisation seed."})
    tags_per_expert: int = field(default=5, metadata={"help": "M of the distillation expert prompts."})
