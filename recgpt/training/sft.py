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
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from recgpt.errors import RecGPTError
from recgpt.loading import parse_value
from recgpt.training.configs import SFTRunConfig
from recgpt.training.runs import finish_run, latest_checkpoint, start_run


def build_sft_rows(config: SFTRunConfig) -> list[dict[str, Any]]:
    """The run's examples: read from `config.rows_file`, else built from the dataset's training-prefix cuts."""
    if config.rows_file:
        return [json.loads(line) for line in Path(config.rows_file).read_text().splitlines() if line.strip()]
    # deferred: the dataset and serving stack (a GPU box that trains on `rows_file` has the training stack only)
    from recgpt.services.resources import default_registry
    from recgpt.training.datasets import grounding_vocabulary, sft_example, training_cuts

    data = default_registry().dataset(config.dataset)
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
        from recgpt.tools.serving.server import default_dtype  # deferred: the serving stack (not on a GPU box)

        return default_dtype() == "bfloat16"
    import torch  # deferred: torch (seconds to import; exporting rows and the CLI need none of it)

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def run_sft(config: SFTRunConfig, rows: list[dict[str, Any]] | None = None) -> Path:
    """Train; returns the directory of the final adapter (LoRA) or model (full)."""
    # deferred: datasets, transformers and trl (torch: seconds to import; the CLI imports this module)
    from datasets import Dataset as HFDataset
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from recgpt.training.trainer_configs import SFTTrainerConfig, trainer_config

    out = start_run(config.output_dir, config)
    rows = rows if rows is not None else build_sft_rows(config)
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    args = trainer_config(
        SFTTrainerConfig, config, completion_only_loss=True, packing=False, save_total_limit=2, report_to=[],
        bf16=use_bf16(config.precision, config.use_cpu),
        # float32 means float32 weights too (else the checkpoint's bf16 weights would run un-autocast in bf16)
        model_init_kwargs={"dtype": "float32"} if config.precision == "float32" else None,
    )
    peft_config = None
    if config.lora_r > 0:
        from peft import LoraConfig  # deferred: peft (imports torch)

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=config.model, args=args, train_dataset=HFDataset.from_list(rows), processing_class=tokenizer,
                         peft_config=peft_config)
    resumed_from = latest_checkpoint(out)
    trainer.train(resume_from_checkpoint=resumed_from)
    return finish_run(out, trainer, tokenizer, resumed_from, examples=len(rows))


def field_names(cls: type[Any]) -> dict[str, str]:
    """The field each key names: its own name or its option's (`batch_size`, as `recgpt train sft --batch-size`;
    configs exported before the fields took TRL's names hold these)."""
    known = fields(cls)
    return {**{f.metadata["option"]: f.name for f in known if "option" in f.metadata}, **{f.name: f.name for f in known}}


def config_from_file(cls: type[Any], argv: list[str], relative: tuple[str, ...]) -> Any:
    """A run config from `RUN_CONFIG.json [KEY=VALUE ...]`: the file's fields, overridden (by a field's name or its
    `recgpt train` option's); the fields in `relative` are paths relative to the file. Raises RecGPTError."""
    config_path = Path(argv[0])
    known = fields(cls)
    names = field_names(cls)
    try:
        values = {names.get(key, key): value for key, value in json.loads(config_path.read_text()).items()}
    except (OSError, ValueError) as exc:
        raise RecGPTError(f"{config_path}: not a run config ({exc})") from None
    for pair in argv[1:]:
        key, _, raw = pair.partition("=")
        if key not in names:
            raise RecGPTError(f"unknown field {key!r}")
        values[names[key]] = parse_value(raw, typing.get_type_hints(cls)[names[key]], names[key])
    for name in relative:
        if values.get(name):
            values[name] = str((config_path.parent / values[name]).resolve())
    values = {k: v for k, v in values.items() if k in {f.name for f in known}}
    return cls(**{**values, "output_dir": Path(values["output_dir"])})


def main(argv: list[str]) -> int:
    """`python -m recgpt.training.sft RUN_CONFIG.json [KEY=VALUE ...]`: train from a config file (as `export_rows` wrote;
    `rows_file` relative to it), overriding fields (by the field's name or its `recgpt train sft` option's), e.g.
    `model=/models/base output_dir=/runs/sft use_cpu=false batch_size=16 grad_accum=1`."""
    if not argv or argv[0] in ("-h", "--help"):
        print(main.__doc__)
        return 0 if argv else 2
    try:
        config = config_from_file(SFTRunConfig, argv, ("rows_file",))
    except RecGPTError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    final = run_sft(config)
    print(f"SFT done: {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
