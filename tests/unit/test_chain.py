"""`recgpt train chain`: the plan (no server beside training, round 1 shares its samples, what ships is decided on
validation), the resumable runner, the ship decision and lineage, the composed adapter, the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

from recgpt.errors import RecGPTError
from recgpt.training.chain import ChainConfig, Ledger, Stage, plan, run_chain
from recgpt.training.chain_summary import lineage, markdown, summarise, validation_choice
from recgpt.training.compose import compose_adapters
from tests.unit.test_sft import tiny_model_dir


def config(tmp_path: Path, **overrides: object) -> ChainConfig:
    return ChainConfig(**{"dataset": "movielens", "runs": tmp_path / "runs", "ledger": tmp_path / "ledger", **overrides})


def test_the_plan_trains_without_a_server_and_decides_on_validation(tmp_path: Path) -> None:
    stages = plan(config(tmp_path), reuse_shipped_sft=False)
    names = [s.name for s in stages]
    assert names[:5] == ["val-base", "test-base", "sft", "val-sft", "test-sft"]
    assert names.count("sample-1") == 1 and "sample-2-crs" in names and "sample-2-sum" in names  # round 1 shares its samples
    assert names.index("sample-1") < names.index("dpo-crs-1") < names.index("dpo-sum-1") < names.index("sample-2-crs")
    assert names[-4:] == ["ship", "full-base", "full-shipped", "report"]
    for stage in stages:
        training = any(c[:2] in (["train", "sft"], ["train", "dpo"], ["train", "grpo"]) for c in stage.commands)
        assert not (training and stage.serve is not None), stage.name  # never a server beside training
    sample = next(s for s in stages if s.name == "sample-2-crs")
    assert sample.serve == ["--model", str(tmp_path / "runs" / "crs-1-model")]  # round 2 samples from its own round 1
    dpo = next(s for s in stages if s.name == "dpo-sum-2")
    # a round's samples and rows are data: machine-local beside the weights, never in the committed ledger
    assert dpo.commands[0][dpo.commands[0].index("--rows-file") + 1] == str(tmp_path / "runs" / "round-2-sum" / "dpo-sum.jsonl")
    assert sample.action == "keep-round"
    assert dpo.commands[0][dpo.commands[0].index("--model") + 1] == str(tmp_path / "runs" / "sum-1-model")
    reused = [s.name for s in plan(config(tmp_path, rounds=1, shapings=("crs",), full_graph=False, grpo=True), True)]
    assert reused[2:4] == ["sft", "val-sft"] and "grpo" in reused and "test-grpo" in reused and "sum-1" not in str(reused)


class FakeExecutor:
    def __init__(self, fail_on: str | None = None) -> None:
        self.log: list[str] = []
        self.fail_on = fail_on

    def serve(self, args: list[str] | None) -> None:
        self.log.append("stop" if args is None else "serve " + " ".join(args))

    def run(self, args: list[str]) -> None:
        if self.fail_on and self.fail_on in args:
            raise RecGPTError(f"`recgpt {' '.join(args)}` exited with 1")
        self.log.append(" ".join(args))


def test_the_runner_switches_servers_only_when_needed_resumes_and_stops_the_server(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    stages = [Stage(name="a", serve=["--model", "x"], commands=[["eval", "1"]]), Stage(name="b", serve=["--model", "x"], commands=[["eval", "2"]]),
              Stage(name="c", commands=[["train", "dpo"]]), Stage(name="d", serve=["--model", "y"], commands=[["eval", "3"]]),
              Stage(name="e", action="note")]
    noted: list[str] = []
    failing = FakeExecutor(fail_on="3")
    with pytest.raises(RecGPTError, match="exited with 1"):
        run_chain(cfg, stages, failing, {"note": lambda c: noted.append(c.dataset)}, say=lambda _: None)
    assert failing.log == ["serve --model x", "eval 1", "eval 2", "stop", "train dpo", "serve --model y", "stop"]  # stopped on failure too
    assert set(Ledger(cfg.ledger).read()) == {"a", "b", "c"}
    again = FakeExecutor()
    ran = run_chain(cfg, stages, again, {"note": lambda c: noted.append(c.dataset)}, say=lambda _: None)
    assert ran == ["d", "e"] and again.log == ["serve --model y", "eval 3", "stop"] and noted == ["movielens"]
    assert run_chain(cfg, stages, FakeExecutor(), {"note": lambda c: None}, say=lambda _: None) == []
    assert json.loads((cfg.ledger / "chain_config.json").read_text())["dataset"] == "movielens"
    with pytest.raises(RecGPTError, match="no action 'missing'"):
        run_chain(config(tmp_path / "other"), [Stage(name="z", action="missing")], FakeExecutor(), {}, say=lambda _: None)
    order: list[str] = []

    class Ordered(FakeExecutor):
        def run(self, args: list[str]) -> None:
            order.append("command")

    restore = Stage(name="sft", prepare="restore", commands=[["train", "export"]], action="after")
    run_chain(config(tmp_path / "third"), [restore], Ordered(),
              {"restore": lambda c: order.append("prepare"), "after": lambda c: order.append("action")}, say=lambda _: None)
    assert order == ["prepare", "command", "action"]  # the shipped SFT adapter is restored before it is exported


def test_a_fresh_machine_rebuilds_a_trained_stage_from_the_adapter_kept_in_the_ledger(tmp_path: Path) -> None:
    """The DPO adapter (<= 32 MiB) is copied into the committed ledger when its stage ends; on a machine without the
    run folders the stage is not retrained: its adapter is put back on this machine's base and exported again."""
    cfg = config(tmp_path)
    run, model = cfg.runs / "dpo-crs-1", cfg.runs / "crs-1-model"
    stage = Stage(name="dpo-crs-1", keep=run / "final", keep_base=str(cfg.runs / "sft-model"), produces=model,
                  commands=[["train", "dpo", "--out", str(run)], ["train", "export", str(run / "final"), "--out", str(model)]])
    evaluate = Stage(name="val-crs-1", serve=["--model", str(model)], commands=[["eval", "crs-1"]])

    class Trainer(FakeExecutor):
        def run(self, args: list[str]) -> None:
            super().run(args)
            if args[:2] == ["train", "dpo"]:
                (run / "final").mkdir(parents=True)
                (run / "final" / "adapter_model.safetensors").write_bytes(b"w" * 64)
                (run / "final" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "/old/sft-model"}))
                (run / "run_config.json").write_text("{}")
            if args[:2] == ["train", "export"]:
                model.mkdir(parents=True, exist_ok=True)
                (model / "config.json").write_text("{}")

    first = Trainer()
    run_chain(cfg, [stage, evaluate], first, {}, say=lambda _: None)
    kept = cfg.ledger / "adapters" / "dpo-crs-1"
    assert sorted(p.name for p in kept.iterdir()) == ["adapter_config.json", "adapter_model.safetensors", "run_config.json"]
    import shutil

    shutil.rmtree(cfg.runs)  # a fresh machine: the committed ledger only
    said: list[str] = []
    fresh = Trainer()
    run_chain(cfg, [stage, evaluate], fresh, {}, say=said.append)
    assert fresh.log == ["train export " + str(run / "final") + " --out " + str(model)]  # rebuilt, not retrained
    assert "rebuilding" in said[0] and (model / "config.json").is_file()
    assert json.loads((run / "final" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(cfg.runs / "sft-model")
    shutil.rmtree(cfg.runs)
    shutil.rmtree(kept)  # nothing kept (an adapter over 32 MiB): the stage runs again rather than serving nothing
    again = Trainer()
    run_chain(cfg, [stage, evaluate], again, {}, say=said.append)
    assert again.log[0].startswith("train dpo") and "running it again" in said[-2]


def test_a_half_drawn_round_is_kept_in_the_ledger_when_stopped_and_a_fresh_machine_resumes_it(tmp_path: Path) -> None:
    """An offline round's samples are hours of CPU sampling: stopped mid-stage (Ctrl-C, `kill`), its store's complete
    lines are mirrored gzipped in the ledger; a machine without the run folders gets them back before the command
    reruns, so the command draws only what is missing; a longer machine-local store is never overwritten."""
    import gzip
    import shutil

    cfg = config(tmp_path)
    sample = next(s for s in plan(cfg, reuse_shipped_sft=True) if s.name == "sample-1")
    assert sample.store == cfg.runs / "round-1" / "samples.jsonl"
    store = sample.store
    seen: list[str] = []

    class Sampler(FakeExecutor):
        def __init__(self, stop_after: int | None) -> None:
            super().__init__()
            self.stop_after = stop_after

        def run(self, args: list[str]) -> None:
            have = store.read_text().splitlines() if store.is_file() else []
            seen.append(f"{len(have)} before")
            store.parent.mkdir(parents=True, exist_ok=True)
            with store.open("a") as f:
                for i in range(len(have), 6):
                    if self.stop_after is not None and i == self.stop_after:
                        f.write('{"key": "cut')  # killed mid-write
                        raise KeyboardInterrupt
                    f.write(json.dumps({"key": f"sample:{i}", "value": i}) + "\n")
            for output in sample.outputs:  # scored: the summary and the DPO rows later stages read
                output.write_text("{}")

    said: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        run_chain(cfg, [sample], Sampler(stop_after=4), {"keep-round": lambda c: None}, say=said.append)
    kept = cfg.ledger / "round-1" / "samples.jsonl.gz"
    assert gzip.decompress(kept.read_bytes()).decode().splitlines() == [json.dumps({"key": f"sample:{i}", "value": i}) for i in range(4)]
    assert "4 lines" in said[-1] and not Ledger(cfg.ledger).done("sample-1")
    shutil.rmtree(cfg.runs)  # a fresh machine: the committed ledger only
    run_chain(cfg, [sample], Sampler(stop_after=None), {"keep-round": lambda c: None}, say=said.append)
    assert seen == ["0 before", "4 before"] and any("resuming from the 4 lines" in line for line in said)
    assert len(store.read_text().splitlines()) == 6 and len(gzip.decompress(kept.read_bytes()).splitlines()) == 6
    assert Ledger(cfg.ledger).done("sample-1")
    wall = Ledger(cfg.ledger).read()["sample-1"]["wall_s"]
    shutil.rmtree(cfg.runs)  # a fresh machine after the round ended: rescored from the kept store, not redrawn
    assert run_chain(cfg, [sample], Sampler(stop_after=None), {"keep-round": lambda c: None}, say=said.append) == ["sample-1"]
    assert seen[-1] == "6 before" and any("rebuilding it from the store" in line for line in said)
    assert all(output.is_file() for output in sample.outputs) and Ledger(cfg.ledger).read()["sample-1"]["wall_s"] == wall
    assert run_chain(cfg, [sample], Sampler(stop_after=None), {"keep-round": lambda c: None}, say=said.append) == []
    store.write_text("".join(json.dumps({"key": f"k{i}"}) + "\n" for i in range(9)))  # more here than in the ledger
    from recgpt.training.chain import restore_store

    assert restore_store(cfg, sample) == 0 and len(store.read_text().splitlines()) == 9


def write_eval(cfg: ChainConfig, name: str, split: str, hits: dict[str, int], method: str = "expert") -> None:
    folder = cfg.ledger / "evals" / f"{name}-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    per_user = {u: {"cat_hr@5_genre": float(h), "item_hr@10": float(h) / 2} for u, h in hits.items()}
    metrics = {m: sum(row[m] for row in per_user.values()) / len(per_user) for m in ("cat_hr@5_genre", "item_hr@10")}
    if method == "recgpt":
        per_user = {u: {"cat_hr@10_genre": row["cat_hr@5_genre"], "item_hr@10": row["item_hr@10"]} for u, row in per_user.items()}
        metrics = {"cat_hr@10_genre": metrics["cat_hr@5_genre"], "item_hr@10": metrics["item_hr@10"]}
    report = {"metrics": metrics, "per_user_hits": per_user, "slice_level": "genre", "users_scored": len(per_user),
              "new_interest_user_ids": ["u1", "u2"], "model": f"recgpt-policy@/{name}",
              "answer_concentration": {"distinct_categories": 4, "top_category_user_share": 0.25}}
    (folder / f"eval-movielens-{split}-{method}.json").write_text(json.dumps(report))


def test_what_ships_is_the_validation_best_if_it_beats_the_base_and_the_report_pairs_on_test(tmp_path: Path) -> None:
    cfg = config(tmp_path, rounds=1)
    users = [f"u{i}" for i in range(6)]
    write_eval(cfg, "base", "validation", dict.fromkeys(users, 0) | {"u0": 1})
    write_eval(cfg, "sft", "validation", dict.fromkeys(users, 0) | {"u0": 1, "u1": 1})
    write_eval(cfg, "crs-1", "validation", dict.fromkeys(users, 0) | {"u0": 1, "u1": 1, "u2": 1})
    write_eval(cfg, "sum-1", "validation", dict.fromkeys(users, 0) | {"u3": 1, "u4": 1, "u5": 1})  # a tie: the earlier stage
    choice = validation_choice(cfg)
    assert choice["best"] == "crs-1" and choice["beats_base"] and choice["metric"] == "cat_hr@5_genre"
    assert choice["paired"]["difference"] == pytest.approx(2 / 6)
    assert lineage(cfg, "crs-1", Path("/sft")) == [Path("/sft"), cfg.runs / "dpo-crs-1" / "final"]
    assert lineage(config(tmp_path, rounds=2), "sum-2", Path("/sft"))[1:] == [cfg.runs / "dpo-sum-1" / "final", cfg.runs / "dpo-sum-2" / "final"]
    for name, hits in (("base", {"u0": 1}), ("sft", {"u0": 1, "u1": 1}), ("crs-1", {"u1": 1, "u2": 1, "u3": 1}), ("sum-1", {"u0": 1})):
        write_eval(cfg, name, "test", dict.fromkeys(users, 0) | hits)
    write_eval(cfg, "full-base", "test", dict.fromkeys(users, 0), "recgpt")
    write_eval(cfg, "full-shipped", "test", dict.fromkeys(users, 0) | {"u0": 1}, "recgpt")
    Ledger(cfg.ledger).record("sft", 12.0, "2 CPU cores")
    (cfg.ledger / "round-1").mkdir(parents=True)
    (cfg.ledger / "round-1" / "summary.json").write_text(json.dumps({
        "prompts": 6, "answers": 48, "failed_answers": 0, "rows": {"rft": 2, "dpo-crs": 5, "dpo-sum": 4},
        "zero_std_share": {"crs-sparse": 0.5, "crs-dense": 0.1, "sum-sparse": 0.4, "sum-dense": 0.0},
        "mean_parts": {"rank": 0.12}, "collapse": {"chosen_top_category": "Drama", "chosen_top_share": 0.3}}))
    summary = summarise(cfg)
    assert summary["metrics"] == ["cat_hr@5_genre", "item_hr@10"]
    assert summary["policies"]["crs-1"]["against_base"]["cat_hr@5_genre"]["difference"] == pytest.approx(2 / 6)
    assert summary["crs_against_sum"]["round 1"]["cat_hr@5_genre"]["difference"] == pytest.approx(2 / 6)
    assert summary["full_graph"]["full-shipped"]["against_base"]["cat_hr@10_genre"]["difference"] == pytest.approx(1 / 6)
    text = markdown(summary, "qwen2.5-coder-0.5b")
    assert "| crs-1 | 0.500 |" in text and "Best: **crs-1**" in text and "it ships." in text and "| sft | 12.0 | 2 CPU cores |" in text
    goals = summary["targets"]
    assert not goals["shipped_beats_base"]["met"] and goals["shipped_beats_base"]["z"]["item_hr@10"] == pytest.approx(1.0)
    assert not goals["crs_beats_sum"]["met"] and goals["crs_beats_sum"]["z"]["cat_hr@5_genre"] == pytest.approx(1.0)
    assert goals["paper_order"]["holds"] and goals["no_collapse"]["policies"]["crs-1"]["met"]
    assert [(s["from"], s["to"]) for s in goals["paper_order"]["steps"]] == [("base", "sft"), ("sft", "crs-1")]
    assert "| round-1 | 6 | 48 (0) | 0.50 → 0.10 | 0.40 → 0.00 | 0.120 | 5 / 4 | 2 | Drama (0.30) |" in text
    assert "paired on test (sft − base +0.167 ± 0.167 (z 1.0); crs-1 − sft +0.167 ± 0.307 (z 0.5)): holds." in text
    write_eval(cfg, "sft", "test", dict.fromkeys(users, 0))
    assert "): breaks at base → sft." in markdown(summarise(cfg), "m")
    assert "Partial" not in text and "**Partial: 2 stages still to run** (ship, full-base)" in markdown(
        {**summary, "pending": ["ship", "full-base"]}, "m")
    early = config(tmp_path / "early", rounds=1)
    write_eval(early, "base", "test", dict.fromkeys(users, 0) | {"u0": 1})
    write_eval(early, "sft", "test", dict.fromkeys(users, 0) | {"u0": 1, "u1": 1})
    assert "(z 1.0)): not measured to CRS yet." in markdown(summarise(early), "m")
    write_eval(cfg, "base", "validation", dict.fromkeys(users, 1))
    assert not validation_choice(cfg)["beats_base"]


def _adapter(model_dir: Path, out: Path, r: int, seed: int) -> Path:
    torch.manual_seed(seed)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(out)
    return out


def test_a_lineage_of_adapters_composes_into_one_adapter_on_the_base(tmp_path: Path) -> None:
    base = tiny_model_dir(tmp_path / "base")
    sft = _adapter(base, tmp_path / "sft", 4, 1)
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(sft)).merge_and_unload().save_pretrained(tmp_path / "sft-model")
    dpo = _adapter(tmp_path / "sft-model", tmp_path / "dpo", 2, 2)  # trained on the merged SFT weights, as a round is
    ids = torch.tensor([[3, 6, 7, 2]])
    sequential = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path / "sft-model"), str(dpo)).merge_and_unload()(ids).logits
    exact = compose_adapters([sft, dpo], base, tmp_path / "f32", dtype="float32")
    composed = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(exact))(ids).logits
    assert torch.allclose(composed, sequential, atol=1e-5)
    assert json.loads((exact / "adapter_config.json").read_text())["r"] == 6
    assert json.loads((exact / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base)
    half = compose_adapters([sft, dpo], base, tmp_path / "bf16")
    assert (half / "adapter_model.safetensors").stat().st_size < 0.6 * (exact / "adapter_model.safetensors").stat().st_size
    shipped = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(half))(ids).logits
    assert torch.allclose(shipped, sequential, atol=5e-2) and not torch.allclose(shipped, AutoModelForCausalLM.from_pretrained(base)(ids).logits, atol=5e-2)
    with pytest.raises(RecGPTError, match="not a LoRA adapter folder"):
        compose_adapters([base], base, tmp_path / "bad")


