"""`recgpt train chain --dataset NAME|PATH`: base -> SFT -> offline rounds (CRS and SUM) -> optional GRPO -> report ->
ship, in one command, every stage resumable.

The chain is a plan of stages (`plan`), each a list of `recgpt` commands and the weights it needs served (or none: a
training stage never runs beside a server on 2 cores, and two vLLM servers never run at once). `run_chain` runs the
plan in order and records each finished stage with its wall time in `<ledger>/stages.json`; a rerun skips what is
recorded, and each command resumes on its own (run folders, checkpoints, sample and eval stores), so a chain killed
mid-stage is rerun as is, also on a fresh machine once the ledger is committed: an offline round's samples (its
store, hours of CPU sampling) are mirrored gzipped in the ledger whenever the stage ends or is stopped, and restored
from there.

Policies are compared alone (`recgpt eval --method expert`: one Distributed Expert call per user) on the same
validation users (what ships is decided there) and the same test users (the report). An offline round `r` under a
shaping samples G answers per prompt from the round's starting policy under the serving grammar
(`train sample-round`), trains DPO on its best-versus-worst pairs under that shaping (`train dpo`, the sampling policy
as reference) and merges the result (`train export`); round 1 of both shapings shares its samples (same policy).
What ships is the validation-best policy if it beats the base on validation; a round policy ships as one adapter on
the base, its lineage's adapters composed (`recgpt.training.compose`).
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Literal, Protocol

from pydantic import BaseModel, Field

from recgpt.errors import RecGPTError
from recgpt.tools.serving.policy import dataset_key
from recgpt.training.checkpoint_mirror import keep_checkpoint, restore_checkpoint

Shaping = Literal["crs", "sum"]


class ChainConfig(BaseModel):
    """Everything that defines one chain run (written to `<ledger>/chain_config.json`)."""

    dataset: str = "office"
    base: str = Field(default="qwen2.5-coder-0.5b", description="Registry name of the base model.")
    runs: Path = Field(description="Machine-local run folders (weights).")
    ledger: Path = Field(description="What is committed: stage times, round summaries, eval reports, small adapters.")
    eval_users: int = Field(default=500, ge=1, description="Test users per policy (the report; never decides).")
    val_users: int = Field(default=200, ge=1, description="Validation users per policy (what ships is decided here).")
    k: int = Field(default=5, ge=1, description="Tags per expert answer = K of cat HR@K.")
    sft_users: int = Field(default=2000, ge=1, description="SFT examples (training-prefix cuts, one per training user).")
    sft_from_shipped: bool = Field(default=True, description=(
        "Reuse the SFT adapter already shipped for (base, dataset) instead of retraining it (~8 h on 2 cores)."))
    lora_r: int = 8
    rounds: int = Field(default=2, ge=0)
    prompts: int = Field(default=500, ge=1, description="Prompts per offline round.")
    samples: int = Field(default=8, ge=2, description="Answers per prompt (G).")
    dpo_steps: int = Field(default=24, ge=1, description="DPO optimiser steps per round (x grad_accum 8 pairs).")
    shapings: tuple[Shaping, ...] = ("crs", "sum")
    grpo: bool = Field(default=False, description="Add a GRPO stage from the validation-best round policy (a GPU's job).")
    grpo_steps: int = 200
    full_graph: bool = Field(default=True, description="Also evaluate the base and the shipped policy in the full graph on test.")
    ship: bool = True
    train_flags: list[str] = Field(default_factory=list, description="Passed to every training command (e.g. --no-cpu).")

    @property
    def key(self) -> str:
        return dataset_key(self.dataset)


class Stage(BaseModel):
    """One resumable step: the weights to serve (`serve` arguments; None: no server) and the commands to run."""

    name: str
    serve: list[str] | None = None
    commands: list[list[str]] = Field(default_factory=list)
    action: str | None = Field(default=None, description="A step done in Python after the commands: 'ship', 'report', 'keep-round'.")
    prepare: str | None = Field(default=None, description="A step done in Python before the commands: 'restore-sft'.")
    keep: Path | None = Field(default=None, description=(
        "A LoRA adapter folder the stage trains, copied under `<ledger>/adapters/<stage>` when the stage ends (if it "
        "fits KEEP_MAX_BYTES), so a fresh machine rebuilds the stage's weights instead of retraining them."))
    keep_base: str | None = Field(default=None, description="The weights the kept adapter was trained on (its base).")
    produces: Path | None = Field(default=None, description="The served-weights folder the stage's last command writes.")
    outputs: list[Path] = Field(default_factory=list, description=(
        "Machine-local files the stage writes that later stages read (a round's DPO rows): a recorded stage whose "
        "outputs this machine lacks runs again (a round rescored from its kept samples, not redrawn)."))
    checkpoints: Path | None = Field(default=None, description=(
        "The run folder a training stage writes `checkpoint-N` into: when the stage is stopped its newest checkpoint is "
        "mirrored (bf16, ~26 MiB for r 8 on the 0.5B) in `<ledger>/checkpoints/<stage>/` and restored before a rerun, "
        "so a DPO round longer than a session resumes on a fresh machine; the mirror is dropped when the stage ends."))
    store: Path | None = Field(default=None, description=(
        "A machine-local append-only store the stage's command fills (an offline round's samples.jsonl), mirrored "
        "gzipped in the ledger whenever the stage ends or is stopped, and restored from there before it runs: a "
        "fresh machine resumes a half-drawn round instead of drawing it again."))


KEEP_MAX_BYTES = 32 * 2**20
"""Adapters up to this size are committed with the ledger (issue 34: <= 32 MiB)."""
KEPT_FILES = ("adapter_model.safetensors", "adapter_config.json")


def kept_adapter(config: "ChainConfig", stage: "Stage") -> Path:
    return config.ledger / "adapters" / stage.name


def keep_round_summaries(config: "ChainConfig") -> None:
    """Each offline round's `summary.json` into `<ledger>/<round>/`: the report reads it there; the round's samples
    and trainer rows stay in the run folder (data is not committed)."""
    for summary in sorted(config.runs.glob("round-*/summary.json")):
        target = config.ledger / summary.parent.name / "summary.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(summary, target)


def keep_adapter(config: "ChainConfig", stage: "Stage", say: Callable[[str], None]) -> None:
    """Copy the stage's trained adapter (and its run config) into the ledger, when it is small enough to commit."""
    if stage.keep is None or not (stage.keep / KEPT_FILES[0]).is_file():
        return
    size = sum((stage.keep / name).stat().st_size for name in KEPT_FILES)
    if size > KEEP_MAX_BYTES:
        say(f"   {stage.name}: its adapter ({size / 2**20:.1f} MiB) is over {KEEP_MAX_BYTES // 2**20} MiB: not kept in the ledger")
        return
    out = kept_adapter(config, stage)
    out.mkdir(parents=True, exist_ok=True)
    for name in (*KEPT_FILES, "../run_config.json", "../metrics.json"):
        source = stage.keep / name
        if source.is_file():
            shutil.copy2(source, out / Path(name).name)


