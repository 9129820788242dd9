"""The command line: every command's help, one-line failures (non-zero exit, no traceback), what a start imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import needs_shared_data

HEAVY = ("langgraph", "langchain", "langchain_core", "openai", "torch", "chromadb", "transformers", "ray")


def recgpt(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "recgpt.app", *args], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=120)


def test_every_command_has_help() -> None:
    for args in ([], ["serve"], ["recommend"], ["demo"], ["eval"], ["eval-retrieval"], ["model"], ["model", "prepare"], ["stats", "context"]):
        result = recgpt(*args, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout, (args, result.stderr)


def test_unreachable_endpoint_is_one_clear_line() -> None:
    result = recgpt("recommend", "--user", "1", RECGPT_BASE_URL="http://127.0.0.1:9/v1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "http://127.0.0.1:9/v1" in lines[0] and "recgpt serve" in lines[0]
    assert "Traceback" not in result.stderr


@needs_shared_data
def test_unknown_user_and_bad_dataset(tmp_path: Path) -> None:
    # a live endpoint is needed to get past the endpoint check: fake one with a tiny HTTP server
    import http.server
    import threading

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'{"data": [{"id": "m"}]}')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/v1"
    try:
        result = recgpt("recommend", "--user", "no-such-user", RECGPT_BASE_URL=url)
        assert result.returncode == 1 and "user 'no-such-user' is not in dataset 'office'" in result.stderr
        result = recgpt("recommend", "--user", "1", "--dataset", str(tmp_path), RECGPT_BASE_URL=url)
        assert result.returncode == 1 and "items.jsonl: file not found" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        server.shutdown()


def test_usage_errors_exit_non_zero() -> None:
    result = recgpt("recommend")
    assert result.returncode == 2 and "Missing option '--user'" in result.stderr
    result = recgpt("recommend", "--user", "1", "--split", "sideways", RECGPT_BASE_URL="http://127.0.0.1:9/v1")
    assert result.returncode == 1 and "--split must be one of" in result.stderr


def test_default_model_dir_is_a_path_for_serve_and_demo(isolated_home) -> None:
    """Regression: a second `_default_model_dir` returning str once shadowed this one, and `recgpt serve`
    / `recgpt demo` crashed joining paths."""
    from recgpt.cli.common import default_model_folder
    from recgpt.tools.serving.model_prep import default_model_dir

    path = default_model_folder(prepare=False)
    assert isinstance(path, Path) and path == default_model_dir(isolated_home / "models")
    assert isinstance(path / "config.json", Path)


def test_a_bad_plugin_is_one_clear_line_before_any_llm_call() -> None:
    result = recgpt("recommend", "--user", "1", "--plugin", "no_such_module_xyz:plugins",
                    RECGPT_BASE_URL="http://127.0.0.1:9/v1")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_module_xyz:plugins" in lines[0] and "cannot import" in lines[0]


def test_an_unknown_policy_is_one_clear_line(isolated_home) -> None:
    result = recgpt("serve", "--policy", "best", "--port", "8931")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("--policy must be one of trained, expert, base (got 'best')")


def _heavy_imports(*args: str) -> list[str]:
    """The heavy packages a `recgpt ARGS` start imports (the command runs in a fresh interpreter)."""
    code = ("import sys; from recgpt.app import cli\n"
            "try: cli(sys.argv[1:], prog_name='recgpt', standalone_mode=False)\n"
            "except SystemExit: pass\n"
            f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "Usage" in result.stdout, result.stderr
    return eval(result.stdout.strip().splitlines()[-1])  # noqa: S307 - our own printed list


def test_help_imports_no_command_module_and_train_help_no_graph() -> None:
    """`recgpt --help` lists the commands from the table and imports none of them (nor the LLM/graph stacks);
    `recgpt train --help` imports the training CLI, not langgraph."""
    assert _heavy_imports("--help") == []
    assert _heavy_imports("serve", "--help") == []
    assert "langgraph" not in _heavy_imports("train", "--help")


def test_the_command_table_matches_the_commands() -> None:
    """Each listed command loads from its module, and its summary is how its own help starts; every command a
    listed module defines is listed."""
    import typer

    from recgpt.app import COMMANDS

    def words(text: str) -> str:
        return " ".join(text.split()).rstrip(".")

    for name, lazy in COMMANDS.items():
        command = lazy.load(name)
        assert words(command.help or "").startswith(words(lazy.summary)), name
    for target in {lazy.target for lazy in COMMANDS.values() if not lazy.group}:
        module, _, attr = target.partition(":")
        defined = typer.main.get_group(getattr(__import__(module, fromlist=[attr]), attr)).commands
        assert set(defined) <= set(COMMANDS), (target, set(defined) - set(COMMANDS))


def test_every_listed_command_parses_its_help() -> None:
    from recgpt.app import COMMANDS, cli

    for name in COMMANDS:
        result = CliRunner().invoke(cli, [name, "--help"], prog_name="recgpt")
        assert result.exit_code == 0 and f"Usage: recgpt {name} [OPTIONS]" in result.output, (name, result.output)


PREVIOUS_FLAGS = {
    "recommend": "user dataset split date weather trend explanations judge json plugin thread checkpoints rationales compression adaptor",
    "eval": "method dataset split users seed k-items concurrency out compression adaptor set quota",
    "eval-retrieval": "dataset split users seed betas depths k-items sources out",
    "eval-explain": "dataset split users source-users seed diversity-items users-per-item injection-samples diversity-only concurrency out",
    "bench": "dataset split users serial-users saturation seed setup hybrid out",
    "bench-models": "models dataset split expert-users expert-k graph-users graph-k concurrency seed port out",
    "bench-decode": "dataset split users seed concurrency variants out",
    "bench-grounding": "datasets sizes repeats out",
    "load": "concurrency duration dataset split explanations judge seed out",
}
"""Every flag these commands had before their options came from the configs, `--k`/`--m`/`--n` aside."""


def _flags(name: str) -> dict[str, object]:
    from recgpt.app import COMMANDS

    return {flag: param for param in COMMANDS[name].load(name).params for flag in getattr(param, "opts", [])}


def test_previous_flags_and_defaults_still_work() -> None:
    for name, flags in PREVIOUS_FLAGS.items():
        missing = {f"--{flag}" for flag in flags.split()} - set(_flags(name))
        assert not missing, (name, missing)
    assert _flags("eval")["--k-items"].default == "10,30" and _flags("eval")["--users"].default == 200
    assert _flags("bench")["--setup"].default == "architecture,paper"
    assert _flags("bench-models")["--models"].default == "qwen2.5-coder-0.5b,smollm2-135m"
    assert _flags("load")["--explanations"].default == "off" and _flags("recommend")["--explanations"].default == "grounded"


def test_k_is_renamed_personas_in_recommend_and_tags_in_eval() -> None:
    """`--k` meant personas in `recommend` and final tags in `eval`: now --personas / --tags-per-expert / --tags."""
    for name in ("recommend", "load"):
        assert {"--personas", "--tags-per-expert", "--tags"} <= set(_flags(name))
    for name in ("eval", "eval-retrieval", "eval-explain", "bench", "bench-decode"):
        assert "--tags" in _flags(name)
    for name in PREVIOUS_FLAGS:
        assert not {"--k", "--m", "--n"} & set(_flags(name)), name
    result = recgpt("recommend", "--user", "1", "--k", "3")
    assert result.returncode == 2 and "No such option: --k" in result.stderr
    result = recgpt("eval", "--k", "3")
    assert result.returncode == 2 and "No such option: --k" in result.stderr


def test_config_options_fail_in_one_line() -> None:
    from recgpt.app import cli
    from recgpt.errors import RecGPTError

    for args, message in ((["eval", "--split", "sideways"], "--split must be validation or test (got 'sideways')"),
                          (["eval", "--k-items", "10,x"], "--k-items: 'x' is not a valid int"),
                          (["eval", "--set", "num_personas=x"], "--set num_personas: 'x' is not a valid int"),
                          (["bench", "--setup", "fast"], "--setup must be architecture or paper (got 'fast')"),
                          (["load", "--personas", "0"], "--personas must be >= 1, got 0"),
                          (["load", "--duration", "0"], "--duration: Input should be greater than 0")):
        result = CliRunner().invoke(cli, args)
        assert isinstance(result.exception, RecGPTError) and str(result.exception) == message, (args, result.exception)
