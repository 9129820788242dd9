"""Typed graph state. Lists that parallel nodes append to carry `operator.add` reducers.

`typing_extensions.TypedDict` (not `typing`) because LangGraph's schema introspection needs it
on Python 3.11 (and Studio renders these as the input/output forms).
"""

from __future__ import annotations

import operator
from typing import Annotated, Literal, get_type_hints

from pydantic import BaseModel, Field
from typing_extensions import NotRequired, TypedDict

from recgpt.schema.calls import LLMCall
from recgpt.text_fields import english_text


class Persona(BaseModel):
    """One facet of the user, produced by the Global Planner."""

    # Bounded English text (server-enforced patterns): the planner's whole answer stays within ~55
    # completion tokens per persona, since decode time dominates on CPU servers.
    name: english_text(50, description="Who the user is in this role, now.")  # type: ignore[valid-type]
    focus: english_text(70, min_chars=0, description="What this persona likely needs next.")  # type: ignore[valid-type]
    evidence: list[english_text(40)] = Field(default_factory=list, max_length=2)  # type: ignore[valid-type]


class ProposedTag(BaseModel):
    """A tag in the experts' pool, with the persona that proposed it."""

    tag: str
    rationale: str
    persona_index: int
    persona: str
    category: str | None = None
    """Grounded runs: the catalogue category path the expert chose for the tag (None: free text only)."""
    written: str | None = None
    """The expert's own words when the shown `tag` was tidied of title filler (`Context.tidy_tags`); None otherwise."""


class FinalTag(ProposedTag):
    """A tag the Decision Arbiter kept (rank 1 = best)."""

    rank: int


class RetrievedItem(BaseModel):
    """One item a tag retrieved. `distance` is the tag-to-item text distance (cosine); a user-aware retriever also
    fills the terms it ranked by (each in [0, 1] within the tag's candidates) and their mix, so that a trace (Studio)
    shows why an item came first: `score = beta · semantic + (1 − beta) · collaborative`. None under Chroma."""

    item_id: str
    title: str
    category: str
    distance: float
    semantic: float | None = None
    collaborative: float | None = None
    score: float | None = None
    source: str | None = None
    """Where a grounded tag's item came from: `category` (the tag's own) or `parent` (an ancestor's, once the category
    ran dry); `semantic` for a free tag's neighbours; None where the backend does not say."""


class TagRecommendation(BaseModel):
    """A final tag, its nearest catalogue category and the items it retrieves."""

    tag: FinalTag
    category: str | None
    category_distance: float | None
    items: list[RetrievedItem]


class ContextStats(BaseModel):
    """How the shared context was built and how big it is."""

    n_events: int
    n_distinct_items: int
    n_listed_items: int
    n_summarised_events: int
    prefix_tokens: int | None = Field(description="Tokens of the shared system prefix (served tokenizer).")
    token_source: str | None = None
    environment: str
    compression: str = Field(default="text", description="'text', 'hybrid' (each listed title is one soft token), or 'raw' (V1's uncompressed history).")
    n_entities: int = Field(default=0, description="Entity soft tokens in the prefix (hybrid only).")


class NodeTiming(BaseModel):
    node: str
    seconds: float


class StyleGuideline(BaseModel):
    """Stage 1 of meta-prompting: how to write the explanation for this user, item and situation."""

    tone: english_text(40)  # type: ignore[valid-type]
    audience: english_text(40)  # type: ignore[valid-type]
    emotional_angle: english_text(40)  # type: ignore[valid-type]
    rhetorical_device: english_text(40)  # type: ignore[valid-type]
    seasonal_framing: english_text(50)  # type: ignore[valid-type]


class PlannedStyle(BaseModel):
    """What the Style Planner writes when tone and rhetorical device are sampled from the user context
    (`Context.style_sampling`): the fields that need the user's history and situation."""

    audience: english_text(40)  # type: ignore[valid-type]
    emotional_angle: english_text(40)  # type: ignore[valid-type]
    seasonal_framing: english_text(50)  # type: ignore[valid-type]


