"""`recgpt train ...`: the training package's commands. A command that runs a config dataclass
(`recgpt/training/configs.py`) gets one option per field, with the field's type, default and
`metadata["help"]`, as TRL's `TrlParser` (HfArgumentParser) does: the dataclass is the one place an option
is declared and documented. Each run directory holds the config, checkpoints, logs and metrics; rerunning a
command with the same `--out` resumes from its newest checkpoint."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import shlex
import shutil
import signal
import sys
import typing
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console

from recgpt.errors import RecGPTError
from recgpt.services.resources import default_registry
from recgpt.settings import get_settings
from recgpt.tools.serving import model_prep
from recgpt.tools.serving.policy import POLICIES_DIR, dataset_key, ship_policy
from recgpt.training import sft
from recgpt.training.chain_report import write_chain_report
from recgpt.training.configs import (
    AdaptorTrainConfig,
    DPORunConfig,
    GRPORunConfig,
    RewardDataConfig,
    RewardRunConfig,
    SampleRoundConfig,
    SFTRunConfig,
)
from recgpt.training.export import export_model
from recgpt.training.stage_report import summarise_stage, write_stage_report

train_cli = typer.Typer(help="Training package: SFT, Judge-as-a-Reward, GRPO, export, report (see recgpt/training).",
                        no_args_is_help=True)
console = Console()
_FIELD_DEFAULT: Any = object()


@dataclasses.dataclass(frozen=True)
class CliField:
    """How a config field's option differs from the field itself; everything else comes from the field."""

    name: str | None = None  # the option as a Python name (`out` is --out; a bool `cpu` is --cpu/--no-cpu); else the
    # field's metadata["option"], else the field's name
    default: Any = _FIELD_DEFAULT  # None: optional on the command line, the command fills the field in
    note: str = ""  # appended to the field's help
    convert: Callable[[Any], Any] | None = None  # applied to the given value before the config is built


def options_from(config_cls: type, **cli_fields: CliField) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Decorator: the command takes one typer option per field of `config_cls` and is called with the config
    built from them (`command(config, **its own options)`). An option carries the field's type, default and
    `metadata["help"]`, and its name from `metadata["option"]` where the field has one; a field with
    `metadata["choices"]` is checked before any conversion runs. The command's own parameters after `config` stay
    CLI-only options (typer.Option defaults, as usual)."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    if unknown := set(cli_fields) - set(fields):
        raise TypeError(f"{config_cls.__name__} has no field {sorted(unknown)}")
    hints = typing.get_type_hints(config_cls)
    option_of = {name: cli_fields.get(name, CliField()).name or f.metadata.get("option") or name for name, f in fields.items()}

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        params, field_of = [], {}
        for f in fields.values():
            cli = cli_fields.get(f.name, CliField())
            default = cli.default if cli.default is not _FIELD_DEFAULT else (
                f.default if f.default is not dataclasses.MISSING
                else f.default_factory() if f.default_factory is not dataclasses.MISSING else ...)
            annotation = Optional[hints[f.name]] if default is None else hints[f.name]
            help_text = " ".join(text for text in (f.metadata.get("help", ""), cli.note) if text)
            name = option_of[f.name]
            field_of[name] = f.name
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                            default=typer.Option(default, help=help_text)))
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in list(inspect.signature(command).parameters.values())[1:]]

        @functools.wraps(command)
        def run(**values: Any) -> None:
            given = {field_of[name]: values.pop(name) for name in list(values) if name in field_of}
            for name, value in given.items():
                choices = fields[name].metadata.get("choices")
                if choices and value is not None and value not in choices:
                    option = "--" + option_of[name].replace("_", "-")
                    raise RecGPTError(f"{option} must be {' or '.join(choices)} (got {value!r})")
            for name, cli in cli_fields.items():
                if cli.convert is not None:
                    given[name] = cli.convert(given[name])
            command(config_cls(**given), **values)

        run.__signature__ = inspect.Signature(params + own)  # type: ignore[attr-defined]
        # typer reads the type hints too (string annotations of the command's own options resolve in its module)
        run.__annotations__ = {p.name: p.annotation for p in params + own}
        return run

    return decorate


