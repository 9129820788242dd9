from __future__ import annotations

import pytest
from pydantic import ValidationError

from recgpt.agents.arbiter import arbiter_schema, dedupe_pool, round_robin, select
from recgpt.agents.expert import expert_schema
from recgpt.agents.planner import planner_schema
from recgpt.schema.state import ProposedTag


def tag(text: str, persona: int) -> ProposedTag:
    return ProposedTag(tag=text, rationale="r", persona_index=persona, persona=f"p{persona}")


def test_planner_schema_pins_the_persona_count_and_bounds_strings() -> None:
    schema = planner_schema(3).model_json_schema()
    personas = schema["properties"]["personas"]
    assert personas["minItems"] == 3 and personas["maxItems"] == 3
    persona = schema["$defs"]["Persona"]["properties"]
    assert persona["name"]["pattern"].endswith("{0,49}$") and persona["focus"]["pattern"].endswith("{0,69})?$")
    assert persona["evidence"]["maxItems"] == 2 and persona["evidence"]["items"]["pattern"].endswith("{0,39}$")
    output = planner_schema(1)
    with pytest.raises(ValidationError):
        output.model_validate({"personas": [{"name": "x" * 51, "focus": ""}]})
    with pytest.raises(ValidationError):
        output.model_validate({"personas": [{"name": ", Office & School Supplies", "focus": ""}]})
    with pytest.raises(ValidationError):
        output.model_validate({"personas": [{"name": "办公用品买家", "focus": ""}]})


def test_expert_schema_bounds_tags_and_refuses_category_paths_and_other_scripts() -> None:
    schema = expert_schema(4).model_json_schema()
    assert schema["properties"]["tags"]["minItems"] == 4 == schema["properties"]["tags"]["maxItems"]
    props = schema["$defs"]["ExpertTag"]["properties"]
    assert props["tag"]["pattern"].endswith("{1,59}$") and props["rationale"]["pattern"].endswith("{0,59})?$")
    output = expert_schema(1)
    assert output.model_validate({"tags": [{"tag": "refillable gel pens", "rationale": "bought gel pens twice"}]})
    for bad_tag in ("Labels > Indexes & Stamps > Address Labels", ", Address Labels:", "x" * 61, "中性笔", '"quoted" pens'):
        with pytest.raises(ValidationError):
            output.model_validate({"tags": [{"tag": bad_tag, "rationale": ""}]})


def test_arbiter_schema_limits_numbers_to_the_pool() -> None:
    schema = arbiter_schema(5, 12).model_json_schema()
    selected = schema["properties"]["selected"]
    assert selected["minItems"] == selected["maxItems"] == 5
    assert selected["items"]["enum"] == list(range(1, 13))


def test_decode_cuts_drop_the_rationale_and_the_reason_from_schema_prompt_and_budget() -> None:
    from recgpt.agents.expert import expert_instructions, expert_max_tokens, rationale_chars_of

    cut = expert_schema(4, ("Office Products > Pens",), 0)
    item = cut.model_json_schema()["$defs"]["GroundedExpertTag"]
    assert set(item["properties"]) == {"category", "tag"} and item["required"] == ["category", "tag"]
    assert rationale_chars_of(cut) == 0 and rationale_chars_of(expert_schema(4)) == 60
    assert expert_max_tokens(4, None, 0) == 40 * 4 + 60 and expert_max_tokens(4, None) == 70 * 4 + 60  # the V1 routes keep 70 a tag
    assert "rationale" not in expert_instructions("p", "f", 4, rationale=False) and "rationale" in expert_instructions("p", "f", 4)
    assert set(arbiter_schema(5, 12, 0).model_json_schema()["properties"]) == {"selected"}
    brief = planner_schema(3, evidence=False).model_json_schema()["$defs"]["Persona"]
    assert set(brief["properties"]) == {"name", "focus"} and "evidence" in planner_schema(3).model_json_schema()["$defs"]["Persona"]["properties"]
    assert set(arbiter_schema(5, 12).model_json_schema()["properties"]) == {"selected", "reason"}


def test_dedupe_is_case_and_space_insensitive() -> None:
    pool = [tag("Gel Pens", 0), tag("gel  pens", 1), tag("desk lamp", 1)]
    assert [t.tag for t in dedupe_pool(pool)] == ["Gel Pens", "desk lamp"]


def test_round_robin_alternates_personas() -> None:
    pool = [tag("a1", 0), tag("a2", 0), tag("b1", 1), tag("c1", 2), tag("b2", 1)]
    assert [t.tag for t in round_robin(pool)] == ["a1", "b1", "c1", "a2", "b2"]


def test_select_maps_numbers_drops_repeats_and_fills() -> None:
    pool = [tag("a1", 0), tag("a2", 0), tag("b1", 1), tag("c1", 2)]
    tags, filled = select(pool, [3, 3, 1], 3)
    assert [t.tag for t in tags] == ["b1", "a1", "c1"] and filled
    assert [t.rank for t in tags] == [1, 2, 3]
    tags, filled = select(pool, [4, 2], 2)
    assert [t.tag for t in tags] == ["c1", "a2"] and not filled
    tags, _ = select(pool[:2], [], 5)
    assert len(tags) == 2  # never more than the pool
