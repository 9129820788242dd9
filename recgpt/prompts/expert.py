"""Distributed Expert: propose interest tags for one persona."""

EXPERT_INSTRUCTIONS = """Role: Distributed Expert for one persona of this user.
Persona: {persona_name}
Focus: {persona_focus}
Propose exactly {m} interest tags for products this persona is likely to buy next, given the history and the situation.
Write each tag the way a shopper types a search: one product type plus one modifier (its use, size, material or occasion), 2 to 6 words.
Do not paste a category path or an item title from the history, and do not name a brand. Each tag names a different product type."""

RATIONALE_INSTRUCTION = """For each tag add a rationale of at most 8 words that cites the history or the situation."""

GROUNDING_INSTRUCTION = """Give each tag first its category: the shop's category path the product belongs to, from the broad department down to the specific product category; then the tag, which names a product inside that category."""
