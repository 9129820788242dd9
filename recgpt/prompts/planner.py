"""Global Planner: read the whole context once, decompose it into K complementary personas."""

PLANNER_INSTRUCTIONS = """Role: Global Planner.
Read the whole user context above and decompose this user into exactly {k} complementary personas: different needs or roles that explain different parts of the behaviour history and the current situation (season, upcoming events).
For each persona give:
- name: a short label for the shopper in that role, 2 to 6 words (for example "teacher stocking a classroom" or "home office organizer"), never a person's first name and never an agent's role;
- focus: the kind of product they are likely to need next, in a shopper's words (at most 10 words, no sizes or pack counts){evidence}.
Personas must not overlap: each one points to a different kind of product, and no two share a focus."""

EVIDENCE_INSTRUCTION = """;
- evidence: up to 2 short category names or title words from the history that support it"""

AGENT_ROLES = ("global planner", "planner", "distributed expert", "expert", "decision arbiter", "arbiter",
               "style planner", "explanation writer", "judge", "senior reviewer", "reviewer", "assistant", "agent")
"""The agents' own role names: a persona named after one (the demo's three "Global Planner"s) copies the prompt's
first line instead of naming the shopper."""
