"""What an exploring Distributed Expert is told besides its persona (`Context.explore_experts`).

A module of its own: the results-store key covers it only for runs that explore, so that the stored answers of runs
without explorers keep their keys."""

EXPLORE_INSTRUCTION = """This persona explores: propose products for needs the history does not show yet, which fit the persona and the situation. Every category offered to you is one the user has not bought from."""
