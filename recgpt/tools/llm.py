"""The one way recgpt talks to an LLM: an OpenAI-compatible endpoint with server-enforced JSON schemas.

Failure handling, in layers (each owned by the library that does it best):

1. transport errors (connection refused, timeouts, HTTP 429/5xx) are retried with backoff by
   the openai client (`max_retries`); if they persist we raise `EndpointError`, which the
   graph's `RetryPolicy` retries once more at node level and the CLI turns into one line;
2. an answer that breaks the schema or is cut by `max_tokens` (finish_reason "length", which
   tiny models hit by looping on whitespace) is re-sampled here up to `attempts` times, then
   `InvalidModelOutput` is raised and the node returns a flagged partial result;
3. a request the server rejects (HTTP 400, e.g. prompt longer than the context window) is
   not retried: `LLMRequestRejected`, flagged by the node.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import openai
import pydantic
from langchain_core.messages import BaseMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from recgpt.errors import EndpointError, InvalidModelOutput, RecGPTError
from recgpt.schema.calls import LLMCall
from recgpt.settings import get_settings
from recgpt.tools.context.entities import as_text, has_entities, message_dicts
from recgpt.tools.endpoint import Endpoint

if TYPE_CHECKING:
    from recgpt.tools.context.hybrid import HybridAssembler
else:
    # `recgpt.tools.context.hybrid` imports torch and transformers (seconds); text-mode runs, agents and the CLI never need
    # them, so this module does not import it. At run time the field below is validated as `Any`.
    HybridAssembler = Any

S = TypeVar("S", bound=BaseModel)


class LLMRequestRejected(RecGPTError):
    """The endpoint refused the request itself (HTTP 4xx other than 429)."""




@dataclass
class _LoopTransport:
    """What belongs to one event loop: its HTTP client and its per-endpoint in-flight gates."""

    client: httpx.AsyncClient
    gates: dict[str, asyncio.Semaphore] = field(default_factory=dict)


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopTransport] = weakref.WeakKeyDictionary()
"""One of recgpt's three process-wide objects (with the settings and the default registry): async HTTP state can only
be shared within the event loop that made it, so it is kept per loop and dies with the loop (a weak key)."""


def _transport() -> _LoopTransport:
    loop = asyncio.get_running_loop()
    transport = _LOOPS.get(loop)
    if transport is None:
        transport = _LOOPS[loop] = _LoopTransport(httpx.AsyncClient(
            limits=httpx.Limits(max_connections=128, max_keepalive_connections=64),
            timeout=None))  # the openai client applies the request timeout
    return transport


def _loop_client() -> httpx.AsyncClient | None:
    """One async HTTP client per event loop.

    langchain-openai otherwise shares one cached client per (base_url, timeout) across event loops;
    its keep-alive connections belong to the loop that opened them, so the next `asyncio.run` in the
    same process (a second CLI call, a test, the eval harness's worker thread) fails with
    "Event loop is closed".
    """
    try:
        return _transport().client
    except RuntimeError:  # no running loop
        return None


class EndpointChat(ChatOpenAI):
    """A ChatOpenAI that keeps the `Endpoint` it was built for, so the call path reads the endpoint's compression
    mode (and hybrid assembler) from the model it is given. Excluded from langchain/pydantic serialization."""

    endpoint: Endpoint = Field(exclude=True, repr=False)


def chat_model(endpoint: Endpoint, temperature: float, max_tokens: int, seed: int | None = None) -> EndpointChat:
    kwargs: dict[str, Any] = {}
    if seed is not None:
        kwargs["seed"] = seed
    client = _loop_client()
    if client is not None:
        kwargs["http_async_client"] = client
    return EndpointChat(
        endpoint=endpoint,
        base_url=endpoint.base_url,
        api_key=endpoint.api_key,
        model=endpoint.model,
        temperature=temperature,
        max_tokens=max_tokens,
        timeout=endpoint.timeout_s,
        max_retries=endpoint.max_retries,
        **kwargs,
    )


def inflight_gate(base_url: str) -> asyncio.Semaphore:
    """One semaphore per (event loop, endpoint): bounds requests in flight so that the request
    timeout measures the server's work on *our* request, not a queue we created ourselves."""
    gates = _transport().gates
    if base_url not in gates:
        gates[base_url] = asyncio.Semaphore(get_settings().max_inflight_requests)
    return gates[base_url]


def _unwrap(exc: BaseException) -> BaseException:
    """langchain-openai re-raises openai errors as its own subclasses; look at the chain too."""
    seen = exc
    while seen is not None and not isinstance(seen, openai.APIError):
        seen = seen.__cause__  # type: ignore[assignment]
    return seen or exc


def classify_error(exc: BaseException, base_url: str) -> RecGPTError:
    err = _unwrap(exc)
    if isinstance(err, (openai.APIConnectionError, openai.APITimeoutError)):
        return EndpointError(f"LLM endpoint {base_url} unreachable or timing out ({type(err).__name__}); start one with `recgpt serve` or set RECGPT_BASE_URL")
    if isinstance(err, openai.RateLimitError) or (isinstance(err, openai.APIStatusError) and err.status_code >= 500):
        code = getattr(err, "status_code", "?")
        return EndpointError(f"LLM endpoint {base_url} keeps failing (HTTP {code}) after retries")
    if isinstance(err, openai.APIStatusError):
        return LLMRequestRejected(f"LLM endpoint {base_url} rejected the request (HTTP {err.status_code}): {str(err)[:200]}")
    return EndpointError(f"LLM call to {base_url} failed: {type(err).__name__}: {str(err)[:200]}")




async def acall_structured(
    model: ChatOpenAI,
    messages: list[BaseMessage],
    schema: type[S],
    agent: str,
    base_url: str,
    attempts: int = 2,
) -> tuple[S, LLMCall]:
    """Call the model with `schema` enforced by the server; re-sample invalid answers.

    Raises `EndpointError` (transport), `LLMRequestRejected` (4xx) or `InvalidModelOutput`
    (every attempt broke the schema); every exception carries the accounting in `.call`.
    """
    sample = _sampler(model, messages, schema)
    prompt_tokens = completion_tokens = 0
    errors: list[str] = []
    finish: str | None = None
    started = time.perf_counter()
    started_at = time.time()
    for attempt in range(1, attempts + 1):
        try:
            async with inflight_gate(base_url):
                result = await sample()
        except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
            # The openai SDK's structured-output parser raises these itself when the answer was
            # cut at max_tokens (or filtered): an invalid output, re-sampled like a schema violation.
            usage = getattr(getattr(exc, "completion", None), "usage", None)
            prompt_tokens += int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_tokens += int(getattr(usage, "completion_tokens", 0) or 0)
            finish = "length" if isinstance(exc, openai.LengthFinishReasonError) else "content_filter"
            errors.append(f"attempt {attempt}: output cut (finish_reason={finish})")
            continue
        except (pydantic.ValidationError, json.JSONDecodeError) as exc:
            # The SDK parses the answer itself and raises on validators the JSON schema cannot
            # express (e.g. a word count): an invalid output, re-sampled (its token usage is lost).
            errors.append(f"attempt {attempt}: output failed validation: {str(exc).splitlines()[-2 if len(str(exc).splitlines()) > 1 else -1][:160]}")
            continue
        except Exception as exc:  # noqa: BLE001 - mapped to our error classes below
            failure = classify_error(exc, base_url)
            failure.call = LLMCall(  # type: ignore[attr-defined]
                agent=agent, ok=False, attempts=attempt, latency_s=time.perf_counter() - started, started_at=started_at,
                prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, error=str(failure),
            )
            raise failure from exc
        raw = result.get("raw")
        usage = getattr(raw, "usage_metadata", None) or {}
        prompt_tokens += int(usage.get("input_tokens", 0))
        completion_tokens += int(usage.get("output_tokens", 0))
        finish = (getattr(raw, "response_metadata", None) or {}).get("finish_reason")
        parsed = result.get("parsed")
        if finish == "length":
            errors.append(f"attempt {attempt}: output cut at max_tokens (finish_reason=length)")
        elif result.get("parsing_error") is not None or parsed is None:
            errors.append(f"attempt {attempt}: schema violation: {str(result.get('parsing_error'))[:160]}")
        else:
            call = LLMCall(agent=agent, ok=True, attempts=attempt, latency_s=time.perf_counter() - started, started_at=started_at,
                           prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, finish_reason=finish)
            return parsed, call
    failure = InvalidModelOutput(f"{agent}: invalid model output after {attempts} attempts ({'; '.join(errors)})")
    failure.call = LLMCall(  # type: ignore[attr-defined]
        agent=agent, ok=False, attempts=attempts, latency_s=time.perf_counter() - started, started_at=started_at,
        prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, finish_reason=finish, error=str(failure),
    )
    raise failure


def _sampler(model: ChatOpenAI, messages: list[BaseMessage], schema: type[S]):
    """One structured sample per call of the returned coroutine function, as langchain's
    `include_raw` dict. Messages carrying hybrid entity markers go out as prompt embeddings when
    the model's endpoint is hybrid (its assembler, `recgpt.tools.context.hybrid`), else as the equivalent text prompt."""
    if has_entities(str(m.content) for m in messages):
        assembler = model.endpoint.assembler if isinstance(model, EndpointChat) else None
        if assembler is not None:
            return lambda: _sample_with_embeds(model, assembler, message_dicts(messages), schema)
        messages = [m.model_copy(update={"content": as_text(str(m.content))}) for m in messages]
    runnable = model.with_structured_output(schema, method="json_schema", include_raw=True, strict=True)
    return lambda: runnable.ainvoke(messages)


async def _sample_with_embeds(model: ChatOpenAI, assembler: HybridAssembler, messages: list[dict[str, str]], schema: type[S]) -> dict[str, Any]:
    """`/v1/completions` with `prompt_embeds` and the schema as `response_format`; same result shape as langchain's."""
    data, _ = await asyncio.to_thread(assembler.request_body, messages)
    body: dict[str, Any] = {
        "model": model.model_name, "prompt_embeds": data, "max_tokens": model.max_tokens, "temperature": model.temperature,
        "response_format": {"type": "json_schema", "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": True}},
    }
    if model.seed is not None:
        body["seed"] = model.seed
    completion = await model.root_async_client.post("/completions", body=body, cast_to=openai.types.Completion)
    choice = completion.choices[0]
    usage = completion.usage
    raw = SimpleNamespace(usage_metadata={"input_tokens": getattr(usage, "prompt_tokens", 0) or 0,
                                          "output_tokens": getattr(usage, "completion_tokens", 0) or 0},
                          response_metadata={"finish_reason": choice.finish_reason})
    try:
        return {"raw": raw, "parsed": schema.model_validate_json(choice.text), "parsing_error": None}
    except (pydantic.ValidationError, ValueError) as exc:
        return {"raw": raw, "parsed": None, "parsing_error": exc}


