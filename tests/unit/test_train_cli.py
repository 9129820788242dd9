"""`recgpt train ...` options come from the config dataclasses (`recgpt/training/configs.py`): every field is an
option carrying the field's help, the option names of the hand-written CLI are kept, and a command runs the config
built from them. The TRL fields a run config exposes are TRL's own, and its TRL config subclass holds them all."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from typer.testing import CliRunner

from recgpt.errors import RecGPTError
from recgpt.training import cli
from recgpt.training.configs import (
    TRAINER_FIELDS,
    AdaptorTrainConfig,
    GRPOOptions,
    GRPORunConfig,
    RewardDataConfig,
    RewardOptions,
    RewardRunConfig,
    SFTOptions,
    SFTRunConfig,
)

# the TRL fields, named as TRL names them, under the options the hand-written CLI gave them
TRL_OPTIONS = {"output_dir": "out", "use_cpu": "cpu", "num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size",
               "gradient_accumulation_steps": "grad_accum", "lr_scheduler_type": "lr_schedule"}
# command -> (config, the fields whose option has another name: the CLI's names from before the options were generated)
COMMANDS: dict[str, tuple[type, dict[str, str]]] = {
    "sft": (SFTRunConfig, TRL_OPTIONS),
    "reward-data": (RewardDataConfig, {"output": "out", "judge_mode": "judge"}),
    "reward": (RewardRunConfig, {**TRL_OPTIONS, "loss_type": "loss", "per_device_train_batch_size": "groups_per_batch"}),
    "grpo": (GRPORunConfig, TRL_OPTIONS),
    "adaptor": (AdaptorTrainConfig, {"output_dir": "out"}),
}
# every option of the trainer commands, as the hand-written CLI had them
OPTIONS = {
    "sft": "batch_size cpu dataset epochs export_rows future grad_accum grounding learning_rate logging_steps lora_alpha lora_r "
           "max_length max_steps max_users model out precision rows_file save_steps seed tags_per_expert",
    "grpo": "align_gate batch_size beta collapse_patience collapse_share constrained cpu dataset depth envelope epsilon epsilon_high future "
            "grad_accum grounding learning_rate len_gate level logging_steps lora_alpha lora_r loss_type lr_schedule "
            "max_completion_length max_steps max_users model num_generations out precision reward reward_model reward_table save_steps "
            "scale_rewards seed shaping tags_per_expert temperature",
    "reward": "cpu dtype epochs groups groups_per_batch held_out learning_rate logging_steps loss max_length mixed_only model out "
              "save_steps seed",
}

# options a command declares beside its config: modes of the command, not knobs of the run
COMMAND_ONLY: dict[str, set[str]] = {"sft": {"export_rows"}}


def _options(command: str) -> dict[str, Any]:
    group = typer.main.get_command(cli.train_cli)
    return {p.name: p for p in group.commands[command].params}  # type: ignore[attr-defined]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_config_field_is_an_option_with_its_help(command: str) -> None:
    config_cls, renamed = COMMANDS[command]
    options = _options(command)
    fields = dataclasses.fields(config_cls)
    assert set(options) - COMMAND_ONLY.get(command, set()) == {renamed.get(f.name, f.name) for f in fields}
    for f in fields:
        option = options[renamed.get(f.name, f.name)]
        assert f.metadata["help"] and option.help.startswith(f.metadata["help"]), (command, f.name)


@pytest.mark.parametrize("command", sorted(OPTIONS))
def test_a_trainer_command_exposes_the_same_options_as_before(command: str) -> None:
    assert set(_options(command)) == set(OPTIONS[command].split())


@pytest.mark.parametrize("config_cls,options_cls,trl_config", [
    (SFTRunConfig, SFTOptions, "SFTConfig"), (GRPORunConfig, GRPOOptions, "GRPOConfig"),
    (RewardRunConfig, RewardOptions, "TrainingArguments")])
def test_a_run_config_is_recgpts_own_fields_and_trl_fields_under_trl_names(config_cls: type, options_cls: type,
                                                                          trl_config: str) -> None:
    import transformers
    import trl

    from recgpt.training import trainer_configs

    trl_fields = {f.name for f in dataclasses.fields(getattr(trl, trl_config, None) or getattr(transformers, trl_config))}
    own = {f.name for f in dataclasses.fields(options_cls)}
    exposed = {f.name for f in dataclasses.fields(config_cls)} - own
    assert exposed <= set(TRAINER_FIELDS) and exposed <= trl_fields and not own & trl_fields
    trainer_cls = {"SFTConfig": trainer_configs.SFTTrainerConfig, "GRPOConfig": trainer_configs.GRPOTrainerConfig,
                   "TrainingArguments": trainer_configs.RewardTrainerConfig}[trl_config]
    run = config_cls(**{"model": "m", "output_dir": Path("run"), **({"groups": Path("g.jsonl")} if "groups" in own else {})})
    args = trainer_configs.trainer_config(trainer_cls, run, report_to=[])
    assert {f.name for f in dataclasses.fields(trainer_cls)} == trl_fields | own
    assert all(getattr(args, name) == (str(value) if isinstance(value, Path) else value)
               for name, value in dataclasses.asdict(run).items())


def test_option_names_and_defaults_of_the_hand_written_cli_are_kept() -> None:
    sft = _options("sft")
    assert sft["out"].required and sft["out"].opts == ["--out"]
    assert sft["model"].default is None and not sft["model"].required
    assert sft["cpu"].opts == ["--cpu"] and sft["cpu"].secondary_opts == ["--no-cpu"] and sft["cpu"].default is True
    assert sft["grad_accum"].opts == ["--grad-accum"] and sft["grad_accum"].default == 4
    assert _options("reward")["loss"].opts == ["--loss"] and _options("reward")["loss"].default == "listwise"
    assert _options("reward-data")["judge"].opts == ["--judge"] and _options("reward-data")["max_users"].default == 24
    assert _options("grpo")["model"].required and _options("grpo")["max_users"].default == 256
    assert _options("adaptor")["out"].default is None and not _options("adaptor")["out"].required
    assert "--out" in CliRunner().invoke(cli.train_cli, ["sft", "--help"], terminal_width=200).output


def test_a_command_runs_the_config_built_from_its_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from recgpt.tools.serving import model_prep
    from recgpt.training import sft

    resolved, ran = [], []
    monkeypatch.setattr(model_prep, "resolve_model", lambda value, models_dir: resolved.append(value) or tmp_path / "base")
    monkeypatch.setattr(sft, "run_sft", lambda config: ran.append(config) or tmp_path / "final")
    result = CliRunner().invoke(cli.train_cli, ["sft", "--out", str(tmp_path / "run"), "--no-cpu", "--grad-accum", "2", "--lora-alpha", "8"])
    assert result.exit_code == 0, result.output
    assert resolved == [None]  # no --model: the default policy model
    assert ran == [SFTRunConfig(model=str(tmp_path / "base"), output_dir=tmp_path / "run", gradient_accumulation_steps=2, lora_alpha=8,
                                use_cpu=False)]


def test_a_choice_is_checked_before_the_model_is_prepared(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from recgpt.tools.serving import model_prep

    monkeypatch.setattr(model_prep, "resolve_model", lambda *a: pytest.fail("model prepared before the check"))
    result = CliRunner().invoke(cli.train_cli, ["grpo", "--model", "m", "--out", str(tmp_path), "--shaping", "max"])
    assert isinstance(result.exception, RecGPTError) and str(result.exception) == "--shaping must be crs or sum (got 'max')"


def test_options_from_keeps_cli_only_options() -> None:
    @dataclasses.dataclass(kw_only=True)
    class Toy:
        size: int = dataclasses.field(default=3, metadata={"help": "How many."})
        names: list[str] = dataclasses.field(default_factory=list, metadata={"help": "Which."})
        path: Path = dataclasses.field(metadata={"help": "Where."})

    seen = []
    app = typer.Typer()

    @app.command()
    @cli.options_from(Toy, path=cli.CliField(name="to", convert=Path.resolve, note="Resolved."))
    def toy(config: Toy, dry_run: bool = typer.Option(False, help="CLI only.")) -> None:
        seen.append((config, dry_run))

    result = CliRunner().invoke(app, ["--to", "x", "--size", "5", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert seen == [(Toy(size=5, path=Path("x").resolve()), True)]
    options = {p.name: p for p in typer.main.get_command(app).params}
    assert options["to"].help == "Where. Resolved." and options["dry_run"].help == "CLI only."
    with pytest.raises(TypeError, match="no field"):
        cli.options_from(Toy, nope=cli.CliField())


def test_grpo_starts_from_an_sft_adapter_folder_and_names_a_missing_base(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`train grpo --model` takes an SFT run's `final` (adapter files only, no config.json): the chain passes exactly that."""
    import json

    from recgpt.training import grpo

    base = tmp_path / "base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    adapter = tmp_path / "sft" / "final"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    ran = []
    monkeypatch.setattr(grpo, "real_tag_rewards", lambda config: None)
    monkeypatch.setattr(grpo, "rollout_schema", lambda config: None)
    monkeypatch.setattr(grpo, "run_grpo", lambda config, rewards, schema=None: ran.append(config) or tmp_path / "final")
    result = CliRunner().invoke(cli.train_cli, ["grpo", "--model", str(adapter), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert ran[0].model == str(adapter) and grpo.tokenizer_source(adapter) == str(base)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/gone/base-model"}))
    # rich boxes the error at its own width (not CliRunner's terminal_width), so where lines wrap depends on tmp_path
    result = CliRunner().invoke(cli.train_cli, ["grpo", "--model", str(adapter), "--out", str(tmp_path / "run")])
    flat = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code != 0 and "names base model '/gone/base-model', which is not a model folder here" in flat