def _base_model(model: Optional[str]) -> str:
    """`--model`: a registry name or a model folder; None is the default policy model (prepared on first use)."""
    with console.status("preparing the base model (first run only)"):
        return str(model_prep.resolve_model(model, get_settings().models_dir))


def _starting_policy(model: Optional[str]) -> str:
    """GRPO's `--model`: a LoRA adapter folder (an SFT run's `final`, trained further) or what `_base_model` takes.
    An adapter whose recorded base folder is gone fails here, in one line, instead of deep inside PEFT."""
    path = Path(model).expanduser() if model else None
    if path is not None and (path / "adapter_config.json").is_file():
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path", "")
        if not (Path(base) / "config.json").is_file():
            raise typer.BadParameter(f"the adapter {path} names base model {base!r}, which is not a model folder here: "
                                     "point its adapter_config.json base_model_name_or_path at the prepared base "
                                     "(scripts/train_chain.sh does this when it restores the shipped SFT adapter)")
        return str(path)
    return _base_model(model)


OUT = CliField(name="out", note="Rerun with the same --out to resume.")
MODEL = CliField(default=None, convert=_base_model,
                 note="A registry name or a folder (default: the default policy model, prepared on first use).")


@train_cli.command("sft")
@options_from(SFTRunConfig, model=MODEL, output_dir=OUT)
def train_sft(config: SFTRunConfig, export_rows: Optional[Path] = typer.Option(
        None, help="Only write the examples (JSONL) and the run's config beside them, for `python -m recgpt.training.sft` "
                   "on another machine (a GPU box); no training here.")) -> None:
    """Supervised fine-tuning of the expert on training-prefix cuts (no held-out target is ever used)."""
    if export_rows is not None:
        written = sft.export_rows(config, export_rows)
        console.print(f"{written['rows']} examples in {export_rows} (sha256 {written['sha256'][:12]}), config {written['config']}; "
                      f"train with: python -m recgpt.training.sft {written['config']} model=DIR output_dir=DIR use_cpu=false")
        return
    final = sft.run_sft(config)
    console.print(f"SFT done: {final} (metrics in {config.output_dir / 'metrics.json'}); serve it after `recgpt train export`")


@train_cli.command("reward-data")
@options_from(RewardDataConfig, output=OUT, judge_mode=CliField(name="judge"))
def train_reward_data(config: RewardDataConfig) -> None:
    """Sample policy answers from the served model (RECGPT_BASE_URL) and grade them with the judge: reward groups."""
    # deferred: langgraph and torch, through the judge and the reward groups (`recgpt train --help` stays light)
    from recgpt.training.reward_data import build_reward_data

    summary = build_reward_data(config)
    console.print(f"{summary['groups']} groups ({summary['groups_with_mixed_grades']} with mixed judge grades), grades {summary['grades']}, "
                  f"{summary['shuffled_negatives']} shuffled negatives, "
                  f"{summary['failed_samples']} failed samples, judge abstained on {summary['judge_abstained']}; wrote {config.output}")


