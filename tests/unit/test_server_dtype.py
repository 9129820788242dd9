"""The served dtype: auto-picked from the CPU's flags, recorded by the server recgpt starts, and part of the results key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recgpt.errors import ServerError
from recgpt.eval.report import model_label
from recgpt.tools.serving import server


def test_auto_dtype_follows_the_cpu_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server, "_cpu_flags", lambda: {"avx2", "amx_bf16"})
    assert server.resolve_dtype("auto") == "bfloat16"
    monkeypatch.setattr(server, "_cpu_flags", lambda: {"avx2", "avx512f"})
    assert server.resolve_dtype("auto") == "float32"
    assert server.resolve_dtype("float16") == "float16"  # an explicit choice is kept
    cmd = server.ServerConfig(model_dir=Path("/m")).command()
    assert cmd[cmd.index("--dtype") + 1] == "float32"


def test_an_unknown_dtype_is_refused_in_one_line() -> None:
    with pytest.raises(ServerError, match="dtype must be one of auto, float32, bfloat16, float16 \\(got 'fp8'\\)"):
        server.resolve_dtype("fp8")


def test_recorded_dtype_reads_the_servers_own_record(tmp_path: Path) -> None:
    (tmp_path / "vllm-8123.json").write_text(json.dumps({"pid": 1, "port": 8123, "dtype": "bfloat16"}))
    assert server.recorded_dtype(tmp_path, "http://127.0.0.1:8123/v1") == "bfloat16"
    assert server.recorded_dtype(tmp_path, "http://127.0.0.1:8124/v1") is None  # a server recgpt did not start
    (tmp_path / "vllm-8125.json").write_text("{not json")
    assert server.recorded_dtype(tmp_path, "http://127.0.0.1:8125/v1") is None


def test_the_results_key_carries_a_non_float32_dtype(isolated_home: Path) -> None:
    from recgpt.services import endpoints
    from recgpt.settings import get_settings

    run_dir = get_settings().run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    url = "http://127.0.0.1:1/v1"  # nothing listens: the identity falls back to the served name
    assert endpoints.served_model_identity(url, "recgpt-policy") == "recgpt-policy"
    (run_dir / "vllm-1.json").write_text(json.dumps({"pid": 1, "port": 1, "dtype": "float32"}))
    assert endpoints.served_model_identity(url, "recgpt-policy") == "recgpt-policy"  # float32 keeps its old keys
    (run_dir / "vllm-1.json").write_text(json.dumps({"pid": 1, "port": 1, "dtype": "bfloat16"}))
    assert endpoints.served_model_identity(url, "recgpt-policy") == "recgpt-policy<bfloat16>"


def test_reports_name_the_dtype_beside_the_weights() -> None:
    assert model_label("recgpt-policy@/m/Qwen2.5-Coder-0.5B[model.safetensors:1:2]<bfloat16>") == "Qwen2.5-Coder-0.5B (bfloat16)"
    assert model_label("recgpt-policy@/m/Qwen2.5-Coder-0.5B[model.safetensors:1:2]") == "Qwen2.5-Coder-0.5B"
    assert model_label(None) == "unknown"


def test_an_expert_adapter_served_beside_the_base_is_part_of_the_identity_and_label(
        isolated_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from recgpt.services import endpoints

    adapter = tmp_path / "policies" / "qwen2.5-coder-0.5b"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"x" * 10)
    listing = {"data": [{"id": "recgpt-policy", "root": "/m/Qwen2.5-Coder-0.5B-Instruct", "parent": None},
                        {"id": "recgpt-expert", "root": str(adapter), "parent": "recgpt-policy"}]}

    class Response:
        def raise_for_status(self) -> None: ...
        def json(self) -> dict: return listing

    monkeypatch.setattr(endpoints.httpx, "get", lambda *a, **k: Response())
    identity = endpoints.served_model_identity("http://127.0.0.1:1/v1", "recgpt-policy")
    assert identity.startswith("recgpt-policy@/m/Qwen2.5-Coder-0.5B-Instruct+recgpt-expert@" + str(adapter) + "[adapter_model.safetensors:10:")
    assert model_label(identity) == "Qwen2.5-Coder-0.5B-Instruct + LoRA recgpt-expert = qwen2.5-coder-0.5b"
    listing["data"] = listing["data"][:1]  # the base alone: no LoRA part, the key results had before
    assert endpoints.served_model_identity("http://127.0.0.1:1/v1", "recgpt-policy") == "recgpt-policy@/m/Qwen2.5-Coder-0.5B-Instruct"


def test_lora_modules_are_passed_to_vllm() -> None:
    cmd = server.ServerConfig(model_dir=Path("/m"), lora_modules={"recgpt-expert": "/p/adapter"}, max_lora_rank=8, dtype="float32").command()
    assert cmd[cmd.index("--max-lora-rank") + 1] == "8" and "--enable-lora" in cmd
    assert cmd[cmd.index("--lora-modules") + 1] == "recgpt-expert=/p/adapter"
    assert "--enable-lora" not in server.ServerConfig(model_dir=Path("/m"), dtype="float32").command()
