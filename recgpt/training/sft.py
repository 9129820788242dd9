"""`recgpt train sft`: supervised fine-tuning of the expert on training-prefix cuts (TRL `SFTTrainer`).

Loss only on the completion (the expert's JSON), LoRA by default (a few MB to ship; merged at export).
The run directory holds the config, the trainer's checkpoints (resume is automatic), logs and metrics.

A GPU run needs no serving stack: `recgpt train sft --export-rows rows.jsonl ...` writes the examples and the run's
config here; on the GPU machine, with only torch, transformers, peft, TRL and datasets installed,
`python -m recgpt.training.sft run_config.json` trains on them (this module imports the standard library alone until
it trains, and the dataset code only where it builds examples).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from recgpt.training.configs import SFTRunConfig
from recgpt.training.runs import finish_run, latest_checkpoint, start_run


def build_sft_rows(config: SFTRunConfig) -> list[dict[str, Any]]:
    """The run's examples: read from `config.rows_file`, else built from the dataset's training-prefix cuts."""
    if config.rows_file:
        return [json.loads(line) for line in Path(config.rows_file).read_text().splitlines() if line.strip()]
    from recgpt.data import load_dataset
    from recgpt.training.datasets import grounding_vocabulary, sft_example, training_cuts

    data = load_dataset(config.dataset)
    cuts = training_cuts(data, future=config.future)
    if config.max_users is not None and config.max_users < len(cuts):
        cuts = random.Random(config.seed).sample(cuts, config.max_users)
    vocabulary = grounding_vocabulary(data, config.grounding)
    return [sft_example(data, cut, config.tags_per_expert, vocabulary=vocabulary) for cut in cuts]


def export_rows(config: SFTRunConfig, path: Path) -> dict[str, Any]:
    """Write the run's examples (JSONL) and, beside them, the run's config pointing at them (`<path>.config.json`)."""
    rows = build_sft_rows(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    path.write_text(text)
    config_path = path.with_name(path.name + ".config.json")
    config_path.write_text(json.dumps({**asdict(config), "rows_file": path.name}, indent=2, default=str))
    return {"rows": len(rows), "sha256": hashlib.sha256(text.encode()).hexdigest(), "config": str(config_path)}


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
        # float32 means float32 weights too (else the checkpoint's bf16 weights would run un-autocast in bf16)
        model_init_kwargs={"dtype": "float32"} if config.precision == "float32" else None,
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


def _parse(key: str, raw: str) -> Any:
    """A command-line value as the config field's type (int, float, bool, str, or None for 'null')."""
    import typing

    hint = str(typing.get_type_hints(SFTRunConfig)[key])
    if raw == "null" and "None" in hint:
        return None
    if "bool" in hint:
        if raw.lower() not in ("true", "false"):
            raise ValueError(f"{key} must be true or false (got {raw!r})")
        return raw.lower() == "true"
    for kind in (int, float):
        if kind.__name__ in hint:
            return kind(raw)
    return raw


def main(argv: list[str]) -> int:
    """`python -m recgpt.training.sft RUN_CONFIG.json [KEY=VALUE ...]`: train from a config file (as `export_rows` wrote;
    `rows_file` relative to it), overriding fields, e.g. `model=/models/base output_dir=/runs/sft use_cpu=false
    batch_size=16 grad_accum=1`."""
    if not argv or argv[0] in ("-h", "--help"):
        print(main.__doc__)
        return 0 if argv else 2
    config_path = Path(argv[0])
    values = json.loads(config_path.read_text())
    for pair in argv[1:]:
        key, _, raw = pair.partition("=")
        if key not in values:
            print(f"error: unknown field {key!r}", file=sys.stderr)
            return 2
        values[key] = _parse(key, raw)
    if values.get("rows_file"):
        values["rows_file"] = str((config_path.parent / values["rows_file"]).resolve())
    config = SFTRunConfig(**{**values, "output_dir": Path(values["output_dir"])})
    final = run_sft(config)
    print(f"SFT done: {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