@train_cli.command("reward-table")
def train_reward_table(
    out: Path = typer.Option(..., help="Where the table goes (JSON): GRPO's prompts and their precomputed dense reward."),
    dataset: str = typer.Option("office", help="office, movielens or a JSONL dataset folder."),
    max_users: int = typer.Option(500, min=1, help="Prompts: validation-target cuts, as `sample-round` draws them."),
    seed: int = typer.Option(2, help="Seed of the prompt sample (the same seed as a round gives the same prompts)."),
    tags_per_expert: int = typer.Option(5, min=1, help="M: tags in each answer."),
    level: str = typer.Option("l2", help="Category level of R_acc."),
    round_dir: Optional[Path] = typer.Option(None, "--round", help=(
        "A scored `sample-round` folder of the same prompts: measure how the table's reward agrees with the exact one "
        "(written beside the table as <out>.agreement.json).")),
) -> None:
    """Precompute the dense reward per prompt (served retriever, no LLM), so `recgpt train grpo --reward-table` or
    `python -m recgpt.training.reward_table` runs GRPO where recgpt's retrieval stack is absent (a lent GPU)."""
    from recgpt.training.reward_table import agreement, build_reward_table  # deferred: the serving stack
    from recgpt.training.sample_round import ROUND_GATES

    table = build_reward_table(dataset, max_users, seed, tags_per_expert, level=level)
    table.save(out)
    console.print(f"reward table: {len(table.prompts)} prompts, {len(table.labels)} categories -> {out}")
    if round_dir is not None:
        measured = agreement(table, round_dir, ROUND_GATES)
        out.with_name(out.name + ".agreement.json").write_text(json.dumps(measured, indent=2) + "\n")
        console.print(f"agreement with {round_dir} over {measured['answers']} answers: r_rank Spearman "
                      f"{measured['rank']['spearman']}, CRS {measured['crs']['spearman']}, SUM {measured['sum']['spearman']}; "
                      f"same best answer CRS {measured['same_best_answer']['crs']}, SUM {measured['same_best_answer']['sum']}")


@train_cli.command("sample-round")
@options_from(SampleRoundConfig, output=OUT)
def train_sample_round(config: SampleRoundConfig) -> None:
    """One offline round: G answers + a greedy one per training prompt from the served policy (RECGPT_BASE_URL) under
    the serving grammar, scored with the dense reward; writes RFT rows and DPO pairs (CRS and SUM); resumable."""
    # deferred: langgraph, Chroma and SASRec, through the served retriever (`recgpt train --help` stays light)
    from recgpt.training.sample_round import build_sample_round

    summary = build_sample_round(config)
    zero = summary["zero_std_share"]
    console.print(f"{summary['prompts']} prompts, {summary['answers']} answers ({summary['failed_answers']} failed); groups "
                  f"without a reward difference: CRS sparse {zero['crs-sparse']:.2f} -> dense {zero['crs-dense']:.2f}, SUM "
                  f"sparse {zero['sum-sparse']:.2f} -> dense {zero['sum-dense']:.2f}; rows {summary['rows']}; the chosen "
                  f"answers' top category {summary['collapse']['chosen_top_share']:.0%}; wrote {config.output}")


@train_cli.command("dpo")
@options_from(DPORunConfig, model=MODEL, output_dir=OUT)
def train_dpo(config: DPORunConfig) -> None:
    """DPO (TRL) on an offline round's pairs (`sample-round`'s dpo-crs.jsonl or dpo-sum.jsonl), LoRA, the sampling
    policy as reference; rerun with the same --out to resume."""
    from recgpt.training.dpo import run_dpo  # deferred: torch, transformers and TRL (`recgpt train --help` stays light)

    final = run_dpo(config)
    console.print(f"DPO done: {final}")


@train_cli.command("reward")
@options_from(RewardRunConfig, model=MODEL, output_dir=OUT, loss_type=CliField(name="loss"),
              per_device_train_batch_size=CliField(name="groups_per_batch"))
def train_reward(config: RewardRunConfig) -> None:
    """Train the Judge-as-a-Reward model (value head, reward = sigmoid(score)); report held-out ranking accuracy."""
    # deferred: torch and transformers, through the reward model (`recgpt train --help` stays light)
    from recgpt.training.reward_train import run_reward

    result = run_reward(config)
    console.print(f"reward model ({config.loss_type}) done: {result['final']}; held-out ranking accuracy "
                  f"{result['ranking_accuracy_before']:.3f} -> {result['ranking_accuracy_after']:.3f} "
                  f"on {result['held_out_pairs']} pairs of {result['held_out_groups']} groups; on the judge's own pairs only "
                  f"{result['ranking_accuracy_after_judge_pairs']:.3f} ({result['held_out_judge_pairs']} pairs)")


@train_cli.command("grpo")
@options_from(GRPORunConfig, model=CliField(convert=_starting_policy, note="An SFT run's adapter folder, a model folder or a registry name."),
              output_dir=OUT)
