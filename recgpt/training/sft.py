"""`recgpt train sft`: supervised fine-tuning of the expert on training-prefix cuts (TRL `SFTTrainer`).

Loss only on the completion (the expert's JSON), LoRA by default (a few MB to ship; merged at export).
The run directory holds the config, the trainer's checkpoints (resume is automatic), logs and metrics.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from recgpt.data import load_dataset
from recgpt.training.configs import SFTRunConfig
from recgpt.training.datasets import grounding_vocabulary, sft_example, training_cuts
from recgpt.training.runs import finish_run, latest_checkpoint, start_run


def build_sft_rows(config: SFTRunConfig) -> list[dict[str, Any]]:
    data = load_dataset(config.dataset)
    cuts = training_cuts(data, future=config.future)
    if config.max_users is not None and config.max_users < len(cuts):
        cuts = random.Random(config.seed).sample(cuts, config.max_users)
    vocabulary = grounding_vocabulary(data, config.grounding)
    return [sft_example(data, cut, config.tags_per_expert, vocabulary=vocabulary) for cut in cuts]


def use_bf16(precision: str, use_cpu: bool) -> bool:
    """bf16 autocast: on CPUs with AVX512-BF16/AMX-BF16 (as vLLM's auto dtype), on GPUs that support it."""
    if precision != "auto":
        return precision == "bfloat16"
    if use_cpu:
        from recgpt.tools.server import default_dtype

        return default_dtype() == "bfloat16"
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


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
        bf16=use_bf16(config.precision, config.use_cpu),
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
