"""Every output schema an agent sends must compile in the server's grammar engine (xgrammar, as vLLM runs it).

A schema that xgrammar cannot compile is not an invalid answer but an HTTP 500 for every such request: seen
with an explanation pattern of `{19,239}` characters (xgrammar fails on single repetitions above ~128).
"""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

xgr = pytest.importorskip("xgrammar")

from recgpt.agents import v1_route  # noqa: E402
from recgpt.agents.arbiter import arbiter_schema  # noqa: E402
from recgpt.agents.expert import expert_schema  # noqa: E402
from recgpt.agents.explainer import ExplanationOutput  # noqa: E402
from recgpt.agents.judge import SingleVerdictOutput, VerdictOutput  # noqa: E402
from recgpt.agents.planner import planner_schema  # noqa: E402
from recgpt.schema.context import MAX_PERSONAS  # noqa: E402
from recgpt.schema.state import PlannedStyle, StyleGuideline  # noqa: E402

SCHEMAS: list[type[BaseModel]] = [
    *(planner_schema(k) for k in range(1, MAX_PERSONAS + 1)), *(expert_schema(m) for m in range(1, 11)),
    arbiter_schema(5, 12), arbiter_schema(20, 80), v1_route.interests_schema(v1_route.INTERESTS_PER_ROUTE), ExplanationOutput, StyleGuideline, PlannedStyle, VerdictOutput, SingleVerdictOutput,
    *(getattr(v1_route, name) for name in dir(v1_route)
      if isinstance(getattr(v1_route, name), type) and issubclass(getattr(v1_route, name), BaseModel)
      and getattr(v1_route, name) is not BaseModel and getattr(v1_route, name).__module__ == v1_route.__name__),
]


@pytest.fixture(scope="module")
def compiler():  # noqa: ANN201
    vocab = [chr(i) for i in range(32, 127)] + ['{"', '":', '",', "ing", "the"]
    return xgr.GrammarCompiler(xgr.TokenizerInfo(vocab))


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_schema_compiles_as_the_server_compiles_it(compiler, schema: type[BaseModel]) -> None:  # noqa: ANN001
    # recgpt.tools.serving.server starts vLLM with xgrammar and disable_any_whitespace
    compiler.compile_json_schema(json.dumps(schema.model_json_schema()), any_whitespace=False)
