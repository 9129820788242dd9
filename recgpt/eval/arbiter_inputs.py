"""What the arbiter node read for one stored user, rebuilt from a `recgpt eval` store: its pool, its ranks, the
category shares and the user's signals. The arbiter replay scripts (`scripts/arbiter_prior_sweep.py`,
`scripts/arbiter_replay.py`) re-run the node's post-processing on these without asking the LLM again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recgpt.data import Dataset
from recgpt.schema.state import FinalTag, ProposedTag
from recgpt.tools.retrieval.evidence import category_mass
from recgpt.tools.retrieval.grounding import CategoryVocabulary
from recgpt.tools.retrieval.protocol import UserSignals


@dataclass(frozen=True)
class ArbiterInputs:
    history: list[str]
    shares: dict[str, float]
    pool: list[ProposedTag]
    chosen: list[FinalTag]
    user: UserSignals


def arbiter_inputs(result: Any, dataset: Dataset, split: str, model: Any, vocabulary: CategoryVocabulary) -> ArbiterInputs:
    """`result` is a stored `UserResult` with its `pool`; the shares are recomputed from the split's SASRec `model`,
    as the context node computes them."""
    history = [e.item_id for e in dataset.example(result.user_id, split).history]
    shares = {vocabulary.path_of(s.label) or s.label: s.share for s in category_mass(model, history, dataset, vocabulary)}
    pool = [ProposedTag(tag=p["tag"], rationale="", persona_index=p["persona_index"], persona="", category=p["category"])
            for p in result.pool]
    chosen = sorted((FinalTag(**t.model_dump(), rank=p["rank"]) for t, p in zip(pool, result.pool) if p["rank"]),
                    key=lambda t: t.rank)
    return ArbiterInputs(history, shares, pool, chosen,
                         UserSignals(user_id=result.user_id, history_item_ids=tuple(history), split=split))
