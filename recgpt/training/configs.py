"""The run configs of the training commands, one dataclass per command: every field documented in
`metadata["help"]` (with `metadata["choices"]` where only some values are valid, and `metadata["option"]` where the
command line has always called it otherwise).

A trainer's run config is recgpt's own fields (`SFTOptions`, `GRPOOptions`, `RewardOptions`: the data, the task, LoRA,
precision) and the few fields of TRL's own config that its command exposes (`TRAINER_FIELDS`, under TRL's names, with
recgpt's defaults). The trainer gets TRL's config subclassed with recgpt's own fields
(`recgpt/training/trainer_configs.py`), built from the run config as it is: no field is mapped by hand.

`recgpt train <command> --help` is generated from these fields (`recgpt/training/cli.py`), so this module imports the
standard library only: the CLI reads them without loading torch or TRL. Each training module re-exports its config
(`from recgpt.training.sft import SFTRunConfig` keeps working)."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, make_dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainerField:
    """A field of TRL's trainer configs (transformers' `TrainingArguments` and TRL's subclasses of it) that a
    `recgpt train` command exposes: its type, its help and, where the command line calls it otherwise, its option.
    Each command gives its own default (`trainer_fields`)."""

    type: type
    help: str
    option: str | None = None
    choices: tuple[str, ...] | None = None

    def metadata(self) -> dict[str, Any]:
        extra = {"option": self.option, "choices": self.choices}
        return {"help": self.help, **{key: value for key, value in extra.items() if value}}


TRAINER_FIELDS: dict[str, TrainerField] = {
    # the allow-list: TRL's configs have hundreds of fields, the commands expose these
    "output_dir": TrainerField(Path, "Run directory: the run's config, checkpoints, logs, metrics and final model.", "out"),
    "num_train_epochs": TrainerField(float, "Passes over the training examples.", "epochs"),
    "max_steps": TrainerField(int, "Optimiser steps (-1: the epochs decide)."),
    "learning_rate": TrainerField(float, "Optimiser learning rate."),
    "lr_scheduler_type": TrainerField(str, (
        "Learning-rate schedule. constant: a run resumed from a checkpoint that kept only the adapter and trainer state "
        "(what the chain's ledger keeps across machines) continues at the same rate; linear decays to 0 at max_steps."),
        "lr_schedule", ("constant", "linear", "cosine")),
    "per_device_train_batch_size": TrainerField(int, "Per-device batch size.", "batch_size"),
    "gradient_accumulation_steps": TrainerField(int, "Gradient accumulation steps (GPU: raise batch_size instead).", "grad_accum"),
    "max_length": TrainerField(int, "Token limit of prompt + completion."),
    "num_generations": TrainerField(int, "Group size G (samples per prompt)."),
    "max_completion_length": TrainerField(int, "Completion token limit."),
    "temperature": TrainerField(float, "Sampling temperature of the rollouts (the experts' serving temperature)."),
    "beta": TrainerField(float, (
        "KL coefficient to the reference: the starting model, except for an adapter start, where TRL's reference is the "
        "adapter-disabled base, so `starting_policy` merges an adapter start first (0 drops the term and its forward pass).")),
    "loss_type": TrainerField(str, "grpo | dapo | dr_grpo | bnpo (TRL loss_type)."),
    "scale_rewards": TrainerField(str, "Advantage scaling: group | batch | none."),
    "epsilon": TrainerField(float, "PPO-style clip range."),
    "epsilon_high": TrainerField(float, "Upper clip range (DAPO's clip-higher: keeps low-probability answers explorable)."),
    "logging_steps": TrainerField(int, "Log every N steps."),
    "save_steps": TrainerField(int, "Checkpoint every N steps (resume points)."),
    "seed": TrainerField(int, "Seed of sampling, data splits and training."),
    "use_cpu": TrainerField(bool, "Force CPU (--no-cpu on GPU machines).", "cpu"),
}


def trainer_fields(command: str, notes: dict[str, str] | None = None, **defaults: Any) -> type:
    """The part of a command's run config that TRL's config holds: `output_dir` (required) and the `TRAINER_FIELDS`
    named in `defaults`, under TRL's names, with the command's defaults and `notes` added to their help."""
    notes = notes or {}
    if unknown := sorted((set(defaults) | set(notes)) - set(TRAINER_FIELDS)):
        raise TypeError(f"{command}: {unknown} not in TRAINER_FIELDS")
    specs = []
    for name, spec in TRAINER_FIELDS.items():
        if name == "output_dir" or name in defaults:
            metadata = spec.metadata() | ({"help": f"{spec.help} {notes[name]}"} if name in notes else {})
            specs.append((name, spec.type, field(default=defaults.get(name, MISSING), metadata=metadata)))
    return make_dataclass(f"{command}TrainerFields", specs, kw_only=True, namespace={"__module__": __name__})


@dataclass(kw_only=True)
class PromptOptions:
    """How SFT, GRPO and reward data make their expert prompts: from the training-prefix cuts of a dataset."""

    dataset: str = field(default="office", metadata={"help": "office, movielens or a JSONL dataset folder."})
    future: int = field(default=3, metadata={"help": (
        "Interactions after each training-prefix cut: the prompt's history ends before them; SFT's targets and the "
        "categories GRPO's R_acc rewards come from them.")})
    tags_per_expert: int = field(default=5, metadata={"help": "M: tags in each answer."})
    grounding: str = field(default="leaf", metadata={"help": (
        "Category grounding of prompts and answers, as served (Context.grounding): leaf, l2 or off."),
        "choices": ("leaf", "l2", "off")})


@dataclass(kw_only=True)
class SFTOptions(PromptOptions):
    """recgpt's own fields of an SFT run (TRL's `SFTConfig` has the rest)."""

    model: str = field(metadata={"help": "HF model directory (the prepared default model, or any causal LM)."})
    max_users: int | None = field(default=None, metadata={"help": "Subsample of training users (None = all)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank; 0 = full fine-tuning."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    precision: str = field(default="auto", metadata={"help": (
        "Mixed precision of the forward/backward: auto (bfloat16 where the CPU or GPU has native bf16, else float32), "
        "bfloat16 or float32. LoRA weights and optimiser state stay float32."), "choices": ("auto", "bfloat16", "float32")})
    rows_file: str | None = field(default=None, metadata={"help": (
        "Train on these prepared examples (a JSONL that `recgpt train sft --export-rows` wrote) instead of building them "
        "from the dataset: for a GPU machine that has the model but not the dataset or the serving stack.")})


@dataclass(kw_only=True)
class SFTRunConfig(trainer_fields("SFT", {"learning_rate": "2e-4 suits LoRA; use ~2e-5 for full fine-tuning."},
                                  num_train_epochs=1.0, max_steps=-1, learning_rate=2e-4, per_device_train_batch_size=4,
                                  gradient_accumulation_steps=4, max_length=2048, logging_steps=10, save_steps=100, seed=0,
                                  use_cpu=True), SFTOptions):
    """Every knob of an SFT run (written to `<output_dir>/run_config.json`)."""


@dataclass(kw_only=True)
class GRPOOptions(PromptOptions):
    """recgpt's own fields of a GRPO run (TRL's `GRPOConfig` has the rest)."""

    model: str = field(metadata={"help": (
        "Starting policy, also the KL reference: a plain model folder (e.g. the merged SFT policy), or an SFT LoRA output "
        "(its `final` folder): with beta 0 GRPO trains that adapter further; with beta > 0 it is merged first (see "
        "--lora-r), so the KL anchors to it.")})
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
    reward: str = field(default="dense", metadata={"help": (
        "Accuracy inside CRS/SUM: dense (category credit at the level and at the leaf, and r_rank of the cut's next item "
        "in the served retriever's list for the answer's tags; rewards.AccuracyMix.dense) or sparse (the paper's R_acc "
        "alone, which left most groups without a reward difference)."), "choices": ("dense", "sparse")})
    depth: int = field(default=300, metadata={"help": "dense: how deep in the retriever's list the next item still earns r_rank."})
    reward_table: str | None = field(default=None, metadata={"help": (
        "A reward table (`recgpt train reward-table`): prompts, targets and the dense reward precomputed, so the run "
        "needs no retrieval stack (a GPU box). Its prompts replace the dataset's cuts, its schema constrains rollouts, "
        "its distinct-tag share stands in for MiniLM's R_div, and no judge gates.")})
    max_users: int | None = field(default=256, metadata={"help": "Training users sampled for prompts (None = all)."})
    envelope: str = field(default="stable", metadata={"help": (
        "stable refuses settings outside the envelope the anchors train in (G >= 8, >= 16 prompts per update, LoRA lr "
        "<= 1e-5 or full lr <= 1e-6, beta in [1e-3, 0.04], loss dapo or dr_grpo, epsilon_high >= epsilon, the collapse "
        "stop on); off: smoke tests and the historical CPU chain (scripts/train_chain.sh), whose runs collapsed."),
        "choices": ("stable", "off")})
    collapse_share: float = field(default=0.5, metadata={"help": (
        "Collapse stop: the run stops when, for collapse_patience logged steps in a row, this share of the recent "
        "rollouts names one catalogue-mapped category (both earlier runs ended at 73-84%); 0 = monitor only.")})
    collapse_patience: int = field(default=3, metadata={"help": "Logged steps in a row above collapse_share before the stop."})
    constrained: bool = field(default=True, metadata={"help": (
        "Rollouts decode under the grammar serving decodes with (the grounded expert schema with the catalogue enum, "
        "xgrammar's logits processor on transformers' generate), so the policy is rewarded only on answers serving can "
        "give; off: free decoding, as the historical runs (whose SUM policy wrote category paths that do not exist).")})
    lora_r: int = field(default=16, metadata={"help": (
        "LoRA rank for a plain starting model (0: full fine-tuning). An adapter start with beta > 0 is merged into its "
        "base first and gets a new LoRA of this rank, so the KL reference is that starting policy, not the bare base.")})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (with --lora-r)."})
    precision: str = field(default="auto", metadata={"help": (
        "Autocast of rollouts' scoring forward/backward: auto (bfloat16 where the CPU or GPU has native bf16, else "
        "float32), bfloat16 or float32. The base keeps its checkpoint dtype; LoRA weights and optimiser state stay "
        "float32."), "choices": ("auto", "bfloat16", "float32")})


@dataclass(kw_only=True)
class GRPORunConfig(trainer_fields("GRPO", {
        "per_device_train_batch_size": "Completions: a multiple of num_generations.",
        "gradient_accumulation_steps": "With batch_size, the completions of one update: 16 x 8 = 128 = 16 prompts x G 8."},
        num_generations=8, max_completion_length=256, temperature=1.0, beta=0.01, loss_type="dapo", scale_rewards="group",
        epsilon=0.2, epsilon_high=0.28, learning_rate=1e-5, lr_scheduler_type="constant", per_device_train_batch_size=16,
        gradient_accumulation_steps=8, max_steps=200, logging_steps=1, save_steps=10, seed=0, use_cpu=True), GRPOOptions):
    """Every knob of a GRPO run (written to `<output_dir>/run_config.json`)."""


RM_MAX_LENGTH = 768
"""Token window of the reward model. Inputs are cut from the *left*: the answer and the expert's
instructions (at the end) are always seen; only the oldest history lines can fall outside."""


@dataclass(kw_only=True)
class RewardOptions:
    """recgpt's own fields of a reward-model run (transformers' `TrainingArguments` has the rest)."""

    model: str = field(metadata={"help": "Base causal LM whose trunk gets the scalar value head."})
    groups: Path = field(metadata={"help": "Reward groups JSONL from `recgpt train reward-data`."})
    loss_type: str = field(default="listwise", metadata={"help": "listwise (S > A > B within a group) or pointwise (BCE to 1/.5/0).",
                                                                 "choices": ("listwise", "pointwise")})
    held_out: float = field(default=0.25, metadata={"help": "Share of groups held out for ranking accuracy."})
    max_length: int = field(default=RM_MAX_LENGTH, metadata={"help": "Token window (left-truncated)."})
    mixed_only: bool = field(default=False, metadata={"help": (
        "Train only on groups whose samples got different grades (held-out groups are kept whole): a group graded "
        "alike orders nothing, so the listwise loss learns nothing from it, and on 2 CPU cores it costs a full step.")})
    dtype: str = field(default="float32", metadata={"help": "Training dtype: float32 (CPU), bfloat16 or auto (the checkpoint's) on GPUs."})


@dataclass(kw_only=True)
class RewardRunConfig(trainer_fields("Reward", {"learning_rate": "Full fine-tuning of trunk + head.",
                                                 "per_device_train_batch_size": "Groups per step, each of G texts."},
                                     num_train_epochs=2.0, learning_rate=2e-5, per_device_train_batch_size=1, logging_steps=5,
                                     save_steps=100, seed=0, use_cpu=True), RewardOptions):
    """Every knob of a reward-model run (written to `<output_dir>/run_config.json`)."""


@dataclass(kw_only=True)
class RewardDataConfig(PromptOptions):
    """Every knob of a reward-data run (written next to the groups file)."""

    output: Path = field(metadata={"help": "JSONL of reward groups (one RewardGroup per line)."})
    max_users: int = field(default=24, metadata={"help": "Prompts (training users) sampled."})
    samples: int = field(default=4, metadata={"help": "G: policy answers sampled per prompt (the group)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the policy answers."})
    judge_mode: str = field(default="agent", metadata={"help": (
        "agent (per-dimension evaluators + Senior Reviewer), single (one call), or rules (the categories of the cut's "
        "next interactions: the fallback when the LLM judge cannot separate users; see recgpt/training/rule_judge.py)."),
        "choices": ("agent", "single", "rules")})
    seed: int = field(default=1, metadata={"help": "Seed of the user sample (differs from SFT's 0 by default)."})
    shuffled_negatives: int = field(default=0, metadata={"help": (
        "In-batch negatives per group: judged answers of other users (seeded derangement) graded Bad by construction. "
        "Gives the listwise loss a user-relevance signal when the judge grades (nearly) everything alike.")})
    concurrency: int = field(default=16, metadata={"help": "LLM calls in flight."})


@dataclass(kw_only=True)
class DPOOptions:
    """recgpt's own fields of a DPO run on an offline round's pairs (TRL's `DPOConfig` has the rest)."""

    model: str = field(metadata={"help": (
        "Starting policy, also the reference: the served policy's weights folder (a new LoRA is trained on it and the "
        "reference is the adapter-disabled model, i.e. the policy that drew the samples), or an SFT/DPO LoRA output (its "
        "`final` folder: that adapter is trained further).")})
    rows_file: str = field(metadata={"help": (
        "Pairs to train on: `dpo-crs.jsonl` or `dpo-sum.jsonl` of `recgpt train sample-round` (TRL's conversational "
        "prompt/chosen/rejected).")})
    lora_r: int = field(default=8, metadata={"help": (
        "LoRA rank for a plain starting model (an adapter start keeps its own). 8, as the shipped SFT: on the 0.5B its "
        "float32 adapter is ~18 MiB, under the 32 MiB the chain's ledger commits.")})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha."})
    precision: str = field(default="auto", metadata={"help": (
        "Mixed precision: auto (bfloat16 where the CPU or GPU has native bf16), bfloat16 or float32."),
        "choices": ("auto", "bfloat16", "float32")})


@dataclass(kw_only=True)
class DPORunConfig(trainer_fields("DPO", {
        "beta": "For DPO: the strength of the implicit KL to the reference (TRL's default 0.1).",
        "learning_rate": ("5e-5: a round is only ~24 steps on 2 cores (~40 s a pair), and TRL's 'LoRA without regret' "
                          "puts LoRA's best rate ~10x full fine-tuning's (DPO: 5e-7 to 5e-6); the implicit KL (beta) "
                          "and the one-round horizon hold it near the sampling policy."),
        "save_steps": "4: a killed round (a session ends) loses at most 4 steps (~20 min on 2 cores)."},
        num_train_epochs=1.0, max_steps=-1, learning_rate=5e-5, per_device_train_batch_size=1, gradient_accumulation_steps=8,
        max_length=2048, beta=0.1, logging_steps=2, save_steps=4, seed=0, use_cpu=True), DPOOptions):
    """Every knob of a DPO run (written to `<output_dir>/run_config.json`)."""


@dataclass(kw_only=True)
class SampleRoundConfig(PromptOptions):
    """`recgpt train sample-round`: one offline round's samples and their scores (every field is a CLI option)."""

    output: Path = field(metadata={"help": (
        "Round folder: samples.jsonl (every answer, kept: a fresh machine resumes from it), scores, summary.json and the "
        "training files rft.jsonl, dpo-crs.jsonl, dpo-sum.jsonl.")})
    max_users: int = field(default=500, metadata={"help": (
        "Prompts: users outside the validation tuning samples, each cut at its validation target "
        "(datasets.validation_target_cuts).")})
    samples: int = field(default=8, metadata={"help": "G: answers sampled per prompt, beside one greedy answer."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the G answers."})
    level: str = field(default="l2", metadata={"help": "Category level of the category credit (R_acc)."})
    depth: int = field(default=300, metadata={"help": "How deep in the retriever's list the held-out item still earns r_rank."})
    per_tag: int = field(default=60, metadata={"help": "Items retrieved per tag before the lists are interleaved."})
    seed: int = field(default=2, metadata={"help": "Seed of the prompt sample (SFT uses 0, reward data 1)."})
    evidence_categories: int = field(default=10, metadata={"help": (
        "The collaborative evidence block in each prompt, as served (Context.evidence_categories; 0 = none).")})
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
    category_text: bool = field(default=True, metadata={"help": (
        "Distillation prompts' hybrid history keeps category paths as text (Context.hybrid_category_text: train the "
        "adaptor for the layout it will be served with).")})
    distill_max_new_tokens: int = field(default=96, metadata={"help": "Length of the frozen LLM's greedy answer used as target."})
    epochs: int = field(default=2, metadata={"help": "Passes over all examples."})
    batch_size: int = field(default=16, metadata={"help": "Self-perception examples per step (distillation: 1 per step)."})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate."})
    seed: int = field(default=0, metadata={"help": "Entity split, shuffling and initialisation seed."})
    save_steps: int = field(default=10, metadata={"help": (
        "Steps between checkpoints (adaptor, optimiser, schedule, log) in the run folder: a rerun with the same config "
        "resumes there (on the 0.5B a MovieLens run is ~300 steps of 12-22 s).")})
    tags_per_expert: int = field(default=5, metadata={"help": "M of the distillation expert prompts."})
