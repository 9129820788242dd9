"""A Chroma server for the catalogue index (`recgpt index serve`): what many batch workers share instead of one
embedded index per process. Started as `chroma run` (the CLI chromadb ships), recorded in `run/chroma-<port>.json`,
healthy when its heartbeat answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from recgpt.errors import RecGPTError


class ChromaServerError(RecGPTError):
    """The Chroma server could not be started or reached."""


def heartbeat_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/api/v2/heartbeat", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _record(run_dir: Path, port: int) -> Path:
    return run_dir / f"chroma-{port}.json"


def start_chroma(path: Path, port: int, run_dir: Path, host: str = "127.0.0.1", timeout: float = 60.0) -> str:
    """Start `chroma run` on `host:port` persisting under `path` (reused when one recgpt started is already up);
    returns its URL."""
    url = f"http://{host}:{port}"
    if heartbeat_ok(url):
        return url
    chroma = Path(sys.executable).with_name("chroma")
    if not chroma.is_file():
        raise ChromaServerError(f"the `chroma` command is missing next to {sys.executable}; reinstall chromadb")
    path.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / f"chroma-{port}.log").open("ab")
    process = subprocess.Popen([str(chroma), "run", "--path", str(path), "--host", host, "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                               env={**os.environ, "ANONYMIZED_TELEMETRY": "False"})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ChromaServerError(f"chroma run exited with code {process.returncode}; see {run_dir / f'chroma-{port}.log'}")
        if heartbeat_ok(url):
            _record(run_dir, port).write_text(json.dumps({"pid": process.pid, "url": url, "path": str(path)}))
            return url
        time.sleep(0.5)
    process.terminate()
    raise ChromaServerError(f"chroma run did not answer on {url} within {timeout:.0f} s")


def stop_chroma(run_dir: Path, port: int) -> bool:
    record = _record(run_dir, port)
    if not record.is_file():
        return False
    pid = json.loads(record.read_text())["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    record.unlink(missing_ok=True)
    return True
