"""`recgpt train reward-data`: Judge-as-a-Reward groups from judge verdicts on policy samples.

For each training-prefix cut (training split only), the served policy samples `samples` expert
answers to the exact expert prompt; the Agent-as-a-Judge (one evaluator per tag dimension, then the
Senior Reviewer rule), the single-call judge, or the rule judge (`rule_judge.py`: the categories of the
cut's next interactions) grades each answer's tag set Superior / Average / Bad. A group is the graded
answers of one prompt: the listwise unit of `recgpt train reward`.

The samples do not depend on the judge, so they are stored once and every judge grades the same ones;
whenever the cut's future is known (always, for training cuts) the summary reports how often the judge
agrees with the rule, the cheapest check that an LLM judge sees anything at all.

Every sample and verdict is stored as it finishes (resumable); an answer the judge abstained on, or
a sample the policy failed to produce, is counted in the summary, never silently dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from recgpt.agents.common import messages
from recgpt.agents.expert import expert_max_tokens, grounded_expert_schema
from recgpt.errors import InvalidModelOutput
from recgpt.eval.judge_labels import derangement
from recgpt.eval.runs import KeyedStore, run_jobs
from recgpt.graph.judge import build_judge_subgraph
from recgpt.schema.context import Context
from recgpt.schema.subgraphs import JudgeInput
from recgpt.services.endpoints import check_endpoint
from recgpt.services.resources import endpoints_of, resolve
from recgpt.tools.llm import LLMRequestRejected, acall_structured, chat_model
from recgpt.training.configs import RewardDataConfig
from recgpt.training.datasets import (
    SERVED_RATIONALE_CHARS,
    expert_prompt,
    future_categories,
    grounding_vocabulary,
    training_cuts,
)
from recgpt.training.grpo_rewards import completion_text, parse_tags
from recgpt.training.reward_model import GradedSample, RewardGroup
from recgpt.training.rule_judge import RULE_GRADES, rule_grade


def _store_path(config: RewardDataConfig) -> Path:
    payload = json.dumps({k: v for k, v in asdict(config).items()
                          if k not in ("output", "concurrency", "shuffled_negatives", "judge_mode")},
                         sort_keys=True, default=str)
    return config.output.with_suffix(f".{hashlib.sha256(payload.encode()).hexdigest()[:8]}.work.jsonl")


async def _collect(config: RewardDataConfig, show_progress: bool) -> dict[str, Any]:
    resources = resolve(config.dataset)
    data = resources.dataset
    judge_graph = build_judge_subgraph(resources)  # compiled once, bound to the run's resources
    cuts = training_cuts(data, future=config.future)
    cuts = random.Random(config.seed).sample(cuts, min(config.max_users, len(cuts)))
    rules = config.judge_mode == "rules"
    ctx = Context(judge_mode="agent" if rules else config.judge_mode)  # type: ignore[arg-type]
    store = KeyedStore(_store_path(config))
    m = config.tags_per_expert
    vocabulary = grounding_vocabulary(data, config.grounding)
    if rules and vocabulary is None:
        raise ValueError("--judge rules grades the categories an answer names: it needs grounded answers (--grounding leaf or l2)")
    futures = {cut.user_id: future_categories(data, cut) for cut in cuts}
    judged = f"judge:{config.judge_mode}"
    prompts = {cut.user_id: expert_prompt(data, cut, m, vocabulary=vocabulary) for cut in cuts}
    pending = [f"sample:{u}:{i}" for u in prompts for i in range(config.samples) if f"sample:{u}:{i}" not in store]
    pending += [f"{judged}:{u}:{i}" for u in prompts for i in range(config.samples) if not rules
                and (store.values.get(f"sample:{u}:{i}") or {}).get("answer") and f"{judged}:{u}:{i}" not in store]
    endpoint = None
    if pending:  # a finished collection regroups offline (e.g. with another --shuffled-negatives)
        check_endpoint(ctx)
        endpoint = endpoints_of(ctx).expert

    def sample_job(user: str, index: int):
        async def job() -> Any:
            assert endpoint is not None
            model = chat_model(endpoint, config.temperature, expert_max_tokens(m, vocabulary, SERVED_RATIONALE_CHARS), None)
            msgs = messages(prompts[user][0]["content"], prompts[user][1]["content"])
            try:
                output, _ = await acall_structured(model, msgs, grounded_expert_schema(m, vocabulary, SERVED_RATIONALE_CHARS), "expert", endpoint.base_url, ctx.schema_attempts)
            except (InvalidModelOutput, LLMRequestRejected) as exc:  # recorded and counted, the run goes on
                return {"answer": None, "error": str(exc)[:200]}
            return {"answer": output.model_dump_json()}

        return job

    sample_jobs = {f"sample:{u}:{i}": sample_job(u, i) for u in prompts for i in range(config.samples)}
    await run_jobs(store, sample_jobs, "policy samples", config.concurrency, show_progress)

    def judge_job(user: str, index: int, answer: str):
        async def job() -> Any:
            task = JudgeInput(shared_prefix=prompts[user][0]["content"], target_kind="tag", target_id=f"{user}:{index}",
                              text="; ".join(parse_tags(answer)), title="", category="")
            out = await judge_graph.ainvoke(task, context=ctx)  # the injection guard is on by default
            return out["judgements"][0].model_dump(mode="json")

        return job

    judge_jobs = {}
    for u in prompts:
        for i in range(config.samples):
            answer = store.values[f"sample:{u}:{i}"].get("answer")
            if answer and not rules:
                judge_jobs[f"{judged}:{u}:{i}"] = judge_job(u, i, answer)
    await run_jobs(store, judge_jobs, "judge verdicts", max(1, config.concurrency // 4), show_progress)

    def verdict(user: str, index: int, answer: str) -> str | None:
        if rules:
            assert vocabulary is not None
            return rule_grade(answer, futures[user], vocabulary)
        return store.values[f"{judged}:{user}:{index}"].get("overall")

    groups, failed_samples, abstained = [], 0, 0
    agreement: list[tuple[str, str]] = []  # (judge grade, rule grade) per judged sample
    grades: dict[str, int] = {"Superior": 0, "Average": 0, "Bad": 0}
    for u in prompts:
        samples = []
        for i in range(config.samples):
            answer = store.values[f"sample:{u}:{i}"].get("answer")
            if not answer:
                failed_samples += 1
                continue
            overall = verdict(u, i, answer)
            if overall is None:
                abstained += 1
                continue
            grades[overall] += 1
            if vocabulary is not None:
                agreement.append((overall, rule_grade(answer, futures[u], vocabulary)))
            samples.append(GradedSample(text=answer, grade=overall))
        if samples:
            groups.append(RewardGroup(prompt=completion_text(prompts[u]), samples=samples, user_id=u))
    shuffled = add_shuffled_negatives(groups, config.shuffled_negatives, config.seed)
    config.output.parent.mkdir(parents=True, exist_ok=True)
    config.output.write_text("".join(g.model_dump_json() + "\n" for g in groups))
    mixed = sum(1 for g in groups if len({s.grade for s in g.samples if s.source == "judge"}) > 1)
    summary = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
               "groups": len(groups), "groups_with_mixed_grades": mixed, "grades": grades, "shuffled_negatives": shuffled,
               "failed_samples": failed_samples, "judge_abstained": abstained, "work_file": str(store.path),
               "rule_agreement": rule_agreement(agreement)}
    config.output.with_suffix(".summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def rule_agreement(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """How a judge's grades line up with the rule's: exact agreement and the judge's Superior rate on the samples the
    rule grades Superior against those it grades Bad (a judge that sees relevance rates the first higher)."""
    def superior_rate(rule: str) -> float | None:
        judged = [j for j, r in pairs if r == rule]
        return round(sum(j == "Superior" for j in judged) / len(judged), 3) if judged else None

    return {"samples": len(pairs),
            "exact": round(sum(j == r for j, r in pairs) / len(pairs), 3) if pairs else None,
            "rule_grades": {g: sum(r == g for _, r in pairs) for g in RULE_GRADES},
            "judge_superior_rate_when_rule_superior": superior_rate("Superior"),
            "judge_superior_rate_when_rule_bad": superior_rate("Bad")}


def add_shuffled_negatives(groups: list[RewardGroup], per_group: int, seed: int) -> int:
    """Append `per_group` judged answers of other groups to each group, graded Bad (source "shuffled").

    Donors follow seeded derangements (no group receives its own answers); returns how many were added.
    """
    if per_group < 1 or len(groups) < 2:
        return 0
    own = [[s for s in g.samples if s.source == "judge"] for g in groups]
    added = 0
    for round_ in range(per_group):
        donors = derangement(len(groups), seed + round_)
        for receiver, donor in enumerate(donors):
            # perm[i] receives i's payload: group `donor` gets an answer of group `receiver`
            if own[receiver]:
                sample = own[receiver][round_ % len(own[receiver])]
                groups[donor].samples.append(GradedSample(text=sample.text, grade="Bad", source="shuffled"))
                added += 1
    return added


def build_reward_data(config: RewardDataConfig, show_progress: bool = True) -> dict[str, Any]:
    """Sample, judge, group; returns the summary (also written to `<output>.summary.json`)."""
    return asyncio.run(_collect(config, show_progress))
