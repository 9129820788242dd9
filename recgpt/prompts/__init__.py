"""Prompt templates, one module per agent. No example answers: tiny models copy them verbatim."""
