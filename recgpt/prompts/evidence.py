"""The evidence expert's instruction (`Context.evidence_experts`); hashed into evaluation keys only where it is used."""

EVIDENCE_EXPERT_INSTRUCTION = """Choose each category among the likely next categories of the collaborative evidence, the ones that fit this persona and the history best, best first."""
"""Added to an evidence expert's instructions: its enum holds only the categories with the largest SASRec share."""