class ItemExplanation(BaseModel):
    """An explanation of one recommended item (empty `text` + `error` when generation failed)."""

    item_id: str
    title: str
    category: str
    tag: str
    mode: Literal["meta", "template", "grounded"]
    guideline: StyleGuideline | None = None
    text: str = ""
    error: str | None = None
    fallback: bool = False
    """`text` was made by code (`Context.explanation_fallback`), not by the writer: its answers failed the checks."""


Grade = Literal["positive", "neutral", "negative"]
Overall = Literal["Superior", "Average", "Bad"]


class DimensionVerdict(BaseModel):
    """One sub-evaluator's verdict (`grade` None when the evaluator itself failed)."""

    dimension: str
    grade: Grade | None
    reason: str = ""
    p_yes: float | None = None
    """Probability scoring (`Context.judge_scoring`): the evaluator's P(yes), from which `grade` was thresholded."""


class Judgement(BaseModel):
    """The judge's decision on one tag or one explanation."""

    target_kind: Literal["tag", "explanation"]
    target_id: str = Field(description="The tag text, or the explained item's id.")
    mode: Literal["agent", "single"]
    overall: Overall | None = Field(description="None when the judge could not decide (every evaluator failed).")
    verdicts: list[DimensionVerdict] = Field(default_factory=list)
    reason: str = ""
    flags: list[str] = Field(default_factory=list)
    p_yes: float | None = None
    """Single judge with probability scoring: P(yes) of 'is it good on every dimension?'."""


class Accounting(TypedDict, total=False):
    """What every (sub)graph appends to through `operator.add`: LLM calls, flags and node timings.

    Subgraph output schemas extend it so their accounting flows into the main graph's lists.
    """

    calls: Annotated[list[LLMCall], operator.add]
    flags: Annotated[list[str], operator.add]
    timings: Annotated[list[NodeTiming], operator.add]


class RecInput(TypedDict, total=False):
    """What a caller gives: a user and, optionally, the situation. `dataset` may be left out: a graph serves the
    dataset it was built for (`build_graph(resolve(name))`), which the run's result names; given, it must be that one."""

    user_id: str
    dataset: str
    split: str
    date: str | None
    weather: str | None
    trend: str | None


class ExpertTask(TypedDict):
    """The payload of one `Send` to an expert."""

    persona: Persona
    persona_index: int
    shared_prefix: str
    history_item_ids: NotRequired[list[str]]
    """The user's history: an exploring expert leaves its categories out of its enum."""
    category_shares: NotRequired[dict[str, float]]
    """The collaborative evidence's category shares: an evidence expert's enum is their top categories."""


INTERNAL = "internal"
"""Marks a state field (`Annotated[T, INTERNAL]`) that nodes pass along but a caller's result leaves out."""


class RecState(RecInput, total=False):
    shared_prefix: Annotated[str, INTERNAL]
    context_stats: ContextStats
    history_item_ids: Annotated[list[str], INTERNAL]
    category_shares: Annotated[dict[str, float], INTERNAL]
    """Collaborative evidence (`Context.evidence_categories`): catalogue category path -> its share of SASRec's
    next-item probability for this user; empty with the evidence off. The arbiter reads it."""
    personas: list[Persona]
    tag_pool: Annotated[list[ProposedTag], operator.add]
    tags: list[FinalTag]
    recommendations: list[TagRecommendation]
    explanations: Annotated[list[ItemExplanation], operator.add]
    judgements: Annotated[list[Judgement], operator.add]
    calls: Annotated[list[LLMCall], operator.add]
    timings: Annotated[list[NodeTiming], operator.add]
    flags: Annotated[list[str], operator.add]


def result_keys() -> tuple[str, ...]:
    """The keys of a recommendation result (`recgpt recommend --json`, the API's dict), in state order: every
    `RecState` field not marked INTERNAL, so a new state field reaches results without a hand-kept list."""
    hints = get_type_hints(RecState, include_extras=True)
    return tuple(k for k, hint in hints.items() if INTERNAL not in getattr(hint, "__metadata__", ()))