def restore_adapter(config: "ChainConfig", stage: "Stage") -> bool:
    """Put a kept adapter back in its run folder, pointed at this machine's copy of its base; False if none is kept."""
    kept = kept_adapter(config, stage)
    if stage.keep is None or not all((kept / name).is_file() for name in KEPT_FILES):
        return False
    stage.keep.mkdir(parents=True, exist_ok=True)
    for name in KEPT_FILES:
        shutil.copy2(kept / name, stage.keep / name)
    if stage.keep_base is not None:
        adapter_config = json.loads((stage.keep / "adapter_config.json").read_text())
        adapter_config["base_model_name_or_path"] = stage.keep_base
        (stage.keep / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    return True


def kept_store(config: "ChainConfig", stage: "Stage") -> Path:
    """Where the ledger mirrors a stage's store: `<ledger>/<run folder>/<store>.gz`."""
    assert stage.store is not None
    return config.ledger / stage.store.parent.name / (stage.store.name + ".gz")


def _lines(data: bytes) -> int:
    return data.count(b"\n")


def keep_store(config: "ChainConfig", stage: "Stage") -> int:
    """Mirror the stage's store into the ledger (only when it holds more than the mirror); returns its lines."""
    if stage.store is None or not stage.store.is_file():
        return 0
    data = stage.store.read_bytes()
    data = data[: data.rfind(b"\n") + 1]  # a line cut by a kill mid-write stays out of the mirror
    kept = kept_store(config, stage)
    if kept.is_file() and _lines(gzip.decompress(kept.read_bytes())) >= _lines(data):
        return _lines(data)
    kept.parent.mkdir(parents=True, exist_ok=True)
    tmp = kept.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(data, mtime=0))
    tmp.replace(kept)
    return _lines(data)


