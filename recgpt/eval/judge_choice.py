"""Which judge recgpt recommends, chosen from measured F1 rather than assumed.

Each `recgpt eval-explain` report (one per judge model, the policy's own or a bigger one served in the judge phase)
scores both judges (Agent-as-a-Judge and the single call) against labelled rows with known answers: positives (the
user's own outputs) against shuffled and corrupted negatives. A judge that grades everything alike has F1 0 or a
precision at the positive rate; the one to trust is the one that separates both targets. So candidates are ranked
by their worse F1 over tags and explanations (a judge is used on both), then the mean, then the Agent-as-a-Judge
(the paper's design, and the cheaper one to explain: per-dimension verdicts), then the report listed first (list the
cheaper model first).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from recgpt.errors import RecGPTError
from recgpt.eval.report import model_label

GOAL_F1 = 0.80
"""Issue 33's bar: F1 >= .80 on the labelled set, for tags and for explanations."""


class JudgeScore(BaseModel):
    judge_model: str
    mode: Literal["agent", "single"]
    f1_tags: float
    f1_explanations: float
    n_tags: int
    n_explanations: int
    report: str

    @property
    def worse(self) -> float:
        return min(self.f1_tags, self.f1_explanations)

    @property
    def label(self) -> str:
        return f"{model_label(self.judge_model)} / {self.mode}"


class JudgeChoice(BaseModel):
    chosen: JudgeScore
    scores: list[JudgeScore]
    meets_goal: bool
    agent_at_least_single: dict[str, bool]
    """Per judge model: whether the Agent-as-a-Judge's worse F1 is at least the single call's."""


def scores_of(report: Path) -> list[JudgeScore]:
    """Both judges' F1 ('not Bad' = positive) in one `eval-explain` report."""
    try:
        summary: dict[str, Any] = json.loads(report.read_text())
        agreement = summary["agreement"]
    except (OSError, ValueError, KeyError) as exc:
        raise RecGPTError(f"{report}: not a judged `recgpt eval-explain` report ({type(exc).__name__})") from None
    judge_model = summary.get("judge_model") or summary["model"]
    return [JudgeScore(judge_model=judge_model, mode=mode,
                       f1_tags=agreement["tags"][mode]["not_bad_is_positive"]["f1"],
                       f1_explanations=agreement["explanations"][mode]["not_bad_is_positive"]["f1"],
                       n_tags=int(agreement["tags"][mode]["not_bad_is_positive"]["n"]),
                       n_explanations=int(agreement["explanations"][mode]["not_bad_is_positive"]["n"]), report=str(report))
            for mode in ("agent", "single")]


def choose_judge(scores: list[JudgeScore]) -> JudgeChoice:
    if not scores:
        raise RecGPTError("no judge was measured: pass at least one `recgpt eval-explain` report")
    order = {id(score): i for i, score in enumerate(scores)}
    chosen = max(scores, key=lambda s: (round(s.worse, 6), round((s.f1_tags + s.f1_explanations) / 2, 6), s.mode == "agent", -order[id(s)]))
    by_model: dict[str, dict[str, float]] = {}
    for score in scores:
        by_model.setdefault(score.judge_model, {})[score.mode] = score.worse
    agent_first = {model_label(m): modes.get("agent", 0.0) >= modes.get("single", 0.0) for m, modes in by_model.items()}
    return JudgeChoice(chosen=chosen, scores=scores, meets_goal=chosen.worse >= GOAL_F1, agent_at_least_single=agent_first)


def markdown(choice: JudgeChoice) -> str:
    lines = ["# Which judge to trust", "",
             "Each row is one judge on the labelled rows of its `recgpt eval-explain` report (positives: the user's own "
             "outputs; negatives: another user's, and the owner's own with a defect written in). F1 with 'not Bad' as "
             f"the positive prediction. Ranked by the worse of the two F1s; the goal is ≥ {GOAL_F1:.2f} on both.", "",
             "| judge | F1 tags | F1 explanations | worse | rows (tags / explanations) | report |", "|---|---:|---:|---:|---|---|"]
    for s in sorted(choice.scores, key=lambda s: -s.worse):
        mark = " **(chosen)**" if s == choice.chosen else ""
        lines.append(f"| {s.label}{mark} | {s.f1_tags:.3f} | {s.f1_explanations:.3f} | {s.worse:.3f} | {s.n_tags} / "
                     f"{s.n_explanations} | `{s.report}` |")
    c = choice.chosen
    lines += ["", f"Chosen: **{c.label}**, worse F1 {c.worse:.3f}: "
              + ("it meets the goal." if choice.meets_goal else
                 f"it misses the goal by {GOAL_F1 - c.worse:.3f}; no judge measured here is good enough to gate a reward."),
              "Agent-as-a-Judge at least the single call: " + ", ".join(f"{m}: {'yes' if ok else 'no'}"
                                                                  for m, ok in choice.agent_at_least_single.items()) + ".", ""]
    return "\n".join(lines)
