"""The compiled graph that `langgraph.json` points at (LangGraph Studio / `langgraph dev`).

Built at import with the configured plug-ins (RECGPT_PLUGINS, `recgpt.agents` entry points) and no
checkpointer: the LangGraph API server brings its own persistence and threads.
"""

from __future__ import annotations

from recgpt.graph import build_graph

graph = build_graph()  # RECGPT_DATASET and RECGPT_RETRIEVER, resolved once here through the process registry