def restore_store(config: "ChainConfig", stage: "Stage") -> int:
    """Put the ledger's mirror of the stage's store back where the command reads it, when the mirror holds more (a
    fresh machine, or a machine-local store lost); returns the lines restored (0: nothing to do)."""
    if stage.store is None or not kept_store(config, stage).is_file():
        return 0
    data = gzip.decompress(kept_store(config, stage).read_bytes())
    local = stage.store.read_bytes() if stage.store.is_file() else b""
    if _lines(local) >= _lines(data):
        return 0
    stage.store.parent.mkdir(parents=True, exist_ok=True)
    tmp = stage.store.with_suffix(".restoring")
    tmp.write_bytes(data)
    tmp.replace(stage.store)
    return _lines(data)


def checkpoint_mirror(config: "ChainConfig", stage: "Stage") -> Path:
    return config.ledger / "checkpoints" / stage.name


def _gone(stage: "Stage") -> list[Path]:
    """What a recorded stage wrote on the machine that later stages read, and this machine lacks."""
    wanted = [stage.produces / "config.json"] if stage.produces is not None else []
    return [path for path in [*wanted, *stage.outputs] if not path.is_file()]


class Executor(Protocol):
    def serve(self, args: list[str] | None) -> None: ...
    def run(self, args: list[str]) -> None: ...


def policy_models(config: ChainConfig, sft_model: Path) -> dict[str, Path]:
    """Served-weights folder of every policy the plan trains, by name: sft, then crs-1, sum-1, crs-2, ..."""
    models = {"sft": sft_model}
    for r in range(1, config.rounds + 1):
        for shaping in config.shapings:
            models[f"{shaping}-{r}"] = config.runs / f"{shaping}-{r}-model"
    return models


def evaluations(config: ChainConfig, name: str, serve: list[str]) -> list[Stage]:
    """The policy alone on the validation users (decides) and on the test users (reports)."""
    common = ["eval", "--dataset", config.dataset, "--method", "expert", "--tags", str(config.k), "--concurrency", "16"]
    return [Stage(name=f"val-{name}", serve=serve, commands=[[*common, "--split", "validation", "--users", str(config.val_users),
                                                               "--out", str(config.ledger / "evals" / f"{name}-validation")]]),
            Stage(name=f"test-{name}", serve=serve, commands=[[*common, "--split", "test", "--users", str(config.eval_users),
                                                             "--out", str(config.ledger / "evals" / f"{name}-test")]])]


