# The two commands of the README: `make demo` and `make test`. Both bootstrap .venv first.
SHELL := /bin/bash
VENV := .venv
RECGPT := $(VENV)/bin/recgpt
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export ANONYMIZED_TELEMETRY := False
export LANGGRAPH_CLI_NO_ANALYTICS := 1
export LANGGRAPH_NO_VERSION_CHECK := true
export NO_MKDOCS_2_WARNING := 1

# The docs site (mkdocs.yml) built strictly into a throw-away folder: a broken link or anchor, or a page missing from
# the nav, fails the build. No --quiet: it hides the warnings that --strict counts, and the build would pass.
DOCS_CHECK = site=$$(mktemp -d) && $(VENV)/bin/mkdocs build --strict --site-dir $$site; rc=$$?; rm -rf $$site; exit $$rc

.PHONY: venv demo test test-fast serve stop studio clean

venv:
	@bash scripts/bootstrap.sh

## Runs the main job end to end: model, data, index, vLLM server, recommendations for real users.
demo: venv
	$(RECGPT) demo

## Runs the whole test suite, slow integration tests against a real vLLM server included, after the layer
## contracts of pyproject.toml (`lint-imports`: an import against the layers fails here, before any test runs)
## and the docs site's strict build (a broken link in docs/ fails here too).
test: venv
	$(VENV)/bin/lint-imports
	@$(DOCS_CHECK)
	$(VENV)/bin/python -m pytest

## Unit tests only (no server).
test-fast: venv
	$(VENV)/bin/lint-imports
	@$(DOCS_CHECK)
	$(VENV)/bin/python -m pytest -m "not slow"

serve: venv
	$(RECGPT) serve

stop: venv
	$(RECGPT) serve --stop

## LangGraph Studio's API server on http://127.0.0.1:2024, offline (no analytics, no version check); needs `make serve`.
## No --allow-blocking: every blocking call of a run happens off the event loop (tests/unit/test_resources.py runs the
## graph under the same blocking-call detection, and tests/integration/test_studio_real.py runs Studio without the flag).
studio: venv
	$(VENV)/bin/langgraph dev --no-browser --port $${STUDIO_PORT:-2024}

clean:
	rm -rf $(VENV) .pytest_cache
