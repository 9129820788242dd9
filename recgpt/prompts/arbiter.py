"""Decision Arbiter: jointly select the final N tags from the experts' pool."""

ARBITER_INSTRUCTIONS = """Role: Decision Arbiter.
The experts proposed these candidate interest tags (number: tag — persona):
{pool}
Select the {n} best candidates by number. Judge them jointly: relevance to the history and the situation, consistency with the profile, specificity, validity as a product search, and no redundancy (do not select two tags that mean the same thing).
Return the numbers of the selected candidates, best first{reason}."""

REASON_INSTRUCTION = ", and one sentence explaining the selection"

EVIDENCE_INSTRUCTION = """A candidate's "(evidence N%)" is the share of the shop's purchase-sequence model's next-purchase probability that falls in its category for this user: weigh it with the history and the situation, favouring well-supported categories."""
"""Added when the collaborative evidence is on (`Context.arbiter_evidence`)."""
