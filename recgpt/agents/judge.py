"""Agent-as-a-Judge: one evaluator per dimension, a rule-based Senior Reviewer, and the V1 single-call judge.

The Senior Reviewer is deliberately not an LLM: its rule (any failing dimension -> Bad; else
Superior when at least tau dimensions are positive, else Average) is the paper's, and keeping it
a pure function makes the judge's aggregate behaviour testable and auditable.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from recgpt.agents.common import AgentCall, clean_text, messages
from recgpt.agents.judge_checks import explanation_check_failures, history_evidence, tag_check_failures
from recgpt.agents.words import known_words
from recgpt.prompts.judge import (
    DIMENSION_INSTRUCTIONS,
    DIMENSION_YES_NO,
    EXPLANATION_DIMENSIONS,
    EXPLANATION_TARGET,
    PAIRWISE_INSTRUCTIONS,
    PAIRWISE_LETTER,
    PAIRWISE_TARGET,
    SINGLE_JUDGE_INSTRUCTIONS,
    SINGLE_YES_NO,
    TAG_DIMENSIONS,
    TAG_TARGET,
)
from recgpt.schema.context import Context
from recgpt.schema.state import DimensionVerdict, Grade, Judgement, Overall
from recgpt.schema.subgraphs import DimensionTask, JudgeInput, JudgeState, TargetKind
from recgpt.services.resources import Resources

INJECTION_PATTERN = re.compile(
    r"ignore (all |any |the |previous |prior |above )*(instructions|rubric|rules|criteria)"
    r"|\b(rate|grade|judge|score|mark|classify)\b[^.]{0,30}\b(superior|excellent|positive|5 stars?|highest|perfect)\b"
    r"|system prompt|you are now|disregard (the|all|any|previous)",
    re.IGNORECASE,
)
"""Judge-directed instructions inside a target. Ordinary explanations never need these phrases."""


def dimensions_of(kind: TargetKind) -> dict[str, str]:
    return TAG_DIMENSIONS if kind == "tag" else EXPLANATION_DIMENSIONS


class VerdictOutput(BaseModel):
    reason: str = Field(max_length=100, description="One short sentence.")
    grade: Grade


class PreferenceOutput(BaseModel):
    reason: str = Field(max_length=150, description="One short sentence.")
    better: Literal["A", "B"]


class SingleVerdictOutput(BaseModel):
    reason: str = Field(max_length=200, description="One sentence.")
    rating: Overall


RATING_OF_GRADE: dict[str, Overall] = {"positive": "Superior", "neutral": "Average", "negative": "Bad"}
"""The single judge's rating from its one probability-scored grade."""


def grade_of(p_yes: float, ctx: Context) -> Grade:
    """Probability scoring's grade: positive at or above the yes threshold, negative below the no threshold."""
    if p_yes >= ctx.judge_yes_threshold:
        return "positive"
    return "negative" if p_yes < ctx.judge_no_threshold else "neutral"


def senior_review(verdicts: list[DimensionVerdict], tau: int) -> Overall | None:
    """Any negative dimension -> Bad; else Superior when >= tau positives, else Average.

    Evaluators that failed (grade None) count as not positive; with no usable verdict at all the
    judge abstains (None) rather than invent a grade.
    """
    graded = [v for v in verdicts if v.grade is not None]
    if not graded:
        return None
    if any(v.grade == "negative" for v in graded):
        return "Bad"
    return "Superior" if sum(v.grade == "positive" for v in graded) >= tau else "Average"


def injection_suspected(*texts: str) -> bool:
    return any(INJECTION_PATTERN.search(t or "") for t in texts)


def target_block(task: JudgeInput, evidence: str = "") -> str:
    """The target under review, and (code checks on) one line of catalogue evidence the LLM reads with it."""
    text = clean_text(task["text"], 300)
    if task["target_kind"] == "tag":
        block = TAG_TARGET.format(text=text)
        if task["category"]:
            block = block.replace("\n</target>", f"\nCatalogue category: {task['category']}\n</target>", 1)
    else:
        block = EXPLANATION_TARGET.format(title=clean_text(task["title"], 200), category=task["category"], text=text)
    return f"{block}\n{evidence}" if evidence else block