def plan(config: ChainConfig, reuse_shipped_sft: bool) -> list[Stage]:
    """The chain's stages in order. `reuse_shipped_sft`: the SFT adapter shipped for (base, dataset) is restored and
    merged instead of trained (~8 h on 2 cores); either way the SFT policy is served from `<runs>/sft-model`."""
    flags = list(config.train_flags)
    base_serve = ["--model", config.base, "--policy", "base"]
    stages = evaluations(config, "base", base_serve)
    sft_model = config.runs / "sft-model"
    export_sft = ["train", "export", str(config.runs / "sft" / "final"), "--out", str(sft_model)]
    if reuse_shipped_sft:
        stages.append(Stage(name="sft", prepare="restore-sft", commands=[export_sft], produces=sft_model))
    else:
        stages.append(Stage(name="sft", keep=config.runs / "sft" / "final", produces=sft_model,
                            checkpoints=config.runs / "sft", commands=[
            ["train", "sft", "--model", config.base, "--dataset", config.dataset, "--out", str(config.runs / "sft"),
             "--max-users", str(config.sft_users), "--tags-per-expert", str(config.k), "--lora-r", str(config.lora_r),
             "--lora-alpha", str(2 * config.lora_r), "--save-steps", "5", *flags],
            export_sft]))
    models = policy_models(config, sft_model)
    stages += evaluations(config, "sft", ["--model", str(sft_model)])
    for r in range(1, config.rounds + 1):
        for shaping in config.shapings:
            start = models["sft"] if r == 1 else models[f"{shaping}-{r - 1}"]
            # the round's samples, scores and trainer rows are data (megabytes): machine-local with the weights; its
            # summary.json (what the report reads) is copied into the ledger by the `keep-round` action
            samples = config.runs / ("round-1" if r == 1 else f"round-{r}-{shaping}")
            sample_stage = "sample-1" if r == 1 else f"sample-{r}-{shaping}"
            if not any(stage.name == sample_stage for stage in stages):
                stages.append(Stage(name=sample_stage, serve=["--model", str(start)], action="keep-round",
                                    store=samples / "samples.jsonl", outputs=[samples / "summary.json"] + [
                                        samples / f"dpo-{s}.jsonl" for s in config.shapings], commands=[[
                    "train", "sample-round", "--dataset", config.dataset, "--out", str(samples), "--max-users",
                    str(config.prompts), "--samples", str(config.samples), "--tags-per-expert", str(config.k),
                    "--seed", str(r + 1)]]))
            run = config.runs / f"dpo-{shaping}-{r}"
            stages.append(Stage(name=f"dpo-{shaping}-{r}", keep=run / "final", keep_base=str(start),
                                produces=models[f"{shaping}-{r}"], checkpoints=run, commands=[
                ["train", "dpo", "--model", str(start), "--rows-file", str(samples / f"dpo-{shaping}.jsonl"),
                 "--out", str(run), "--max-steps", str(config.dpo_steps), *flags],
                ["train", "export", str(run / "final"), "--out", str(models[f"{shaping}-{r}"])]]))
            stages += evaluations(config, f"{shaping}-{r}", ["--model", str(models[f"{shaping}-{r}"])])
    if config.grpo:
        run = config.runs / "grpo"
        stages.append(Stage(name="grpo", keep=run / "final", keep_base=str(sft_model), produces=config.runs / "grpo-model",
                            checkpoints=run, commands=[  # from SFT, KL towards it (its defaults: G 8, 16 prompts, dapo)
            ["train", "grpo", "--model", str(sft_model), "--dataset", config.dataset, "--out", str(run), "--max-users", str(config.prompts),
             "--max-steps", str(config.grpo_steps), "--tags-per-expert", str(config.k), *flags],
            ["train", "export", str(run / "final"), "--out", str(config.runs / "grpo-model")]]))
        stages += evaluations(config, "grpo", ["--model", str(config.runs / "grpo-model")])
    if config.ship:
        stages.append(Stage(name="ship", action="ship"))
    if config.full_graph:
        for name, serve in (("base", base_serve), ("shipped", ["--model", config.base, "--dataset", config.dataset])):
            stages.append(Stage(name=f"full-{name}", serve=serve, commands=[[
                "eval", "--dataset", config.dataset, "--method", "recgpt", "--split", "test", "--users",
                str(config.eval_users), "--concurrency", "16", "--out", str(config.ledger / "evals" / f"full-{name}-test")]]))
    stages.append(Stage(name="report", action="report"))
    return stages


