"""Node-level retry, for the nodes that cannot absorb an endpoint failure.

Every agent after the planner turns a persistent endpoint failure into a flagged partial result (see
`recgpt.tools.llm.AGENT_FAILURES`), keeping the run's finished work; the planner (and the V1 routes) have nothing
to fall back on, so they retry once more at node level, with backoff, after the openai client's own retries.
"""

from langgraph.types import RetryPolicy

from recgpt.errors import EndpointError

LLM_RETRY = RetryPolicy(max_attempts=2, initial_interval=1.0, backoff_factor=2.0, jitter=True, retry_on=EndpointError)
"""Retry endpoint errors that outlived the openai client's own retries once more, with backoff."""
