"""A fault-injecting HTTP proxy on loopback, in front of the real vLLM server.

Chat-completion requests whose body contains a rule's `match` text get that rule's fault (for the rule's first
`times` matches); everything else, `/v1/models` and `/health` included, is passed through. Faults:

- `500`, `429`: an error status with an OpenAI-style JSON body (the server stays up);
- `slow:S`: wait S seconds, then pass through (a client with a shorter timeout has given up by then);
- `truncate`: the upstream answer with its full Content-Length but only half its bytes, then the connection closes;
- `schema`: the upstream answer with the message content replaced by text that is not JSON;
- `reset`: the connection is dropped without any answer;
- `die`: the proxy stops listening and drops every open connection (the server was killed mid-run).

`down()` stops listening (connection refused, as a killed server), `up()` listens again on the same port. The proxy
runs its own event loop in a thread, so the code under test can use `asyncio.run` freely.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

import httpx


@dataclass
class Rule:
    match: str
    fault: str
    times: int = 10**9
    hits: int = 0


@dataclass
class Seen:
    path: str
    fault: str
    agent_hint: str = ""


@dataclass
class FaultProxy:
    upstream: str  # e.g. http://127.0.0.1:8000 (no /v1)
    port: int
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="fault-proxy")
        self._thread.start()
        self._client: httpx.AsyncClient | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._dead = False

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def _run(self, coro):  # noqa: ANN001, ANN202
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def up(self) -> FaultProxy:
        self._dead = False

        async def start() -> None:
            if self._client is None:
                self._client = httpx.AsyncClient(timeout=None)
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

        self._run(start())
        return self

    def down(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                for writer in list(self._writers):
                    writer.transport.abort()
                self._server = None

        self._run(stop())

    def close(self) -> None:
        self.down()
        if self._client is not None:
            self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def add(self, match: str, fault: str, times: int = 10**9) -> None:
        with self._lock:
            self.rules.append(Rule(match, fault, times))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.seen.clear()

    def faults(self, fault: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.fault != "pass" and (fault is None or s.fault == fault)]

    def _pick(self, path: str, body: bytes) -> str:
        if not path.endswith("/chat/completions"):
            return "pass"
        text = body.decode("utf-8", "replace")
        with self._lock:
            for rule in self.rules:
                if rule.match in text and rule.hits < rule.times:
                    rule.hits += 1
                    self.seen.append(Seen(path, rule.fault))
                    return rule.fault
            self.seen.append(Seen(path, "pass"))
        return "pass"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._dead:  # accepted in the instant between a `die` and the listening socket's close
            writer.transport.abort()
            return
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                fault = self._pick(path, body)
                if fault == "reset":
                    writer.transport.abort()
                    return
                if fault == "die":
                    self._dead = True  # a connection accepted while closing is dropped too (see `_handle`)
                    if self._server is not None:
                        self._server.close()
                        self._server = None
                    for other in list(self._writers):
                        other.transport.abort()
                    return
                if fault in ("500", "429"):
                    payload = json.dumps({"error": {"message": f"injected {fault}", "type": "injected", "code": int(fault)}}).encode()
                    reason = "Internal Server Error" if fault == "500" else "Too Many Requests"
                    await self._respond(writer, int(fault), reason, payload)
                    continue
                if fault.startswith("slow:"):
                    await asyncio.sleep(float(fault.split(":", 1)[1]))
                forward = {k: v for k, v in headers.items() if k not in ("host", "content-length", "connection", "accept-encoding")}
                assert self._client is not None
                upstream = await self._client.request(method, self.upstream + path, content=body, headers=forward)
                data = upstream.content
                if fault == "schema":
                    answer = json.loads(data)
                    answer["choices"][0]["message"]["content"] = "Sure! Here are the tags: gel pens, notebooks"
                    data = json.dumps(answer).encode()
                if fault == "truncate":
                    writer.write(self._head(upstream.status_code, upstream.reason_phrase, len(data)) + data[: len(data) // 2])
                    await writer.drain()
                    writer.transport.abort()
                    return
                await self._respond(writer, upstream.status_code, upstream.reason_phrase, data)
        except Exception:  # noqa: BLE001 - the client gave up or a fault cut the connection: nothing to answer
            return
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    @staticmethod
    def _head(status: int, reason: str, length: int) -> bytes:
        return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
                "Connection: keep-alive\r\n\r\n").encode("latin-1")

    async def _respond(self, writer: asyncio.StreamWriter, status: int, reason: str, data: bytes) -> None:
        writer.write(self._head(status, reason, len(data)) + data)
        await writer.drain()
