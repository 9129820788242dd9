"""Judge-as-a-Reward losses: listwise (preserves Superior > Average > Bad) and the pointwise baseline.

TRL's RewardTrainer is pairwise (chosen vs rejected); a judge gives *grades* to a group of
samples for the same prompt, so the natural objective is listwise. For a group with grades g and
scores s, every sample i competes against all samples graded strictly lower:

    L = mean_i [ -log( exp(s_i) / (exp(s_i) + sum_{j: g_j < g_i} exp(s_j)) ) ]   over i with a lower-graded j

which is minimised by any scoring that ranks S above A above B, and with three levels it rewards
both S > A and A > B (a pairwise loss on sampled pairs sees only some of them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GRADE_VALUE = {"Superior": 2, "Average": 1, "Bad": 0}
POINTWISE_TARGET = {2: 1.0, 1: 0.5, 0: 0.0}


def listwise_loss(scores: torch.Tensor, grades: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Mean listwise loss over every (sample, group) that has a lower-graded competitor.

    `scores`: (n,) raw reward-model logits; `grades`: (n,) ints (2 = Superior, 1 = Average, 0 = Bad);
    `groups`: (n,) group ids (samples of one prompt). Groups with a single grade contribute nothing;
    a batch with no ordered pair returns a zero that still carries the graph.
    """
    same_group = groups[:, None] == groups[None, :]
    lower = same_group & (grades[None, :] < grades[:, None])  # lower[i, j]: j is a competitor of i
    has_competitor = lower.any(dim=1)
    if not bool(has_competitor.any()):
        return scores.sum() * 0.0
    # logits of row i: s_i itself, then s_j for competitors (others masked to -inf)
    competitors = scores[None, :].expand(len(scores), -1).masked_fill(~lower, float("-inf"))
    logits = torch.cat([scores[:, None], competitors], dim=1)
    nll = -(scores - torch.logsumexp(logits, dim=1))
    return nll[has_competitor].mean()


def pointwise_loss(scores: torch.Tensor, grades: torch.Tensor) -> torch.Tensor:
    """Baseline: sigmoid(score) regressed (BCE) to 1 / 0.5 / 0 for Superior / Average / Bad."""
    targets = torch.tensor([POINTWISE_TARGET[int(g)] for g in grades], dtype=scores.dtype, device=scores.device)
    return F.binary_cross_entropy_with_logits(scores, targets)


def ranking_accuracy(scores: torch.Tensor, grades: torch.Tensor, groups: torch.Tensor) -> float:
    """Share of same-group pairs with different grades that the scores order correctly (ties = half)."""
    same = groups[:, None] == groups[None, :]
    ordered = same & (grades[:, None] > grades[None, :])
    total = int(ordered.sum())
    if total == 0:
        return float("nan")
    diff = scores[:, None] - scores[None, :]
    correct = (diff > 0).float() + 0.5 * (diff == 0).float()
    return float((correct * ordered).sum() / total)