def check_failures(task: JudgeInput, resources: Resources) -> dict[str, str]:
    """Dimension -> the code check's reason, for the dimensions a literal check fails (agents/judge_checks.py)."""
    if task["target_kind"] == "tag":
        return tag_check_failures(task["text"], known_words(resources.dataset))
    return explanation_check_failures(task["text"], task.get("title", ""), task["category"])


def evidence_of(task: JudgeInput, resources: Resources) -> str:
    return history_evidence(resources.dataset, task.get("history_item_ids") or [], task["category"])


async def dimension_node(task: DimensionTask, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    """One sub-evaluator: one dimension of one target."""
    ctx = runtime.context
    run = AgentCall("judge_dimension", ctx, await resources.aendpoints(ctx), role="judge")
    dimension = task["dimension"]
    question = dimensions_of(task["target_kind"])[dimension]
    evidence = ""
    if ctx.judge_code_checks:
        if (reason := check_failures(task, resources).get(dimension)) is not None:
            return {"verdicts": [DimensionVerdict(dimension=dimension, grade="negative", reason=reason)]}
        evidence = evidence_of(task, resources)
    if ctx.judge_scoring == "probability":
        prompt = messages(task["shared_prefix"], target_block(task, evidence) + "\n" + DIMENSION_YES_NO.format(dimension=dimension, question=question))
        p_yes = await run.ask_yes(f"judge[{task['target_kind']}:{dimension}]", prompt)
        if p_yes is None:
            return run.update(verdicts=[DimensionVerdict(dimension=dimension, grade=None, reason=str(run.error)[:200])])
        verdict = DimensionVerdict(dimension=dimension, grade=grade_of(p_yes, ctx), reason=f"P(yes) = {p_yes:.3f}", p_yes=p_yes)
        return run.update(verdicts=[verdict])
    prompt = messages(task["shared_prefix"], target_block(task, evidence) + "\n" + DIMENSION_INSTRUCTIONS.format(dimension=dimension, question=question))
    output = await run.ask(f"judge[{task['target_kind']}:{dimension}]", prompt, VerdictOutput, ctx.judge_temperature, 60)
    if output is None:
        return run.update(verdicts=[DimensionVerdict(dimension=dimension, grade=None, reason=str(run.error)[:200])])
    return run.update(verdicts=[DimensionVerdict(dimension=dimension, grade=output.grade, reason=clean_text(output.reason, 160))])


def guard_verdicts(task: JudgeInput, verdicts: list[DimensionVerdict], enabled: bool) -> tuple[list[DimensionVerdict], list[str]]:
    """Judge-directed instructions in the target fail its safety (tags: validity) dimension, whatever the LLM said."""
    if not enabled or not injection_suspected(task["text"], task.get("title", "")):
        return verdicts, []
    dimension = "safety" if task["target_kind"] == "explanation" else "validity"
    reason = "the target carries instruction-like text aimed at the judge (injection guard)"
    kept = [v for v in verdicts if v.dimension != dimension]
    return kept + [DimensionVerdict(dimension=dimension, grade="negative", reason=reason)], ["injection_suspected"]


async def review_node(state: JudgeState, runtime: Runtime[Context]) -> dict[str, Any]:
    """Senior Reviewer: aggregate the dimension verdicts into Superior / Average / Bad."""
    ctx = runtime.context
    tau = ctx.judge_tau_tags if state["target_kind"] == "tag" else ctx.judge_tau_explanations
    order = list(dimensions_of(state["target_kind"]))
    verdicts, flags = guard_verdicts(state, state.get("verdicts", []), ctx.judge_injection_guard)
    verdicts = sorted(verdicts, key=lambda v: order.index(v.dimension) if v.dimension in order else len(order))
    if any(v.reason.startswith("code check:") for v in verdicts):
        flags.append("code_check")
    failed = [v.dimension for v in verdicts if v.grade is None]
    if failed:
        flags.append(f"evaluators_failed: {', '.join(failed)}")
    judgement = Judgement(target_kind=state["target_kind"], target_id=state["target_id"], mode="agent",
                          overall=senior_review(verdicts, tau), verdicts=verdicts, flags=flags)
    return {"judgements": [judgement]}


async def single_judge_node(state: JudgeState, runtime: Runtime[Context], resources: Resources) -> dict[str, Any]:
    """RecGPT-V1 baseline: one call grades every dimension at once."""
    ctx = runtime.context
    run = AgentCall("judge_single", ctx, await resources.aendpoints(ctx), role="judge")
    names = ", ".join(dimensions_of(state["target_kind"]))
    base = dict(target_kind=state["target_kind"], target_id=state["target_id"], mode="single")
    evidence = ""
    if ctx.judge_code_checks:
        if failures := check_failures(state, resources):
            dimension, reason = next(iter(failures.items()))
            return {"judgements": [Judgement(**base, overall="Bad", reason=f"{dimension}: {reason}", flags=["code_check"])]}
        evidence = evidence_of(state, resources)
    guarded = ctx.judge_injection_guard and injection_suspected(state["text"], state.get("title", ""))
    if ctx.judge_scoring == "probability":
        prompt = messages(state["shared_prefix"], target_block(state, evidence) + "\n" + SINGLE_YES_NO.format(dimensions=names))
        p_yes = await run.ask_yes(f"judge[{state['target_kind']}:single]", prompt)
        if p_yes is None:
            return run.update(judgements=[Judgement(**base, overall=None, reason=str(run.error)[:200], flags=["judge_failed"])])
        judgement = Judgement(**base, overall="Bad" if guarded else RATING_OF_GRADE[grade_of(p_yes, ctx)], reason=f"P(yes) = {p_yes:.3f}", p_yes=p_yes,
                              flags=["injection_suspected"] if guarded else [])
        return run.update(judgements=[judgement])
    prompt = messages(state["shared_prefix"], target_block(state, evidence) + "\n" + SINGLE_JUDGE_INSTRUCTIONS.format(dimensions=names))
    output = await run.ask(f"judge[{state['target_kind']}:single]", prompt, SingleVerdictOutput, ctx.judge_temperature, 110)
    if output is None:
        return run.update(judgements=[Judgement(**base, overall=None, reason=str(run.error)[:200], flags=["judge_failed"])])
    judgement = Judgement(**base, overall="Bad" if guarded else output.rating, reason=clean_text(output.reason, 200),
                          flags=["injection_suspected"] if guarded else [])
    return run.update(judgements=[judgement])


class Preference(BaseModel):
    """The pairwise judge's answer: which explanation ("A" = the first shown), why, and (probability scoring) P(A)."""

    better: Literal["A", "B"] | None
    reason: str = ""
    p_first: float | None = None


async def prefer(ctx: Context, resources: Resources, shared_prefix: str, title: str, category: str, first: str,
                 second: str) -> Preference:
    """Pairwise judge: which of two explanations of one item this user would rather read ("A" = `first`), and why.

    Position bias is the caller's to cancel (ask both orders; with probability scoring, average P(meta) over them).
    With the code checks on, a sentence that fails one loses to one that fails none without an LLM call (P(A) 0 or
    1); when both or neither fail, the LLM decides. `better` None: the call failed.
    """
    if ctx.judge_code_checks:
        failed = [bool(explanation_check_failures(text, title, category)) for text in (first, second)]
        if failed[0] != failed[1]:
            return Preference(better="B" if failed[0] else "A", reason="code check: the other explanation has a literal defect",
                              p_first=0.0 if failed[0] else 1.0)
    run = AgentCall("judge_pairwise", ctx, await resources.aendpoints(ctx), role="judge")
    block = PAIRWISE_TARGET.format(title=clean_text(title, 200), category=category, first=clean_text(first, 300),
                                   second=clean_text(second, 300))
    if ctx.judge_scoring == "probability":
        p_a = await run.ask_yes("judge[pairwise]", messages(shared_prefix, block + "\n" + PAIRWISE_LETTER),
                                yes=frozenset({"a"}), no=frozenset({"b"}))
        if p_a is None:
            return Preference(better=None, reason=str(run.error)[:200])
        return Preference(better="A" if p_a >= 0.5 else "B", reason=f"P(A) = {p_a:.3f}", p_first=p_a)
    output = await run.ask("judge[pairwise]", messages(shared_prefix, block + "\n" + PAIRWISE_INSTRUCTIONS),
                           PreferenceOutput, ctx.judge_temperature, 90)
    if output is None:
        return Preference(better=None, reason=str(run.error)[:200])
    return Preference(better=output.better, reason=clean_text(output.reason, 150))
