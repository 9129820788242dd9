"""RecGPT-V1 multi-route baseline: each route is an independent prompt that re-reads the whole context.

As in V1, a route's own role comes first and the user context after it, so no two routes share a
cacheable prefix (V2 puts the shared context first instead; that difference is what `recgpt bench`
measures). Within a route, the tag-prediction call repeats the interest-mining call's prefix.
"""

from recgpt.prompts.shared import SYSTEM_PREFIX

ROUTES: dict[str, str] = {
    "behaviour": "long-term behaviour: what the purchase and click history says the user regularly needs",
    "season": "season and weather: what the current season, weather and climate make the user need",
    "trend": "trends and festivals: what upcoming festivals, events and current trends make the user need",
}

ROUTE_HEADER = """You are the {route} route of a recommender. Your only lens is {lens}.
Reason about the user below through that lens alone."""

MINING_INSTRUCTIONS = """Step 1, interest mining ({route} route): read the whole user context above and list exactly {n} interests of this user through your lens, each a short phrase (at most 10 words)."""

TAG_INSTRUCTIONS = """Step 2, tag prediction ({route} route). The interests you mined were:
{interests}
Propose exactly {m} interest tags for products the user is likely to want next, following those interests.
Each tag is a modifier plus a core product word, 2 to 11 words, specific enough to search a catalogue (a product type, not a brand, not a whole sentence).
For each tag add a one-sentence rationale that cites the history or the situation."""


RAW_SYSTEM_PREFIX = SYSTEM_PREFIX.replace(
    "Behaviour history ({n_events} interactions, newest first; quoted titles, grouped by action and category path):",
    "Behaviour history ({n_events} interactions, newest first, one per line: date, action, quoted title, category path):")
"""RecGPT-V1's raw-history frame (`Context.v1_history = 'raw'`): V2's frame around an uncompressed history. Kept
here, not in `shared`, whose text keys every stored V2 result."""
assert RAW_SYSTEM_PREFIX != SYSTEM_PREFIX
