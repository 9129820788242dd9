"""LangGraph Studio's API server (`make studio` = `langgraph dev`) serves our graph, offline, against real vLLM."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import needs_shared_data

pytestmark = [pytest.mark.slow, pytest.mark.integration,
              needs_shared_data]

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture()
def studio(vllm_server: str, tmp_path: Path):
    langgraph = Path(sys.executable).parent / "langgraph"
    if not langgraph.exists():
        langgraph = Path(shutil.which("langgraph") or "langgraph")
    port = _free_port()
    env = dict(os.environ, RECGPT_BASE_URL=vllm_server, LANGGRAPH_CLI_NO_ANALYTICS="1",
               LANGGRAPH_NO_VERSION_CHECK="true", RECGPT_PLUGINS="examples.shop_plugins:plugins")
    log = (tmp_path / "studio.log").open("w")
    # the same command as `make studio`, plus --no-reload (no file watcher in a test)
    process = subprocess.Popen([str(langgraph), "dev", "--no-browser", "--no-reload", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "studio.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        else:
            pytest.fail("langgraph dev did not start:\n" + (tmp_path / "studio.log").read_text()[-3000:])
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def test_studio_lists_draws_streams_and_keeps_the_thread(studio: str) -> None:
    from langgraph_sdk import get_client

    async def scenario() -> None:
        client = get_client(url=studio)
        assistants = await client.assistants.search(graph_id="recgpt")
        assert assistants, "the recgpt graph of langgraph.json is not served"
        assistant = assistants[0]["assistant_id"]
        drawn = await client.assistants.get_graph(assistant, xray=True)
        nodes = {n["id"] for n in drawn["nodes"]}
        assert {"planner", "expert", "arbiter", "retrieve", "gift_expert", "brand_safety"} <= nodes
        assert {"explain:style", "explain:write", "judge:dimension", "judge:review"} <= nodes  # subgraphs, with xray
        thread = await client.threads.create()
        seen: list[str] = []
        context = {"num_personas": 2, "tags_per_expert": 3, "num_tags": 3, "explanation_mode": "off", "judge_mode": "off"}
        async for part in client.runs.stream(thread["thread_id"], assistant, stream_mode="updates",
                                             input={"user_id": "5", "dataset": "office", "split": "test"}, context=context):
            if part.event == "updates" and isinstance(part.data, dict):
                seen += list(part.data)
            assert part.event != "error", part.data
        assert seen[:2] == ["compress", "planner"] and {"expert", "gift_expert", "arbiter", "brand_safety", "retrieve"} <= set(seen)
        state = await client.threads.get_state(thread["thread_id"])
        values = state["values"]
        assert values["user_id"] == "5" and 1 <= len(values["tags"]) <= 3 and values["recommendations"]
        assert any(c["agent"] == "planner" for c in values["calls"])

    asyncio.run(scenario())
