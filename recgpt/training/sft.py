"""`recgpt train sft`: supervised fine-tuning of the expert on training-prefix cuts (TRL `SFTTrainer`).

Loss only on the completion (the expert's JSON), LoRA by default (a few MB to ship; merged at export).
The run directory holds the config, the trainer's checkpoints (resume is automatic), logs and metrics.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recgpt.data import load_dataset
from recgpt.training.datasets import sft_example, training_cuts
from recgpt.training.runs import finish_run, latest_checkpoint, start_run


@dataclass(kw_only=True)
class SFTRunConfig:
    """Every knob of an SFT run (written to `<output_dir>/run_config.json`)."""

    model: str = field(metadata={"help": "HF model directory (the prepared default model, or any causal LM)."})
    output_dir: Path = field(metadata={"help": "Run directory: checkpoints, logs, final adapter/model."})
    dataset: str = field(default="office", metadata={"help": "office, movielens or a JSONL dataset folder."})
    max_users: int | None = field(default=None, metadata={"help": "Subsample of training users (None = all)."})
    future: int = field(default=3, metadata={"help": "Next interactions of the training prefix used as targets."})
    tags_per_expert: int = field(default=5, metadata={"help": "M: tags in each target completion."})
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


def build_sft_rows(config: SFTRunConfig) -> list[dict[str, Any]]:
    data = load_dataset(config.dataset)
    cuts = training_cuts(data, future=config.future)
    if config.max_users is not None and config.max_users < len(cuts):
        cuts = random.Random(config.seed).sample(cuts, config.max_users)
    return [sft_example(data, cut, config.tags_per_expert) for cut in cuts]


def run_sft(config: SFTRunConfig, rows: list[dict[str, Any]] | None = None) -> Path:
    """Train; returns the directory of the final adapter (LoRA) or model (full)."""
    from datasets import Dataset as HFDataset
    from transformers import AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    out = start_run(config.output_dir, config)
    rows = rows if rows is not None else build_sft_rows(config)
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    args = SFTConfig(
        output_dir=str(out), num_train_epochs=config.epochs, max_steps=config.max_steps, learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        max_length=config.max_length, completion_only_loss=True, packing=False, logging_steps=config.logging_steps,
        save_steps=config.save_steps, save_total_limit=2, seed=config.seed, use_cpu=config.use_cpu, report_to=[],
        bf16=False,
    )
    peft_config = None
    if config.lora_r > 0:
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=config.model, args=args, train_dataset=HFDataset.from_list(rows), processing_class=tokenizer,
                         peft_config=peft_config)
    resumed_from = latest_checkpoint(out)
    trainer.train(resume_from_checkpoint=resumed_from)
    return finish_run(out, trainer, tokenizer, resumed_from, examples=len(rows))
