"""State of the two subgraphs (explanations, judge): what one `Send` carries in, what flows back out.

Here, below the agents and the graph, so that agent nodes and the wiring that compiles them read one definition.
"""

from __future__ import annotations

import operator
from typing import Annotated, Literal

from typing_extensions import NotRequired, TypedDict

from recgpt.schema.state import Accounting, DimensionVerdict, FinalTag, ItemExplanation, Judgement, RetrievedItem, StyleGuideline


class ExplainInput(TypedDict):
    """The payload of one `Send` to the explanation subgraph: one item for one user."""

    shared_prefix: str
    situation: str
    tag: FinalTag
    item: RetrievedItem
    history_item_ids: NotRequired[list[str]]
    """The user's past items: the fallback sentence names the latest one of the item's category."""


class ExplainOutput(Accounting, total=False):
    """What the subgraph hands back to the main graph (all appended through its reducers)."""

    explanations: Annotated[list[ItemExplanation], operator.add]


class ExplainState(ExplainInput, ExplainOutput, total=False):
    guideline: StyleGuideline | None
    style_error: str | None


TargetKind = Literal["tag", "explanation"]


class JudgeInput(TypedDict):
    """The payload of one `Send` to the judge subgraph: one tag or one explanation of one user."""

    shared_prefix: str
    target_kind: TargetKind
    target_id: str
    text: str
    title: str
    category: str
    """An explanation's item category; a tag's grounded category path (empty when the tag is free text)."""
    history_item_ids: NotRequired[list[str]]
    """The user's past items: the judge's catalogue evidence (how many lie in the target's category)."""


class JudgeOutput(Accounting, total=False):
    judgements: Annotated[list[Judgement], operator.add]


class JudgeState(JudgeInput, JudgeOutput, total=False):
    verdicts: Annotated[list[DimensionVerdict], operator.add]


class DimensionTask(JudgeInput):
    dimension: str
