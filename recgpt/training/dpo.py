"""`recgpt train dpo`: preference optimisation (TRL `DPOTrainer`) on an offline round's best-versus-worst pairs.

The pairs come from `recgpt train sample-round` (`dpo-crs.jsonl` or `dpo-sum.jsonl`): answers the served policy itself
sampled under the serving grammar, so DPO stays on-policy for one round, and the reference is that same policy (the
adapter-disabled model): the implicit KL anchors each round to the weights that drew its samples, which is what keeps
a round from collapsing onto one answer the way the GRPO runs without a KL term did.

Prompts are long (the user context) and answers short, so sequences are truncated from the start
(`truncation_mode="keep_end"`): the answer is never cut.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recgpt.errors import RecGPTError
from recgpt.training.configs import DPORunConfig
from recgpt.training.runs import finish_run, latest_checkpoint, start_run

PAIR_KEYS = ("prompt", "chosen", "rejected")


def load_pairs(path: str | Path) -> list[dict[str, Any]]:
    """The pairs of a rows file, TRL's keys only; a clear error for a file that is not one."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise RecGPTError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(row, dict) or any(k not in row for k in PAIR_KEYS):
            raise RecGPTError(f"{path}:{number}: a DPO pair needs {', '.join(PAIR_KEYS)}")
        rows.append({k: row[k] for k in PAIR_KEYS})
    if not rows:
        raise RecGPTError(f"{path} holds no pairs: the round's answers all scored alike (see its summary.json)")
    return rows


def run_dpo(config: DPORunConfig, rows: list[dict[str, Any]] | None = None) -> Path:
    """Train; returns the directory of the final adapter."""
    # deferred: datasets, transformers, peft and trl (torch: seconds to import; the CLI imports this module)
    from datasets import Dataset as HFDataset
    from transformers import AutoTokenizer
    from trl import DPOTrainer

    from recgpt.training.grpo import tokenizer_source
    from recgpt.training.sft import use_bf16
    from recgpt.training.trainer_configs import DPOTrainerConfig, trainer_config

    rows = rows if rows is not None else load_pairs(config.rows_file)
    out = start_run(config.output_dir, config)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_source(config.model))
    args = trainer_config(DPOTrainerConfig, config, truncation_mode="keep_end", save_total_limit=2, report_to=[],
                          bf16=use_bf16(config.precision, config.use_cpu),
                          model_init_kwargs={"dtype": "float32"} if config.precision == "float32" else None)
    model: Any = config.model
    peft_config = None
    if (Path(config.model) / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM  # deferred: peft (imports torch)

        model = AutoPeftModelForCausalLM.from_pretrained(config.model, is_trainable=True)
    else:
        from peft import LoraConfig  # deferred: peft (imports torch)

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=args, train_dataset=HFDataset.from_list(rows), processing_class=tokenizer,
                         peft_config=peft_config)
    resumed_from = latest_checkpoint(out)
    trainer.train(resume_from_checkpoint=resumed_from)
    return finish_run(out, trainer, tokenizer, resumed_from, examples=len(rows))