def train_grpo(config: GRPORunConfig) -> None:
    """GRPO (TRL GRPOTrainer) with the CRS or SUM tag reward; every component and gate pass rate is logged."""
    # deferred: langgraph and the LLM client, through the dataset code (`recgpt train --help` stays light)
    from recgpt.training.grpo import real_tag_rewards, rollout_schema, run_grpo

    if config.reward_table:
        from recgpt.training.reward_table import run_table_grpo

        final = run_table_grpo(config)
    else:
        final = run_grpo(config, real_tag_rewards(config), schema=rollout_schema(config))
    console.print(f"GRPO-{config.shaping.upper()} done: {final} (metrics in {config.output_dir / 'metrics.json'})")


@train_cli.command("export")
def train_export(
    trained: Path = typer.Argument(..., help="A training output (LoRA adapter or full model directory)."),
    out: Path = typer.Option(..., help="Directory to write the servable Hugging Face model to."),
) -> None:
    """Merge a LoRA adapter into its base (or copy a full model) into a directory `recgpt serve --model` serves."""
    if not trained.is_dir():
        raise RecGPTError(f"{trained} is not a directory")
    console.print(f"exported to {export_model(trained, out)}; serve with `recgpt serve --model {out}`")


@train_cli.command("ship")
def train_ship(
    adapter: Path = typer.Argument(..., help="A LoRA training output (the `final` folder of an SFT or GRPO run)."),
    base: str = typer.Option(None, help="Registry name of the base the adapter was trained on (default: the default model)."),
    name: str = typer.Option(..., help="The policy's name in its card, e.g. office-grpo-crs."),
    metrics: Optional[Path] = typer.Option(None, help="A JSON file of the policy's measured metrics, copied into the card."),
    out: Optional[Path] = typer.Option(None, help="Where to write it (default: recgpt/policies/<base>/<dataset>, what serve uses)."),
) -> None:
    """Ship a trained LoRA adapter as the policy of its (base, dataset): adapter, sha256, base identity, configs, data hash.
    The dataset is the one its run trained on (its run_config.json); `recgpt serve --dataset` then serves it."""
    base_name = base or model_prep.DEFAULT_MODEL
    if not adapter.is_dir():
        raise RecGPTError(f"{adapter} is not a directory")
    configs = {}
    for run_config in sorted(adapter.parent.parent.glob("*/run_config.json")):  # the chain's stages beside this run
        configs[run_config.parent.name] = json.loads(run_config.read_text())
    own = adapter.parent / "run_config.json"
    dataset = json.loads(own.read_text()).get("dataset", "office") if own.is_file() else "office"
    card = ship_policy(adapter, model_prep.model_dir(get_settings().models_dir, base_name),
                       out or POLICIES_DIR / base_name / dataset_key(dataset), name,
                       training=configs, data_hash=f"{dataset_key(dataset)}:{default_registry().dataset(dataset).content_hash()}",
                       metrics=json.loads(metrics.read_text()) if metrics else {}, dataset=dataset)
    console.print(f"shipped {card.name} ({card.adapter_bytes / 2**20:.1f} MiB, sha256 {card.adapter_sha256[:12]}…) for "
                  f"{base_name} on {card.dataset}")


