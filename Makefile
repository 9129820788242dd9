# The two commands of the README: `make demo` and `make test`. Both bootstrap .venv first.
SHELL := /bin/bash
VENV := .venv
RECGPT := $(VENV)/bin/recgpt
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export LANGGRAPH_CLI_NO_ANALYTICS := 1
export LANGGRAPH_NO_VERSION_CHECK := true

.PHONY: venv demo test test-fast serve stop studio clean

venv:
	@bash scripts/bootstrap.sh

## Runs the main job end to end: model, data, index, vLLM server, recommendations for real users.
demo: venv
	$(RECGPT) demo

## Runs the whole test suite, slow integration tests against a real vLLM server included, after the layer
## contracts of pyproject.toml (`lint-imports`: an import against the layers fails here, before any test runs).
test: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest

## Unit tests only (no server).
test-fast: venv
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -m "not slow"

serve: venv
	$(RECGPT) serve

stop: venv
	$(RECGPT) serve --stop

## LangGraph Studio's API server on http://127.0.0.1:2024, offline (no analytics, no version check); needs `make serve`.
## --allow-blocking: the retrieval node calls Chroma and the embedder synchronously inside the async graph.
studio: venv
	$(VENV)/bin/langgraph dev --no-browser --allow-blocking --port $${STUDIO_PORT:-2024}

clean:
	rm -rf $(VENV) .pytest_cache
