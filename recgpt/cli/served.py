"""What a run's policy endpoint serves, for the commands that name it in a report or warn about it."""

from __future__ import annotations

from recgpt.cli.common import err_console
from recgpt.schema.context import Context
from recgpt.services.endpoints import served_model_identity
from recgpt.services.policy_notice import policy_notice_once
from recgpt.services.resources import endpoints_of


def policy_identity(ctx: Context) -> str:
    """The served policy's identity (model name, weights folder, adapter), as reports record it."""
    endpoint = endpoints_of(ctx).policy
    return served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)


def warn_policy_domain(ctx: Context, dataset: str) -> None:
    """One line on stderr when the served policy was trained on another dataset than this run's, or was chosen for it
    by a policy check (with the check's numbers); the API's warning for the same run is then not repeated."""
    notice = policy_notice_once(ctx, dataset)
    if notice:
        err_console.print(f"notice: {notice}", style="yellow", soft_wrap=True)
