"""Judge-as-a-Reward: a scalar reward model (value head; reward = sigmoid(score)) trained on judge
grades with the listwise loss (or the pointwise baseline).

Reused, not rewritten: transformers' `AutoModelForSequenceClassification(num_labels=1)` is the value
head and `Trainer` runs the loop (checkpoints, resume, logging); only the group collator and the
loss are ours, because TRL's RewardTrainer is pairwise (chosen/rejected) and our labels are graded
groups (Superior / Average / Bad for samples of one prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field
from transformers import PreTrainedTokenizerBase, Trainer

from recgpt.training.listwise import GRADE_VALUE, listwise_loss, pointwise_loss, ranking_accuracy


class GradedSample(BaseModel):
    text: str
    grade: Literal["Superior", "Average", "Bad"]
    source: Literal["judge", "shuffled"] = Field(
        default="judge", description="judge: the judge's grade of a policy sample for this prompt; shuffled: another "
                                     "user's answer shown for this prompt, Bad by construction (in-batch negative).")


class RewardGroup(BaseModel):
    """Samples of one prompt with the judge's grades (the listwise unit)."""

    prompt: str
    samples: list[GradedSample] = Field(min_length=1)
    user_id: str | None = Field(default=None, description="Whose training-prefix cut the prompt is (provenance).")


@dataclass
class GroupCollator:
    """Flattens a batch of groups into one tokenised batch with grade and group-id tensors."""

    tokenizer: PreTrainedTokenizerBase
    max_length: int = 1024

    def __post_init__(self) -> None:
        self.tokenizer.truncation_side = "left"  # the answer is at the end: never cut it

    def __call__(self, groups: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        texts, grades, ids = [], [], []
        for gid, raw in enumerate(groups):
            group = RewardGroup.model_validate(raw)
            for sample in group.samples:
                texts.append(group.prompt + "\n" + sample.text)
                grades.append(GRADE_VALUE[sample.grade])
                ids.append(gid)
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        batch["grades"] = torch.tensor(grades, dtype=torch.long)
        batch["groups"] = torch.tensor(ids, dtype=torch.long)
        return dict(batch)


class GradedRewardTrainer(Trainer):
    """`Trainer` with the listwise (default) or pointwise loss over graded groups."""

    def __init__(self, *args: Any, loss_type: Literal["listwise", "pointwise"] = "listwise", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss_type = loss_type

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):  # type: ignore[override]
        grades, groups = inputs.pop("grades"), inputs.pop("groups")
        scores = model(**inputs).logits.squeeze(-1)
        loss = listwise_loss(scores, grades, groups) if self.loss_type == "listwise" else pointwise_loss(scores, grades)
        return (loss, {"scores": scores}) if return_outputs else loss


@torch.no_grad()
def score_texts(model, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], batch_size: int = 16, max_length: int = 1024) -> torch.Tensor:
    """Raw scores (logits) of texts; the reward is `torch.sigmoid` of them."""
    model.eval()
    tokenizer.truncation_side = "left"  # the answer is at the end: never cut it
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(list(texts[start : start + batch_size]), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        out.append(model(**batch).logits.squeeze(-1).float())
    return torch.cat(out) if out else torch.empty(0)


def held_out_ranking_accuracy(model, tokenizer: PreTrainedTokenizerBase, groups: Sequence[RewardGroup], max_length: int = 1024) -> float:
    """Share of correctly ordered (different-grade, same-group) pairs on held-out groups."""
    texts, grades, ids = [], [], []
    for gid, group in enumerate(groups):
        for sample in group.samples:
            texts.append(group.prompt + "\n" + sample.text)
            grades.append(GRADE_VALUE[sample.grade])
            ids.append(gid)
    scores = score_texts(model, tokenizer, texts, max_length=max_length)
    return ranking_accuracy(scores, torch.tensor(grades), torch.tensor(ids))