def test_the_best_round_ships_as_one_adapter_for_its_dataset_and_a_shipped_sft_is_restored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from recgpt.tools.serving.policy import load_card, shipped_policy
    from recgpt.training import chain_actions
    from tests.unit.test_policy import BASE, prepared_base

    base = prepared_base(tmp_path / "base")
    monkeypatch.setattr(chain_actions, "prepare_model", lambda models_dir, name: base)
    monkeypatch.setattr(chain_actions, "default_registry", lambda: SimpleNamespace(dataset=lambda name: SimpleNamespace(content_hash=lambda: "c0ffee")))
    cfg = config(tmp_path, rounds=1, base=BASE)
    users = [f"u{i}" for i in range(4)]
    write_eval(cfg, "base", "validation", dict.fromkeys(users, 0))
    write_eval(cfg, "sft", "validation", dict.fromkeys(users, 0) | {"u0": 1})
    write_eval(cfg, "crs-1", "validation", dict.fromkeys(users, 0) | {"u0": 1, "u1": 1})
    sft = _adapter(base, cfg.runs / "sft" / "final", 4, 1)
    (cfg.runs / "sft" / "run_config.json").write_text(json.dumps({"dataset": "movielens"}))
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(sft)).merge_and_unload().save_pretrained(cfg.runs / "sft-model")
    _adapter(cfg.runs / "sft-model", cfg.runs / "dpo-crs-1" / "final", 2, 2)
    (cfg.runs / "dpo-crs-1" / "run_config.json").write_text(json.dumps({"rows_file": "round-1/dpo-crs.jsonl"}))
    policies = tmp_path / "policies"
    said: list[str] = []
    chain_actions.ship_best(cfg, said.append, policies)
    shipped = shipped_policy(BASE, "movielens", policies)
    assert shipped is not None and said[-1].startswith("ship: movielens-crs-1")
    card = load_card(shipped)
    assert card.dataset == "movielens" and card.lora["r"] == 6 and set(card.training) == {"sft", "dpo-crs-1"}
    assert card.metrics["validation"]["best"] == "crs-1" and card.data_hash == "movielens:c0ffee"
    monkeypatch.setattr(chain_actions, "get_settings", lambda: SimpleNamespace(models_dir=tmp_path / "models"))
    again = config(tmp_path / "fresh", base=BASE)
    chain_actions.restore_shipped_sft(again, policies)  # what a later chain on movielens starts from
    restored = json.loads((again.runs / "sft" / "final" / "adapter_config.json").read_text())
    assert restored["base_model_name_or_path"] == str(base)
    assert json.loads((again.runs / "sft" / "restored_from.json").read_text())["policy"] == "movielens-crs-1"
    with pytest.raises(FileNotFoundError, match="no policy ships"):
        chain_actions.restore_shipped_sft(config(tmp_path / "x", base=BASE, dataset="office"), policies)


