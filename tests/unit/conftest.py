"""Fixtures of the unit tests."""

from __future__ import annotations

import pytest

from recgpt.agents import common, v1_route
from recgpt.services.resources import Registry
from tests.unit.fakes import FakeLLM

FAST_SASREC = dict(dim=8, layers=1, heads=1, maxlen=8, epochs=1, batch_size=64, lr=1e-2, dropout=0.0)
"""The SASRec a unit test gets when it does not choose hyper-parameters: the collaborative evidence (on by default)
asks for the split's model in every graph run, and the default one trains for seconds on a 3-user shop."""


@pytest.fixture(autouse=True)
def fast_default_sasrec(monkeypatch: pytest.MonkeyPatch) -> None:
    """`Registry.sasrec` without explicit hyper-parameters trains `FAST_SASREC` (what is learnt does not matter to a
    unit test of graph logic; tests of SASRec itself pass their own)."""
    real = Registry.sasrec

    def sasrec(self: Registry, dataset, split, show_progress=False, hparams=None, cache_dir=None):  # type: ignore[no-untyped-def]
        return real(self, dataset, split, show_progress, hparams if hparams is not None else FAST_SASREC, cache_dir)

    monkeypatch.setattr(Registry, "sasrec", sasrec)


@pytest.fixture()
def fake_llm(monkeypatch: pytest.MonkeyPatch) -> FakeLLM:
    """Every agent's `acall_structured` replaced by one FakeLLM (its `.calls` lists the agents asked): the core agents
    call through `AgentCall` (agents/common.py), the V1 routes directly."""
    fake = FakeLLM()
    for module in (common, v1_route):
        monkeypatch.setattr(module, "acall_structured", fake)
    monkeypatch.setattr(common, "acall_yes_probability", fake.yes_probability)
    return fake
