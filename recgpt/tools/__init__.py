"""Tools the graph uses: LLM client, vLLM server control, retrieval, embeddings, compression, environment."""