ENDPOINT_DOWN = "endpoint_unavailable"
"""Marks a flag whose failure was the endpoint's (down, timing out, 429/5xx after retries), not the model's: the
eval harness redoes such a user on resume instead of scoring a degraded answer."""

AGENT_FAILURES = (InvalidModelOutput, LLMRequestRejected, EndpointError)
"""What every agent except the planner absorbs into a flagged partial result, keeping the run's finished work.
The planner has nothing to fall back on, so an endpoint failure there (after the node's RetryPolicy) ends the run."""


def failure_flag(agent: str, exc: BaseException) -> str:
    return f"{agent}_failed: {ENDPOINT_DOWN + ': ' if isinstance(exc, EndpointError) else ''}{exc}"


def call_of(exc: BaseException, agent: str) -> LLMCall:
    """The accounting attached to a failure from `acall_structured` (or a minimal one)."""
    return getattr(exc, "call", None) or LLMCall(agent=agent, ok=False, attempts=0, latency_s=0.0, error=str(exc))


YES_WORDS = frozenset({"yes", "y"})
NO_WORDS = frozenset({"no", "n"})


async def acall_yes_probability(model: ChatOpenAI, messages: list[BaseMessage], agent: str, base_url: str,
                                yes: frozenset[str] = YES_WORDS, no: frozenset[str] = NO_WORDS,
                                top_logprobs: int = 20) -> tuple[float, LLMCall]:
    """P(yes) / (P(yes) + P(no)) over the answer's first token (its `top_logprobs` alternatives, any case or spacing);
    `yes` / `no` may be any two answer words ("a" / "b" for a pairwise choice).

    A small judge asked to write a reason and then a grade paraphrases the question in the negative and grades
    everything alike; its next-token probabilities still order targets (G-Eval reads them the same way). One output
    token, no schema: raises `InvalidModelOutput` when neither word is among the alternatives, `EndpointError` /
    `LLMRequestRejected` like `acall_structured`.
    """
    import math

    bound = model.bind(logprobs=True, top_logprobs=top_logprobs, max_tokens=1)
    started, started_at = time.perf_counter(), time.time()
    try:
        async with inflight_gate(base_url):
            reply = await bound.ainvoke(messages)
    except Exception as exc:  # noqa: BLE001 - mapped to our error classes below
        failure = classify_error(exc, base_url)
        failure.call = LLMCall(agent=agent, ok=False, attempts=1, latency_s=time.perf_counter() - started,  # type: ignore[attr-defined]
                               started_at=started_at, error=str(failure))
        raise failure from exc
    usage = getattr(reply, "usage_metadata", None) or {}
    call = LLMCall(agent=agent, ok=True, attempts=1, latency_s=time.perf_counter() - started, started_at=started_at,
                   prompt_tokens=int(usage.get("input_tokens", 0)), completion_tokens=int(usage.get("output_tokens", 0)),
                   finish_reason=(reply.response_metadata or {}).get("finish_reason"))
    content = ((reply.response_metadata or {}).get("logprobs") or {}).get("content") or []
    alternatives = content[0].get("top_logprobs", []) if content else []
    p_yes = sum(math.exp(a["logprob"]) for a in alternatives if a["token"].strip().lower() in yes)
    p_no = sum(math.exp(a["logprob"]) for a in alternatives if a["token"].strip().lower() in no)
    if p_yes + p_no == 0:
        failure = InvalidModelOutput(f"{agent}: neither {sorted(yes)} nor {sorted(no)} among the answer's first-token alternatives")
        failure.call = call.model_copy(update={"ok": False, "error": str(failure)})  # type: ignore[attr-defined]
        raise failure
    return p_yes / (p_yes + p_no), call
