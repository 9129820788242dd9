"""`recgpt train ...`: the training package's commands. Each builds its config dataclass (every field
documented in `--help`) and writes a run directory with the config, checkpoints, logs and metrics.
Rerunning a command with the same `--out` resumes from its newest checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from recgpt.errors import RecGPTError

train_cli = typer.Typer(help="Training package: SFT, Judge-as-a-Reward, GRPO, export, report (see recgpt/training).",
                        no_args_is_help=True)
console = Console()


def _base_model(model: Optional[str]) -> str:
    """`--model`: a registry name or a model folder; None is the default policy model (prepared on first use)."""
    from recgpt.settings import get_settings
    from recgpt.tools.model_prep import resolve_model

    with console.status("preparing the base model (first run only)"):
        return str(resolve_model(model, get_settings().models_dir))


@train_cli.command("sft")
def train_sft(
    out: Path = typer.Option(..., help="Run directory (checkpoints, metrics, final adapter); rerun to resume."),
    model: Optional[str] = typer.Option(None, help="Base model: registry name or folder (default: the default policy model)."),
    dataset: str = typer.Option("office", help="Dataset whose training prefixes become examples."),
    max_users: Optional[int] = typer.Option(None, help="Subsample of training users."),
    tags_per_expert: int = typer.Option(5, help="M tags per target completion."),
    epochs: float = typer.Option(1.0, help="Passes over the examples."),
    max_steps: int = typer.Option(-1, help="Stop after N optimiser steps (-1: epochs decide)."),
    lora_r: int = typer.Option(16, help="LoRA rank (0 = full fine-tuning)."),
    learning_rate: float = typer.Option(2e-4, help="Learning rate."),
    batch_size: int = typer.Option(4, help="Per-device batch size."),
    grad_accum: int = typer.Option(4, help="Gradient accumulation steps."),
    cpu: bool = typer.Option(True, help="Force CPU (--no-cpu on GPU machines)."),
) -> None:
    """Supervised fine-tuning of the expert on training-prefix cuts (no held-out target is ever used)."""
    from recgpt.training.sft import SFTRunConfig, run_sft

    config = SFTRunConfig(model=_base_model(model), output_dir=out, dataset=dataset, max_users=max_users, epochs=epochs,
                          tags_per_expert=tags_per_expert, max_steps=max_steps, lora_r=lora_r, learning_rate=learning_rate,
                          batch_size=batch_size, grad_accum=grad_accum, use_cpu=cpu)
    final = run_sft(config)
    console.print(f"SFT done: {final} (metrics in {out / 'metrics.json'}); serve it after `recgpt train export`")


@train_cli.command("reward-data")
def train_reward_data(
    out: Path = typer.Option(..., help="Reward groups JSONL to write (a summary lands beside it); rerun to resume."),
    dataset: str = typer.Option("office", help="Dataset whose training prefixes give the prompts."),
    max_users: int = typer.Option(24, help="Prompts (training users) sampled."),
    samples: int = typer.Option(4, help="G answers sampled per prompt."),
    tags_per_expert: int = typer.Option(5, help="M tags per answer."),
    temperature: float = typer.Option(1.0, help="Sampling temperature of the answers."),
    judge: str = typer.Option("agent", help="agent (per-dimension evaluators + Senior Reviewer) or single."),
    seed: int = typer.Option(1, help="Seed of the user sample."),
    shuffled_negatives: int = typer.Option(0, help="In-batch negatives per group (other users' answers, graded Bad by construction)."),
    concurrency: int = typer.Option(16, help="LLM calls in flight."),
) -> None:
    """Sample policy answers from the served model (RECGPT_BASE_URL) and grade them with the judge: reward groups."""
    from recgpt.training.reward_data import RewardDataConfig, build_reward_data

    if judge not in ("agent", "single"):
        raise RecGPTError(f"--judge must be agent or single (got {judge!r})")
    summary = build_reward_data(RewardDataConfig(output=out, dataset=dataset, max_users=max_users, samples=samples,
                                                 tags_per_expert=tags_per_expert, temperature=temperature, judge_mode=judge,
                                                 seed=seed, shuffled_negatives=shuffled_negatives, concurrency=concurrency))
    console.print(f"{summary['groups']} groups ({summary['groups_with_mixed_grades']} with mixed judge grades), grades {summary['grades']}, "
                  f"{summary['shuffled_negatives']} shuffled negatives, "
                  f"{summary['failed_samples']} failed samples, judge abstained on {summary['judge_abstained']}; wrote {out}")


@train_cli.command("reward")
def train_reward(
    groups: Path = typer.Option(..., help="Reward groups JSONL (`recgpt train reward-data`)."),
    out: Path = typer.Option(..., help="Run directory; rerun to resume."),
    model: Optional[str] = typer.Option(None, help="Base model of the reward model: registry name or folder (default: the default policy model)."),
    loss: str = typer.Option("listwise", help="listwise or pointwise (the baseline)."),
    epochs: float = typer.Option(2.0, help="Passes over the training groups."),
    learning_rate: float = typer.Option(2e-5, help="Learning rate."),
    held_out: float = typer.Option(0.25, help="Share of groups held out for ranking accuracy."),
    seed: int = typer.Option(0, help="Seed of the split and training."),
    cpu: bool = typer.Option(True, help="Force CPU (--no-cpu on GPU machines)."),
) -> None:
    """Train the Judge-as-a-Reward model (value head, reward = sigmoid(score)); report held-out ranking accuracy."""
    from recgpt.training.reward_train import RewardRunConfig, run_reward

    if loss not in ("listwise", "pointwise"):
        raise RecGPTError(f"--loss must be listwise or pointwise (got {loss!r})")
    result = run_reward(RewardRunConfig(model=_base_model(model), groups=groups, output_dir=out, loss_type=loss, epochs=epochs,
                                        learning_rate=learning_rate, held_out=held_out, seed=seed, use_cpu=cpu))
    console.print(f"reward model ({loss}) done: {result['final']}; held-out ranking accuracy "
                  f"{result['ranking_accuracy_before']:.3f} -> {result['ranking_accuracy_after']:.3f} "
                  f"on {result['held_out_pairs']} pairs of {result['held_out_groups']} groups; on the judge's own pairs only "
                  f"{result['ranking_accuracy_after_judge_pairs']:.3f} ({result['held_out_judge_pairs']} pairs)")


@train_cli.command("grpo")
def train_grpo(
    model: str = typer.Option(..., help="Starting policy (an exported SFT model): also the KL reference."),
    out: Path = typer.Option(..., help="Run directory; rerun to resume."),
    shaping: str = typer.Option("crs", help="crs (gated accuracy) or sum (weighted sum baseline)."),
    reward_model: Optional[str] = typer.Option(None, help="Judge-as-a-Reward model dir (final/ of `recgpt train reward`)."),
    dataset: str = typer.Option("office", help="Dataset of the prompts."),
    max_users: int = typer.Option(256, help="Training users sampled for prompts."),
    tags_per_expert: int = typer.Option(5, help="M tags asked for."),
    num_generations: int = typer.Option(4, help="Group size G."),
    max_completion_length: int = typer.Option(256, help="Completion token limit."),
    max_steps: int = typer.Option(50, help="Optimiser steps."),
    batch_size: int = typer.Option(4, help="Completions per device batch (a multiple of G)."),
    beta: float = typer.Option(0.04, help="KL coefficient to the starting model."),
    learning_rate: float = typer.Option(1e-5, help="Learning rate."),
    seed: int = typer.Option(0, help="Seed."),
    cpu: bool = typer.Option(True, help="Force CPU (--no-cpu on GPU machines)."),
) -> None:
    """GRPO (TRL GRPOTrainer) with the CRS or SUM tag reward; every component and gate pass rate is logged."""
    from recgpt.training.grpo import GRPORunConfig, real_tag_rewards, run_grpo

    if shaping not in ("crs", "sum"):
        raise RecGPTError(f"--shaping must be crs or sum (got {shaping!r})")
    config = GRPORunConfig(model=_base_model(model), output_dir=out, shaping=shaping, reward_model=reward_model, dataset=dataset,
                           max_users=max_users, tags_per_expert=tags_per_expert, num_generations=num_generations,
                           max_completion_length=max_completion_length, max_steps=max_steps, batch_size=batch_size, beta=beta,
                           learning_rate=learning_rate, seed=seed, use_cpu=cpu)
    final = run_grpo(config, real_tag_rewards(config))
    console.print(f"GRPO-{shaping.upper()} done: {final} (metrics in {out / 'metrics.json'})")


@train_cli.command("export")
def train_export(
    trained: Path = typer.Argument(..., help="A training output (LoRA adapter or full model directory)."),
    out: Path = typer.Option(..., help="Directory to write the servable Hugging Face model to."),
) -> None:
    """Merge a LoRA adapter into its base (or copy a full model) into a directory `recgpt serve --model` serves."""
    from recgpt.training.export import export_model

    if not trained.is_dir():
        raise RecGPTError(f"{trained} is not a directory")
    console.print(f"exported to {export_model(trained, out)}; serve with `recgpt serve --model {out}`")


@train_cli.command("report")
def train_report(
    runs: Path = typer.Option(..., help="The chain's run folder (RUNS of scripts/train_chain.sh)."),
    out: Path = typer.Option(Path("reports"), help="Report folder (stage evals are read from <out>/training/<stage>/)."),
    dataset: str = typer.Option("office", help="Dataset of the chain."),
) -> None:
    """Write reports/training-chain-<dataset>.md/.json/.png from what the chain's commands wrote."""
    from recgpt.training.chain_report import write_chain_report

    if not runs.is_dir():
        raise RecGPTError(f"{runs} is not a directory")
    md, _, png = write_chain_report(runs, out, dataset)
    console.print(f"report {md}" + (f", plot {png}" if png else ""))


