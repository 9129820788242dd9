"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from recgpt.agents import arbiter, expert, explainer, judge, planner
from tests.unit.fakes import FakeLLM


@pytest.fixture()
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    """Every agent's `acall_structured` replaced by one FakeLLM (its `.calls` lists the agents asked)."""
    fake = FakeLLM()
    for module in (planner, expert, arbiter, explainer, judge):
        monkeypatch.setattr(module, "acall_structured", fake)
    return fake
