"""The trainers' configs: TRL's own, subclassed with recgpt's own fields, so one object holds every knob of a run and
the trainer reads TRL's fields where TRL defines them.

A run config (`recgpt/training/configs.py`) already names the TRL fields it exposes as TRL does, so `trainer_config`
passes it over whole; what recgpt fixes and the command line does not expose (`save_total_limit`, `report_to`, ...)
is set beside it, by the training function. This module imports TRL and torch at its top: only a training function
imports it, when it trains.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from transformers import TrainingArguments
from trl import DPOConfig, GRPOConfig, SFTConfig

from recgpt.training.configs import DPOOptions, GRPOOptions, RewardOptions, SFTOptions

T = TypeVar("T", bound=TrainingArguments)


@dataclass(kw_only=True)
class SFTTrainerConfig(SFTConfig, SFTOptions):
    """TRL's `SFTConfig` with recgpt's own SFT fields."""


@dataclass(kw_only=True)
class GRPOTrainerConfig(GRPOConfig, GRPOOptions):
    """TRL's `GRPOConfig` with recgpt's own GRPO fields."""


@dataclass(kw_only=True)
class DPOTrainerConfig(DPOConfig, DPOOptions):
    """TRL's `DPOConfig` with recgpt's own DPO fields."""


@dataclass(kw_only=True)
class RewardTrainerConfig(TrainingArguments, RewardOptions):
    """transformers' `TrainingArguments` (the base of TRL's configs) with recgpt's own reward-model fields. The reward
    model trains with transformers' `Trainer` (`reward_model.GradedRewardTrainer`: graded groups, not pairs), not TRL's
    pairwise `RewardTrainer`; TRL's `RewardConfig` would turn gradient checkpointing and bf16 on by default and carry
    fields that only its own trainer reads (`disable_dropout`, `center_rewards_coefficient`)."""


def trainer_config(cls: type[T], run: Any, **settings: Any) -> T:
    """`cls` holding every field of the run config `run` (paths as strings, as `TrainingArguments` keeps its own, so
    its JSON form holds), then `settings`: what recgpt fixes."""
    fields = {name: str(value) if isinstance(value, Path) else value for name, value in asdict(run).items()}
    return cls(**{**fields, **settings})