def test_the_chain_command_prints_its_plan_and_refuses_an_unknown_shaping(tmp_path: Path, isolated_home: Path) -> None:
    from typer.testing import CliRunner

    from recgpt.training.cli import train_cli

    runner = CliRunner()
    ledger = tmp_path / "ledger"
    Ledger(ledger).record("val-base", 1.0, "2 CPU cores")
    result = runner.invoke(train_cli, ["chain", "--dataset", "movielens", "--ledger", str(ledger), "--rounds", "1",
                                       "--dry-run"], terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "val-base (done;" in result.output and "sft (to run; no server)" in result.output
    assert "recgpt train sample-round --dataset movielens" in result.output and "report (to run; no server) then report" in result.output
    bad = runner.invoke(train_cli, ["chain", "--shapings", "crs,best", "--dry-run", "--ledger", str(ledger)])
    assert bad.exit_code != 0 and "--shapings takes crs and/or sum (got best)" in str(bad.exception or bad.output)


def test_only_a_rounds_summary_is_kept_in_the_ledger(tmp_path: Path) -> None:
    from recgpt.training.chain import keep_round_summaries

    cfg = config(tmp_path)
    (cfg.runs / "round-1").mkdir(parents=True)
    (cfg.runs / "round-1" / "summary.json").write_text('{"prompts": 6}')
    (cfg.runs / "round-1" / "samples.jsonl").write_text("{}\n")
    keep_round_summaries(cfg)
    assert json.loads((cfg.ledger / "round-1" / "summary.json").read_text()) == {"prompts": 6}
    assert not (cfg.ledger / "round-1" / "samples.jsonl").exists()