@train_cli.command("adaptor")
def train_adaptor_command(
    out: Optional[Path] = typer.Option(None, help=(
        "Run directory (config, metrics, distillation targets); the adaptor lands in <out>/adaptor. "
        "Default: RECGPT_HOME/adaptors/<model folder>-run, with the adaptor copied to the default place the "
        "hybrid runtime looks for it (RECGPT_HOME/adaptors/<model folder>).")),
    model: Optional[str] = typer.Option(None, help="The frozen LLM: registry name or the folder vLLM serves (default: the default policy model)."),
    dataset: str = typer.Option("office", help="Catalogue (self-perception) and training prefixes (distillation)."),
    hidden_dim: int = typer.Option(1024, help="Adaptor hidden width."),
    perception_entities: int = typer.Option(800, help="Catalogue entities for self-perception training."),
    heldout_entities: int = typer.Option(200, help="Held-out entities for the self-perception accuracy."),
    distill_users: int = typer.Option(48, help="Expert prompts whose frozen-LLM text answers are distilled (0 = off)."),
    distill_max_items: int = typer.Option(20, help="History items listed per distillation prompt."),
    epochs: int = typer.Option(2, help="Passes over all examples."),
    batch_size: int = typer.Option(16, help="Self-perception examples per step."),
    learning_rate: float = typer.Option(1e-3, help="AdamW learning rate."),
    seed: int = typer.Option(0, help="Entity split, shuffling and initialisation seed."),
    distill_max_new_tokens: int = typer.Option(96, help="Length of the frozen LLM's own greedy answer used as a distillation target."),
) -> None:
    """Train the hybrid-compression entity adaptor with the LLM frozen: self-perception Q&A + self-distillation."""
    import json
    import shutil

    from recgpt.tools.hybrid import default_adaptor_dir
    from recgpt.training.adaptor import AdaptorTrainConfig, train_adaptor

    model_dir = Path(_base_model(model)).resolve()
    target = default_adaptor_dir(model_dir)
    run = out or target.with_name(target.name + "-run")
    config = AdaptorTrainConfig(model=str(model_dir), output_dir=run, dataset=dataset, hidden_dim=hidden_dim,
                                perception_entities=perception_entities, heldout_entities=heldout_entities,
                                distill_users=distill_users, distill_max_items=distill_max_items,
                                distill_max_new_tokens=distill_max_new_tokens, epochs=epochs,
                                batch_size=batch_size, learning_rate=learning_rate, seed=seed)
    folder = train_adaptor(config)
    metrics = json.loads((run / "metrics.json").read_text())["self_perception_heldout"]
    console.print("held-out self-perception accuracy: untrained {:.3f} -> trained {:.3f} (full-text title {:.3f}, chance {:.3f})".format(
        metrics["untrained_adaptor"]["accuracy"], metrics["trained_adaptor"]["accuracy"], metrics["full_text_title"]["accuracy"],
        metrics["trained_adaptor"]["chance"]))
    if out is None:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(folder, target)
        folder = target
    console.print(f"adaptor {folder}; use it with `recgpt serve --prompt-embeds` and `--compression hybrid`")
