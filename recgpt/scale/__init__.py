"""Scale-out: `recgpt batch` over many users on Ray, against one or many OpenAI-compatible endpoints.

Ray Core actors, not Ray Data: a worker's state is expensive (the compiled graph, the dataset, the retriever with its
Chroma index and collaborative model) and is built once per actor; users are then dispatched one at a time by the
driver, which alone chooses endpoints (least in flight, bounded per endpoint, a failing one out of rotation) and alone
writes results (so a user is written exactly once, however many workers die). Ray Data's `map_batches` would hold the
state as well, but it retries whole blocks and leaves endpoint failover and per-user exactly-once output to us anyway.
"""
