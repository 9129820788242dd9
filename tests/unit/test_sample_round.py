"""The offline round's scoring and trainer files (`recgpt train sample-round`), without a server: a fake ranker and
embedder stand in for the served retriever and MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recgpt.data.records import Interaction
from recgpt.services.resources import default_registry
from recgpt.tools.retrieval.grounding import category_vocabulary
from recgpt.training.datasets import TrainingCut
from recgpt.training.rewards import TagRewardParts
from recgpt.training.sample_round import (
    ScoredAnswer,
    best_and_worst,
    collapse_share,
    round_files,
    score_answer,
    summarise,
)


def _embed(tags: list[str]) -> np.ndarray:
    return np.eye(len(tags), 4) if tags else np.zeros((0, 4))  # distinct tags: orthogonal, diversity 1


def _answer(*pairs: tuple[str, str]) -> str:
    return json.dumps({"tags": [{"category": c, "tag": t, "rationale": "r"} for t, c in pairs]})


def test_an_answer_is_scored_by_its_categories_and_where_the_target_ranks(small_dataset_dir: Path) -> None:
    data = default_registry().dataset(str(small_dataset_dir))
    vocabulary = category_vocabulary(data, "leaf")
    cut = TrainingCut("u1", (Interaction(item_id="p1"), Interaction(item_id="n1")), (Interaction(item_id="n2"),))
    seen: list[tuple[list[str], list[str | None]]] = []

    def rank(c: TrainingCut, tags: list[str], paths: list[str | None]) -> list[str]:
        seen.append((tags, paths))
        return ["d1", "c1", "n2", "p2"]  # the held-out item third

    pens, notes = (vocabulary.label_of("Office > Writing > Pens"), vocabulary.label_of("Office > Paper > Notes"))
    assert pens and notes
    text = _answer(("sticky notes x inches pack of", notes), ("gel pens", pens))
    scored = score_answer(text, cut, ["Office > Paper > Notes"], vocabulary, "l2", 10, rank, _embed)
    assert scored.tags == ["sticky notes", "gel pens"]  # tidied as a shopper reads them
    assert seen[0][1] == ["Office > Paper > Notes", "Office > Writing > Pens"]  # grounded paths reach the retriever
    assert scored.parts.acc == 1.0 and scored.parts.leaf == 1.0 and abs(scored.parts.rank - 0.5) < 1e-12
    miss = score_answer(_answer(("gel pens", pens)), cut, ["Office > Paper > Notes"], vocabulary, "l2", 2, rank, _embed)
    assert miss.parts.acc == 0.0 and miss.parts.leaf == 0.0 and miss.parts.rank == 0.0  # the target is past depth 2
    broken = score_answer("not json at all", cut, ["Office > Paper > Notes"], vocabulary, "l2", 10, rank, _embed)
    assert broken.tags == [] and broken.reward("crs") == 0.0 and broken.reward("sum") == 0.0


def _scored(rank: float, acc: float = 0.0, category: str = "A") -> ScoredAnswer:
    return ScoredAnswer("{}" if not category else json.dumps({"r": rank, "c": category}), ["t"], [category],
                        TagRewardParts(acc=acc, align=1.0, div=0.5, len=0.0, leaf=0.0, rank=rank))


def test_round_files_prefer_the_best_answer_and_skip_ties() -> None:
    prompt = [{"role": "system", "content": "ctx"}, {"role": "user", "content": "tags"}]
    prompts = {"u": prompt, "v": prompt}
    groups = {"u": [_scored(0.5, category="B"), _scored(0.1), _scored(0.0)], "v": [_scored(0.0), _scored(0.0)]}
    greedy = {"u": _scored(0.2), "v": _scored(0.0)}
    rows = round_files(prompts, greedy, groups)
    assert len(rows["rft"]) == 1 and set(rows["rft"][0]) == {"prompt", "completion"}  # v's best does not beat its greedy one
    assert json.loads(rows["rft"][0]["completion"][0]["content"])["r"] == 0.5
    assert [r["user_id"] for r in rows["dpo-crs"]] == ["u"] and [r["user_id"] for r in rows["dpo-sum"]] == ["u"]
    pair = rows["dpo-crs"][0]
    assert json.loads(pair["chosen"][0]["content"])["r"] == 0.5 and json.loads(pair["rejected"][0]["content"])["r"] == 0.0
    assert best_and_worst([_scored(0.3), _scored(0.3)], "crs") is None
    summary = summarise(groups, greedy, rows)
    assert summary["zero_std_share"]["crs-sparse"] == 1.0  # no answer names the category: every group ties
    assert summary["zero_std_share"]["crs-dense"] == 0.5  # the rank separates u's answers, not v's
    assert summary["rows"] == {"rft": 1, "dpo-crs": 1, "dpo-sum": 1}
    assert collapse_share([_scored(0.1, category="A"), _scored(0.2, category="A"), _scored(0.3, category="B")]) == ("A", 2 / 3)
    assert collapse_share([]) == (None, 0.0)


def test_round_cuts_end_at_the_validation_target_of_users_nobody_tunes_on() -> None:
    from recgpt.eval.harness import sample_users
    from recgpt.training.datasets import TUNING_SAMPLES, validation_target_cuts

    data = default_registry().dataset("office")
    cuts = validation_target_cuts(data, 50, seed=2)
    tuning = set().union(*(sample_users(data, "validation", n, 0) for n in TUNING_SAMPLES))
    assert len(cuts) == 50 and not {c.user_id for c in cuts} & tuning
    for cut in cuts[:10]:
        example = data.example(cut.user_id, "validation")
        assert cut.context == example.history and cut.future == (example.target,)
        test_target = data.example(cut.user_id, "test").target
        assert test_target not in cut.context and test_target not in cut.future  # the test target is never read
    assert [c.user_id for c in validation_target_cuts(data, 50, seed=2)] == [c.user_id for c in cuts]  # seeded


def test_a_killed_round_resumes_from_its_kept_samples_and_only_from_the_same_weights(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    """A round killed mid-way (or its committed samples.jsonl on a fresh machine) asks the server only for the
    answers it lacks, and refuses to mix in answers from other served weights."""
    import asyncio

    import pytest

    from recgpt.errors import RecGPTError
    from recgpt.eval.runs import KeyedStore
    from recgpt.schema.context import Context
    from recgpt.training import sample_round
    from recgpt.training.configs import SampleRoundConfig

    asked: list[tuple[str, float]] = []

    class _Answer:
        def __init__(self, text: str) -> None:
            self.text = text

        def model_dump_json(self) -> str:
            return self.text

    async def fake_call(model, msgs, schema, role, base_url, attempts):  # noqa: ANN001, ANN202
        asked.append((msgs[-1].content, model.temperature))
        return _Answer(_answer(("gel pens", "Pens"))), None

    from types import SimpleNamespace

    monkeypatch.setattr(sample_round, "acall_structured", fake_call)
    monkeypatch.setattr(sample_round, "endpoints_of", lambda ctx: SimpleNamespace(expert=SimpleNamespace(base_url="http://x/v1")))
    monkeypatch.setattr(sample_round, "chat_model", lambda endpoint, temperature, *a: SimpleNamespace(temperature=temperature))
    prompts = {u: [{"role": "system", "content": "ctx"}, {"role": "user", "content": f"tags for {u}"}] for u in ("u:1", "v")}
    wanted = sample_round.round_answers(prompts, 2)
    assert list(wanted) == ["greedy:u:1", "greedy:v", "sample:u:1:0", "sample:u:1:1", "sample:v:0", "sample:v:1"]
    assert wanted["greedy:u:1"] == ("u:1", True) and wanted["sample:u:1:1"] == ("u:1", False)  # ':' inside an id
    path = tmp_path / "round" / "samples.jsonl"
    first = KeyedStore(path)
    sample_round.claim_round(first, "policy-A")
    first.put("greedy:u:1", {"answer": "kept"})
    first.put("sample:v:1", {"answer": "kept"})
    with path.open("a") as f:
        f.write('{"key": "sample:v:0", "val')  # the line a kill cut mid-write: redone

    resumed = KeyedStore(path)  # what a rerun (or a fresh machine's clone) reads
    sample_round.claim_round(resumed, "policy-A")
    config = SampleRoundConfig(output=tmp_path / "round", samples=2, temperature=1.0, concurrency=2)
    asyncio.run(sample_round._sample(config, Context(), prompts, None, resumed, show_progress=False))
    assert sorted(asked) == sorted([("tags for v", 0.0), ("tags for u:1", 1.0), ("tags for u:1", 1.0), ("tags for v", 1.0)])
    assert resumed.values["greedy:u:1"] == {"answer": "kept"} and resumed.values["sample:v:1"] == {"answer": "kept"}
    assert all(key in KeyedStore(path) for key in wanted)  # every answer is on disk now
    with pytest.raises(RecGPTError, match="drawn from policy-A"):
        sample_round.claim_round(KeyedStore(path), "policy-B")
    # the same merged policy exported again on a fresh machine: same folder and sizes, new mtimes -> it resumes
    fresh = tmp_path / "fresh.jsonl"
    sample_round.claim_round(KeyedStore(fresh), "p@/runs/sft-model[model.safetensors:1260367448:1796648837]<bfloat16>")
    sample_round.claim_round(KeyedStore(fresh), "p@/runs/sft-model[model.safetensors:1260367448:1800000000]<bfloat16>")
    with pytest.raises(RecGPTError, match="drawn from"):
        sample_round.claim_round(KeyedStore(fresh), "p@/runs/sft-model[model.safetensors:1260367000:1800000000]<bfloat16>")
