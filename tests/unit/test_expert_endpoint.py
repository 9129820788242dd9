"""The Distributed Experts call the trained expert adapter when the endpoint serves one beside the base."""

from __future__ import annotations

import pytest

from recgpt.schema.context import Context
from recgpt.services import endpoints


@pytest.fixture()
def listing(monkeypatch: pytest.MonkeyPatch) -> dict:
    served = {"data": [{"id": "recgpt-policy"}]}

    class Response:
        def raise_for_status(self) -> None: ...
        def json(self) -> dict: return served

    monkeypatch.setattr(endpoints.httpx, "get", lambda *a, **k: Response())
    endpoints._serves.cache_clear()
    yield served
    endpoints._serves.cache_clear()


def test_auto_picks_the_adapter_only_where_it_is_served(listing: dict) -> None:
    ctx = Context(base_url="http://127.0.0.1:1/v1", model="recgpt-policy")
    assert endpoints.expert_endpoint_of(ctx).model == "recgpt-policy"  # merged or base serving: the policy model
    listing["data"].append({"id": endpoints.EXPERT_ADAPTER, "parent": "recgpt-policy"})
    endpoints._serves.cache_clear()
    assert endpoints.expert_endpoint_of(ctx).model == endpoints.EXPERT_ADAPTER
    assert endpoints.endpoint_of(ctx).model == "recgpt-policy"  # every other agent stays on the base
    assert endpoints.expert_endpoint_of(Context(base_url=ctx.base_url, model="recgpt-policy", expert_model="mine")).model == "mine"


def test_an_unreachable_endpoint_falls_back_to_the_policy_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    def refuse(*args: object, **kwargs: object) -> None:
        raise httpx.ConnectError("refused")

    monkeypatch.setattr(endpoints.httpx, "get", refuse)
    endpoints._serves.cache_clear()
    try:  # the policy call then reports the dead server in one line, as before
        assert endpoints.expert_endpoint_of(Context(base_url="http://127.0.0.1:1/v1", model="recgpt-policy")).model == "recgpt-policy"
    finally:
        endpoints._serves.cache_clear()
