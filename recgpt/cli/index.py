"""`recgpt index serve|stop|build`: the catalogue index as a Chroma server that many processes share."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from recgpt.cli.common import console
from recgpt.services.resources import default_registry
from recgpt.settings import get_settings
from recgpt.tools.retrieval.chroma_server import start_chroma, stop_chroma

app = typer.Typer()
index_app = typer.Typer(help="The catalogue index: a Chroma server for batch workers (the embedded index stays the default).",
                        no_args_is_help=True)
app.add_typer(index_app, name="index")


@index_app.command("serve")
def index_serve(
    port: int = typer.Option(8100, min=1, max=65535, help="Port of the Chroma server."),
    path: Optional[Path] = typer.Option(None, help="Where it persists (default: RECGPT_HOME/chroma-server)."),
) -> None:
    """Start a Chroma server in the background; point workers at it with RECGPT_CHROMA_URL=http://127.0.0.1:PORT."""
    settings = get_settings()
    url = start_chroma(path or settings.home / "chroma-server", port, settings.run_dir)
    console.print(f"Chroma server at {url}; use it with RECGPT_CHROMA_URL={url}; stop with `recgpt index stop --port {port}`")


@index_app.command("stop")
def index_stop(port: int = typer.Option(8100, min=1, max=65535, help="Port of the Chroma server recgpt started.")) -> None:
    """Stop the Chroma server recgpt started on --port."""
    stopped = stop_chroma(get_settings().run_dir, port)
    console.print(f"stopped the Chroma server on port {port}" if stopped else f"no recgpt Chroma server recorded on port {port}")


@index_app.command("build")
def index_build(dataset: str = typer.Option("office", help="office, movielens, or a JSONL dataset folder.")) -> None:
    """Build the catalogue index where the settings point (RECGPT_CHROMA_URL, else the embedded one), with progress."""
    default_registry().chroma_index(default_registry().dataset(dataset), show_progress=True)
    console.print(f"index of {dataset} ready at {get_settings().chroma_url or get_settings().index_dir}")
