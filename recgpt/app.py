"""The `recgpt` command line (the compiled graph for LangGraph Studio lives in `recgpt.studio`).

Every command has `--help`; every failure ends in one line on stderr and a non-zero exit
(set RECGPT_DEBUG=1 for the traceback). The commands live in `recgpt.cli`, one module per group.
"""

from __future__ import annotations

import os
import sys

import typer

from recgpt.cli import batch, evaluate, index, models, recommend, stats
from recgpt.cli.common import err_console
from recgpt.errors import RecGPTError
from recgpt.training.cli import train_cli

cli = typer.Typer(help="RecGPT-V2: LLM intent reasoning for recommendation, on a vLLM-served model.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
for group in (models.app, recommend.app, evaluate.app, stats.app, batch.app, index.app):
    cli.add_typer(group)
cli.add_typer(train_cli, name="train")


def main() -> None:
    """Console entry point: RecGPTError -> one line, exit 1; anything unexpected -> one line, exit 2."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    try:
        cli(standalone_mode=False)
    except RecGPTError as exc:
        err_console.print(f"[red]error:[/] {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", highlight=False, soft_wrap=True)
        if os.environ.get("RECGPT_DEBUG"):
            raise
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the user gets one line, not a traceback
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click/typer usage errors
            exc.show()
            sys.exit(exc.exit_code)
        if os.environ.get("RECGPT_DEBUG"):
            raise
        err_console.print(f"[red]internal error:[/] {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                          "(RECGPT_DEBUG=1 shows the traceback)", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
