"""What a run's policy endpoint serves, for the commands that name it in a report or warn about it."""

from __future__ import annotations

from recgpt.cli.common import err_console
from recgpt.schema.context import Context
from recgpt.services.endpoints import served_model_identity
from recgpt.services.resources import endpoints_of
from recgpt.tools.serving.policy import domain_warning


def policy_identity(ctx: Context) -> str:
    """The served policy's identity (model name, weights folder, adapter), as reports record it."""
    endpoint = endpoints_of(ctx).policy
    return served_model_identity(endpoint.base_url, endpoint.model, endpoint.api_key)


def warn_policy_domain(ctx: Context, dataset: str) -> None:
    """One warning line on stderr when the served policy was trained on another dataset than this run's."""
    warning = domain_warning(policy_identity(ctx), dataset)
    if warning:
        err_console.print(f"warning: {warning}", style="yellow", soft_wrap=True)
