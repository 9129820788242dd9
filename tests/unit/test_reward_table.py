"""The reward table (GRPO where recgpt's retrieval stack is absent): its interleaved rank is exactly the served merge's,
its parts follow the answer's categories, its agreement with a scored round is measured, and a GRPO run from it
imports nothing of the serving stack."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from recgpt.errors import RecGPTError
from recgpt.eval.metrics import interleave
from recgpt.training.reward_table import (
    RewardTable,
    TablePrompt,
    agreement,
    interleaved_rank,
    onehot_embed,
    table_parts,
)
from recgpt.training.rewards import Gates, TagRewardParts

LABELS = {"Gel Pens": "Office > Writing > Gel Pens", "Notebooks": "Office > Paper > Notebooks",
          "Tape": "Office > Supplies > Tape", "Staplers": "Office > Supplies > Staplers"}


def _table(sizes: dict[str, int], per_tag: int, prompt: TablePrompt, depth: int = 300) -> RewardTable:
    return RewardTable(dataset="office", level="l2", depth=depth, per_tag=per_tag, labels=LABELS, sizes=sizes,
                       schema={"type": "object"}, prompts=[prompt])


def _answer(*labels: str) -> str:
    return json.dumps({"tags": [{"category": label, "tag": f"{label.lower()} for the desk {i}"} for i, label in enumerate(labels)]},
                      separators=(",", ":"))


def test_the_interleaved_rank_is_the_served_merges_position() -> None:
    """Against `eval.metrics.interleave` (what the graph and the exact reward merge with) on random lists: disjoint
    categories, lists cut at per_tag and shortened by the history, repeated categories adding nothing."""
    rng = random.Random(0)
    for _ in range(300):
        per_tag = rng.randint(1, 12)
        sizes = {label: rng.randint(1, 15) for label in LABELS}
        history = {label: rng.randint(0, 3) for label in LABELS if rng.random() < 0.5}
        lists = {label: [f"{label}-{i}" for i in range(max(0, min(per_tag, sizes[label] - history.get(label, 0))))]
                 for label in LABELS}
        target_label = rng.choice(list(LABELS))
        rank = rng.randint(1, per_tag + 2)
        named = [rng.choice(list(LABELS)) for _ in range(rng.randint(1, 5))]
        prompt = TablePrompt(user_id="u", prompt=[], level_targets=[], leaf_targets=[], ranks={target_label: rank},
                             history_counts=history)
        target = f"{target_label}-{rank - 1}"
        merged = interleave([lists[label] for label in named], 10_000)
        expected = merged.index(target) + 1 if target in merged else None
        assert interleaved_rank(_table(sizes, per_tag, prompt), prompt, named) == expected, (named, target, lists)


def test_an_answers_parts_come_from_its_categories_and_the_targets_rank() -> None:
    prompt = TablePrompt(user_id="u", prompt=[], level_targets=["Office > Paper"], leaf_targets=["Office > Paper > Notebooks"],
                         ranks={"Notebooks": 2})
    table = _table(dict.fromkeys(LABELS, 50), 10, prompt)
    hit = table_parts(table, prompt, _answer("Gel Pens", "Notebooks"))
    assert hit.acc == 1.0 and hit.leaf == 1.0 and hit.align == 1.0 and hit.div == 1.0
    assert hit.rank == pytest.approx(1 / __import__("math").log2(4 + 1))  # 2nd of Notebooks behind 1st of both, then Pens' 2nd
    miss = table_parts(table, prompt, _answer("Gel Pens", "Tape"))
    assert (miss.acc, miss.leaf, miss.rank) == (0.0, 0.0, 0.0)
    deep = _table(dict.fromkeys(LABELS, 50), 10, prompt, depth=3)
    assert table_parts(deep, prompt, _answer("Gel Pens", "Notebooks")).rank == 0.0  # beyond the depth that earns r_rank
    assert table_parts(table, prompt, "not json").rank == 0.0
    assert onehot_embed(["Gel pens", "gel pens!", "Tape"]).tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]


def test_a_table_round_trips_and_refuses_another_version(tmp_path: Path) -> None:
    prompt = TablePrompt(user_id="u", prompt=[{"role": "user", "content": "tags"}], level_targets=["Office > Paper"],
                         leaf_targets=[], ranks={"Notebooks": 1}, history_counts={"Tape": 1})
    table = _table({"Notebooks": 3}, 5, prompt)
    path = table.save(tmp_path / "table.json")
    again = RewardTable.load(path)
    assert again == table and again.rows() == [{"prompt": prompt.prompt, "target_categories": ["Office > Paper"], "user_id": "u"}]
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": 0}))
    with pytest.raises(RecGPTError, match="version 0"):
        RewardTable.load(path)
    with pytest.raises(RecGPTError, match="not a reward table"):
        RewardTable.load(tmp_path / "missing.json")


def test_agreement_with_an_exactly_scored_round(tmp_path: Path) -> None:
    """Where the exact scores are the table's own, every correlation is 1 and the best answers coincide."""
    prompt = TablePrompt(user_id="u", prompt=[], level_targets=["Office > Paper"], leaf_targets=["Office > Paper > Notebooks"],
                         ranks={"Notebooks": 1})
    table = _table(dict.fromkeys(LABELS, 50), 10, prompt)
    answers = [_answer("Notebooks", "Tape"), _answer("Tape", "Notebooks"), _answer("Gel Pens", "Tape"), _answer("Tape", "Tape")]
    round_dir = tmp_path / "round"
    round_dir.mkdir()
    (round_dir / "summary.json").write_text(json.dumps({"config": {"samples": 4}}))
    (round_dir / "samples.jsonl").write_text("".join(json.dumps({"key": f"sample:u:{i}", "value": {"answer": a}}) + "\n"
                                                     for i, a in enumerate(answers)))
    parts = [table_parts(table, prompt, a) for a in answers]
    (round_dir / "scores.jsonl").write_text(json.dumps({"user_id": "u", "samples": [p.__dict__ for p in parts]}) + "\n")
    measured = agreement(table, round_dir, Gates(align=0.0, div=0.2, len=0.0))
    assert measured["answers"] == 4 and measured["rank"]["spearman"] == pytest.approx(1.0)
    assert measured["same_best_answer"] == {"crs": 1.0, "sum": 1.0}
    assert isinstance(parts[0], TagRewardParts) and parts[0].rank > parts[1].rank > parts[2].rank == 0.0