@train_cli.command("report")
def train_report(
    runs: Path = typer.Option(..., help="The chain's run folder (RUNS of scripts/train_chain.sh)."),
    out: Path = typer.Option(Path("reports"), help="Report folder (stage evals are read from <out>/training/<stage>/)."),
    dataset: str = typer.Option("office", help="Dataset of the chain."),
) -> None:
    """Write reports/training-chain-<dataset>.md/.json/.png from what the chain's commands wrote."""
    if not runs.is_dir():
        raise RecGPTError(f"{runs} is not a directory")
    md, _, png = write_chain_report(runs, out, dataset)
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@train_cli.command("chain")
def train_chain(
    dataset: str = typer.Option("office", help="office, movielens or a JSONL dataset folder: the policy trained here ships for it."),
    base: str = typer.Option(None, help="Registry name of the base model (default: the default model)."),
    runs: Optional[Path] = typer.Option(None, help="Machine-local run folders (default: RECGPT_HOME/train/chain-<dataset>)."),
    ledger: Optional[Path] = typer.Option(None, help="What is committed: stage times, samples, eval reports (default: reports/training/chain-<dataset>)."),
    out: Path = typer.Option(Path("reports"), help="Where the report goes (training-chain-<dataset>.md/.json)."),
    eval_users: int = typer.Option(500, min=1, help="Test users per policy (the report; never decides)."),
    val_users: int = typer.Option(200, min=1, help="Validation users per policy (what ships is decided here)."),
    k: int = typer.Option(5, min=1, help="Tags per expert answer = K of cat HR@K."),
    sft_users: int = typer.Option(2000, min=1, help="SFT examples when SFT is trained here."),
    sft_from_shipped: bool = typer.Option(True, help="Reuse the SFT policy shipped for (base, dataset) instead of training one (~8 h on 2 cores)."),
    rounds: int = typer.Option(2, min=0, help="Offline rounds per shaping."),
    prompts: int = typer.Option(500, min=1, help="Prompts per offline round."),
    samples: int = typer.Option(8, min=2, help="Answers per prompt (G)."),
    dpo_steps: int = typer.Option(24, min=1, help="DPO optimiser steps per round (x grad_accum 8 pairs; ~40 s a pair on 2 cores)."),
    shapings: str = typer.Option("crs,sum", help="Comma-separated reward shapings whose pairs train a round each."),
    grpo: bool = typer.Option(False, help="Add GRPO from SFT (KL towards it; a lent GPU's stage: pass --train-flag --no-cpu)."),
    grpo_steps: int = typer.Option(200, min=1, help="GRPO optimiser steps."),
    full_graph: bool = typer.Option(True, help="Also evaluate the base and the shipped policy in the full graph on test."),
    ship: bool = typer.Option(True, help="Ship the validation-best policy if it beats the base on validation."),
    train_flag: list[str] = typer.Option([], "--train-flag", help="Passed to every training command (repeatable), e.g. --train-flag --no-cpu."),
    dry_run: bool = typer.Option(False, help="Print the stages (done or to run) and their commands, run nothing."),
) -> None:
    """base -> SFT -> offline rounds (CRS and SUM) -> optional GRPO -> ship -> report, every stage resumable: a rerun
    skips what <ledger>/stages.json records and each command resumes on its own."""
    from recgpt.tools.serving.policy import load_card, shipped_policy
    from recgpt.training.chain import (
        ChainConfig,
        Ledger,
        SubprocessExecutor,
        keep_round_summaries,
        plan,
        run_chain,
        sft_was_restored,
    )
    from recgpt.training.chain_actions import restore_shipped_sft, ship_best, write_report

    base_name = base or model_prep.DEFAULT_MODEL
    key = dataset_key(dataset)
    unknown = [s for s in shapings.split(",") if s.strip() and s.strip() not in ("crs", "sum")]
    if unknown:
        raise RecGPTError(f"--shapings takes crs and/or sum (got {', '.join(unknown)})")
    config = ChainConfig(dataset=dataset, base=base_name, runs=runs or get_settings().home / "train" / f"chain-{key}",
                         ledger=ledger or Path("reports") / "training" / f"chain-{key}", eval_users=eval_users,
                         val_users=val_users, k=k, sft_users=sft_users, sft_from_shipped=sft_from_shipped, rounds=rounds,
                         prompts=prompts, samples=samples, dpo_steps=dpo_steps,
                         shapings=tuple(s.strip() for s in shapings.split(",") if s.strip()), grpo=grpo,
                         grpo_steps=grpo_steps, full_graph=full_graph, ship=ship, train_flags=list(train_flag))
    done = Ledger(config.ledger)
    shipped = shipped_policy(base_name, dataset)
    shipped_is_sft = shipped is not None and load_card(shipped).name.endswith("sft")
    reuse = sft_was_restored(config) or (sft_from_shipped and shipped_is_sft and not done.done("sft"))
    stages = plan(config, reuse)
    if dry_run:
        for stage in stages:
            mark = "done" if done.done(stage.name) else "to run"
            serve = "serve " + shlex.join(stage.serve) if stage.serve else "no server"
            console.print(f"[bold]{stage.name}[/] ({mark}; {serve})" + (f" first {stage.prepare}" if stage.prepare else "")
                          + (f" then {stage.action}" if stage.action else ""))
            for command in stage.commands:
                console.print("    recgpt " + shlex.join(command), soft_wrap=True)
        return
    actions = {"restore-sft": restore_shipped_sft, "ship": lambda c: ship_best(c, console.print),
               "report": lambda c: write_report(c, out, console.print), "keep-round": keep_round_summaries}
    machine = "GPU" if "--no-cpu" in train_flag else "2 CPU cores"

    def stopped(signum: int, frame: object) -> None:  # `kill` stops the chain as Ctrl-C does: the stage's store is kept
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stopped)
    ran = run_chain(config, stages, SubprocessExecutor(), actions, machine, console.print)
    console.print(f"chain on {key}: {len(ran)} stages run now, {len(stages) - len(ran)} done before; ledger {config.ledger}")


