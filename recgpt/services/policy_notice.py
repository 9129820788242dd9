"""The one line a run owes its user about the served policy, from the CLI and the programmatic API alike.

A policy learns its catalogue's tag style, so a run on a dataset its served policy was not trained on is told so,
and a run on a dataset whose served weights a policy-alone check chose is told the check's numbers
(`recgpt.tools.serving.policy_choice.served_policy_notice`). Each (endpoint, dataset) is told once per process:
a batch of users is not a batch of warnings, and the CLI printing the line first keeps the API from repeating it.
"""

from __future__ import annotations

import asyncio
import threading
import warnings

from recgpt.errors import RecGPTError
from recgpt.schema.context import Context
from recgpt.services.endpoints import served_model_identity
from recgpt.services.resources import endpoints_of
from recgpt.settings import get_settings
from recgpt.tools.serving.policy import dataset_key
from recgpt.tools.serving.policy_choice import served_policy_notice


class PolicyNotice(UserWarning):
    """The served policy was trained on another dataset, or was chosen for this one by a measured check."""


_told: set[tuple[str, str, str]] = set()
_lock = threading.Lock()


def policy_notice_once(ctx: Context, dataset: str) -> str | None:
    """The notice for (the policy endpoint, `dataset`) the first time this process asks; None after, or when there is
    nothing to say (a policy trained on this dataset, or the base with no check on record). Asked once per endpoint
    and dataset, so a batch of users costs one look at what the endpoint serves."""
    try:
        endpoint = endpoints_of(ctx).policy
    except RecGPTError:  # an endpoint that cannot be asked: the run itself says so, in its own words
        return None
    key = (endpoint.base_url, endpoint.model, dataset_key(dataset))
    with _lock:
        if key in _told:
            return None
        _told.add(key)
    identity = served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)
    if "@" not in identity:  # the endpoint did not say what it serves (down, or not vLLM): nothing to tell
        return None
    return served_policy_notice(identity, dataset, get_settings().home)


async def awarn_policy_notice(ctx: Context, dataset: str) -> None:
    """`policy_notice_once` as a `PolicyNotice` warning: how the programmatic API (`recgpt.runner`) says it (the
    endpoint is asked off the event loop)."""
    line = await asyncio.to_thread(policy_notice_once, ctx, dataset)
    if line:
        warnings.warn(line, PolicyNotice, stacklevel=3)
