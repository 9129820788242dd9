"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from recgpt.agents import common, v1_route
from tests.unit.fakes import FakeLLM


@pytest.fixture()
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    """Every agent's `acall_structured` replaced by one FakeLLM (its `.calls` lists the agents asked): the core agents
    call through `AgentCall` (agents/common.py), the V1 routes directly."""
    fake = FakeLLM()
    for module in (common, v1_route):
        monkeypatch.setattr(module, "acall_structured", fake)
    return fake
