"""Which policy a dataset with no policy of its own is served, chosen by measurement and remembered.

Neither the untrained base nor another catalogue's policy is safe by rule: on MovieLens the base beat the Office
policy (cat HR@10 .68 against .48 on 60 validation users), while on another Amazon catalogue the base named one
category path for 73% of users against 28% for the Office policy. So `recgpt.eval.policy_check` runs each candidate
(the base and every policy shipped for the same base) alone on the dataset's validation users, and the result is kept
here as a `PolicyChoice`, one JSON file per (base, dataset, dataset content): served once, the choice is read back,
and every later run on the dataset (CLI or the programmatic API) names it with its numbers in one line.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from recgpt.tools.serving.policy import POLICIES_DIR, dataset_key, trained_on

BASE = "base"
"""The candidate name of the untrained weights."""


class CandidateScore(BaseModel):
    """One candidate measured alone (one Distributed Expert call per user) on the dataset's validation users."""

    candidate: str = Field(description="'base', or the dataset whose shipped policy was served.")
    policy: str = Field(description="The policy's name ('base' for the untrained weights).")
    users: int
    cat_hr: float = Field(description="Category HR@K at the dataset's first level (L2, or genre).")
    item_hr: float
    top_category_share: float = Field(description="Share of users whose answer names the most-named category.")
    distinct_categories: int


class PolicyChoice(BaseModel):
    """The check's record: what was measured, and what is served for the dataset."""

    base: str = Field(description="Registry name of the base model.")
    dataset: str
    data_hash: str
    metric: str = Field(description="The metric the candidates were ranked by, e.g. cat_hr@10_genre.")
    scores: list[CandidateScore]
    chosen: str = Field(description="The winning candidate: 'base' or a dataset whose policy is served.")
    measured_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def winner(self) -> CandidateScore:
        return next(score for score in self.scores if score.candidate == self.chosen)

    def notice(self) -> str:
        """The one line every run on this dataset prints (CLI) or warns (API)."""
        won = self.winner()
        others = "; ".join(f"{s.policy} {s.cat_hr:.3f} / {s.item_hr:.3f}" for s in self.scores if s.candidate != self.chosen)
        served = "the untrained base" if self.chosen == BASE else f"policy {won.policy} (trained on {self.chosen})"
        return (f"{self.dataset} has no trained policy of its own: serving {served}, chosen by a policy-alone check on "
                f"{won.users} validation users ({self.metric} / item_hr@10 {won.cat_hr:.3f} / {won.item_hr:.3f}"
                + (f" against {others}" if others else "") + f"); train one with `recgpt train chain --dataset {self.dataset}`")


def pick(scores: list[CandidateScore]) -> str:
    """The candidate to serve: the best category HR, then item HR, then the less concentrated answers (a policy that
    gives every user one category is worse than its hit rate says), then the base (no foreign policy on a tie)."""
    if not scores:
        raise ValueError("no candidate was measured")
    best = max(scores, key=lambda s: (round(s.cat_hr, 6), round(s.item_hr, 6), -round(s.top_category_share, 6), s.candidate == BASE))
    return best.candidate


def choice_path(home: Path, base: str, dataset: str, data_hash: str) -> Path:
    return home / "policy-choice" / f"{base}--{dataset_key(dataset)}-{data_hash[:12]}.json"


def load_choice(home: Path, base: str, dataset: str, data_hash: str) -> PolicyChoice | None:
    """The stored choice for this exact dataset content (a changed dataset is checked again); None when absent or
    unreadable."""
    path = choice_path(home, base, dataset, data_hash)
    try:
        return PolicyChoice.model_validate_json(path.read_text())
    except (OSError, ValidationError):
        return None


def latest_choice(home: Path, dataset: str) -> PolicyChoice | None:
    """The most recent stored choice for `dataset` (any base, any content), for the API's notice: it knows the served
    identity and the dataset name, not the content hash."""
    found: list[PolicyChoice] = []
    for path in (home / "policy-choice").glob(f"*--{dataset_key(dataset)}-*.json"):
        try:
            found.append(PolicyChoice.model_validate_json(path.read_text()))
        except (OSError, ValidationError):
            continue
    return max(found, key=lambda c: c.measured_at) if found else None


def save_choice(home: Path, choice: PolicyChoice) -> Path:
    path = choice_path(home, choice.base, choice.dataset, choice.data_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(choice.model_dump_json(indent=2))
    tmp.replace(path)
    return path


def served_policy_notice(identity: str, dataset: str, home: Path, policies_dir: Path = POLICIES_DIR) -> str | None:
    """The line a run on `dataset` owes its user about the served weights, or None when they were trained on it.

    - a policy trained on this dataset: nothing to say;
    - a stored check chose what is served: its notice, with the numbers;
    - another dataset's policy that no check chose: a warning naming both datasets;
    - the base with no check on record: nothing (the untrained weights claim no catalogue).
    """
    trained = trained_on(identity, policies_dir)
    if trained is not None and trained[1] == dataset_key(dataset):
        return None
    choice = latest_choice(home, dataset)
    served = BASE if trained is None else trained[1]
    if choice is not None and choice.chosen == served:
        return choice.notice()
    if trained is None:
        return None
    name, source = trained
    chose = f"; the check chose {choice.winner().policy}" if choice is not None else ""
    return (f"the served policy {name} was trained on {source}, not {dataset_key(dataset)}{chose}: serve this dataset's "
            f"choice (`recgpt serve --dataset {dataset}`) or train a policy on it (`recgpt train chain --dataset {dataset}`)")