class Ledger:
    """`<ledger>/stages.json`: finished stages with their wall time (and where they ran)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "stages.json"

    def read(self) -> dict[str, dict[str, object]]:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def done(self, name: str) -> bool:
        return name in self.read()

    def record(self, name: str, wall_s: float, machine: str) -> None:
        stages = self.read()
        stages[name] = {"wall_s": round(wall_s, 1), "machine": machine}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(stages, indent=2))
        tmp.replace(self.path)


def sft_was_restored(config: ChainConfig) -> bool:
    """Whether this chain's SFT is the shipped adapter restored (`restore-sft` leaves `sft_restored_from.json` in the
    ledger; ledgers from before it record an `sft-restore` stage) rather than trained here."""
    return (config.ledger / "sft_restored_from.json").is_file() or Ledger(config.ledger).done("sft-restore")


def run_chain(config: ChainConfig, stages: list[Stage], executor: Executor,
              actions: dict[str, Callable[[ChainConfig], None]], machine: str = "2 CPU cores",
              say: Callable[[str], None] = print) -> list[str]:
    """Run every stage not yet in the ledger, in order; return the names run now. The server is switched only when a
    stage needs other weights, and stopped before a stage that trains."""
    ledger = Ledger(config.ledger)
    config.ledger.mkdir(parents=True, exist_ok=True)
    (config.ledger / "chain_config.json").write_text(config.model_dump_json(indent=2))
    ran: list[str] = []
    serving: list[str] | None = None
    try:
        for stage in stages:
            commands = stage.commands
            done = ledger.done(stage.name)
            if done:
                if not (gone := _gone(stage)):
                    say(f"== {stage.name}: done (skipped)")
                    continue
                if stage.prepare is None and restore_adapter(config, stage):  # a fresh machine: rebuild, do not retrain
                    say(f"== {stage.name}: done; rebuilding {stage.produces} from its adapter kept in the ledger")
                    commands = stage.commands[-1:]  # the export
                elif stage.store is not None:
                    say(f"== {stage.name}: done, but {gone[0]} is gone: rebuilding it from the store kept in the ledger")
                else:
                    say(f"== {stage.name}: done, but {gone[0].parent if stage.produces else gone[0]} is gone and no "
                        "adapter is kept: running it again")
            else:
                say(f"== {stage.name}")
            started = time.perf_counter()
            if stage.serve != serving:
                executor.serve(stage.serve)
                serving = stage.serve
            if stage.prepare is not None:
                _act(actions, stage, stage.prepare, config)
            if restored := restore_store(config, stage):
                say(f"   {stage.name}: resuming from the {restored} lines of {stage.store} kept in the ledger")
            if stage.checkpoints is not None and commands is stage.commands:
                if (step := restore_checkpoint(checkpoint_mirror(config, stage), stage.checkpoints)) is not None:
                    say(f"   {stage.name}: resuming from step {step}, its checkpoint kept in the ledger")
            try:
                for command in commands:
                    executor.run(command)
            except BaseException:  # stopped or failed: its newest checkpoint goes to the ledger (commit it to resume elsewhere)
                if stage.checkpoints is not None and commands is stage.commands:
                    if (step := keep_checkpoint(stage.checkpoints, checkpoint_mirror(config, stage))) is not None:
                        say(f"   {stage.name}: its step-{step} checkpoint kept in {checkpoint_mirror(config, stage)}")
                raise
            finally:  # stopped or failed: what the store holds so far goes to the ledger (commit it to resume elsewhere)
                if kept := keep_store(config, stage):
                    say(f"   {stage.name}: {kept} lines of {stage.store} kept in {kept_store(config, stage)}")
            shutil.rmtree(checkpoint_mirror(config, stage), ignore_errors=True)  # the stage ended: its adapter is kept
            if stage.action is not None:
                _act(actions, stage, stage.action, config)
            keep_adapter(config, stage, say)
            if not done:  # a stage run again on a fresh machine keeps the wall time of its first run
                ledger.record(stage.name, time.perf_counter() - started, machine)
            ran.append(stage.name)
    finally:
        if serving is not None:
            executor.serve(None)
    return ran


def _act(actions: dict[str, Callable[[ChainConfig], None]], stage: Stage, name: str, config: ChainConfig) -> None:
    if name not in actions:
        raise RecGPTError(f"chain stage {stage.name}: no action {name!r}")
    actions[name](config)


class SubprocessExecutor:
    """Runs each command as `recgpt ARGS` (its own process: a stage's memory is given back when it ends)."""

    def __init__(self, recgpt: list[str] | None = None) -> None:
        script = Path(sys.executable).parent / "recgpt"
        self.recgpt = recgpt or ([str(script)] if script.is_file() else
                                 [sys.executable, "-c", "import sys; from recgpt.app import main; sys.exit(main())"])

    def run(self, args: list[str]) -> None:
        completed = subprocess.run([*self.recgpt, *args], check=False)
        if completed.returncode != 0:
            raise RecGPTError(f"`recgpt {' '.join(args)}` exited with {completed.returncode}; rerun the chain to resume")

    def serve(self, args: list[str] | None) -> None:
        subprocess.run([*self.recgpt, "serve", "--stop"], check=False, stdout=subprocess.DEVNULL)
        if args is not None:
            self.run(["serve", "--background", *args])