@train_cli.command("stage-report")
def train_stage_report(
    run: Path = typer.Option(..., help="The stage's run folder (its metrics.json and run_config.json)."),
    baseline: Path = typer.Option(..., help="`recgpt eval --out` folder of the starting policy."),
    candidate: Path = typer.Option(..., help="`recgpt eval --out` folder of the trained policy (same users, split, K)."),
    stage: str = typer.Option("sft", help="The stage's name in the report."),
    dataset: str = typer.Option("office", help="Dataset of the evals."),
    split: str = typer.Option("validation", help="Split of the evals (validation: where a stage is judged)."),
    methods: str = typer.Option("recgpt,blend", help="Comma-separated eval methods to compare."),
    out: Path = typer.Option(Path("reports"), help="Report folder: training-<stage>-<dataset>-<split>.md/.json/.png."),
) -> None:
    """A training stage against its starting policy on validation: loss curve, paired metric differences ± SE."""
    for folder in (run, baseline, candidate):
        if not folder.is_dir():
            raise RecGPTError(f"{folder} is not a directory")
    try:
        summary = summarise_stage(run, baseline, candidate, dataset, split, tuple(m.strip() for m in methods.split(",") if m.strip()), stage)
    except FileNotFoundError as exc:
        raise RecGPTError(str(exc)) from None
    md, _, png = write_stage_report(summary, out / f"training-{stage}-{dataset}-{split}", "recgpt " + shlex.join(sys.argv[1:]))
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@train_cli.command("adaptor")
@options_from(AdaptorTrainConfig, model=MODEL, output_dir=CliField(name="out", default=None, note=(
    "Default: RECGPT_HOME/adaptors/<model folder>-run, with the adaptor copied to the default place the "
    "hybrid runtime looks for it (RECGPT_HOME/adaptors/<model folder>).")))
def train_adaptor_command(config: AdaptorTrainConfig) -> None:
    """Train the hybrid-compression entity adaptor with the LLM frozen: self-perception Q&A + self-distillation."""
    # deferred: torch and transformers, through the adaptor and the hybrid runtime (`recgpt train --help` stays light)
    from recgpt.tools.context.hybrid import default_adaptor_dir
    from recgpt.training.adaptor import train_adaptor

    model_dir = Path(config.model).resolve()
    target = default_adaptor_dir(model_dir)
    default_place = config.output_dir is None
    run = config.output_dir or target.with_name(target.name + "-run")
    folder = train_adaptor(dataclasses.replace(config, model=str(model_dir), output_dir=run))
    metrics = json.loads((run / "metrics.json").read_text())["self_perception_heldout"]
    console.print("held-out self-perception accuracy: untrained {:.3f} -> trained {:.3f} (full-text title {:.3f}, chance {:.3f})".format(
        metrics["untrained_adaptor"]["accuracy"], metrics["trained_adaptor"]["accuracy"], metrics["full_text_title"]["accuracy"],
        metrics["trained_adaptor"]["chance"]))
    if default_place:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target)
        folder = target
    console.print(f"adaptor {folder}; use it with `recgpt serve --prompt-embeds` and `--compression hybrid`")
