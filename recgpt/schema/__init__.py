"""The bottom of the agent stack: runtime Context, graph state, subgraph state, call accounting.

Agents, graph wiring, eval and training all read these types; this package imports none of them.
"""
