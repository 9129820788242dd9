"""Global Planner: read the whole context once, decompose it into K complementary personas."""

PLANNER_INSTRUCTIONS = """Role: Global Planner.
Read the whole user context above and decompose this user into exactly {k} complementary personas: different needs or roles that explain different parts of the behaviour history and the current situation (season, upcoming events).
For each persona give:
- name: who the user is in that role and what they are doing now (at most 8 words);
- focus: the kind of product they are likely to need next (at most 10 words){evidence}.
Personas must not overlap: each one should point to a different kind of product."""

EVIDENCE_INSTRUCTION = """;
- evidence: up to 2 short category names or title words from the history that support it"""

AGENT_ROLES = ("global planner", "planner", "distributed expert", "expert", "decision arbiter", "arbiter",
               "style planner", "explanation writer", "judge", "senior reviewer", "reviewer", "assistant", "agent")
"""The agents' own role names: a persona named after one (the demo's three "Global Planner"s) copies the prompt's
first line instead of naming the shopper."""
