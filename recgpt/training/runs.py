"""What every training run shares: its run directory's config file and resume point."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any


def start_run(output_dir: Path, config: Any) -> Path:
    """Create the run directory and write the exact config the run uses (`run_config.json`)."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "run_config.json").write_text(json.dumps(asdict(config), indent=2, default=str))
    return out


def complete_checkpoints(run: Path) -> list[Path]:
    """The run's `checkpoint-N` folders the trainer finished writing (its state file is written last), oldest first."""
    found = [p for p in Path(run).glob("checkpoint-*") if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def latest_checkpoint(out: Path) -> str | None:
    """The newest complete `checkpoint-N` of a run (where a rerun resumes), or None. A checkpoint a kill cut short
    (no `trainer_state.json`, which the trainer writes last) is passed over for the one before it."""
    checkpoints = complete_checkpoints(Path(out))
    return str(checkpoints[-1]) if checkpoints else None


def finish_run(out: Path, trainer: Any, tokenizer: Any, resumed_from: str | None, **extra: Any) -> Path:
    """Save the final model/adapter with its tokenizer and the trainer's log as `metrics.json`."""
    final = Path(out) / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    metrics = {"log_history": trainer.state.log_history, "global_step": trainer.state.global_step,
               "resumed_from": resumed_from, **extra}
    (Path(out) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return final
