"""Errors that the command line turns into one clear line and a non-zero exit."""

from __future__ import annotations


class RecGPTError(Exception):
    """Base class: the message is meant for the user, no traceback needed."""


class DataError(RecGPTError):
    """A data file is missing or a record in it is invalid (the message names file, record, field)."""


class UnknownUserError(RecGPTError):
    """The requested user id is not in the dataset."""


class EndpointError(RecGPTError):
    """The OpenAI-compatible LLM endpoint cannot be reached or keeps failing."""


class InvalidModelOutput(RecGPTError):
    """The model's answer failed the output schema (or was cut by max_tokens) after all retries."""


class ModelPrepareError(RecGPTError):
    """The default model could not be obtained or converted."""


class ServerError(RecGPTError):
    """The vLLM server could not be started or stopped."""
