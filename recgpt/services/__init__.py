"""Services the agents, the graph, eval and training share: the prompt prefix, endpoint resolution."""
