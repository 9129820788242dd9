"""`recgpt recommend --json` (render.result_json) carries every result field of the state, explanations and judgements included."""

from __future__ import annotations

import json

from recgpt.render import result_json
from recgpt.schema.state import (
    DimensionVerdict,
    FinalTag,
    ItemExplanation,
    Judgement,
    RecState,
    result_keys,
)


def test_result_json_includes_explanations_and_judgements_and_leaves_internal_fields_out() -> None:
    tag = FinalTag(tag="gel pens", rationale="bought pens", persona_index=0, persona="writer", rank=1)
    state: RecState = {
        "user_id": "17", "dataset": "office", "split": "test", "shared_prefix": "a long prompt", "history_item_ids": ["a"],
        "tags": [tag],
        "explanations": [ItemExplanation(item_id="i1", title="Gel Pens", category="Pens", tag="gel pens", mode="meta",
                                         text="Smooth gel pens for your winter notes.")],
        "judgements": [Judgement(target_kind="tag", target_id="gel pens", mode="agent", overall="Superior",
                                 verdicts=[DimensionVerdict(dimension="relevance", grade="positive", reason="fits")])],
    }
    payload = json.loads(result_json(state))
    assert payload["explanations"][0]["text"] == "Smooth gel pens for your winter notes."
    assert payload["judgements"][0]["overall"] == "Superior" and payload["judgements"][0]["verdicts"][0]["grade"] == "positive"
    assert "shared_prefix" not in payload and "history_item_ids" not in payload
    assert set(payload) == set(result_keys())
    assert {"personas", "tag_pool", "tags", "recommendations", "calls", "timings", "flags", "context_stats"} <= set(payload)
