"""The `recgpt` command line (the compiled graph for LangGraph Studio lives in `recgpt.studio`).

Every command has `--help`; every failure ends in one line on stderr and a non-zero exit
(set RECGPT_DEBUG=1 for the traceback). The commands live in `recgpt.cli`, one module per group; `COMMANDS` says
which, and a command's module is imported only when that command is parsed, so `recgpt --help` imports none.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

from recgpt.cli.lazy import Lazy, LazyGroup
from recgpt.errors import RecGPTError

COMMANDS: dict[str, Lazy] = {
    "serve": Lazy("recgpt.cli.models:app", "Start the vLLM server (prefix caching on, both cores), wait until healthy; Ctrl-C stops it."),
    "model": Lazy("recgpt.cli.models:app", "Obtain and manage the default policy model."),
    "recommend": Lazy("recgpt.cli.recommend:app", "Personas, tags with rationales, retrieved items, their explanations and "
                      "(optionally) the judge's verdicts for one user."),
    "demo": Lazy("recgpt.cli.recommend:app", "Prepare model, data, index and server as needed, then show recommendations for real users."),
    "eval": Lazy("recgpt.cli.evaluate:app", "Run one method over sampled users, resumably; write its report and the side-by-side comparison."),
    "eval-retrieval": Lazy("recgpt.cli.measure:app", "Retrieval alone, no LLM: item HR@K and cat HR@K of fixed tag sources."),
    "eval-explain": Lazy("recgpt.cli.measure:app", "Explanation diversity (template vs meta-prompting), judge accuracy/F1 "
                         "(Agent-as-a-Judge vs single call)."),
    "judge-choice": Lazy("recgpt.cli.measure:app", "Choose the judge to trust from measured F1: both judges of every report, ranked "
                         "by their worse F1 over tags and explanations."),
    "eval-readability": Lazy("recgpt.cli.measure:app", "What a shopper reads, checked by code: the share of personas, "
                             "tags, explanations and shown items with each defect."),
    "bench": Lazy("recgpt.cli.measure:app", "RecGPT-V1 multi-route vs V2 on the same users, server and concurrency."),
    "bench-models": Lazy("recgpt.cli.measure:app", "The registry's models side by side."),
    "bench-decode": Lazy("recgpt.cli.measure:app", "Cuts of V2's generated text (persona evidence, expert rationales, the "
                         "arbiter's reason) against quality."),
    "bench-grounding": Lazy("recgpt.cli.measure:app", "Grammar-compile and first-token cost of the grounded expert schema as "
                            "the category vocabulary grows."),
    "load": Lazy("recgpt.cli.measure:app", "Sustained load: outcomes of every run (ok / flagged / error / unhandled; lost "
                 "must be 0), latency p50/p95/p99, users per minute and client memory over time."),
    "stats": Lazy("recgpt.cli.stats:app", "Measurements written to reports/."),
    "batch": Lazy("recgpt.cli.batch:app", "Run the graph for many users on Ray against one or many endpoints; every user is "
                  "written once, in shards."),
    "batch-report": Lazy("recgpt.cli.batch:app", "Users/min of `recgpt batch` with 1, 2, ... Ray workers, per-endpoint load "
                         "and failures: a report under reports/."),
    "index": Lazy("recgpt.cli.index:app", "The catalogue index: a Chroma server for batch workers (the embedded index stays "
                  "the default)."),
    "train": Lazy("recgpt.training.cli:train_cli", "Training package: SFT, Judge-as-a-Reward, GRPO, export, report (see "
                  "recgpt/training).", group=True),
}


class Commands(LazyGroup):
    lazy = COMMANDS


cli = typer.Typer(cls=Commands, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
err_console = Console(stderr=True)


@cli.callback()
def recgpt() -> None:
    """RecGPT-V2: LLM intent reasoning for recommendation, on a vLLM-served model."""


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