def test_a_grpo_run_from_a_table_needs_no_serving_stack(tmp_path: Path) -> None:
    """`python -m recgpt.training.reward_table` as a GPU box runs it: Chroma, LangChain, LangGraph, MiniLM and vLLM
    unimportable; rollouts decode under the table's schema and are scored from the table alone."""
    from recgpt.agents.expert import grounded_expert_schema
    from recgpt.tools.retrieval.grounding import CategoryVocabulary
    from tests.unit.test_grpo import char_model_dir

    labels = ("Gel Pens", "Notebooks")
    schema = grounded_expert_schema(1, CategoryVocabulary(level="leaf", labels=labels, paths=tuple(LABELS[x] for x in labels)),
                                    rationale_chars=0).model_json_schema()
    prompts = [TablePrompt(user_id=f"u{n}", prompt=[{"role": "user", "content": f"pens and paper {n}"}],
                           level_targets=["Office > Paper"], leaf_targets=["Office > Paper > Notebooks"], ranks={"Notebooks": 1})
               for n in range(2)]
    table = RewardTable(dataset="office", level="l2", depth=300, per_tag=60, labels=LABELS, sizes=dict.fromkeys(LABELS, 9),
                        schema=schema, prompts=prompts)
    table.save(tmp_path / "gpu" / "table.json")
    from transformers import AutoTokenizer

    model = char_model_dir(tmp_path / "model")
    tokenizer = AutoTokenizer.from_pretrained(model)  # conversational prompts, as the table's are: a chat template
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    tokenizer.save_pretrained(model)
    (tmp_path / "gpu" / "grpo.config.json").write_text(json.dumps({
        "reward_table": "table.json", "model": str(model), "output_dir": str(tmp_path / "run"),
        "envelope": "off", "num_generations": 2, "max_completion_length": 120, "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1, "max_steps": 1, "save_steps": 1, "beta": 0.0, "lora_r": 0, "loss_type": "grpo",
        "precision": "float32"}))
    blocked = ("chromadb", "langchain_core", "langchain_openai", "langgraph", "sentence_transformers", "vllm", "httpx")
    code = (f"import sys; [sys.modules.__setitem__(m, None) for m in {blocked!r}]; "
            "from recgpt.training.reward_table import main; "
            f"sys.exit(main([{str(tmp_path / 'gpu' / 'grpo.config.json')!r}, 'temperature=1.0']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rollouts = [json.loads(line) for line in (tmp_path / "run" / "rollouts.jsonl").read_text().splitlines()]
    assert rollouts and all(r["categories"] for r in rollouts)  # every constrained rollout names a catalogue label
    logs = json.loads((tmp_path / "run" / "metrics.json").read_text())["log_history"]
    assert any("rewards/r_rank/mean" in h for h in logs)
    bad = subprocess.run([sys.executable, "-m", "recgpt.training.reward_table", str(tmp_path / "gpu" / "grpo.config.json"),
                          "no_such_field=1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "unknown field 'no_such_field'" in bad.stderr
