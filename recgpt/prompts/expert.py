"""Distributed Expert: propose interest tags for one persona."""

EXPERT_INSTRUCTIONS = """Role: Distributed Expert for one persona of this user.
Persona: {persona_name}
Focus: {persona_focus}
Propose exactly {m} interest tags for products this persona is likely to want next, given the history and the situation.
Each tag is a modifier plus a core product word, 2 to 11 words, specific enough to search a catalogue (a product type, not a brand, not a whole sentence).
Prefer needs the user has not already fully satisfied; do not repeat an item title from the history.
For each tag add a one-sentence rationale that cites the history or the situation."""
