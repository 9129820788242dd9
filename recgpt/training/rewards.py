"""RecGPT-V2 rewards as pure functions (no model, no I/O): what GRPO optimises.

Tags (per sampled answer = a list of tags for one user):

- `r_acc`: recall of the user's next-interaction categories after each tag is mapped to its
  nearest catalogue category (the mapping is done by the caller, e.g. Chroma);
- `r_align`: the reward model's score in [0, 1] (computed by the caller);
- `r_div`: mean pairwise cosine distance of the tags' embeddings;
- `r_len`: per tag 6-11 words -> 1.0, 4-5 or 12-13 -> 0.5, else 0; averaged over tags. A word is a distinct run of
  two or more letters: counting whitespace-separated tokens let GRPO reach the band with filler ("board- m- m- m-
  white- board" is 6 tokens but 2 words), measured in the first 50-step CRS run on Office;
- Constrained Reward Shaping (CRS): `R_acc * 1[R_align >= tau_a] * 1[R_div >= tau_d] * 1[R_len >= tau_l]`:
  accuracy is the only thing maximised, the others are gates, so the policy cannot trade accuracy
  for an easy secondary reward (the failure of the weighted SUM baseline, also here).

Dense accuracy (`AccuracyMix.dense`): the sparse R_acc gives most of a group's answers the same reward (a 0.5B policy names
the target's category rarely), so GRPO's group advantage is zero and nothing is learnt. `r_rank` scores an answer by where
the cut's held-out next item ranks among the items the served retriever returns for the answer's tags
(`1/log2(rank+1)` within a deep list, as Rec-R1's NDCG reward), beside the category credit at the configured level and
at the leaf: two answers that both miss the category still differ by how close their items come to the target.

Explanations: `R_align * 1[R_div >= tau]`, with R_div the IDF novelty of the explanation against a
FIFO of the last 160 explanations (repeating stock phrases scores low).
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from recgpt.eval.metrics import mean_pairwise_cosine_distance


def r_acc(tag_categories: Sequence[Iterable[str]], target_categories: Iterable[str]) -> float:
    """Share of the target categories that at least one tag maps to; 0 with no targets."""
    targets = set(target_categories)
    if not targets:
        return 0.0
    covered = set().union(*(set(c) for c in tag_categories)) if tag_categories else set()
    return len(targets & covered) / len(targets)


def r_rank(ranked_items: Sequence[str], targets: Iterable[str], depth: int) -> float:
    """`1/log2(rank+1)` of the best-ranked target among the first `depth` items (rank 1 = first); 0 when none is there."""
    wanted = set(targets)
    for rank, item in enumerate(ranked_items[:depth], start=1):
        if item in wanted:
            return 1.0 / math.log2(rank + 1)
    return 0.0


def r_div(tag_embeddings: np.ndarray) -> float:
    """Mean pairwise cosine distance of the tag embeddings (0 for fewer than two tags)."""
    return mean_pairwise_cosine_distance(np.asarray(tag_embeddings, dtype=float))


_TAG_WORD = re.compile(r"[^\W\d_]{2,}")


def tag_words(tag: str) -> list[str]:
    """The words a tag's length is measured in: runs of two or more letters, each counted once (case-folded), so
    single-letter fragments, numbers and repeats add nothing."""
    return list(dict.fromkeys(w.casefold() for w in _TAG_WORD.findall(tag)))


def length_score(tag: str) -> float:
    words = len(tag_words(tag))
    if 6 <= words <= 11:
        return 1.0
    if words in (4, 5, 12, 13):
        return 0.5
    return 0.0


def r_len(tags: Sequence[str]) -> float:
    """Mean per-tag length score; 0 for no tags."""
    return sum(length_score(t) for t in tags) / len(tags) if tags else 0.0


@dataclass(frozen=True)
class TagRewardParts:
    acc: float
    """R_acc at the configured level (l2 by default)."""
    align: float
    div: float
    len: float
    leaf: float = 0.0
    """R_acc at the leaf (0 where not computed)."""
    rank: float = 0.0
    """`r_rank` of the held-out next item in the served retriever's list for the answer's tags (0 where not computed)."""


@dataclass(frozen=True)
class AccuracyMix:
    """What 'accuracy' means in CRS and SUM: weights of the category credit (configured level), the leaf credit and
    the retrieval rank. `sparse()` is the paper's R_acc alone; `dense()` adds rank and leaf so that a group's answers
    rarely tie."""

    category: float = 1.0
    leaf: float = 0.0
    rank: float = 0.0

    @classmethod
    def sparse(cls) -> AccuracyMix:
        return cls()

    @classmethod
    def dense(cls) -> AccuracyMix:
        return cls(category=0.25, leaf=0.25, rank=0.5)

    def of(self, parts: TagRewardParts) -> float:
        return self.category * parts.acc + self.leaf * parts.leaf + self.rank * parts.rank


@dataclass(frozen=True)
class Gates:
    """CRS thresholds (tau_a, tau_d, tau_l)."""

    align: float = 0.5
    div: float = 0.2
    len: float = 0.5

    def passed(self, parts: TagRewardParts) -> dict[str, bool]:
        return {"align": parts.align >= self.align, "div": parts.div >= self.div, "len": parts.len >= self.len}


@dataclass(frozen=True)
class SumWeights:
    """Weights of the weighted-SUM baseline."""

    acc: float = 1.0
    align: float = 0.5
    div: float = 0.25
    len: float = 0.25


def crs_reward(parts: TagRewardParts, gates: Gates = Gates(), mix: AccuracyMix = AccuracyMix()) -> float:
    """Constrained Reward Shaping: accuracy (sparse by default, `mix`), counted only when every gate passes."""
    return mix.of(parts) if all(gates.passed(parts).values()) else 0.0


def sum_reward(parts: TagRewardParts, weights: SumWeights = SumWeights(), mix: AccuracyMix = AccuracyMix()) -> float:
    return weights.acc * mix.of(parts) + weights.align * parts.align + weights.div * parts.div + weights.len * parts.len


def zero_std_share(groups: Sequence[Sequence[float]]) -> float:
    """Share of groups (one prompt's sampled answers) whose rewards are all equal: TRL's `frac_reward_zero_std`, the
    groups from which GRPO learns nothing. Groups of fewer than two answers are left out; 0 for none."""
    sized = [g for g in groups if len(g) >= 2]
    return sum(1 for g in sized if max(g) - min(g) <= 1e-12) / len(sized) if sized else 0.0


_WORD = re.compile(r"[a-z0-9]+")


def words_of(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class IdfDiversity:
    """IDF novelty of a text against a FIFO of the last `window` texts, in [0, 1].

    score = mean over the text's distinct words of idf(w) / idf_max, with
    idf(w) = ln((1 + N) / (1 + df(w))) over the N texts in the window and idf_max = ln(1 + N)
    (a word no text in the window used). An empty window scores 1 (nothing to repeat).
    """

    def __init__(self, window: int = 160) -> None:
        self.window: deque[frozenset[str]] = deque(maxlen=window)
        self.df: Counter[str] = Counter()

    def score(self, text: str) -> float:
        words = set(words_of(text))
        n = len(self.window)
        if not words:
            return 0.0
        if n == 0:
            return 1.0
        top = math.log(1 + n)
        return sum(math.log((1 + n) / (1 + self.df[w])) for w in words) / (len(words) * top)

    def push(self, text: str) -> None:
        if len(self.window) == self.window.maxlen:
            self.df.subtract(self.window[0])
        words = frozenset(words_of(text))
        self.window.append(words)
        self.df.update(words)


def explanation_reward(align: float, diversity: float, tau: float = 0.3) -> float:
    """R_align * 1[R_div >= tau]."""
    return align if diversity >= tau else 0.0
