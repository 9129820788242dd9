"""Node-level retry shared by every LLM node of every (sub)graph."""

from langgraph.types import RetryPolicy

from recgpt.errors import EndpointError

LLM_RETRY = RetryPolicy(max_attempts=2, initial_interval=1.0, backoff_factor=2.0, jitter=True, retry_on=EndpointError)
"""Retry endpoint errors that outlived the openai client's own retries once more, with backoff."""
