"""The Distributed Experts call the trained expert adapter when the endpoint serves one beside the base."""

from __future__ import annotations

import httpx
import pytest

from recgpt.schema.context import Context
from recgpt.services import endpoints, resources
from recgpt.services.resources import Registry


@pytest.fixture()
def listing(monkeypatch: pytest.MonkeyPatch) -> dict:
    served = {"data": [{"id": "recgpt-policy"}]}

    class Response:
        def raise_for_status(self) -> None: ...
        def json(self) -> dict: return served

    monkeypatch.setattr(resources.httpx, "get", lambda *a, **k: Response())
    return served


def test_auto_picks_the_adapter_only_where_it_is_served(listing: dict) -> None:
    ctx = Context(base_url="http://127.0.0.1:1/v1", model="recgpt-policy")
    assert Registry().endpoints(ctx).expert.model == "recgpt-policy"  # merged or base serving: the policy model
    listing["data"].append({"id": endpoints.EXPERT_ADAPTER, "parent": "recgpt-policy"})
    registry = Registry()  # what an endpoint serves is asked once per registry
    assert registry.endpoints(ctx).expert.model == endpoints.EXPERT_ADAPTER
    assert registry.endpoints(ctx).policy.model == "recgpt-policy"  # every other agent stays on the base
    assert registry.endpoints(Context(base_url=ctx.base_url, model="recgpt-policy", expert_model="mine")).expert.model == "mine"


def test_an_unreachable_endpoint_falls_back_to_the_policy_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise httpx.ConnectError("refused")

    monkeypatch.setattr(resources.httpx, "get", refuse)
    # the policy call then reports the dead server in one line, as before
    assert Registry().endpoints(Context(base_url="http://127.0.0.1:1/v1", model="recgpt-policy")).expert.model == "recgpt-policy"
