"""The fake LLM layer and the in-memory retriever of graph-logic unit tests (tests/integration covers the real ones)."""

from __future__ import annotations

import re
from typing import Any

from recgpt.data.dataset import Dataset
from recgpt.schema.calls import LLMCall
from recgpt.tools.retrieval.protocol import CategoryHit, ItemHit, UserSignals

DEAD_ENDPOINT = "http://127.0.0.1:9/v1"  # nothing listens on the discard port


class FakeLLM:
    """Stands in for `acall_structured`: returns valid schema objects, or fails for chosen agents."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.fail = fail or {}
        self.calls: list[str] = []
        self.prompts: dict[str, str] = {}
        """Each agent's last instruction message (what follows the shared prefix)."""
        self.grades: dict[str, str] = {}
        self.attempts: dict[str, int] = {}
        """The re-sampling budget each agent's last call was given."""

    async def __call__(self, model: Any, messages: list[Any], schema: type, agent: str, base_url: str,
                       attempts: int = 2) -> tuple[Any, LLMCall]:
        self.calls.append(agent)
        self.attempts[agent] = attempts
        self.prompts[agent] = str(messages[-1].content)
        assert messages[0].content.startswith("You are one agent of RecGPT")  # shared prefix first
        if agent in self.fail:
            error = self.fail[agent]
            error.call = LLMCall(agent=agent, ok=False, attempts=attempts, latency_s=0.0, error=str(error))  # type: ignore[attr-defined]
            raise error
        fields = schema.model_fields
        if "personas" in fields:
            data = {"personas": [{"name": f"persona {i}", "focus": f"needs {i}", "evidence": []} for i in range(3)]}
        elif "tags" in fields:
            index = agent.split("[")[1].rstrip("]") if "[" in agent else agent  # plug-in experts: their name
            # four tags per expert from five kinds of product, rotated by the expert's index: the pool covers five
            # categories, as a real pool of several experts does (one final tag per category still fills 5)
            kinds = ["gel pens", "desk lamp", "notebook paper", "office chair", "sticky notes"]
            shift = int(index) % len(kinds) if index.isdigit() else 0
            words = (kinds[shift:] + kinds[:shift])[:4]
            data = {"tags": [{"tag": f"{w} {index}", "rationale": "because"} for w in words]}
            labels = _category_labels(schema)
            for tag in data["tags"]:  # a grounded schema: the label sharing most words with the tag (else the first)
                if labels:
                    tag["category"] = max(labels, key=lambda label: (len(_tokens(label) & _tokens(tag["tag"])), -labels.index(label)))
        elif "tone" in fields:
            data = {"tone": "warm", "audience": "students", "emotional_angle": "pride", "rhetorical_device": "question",
                    "seasonal_framing": "back to school"}
        elif "audience" in fields:  # the planner's part of a sampled style guideline
            data = {"audience": "students", "emotional_angle": "pride", "seasonal_framing": "back to school"}
        elif "explanation" in fields:
            data = {"explanation": f"A practical pick for your desk, written by {agent}."}
        elif "grade" in fields:
            data = {"reason": "fine", "grade": self.grades.get(agent.split(":")[-1].rstrip("]"), "positive")}
        elif "rating" in fields:
            data = {"reason": "fine", "rating": "Average"}
        else:
            data = {"selected": [2, 2, 1, 5, 7], "reason": "best"}
        call = LLMCall(agent=agent, ok=True, attempts=1, latency_s=0.01, prompt_tokens=100, completion_tokens=10)
        return schema.model_validate(data), call


    async def yes_probability(self, model: Any, messages: list[Any], agent: str, base_url: str, yes: Any = None,
                              no: Any = None) -> tuple[float, LLMCall]:
        """Stands in for `acall_yes_probability` (the judge's probability scoring): P(yes) from `grades` (positive .9,
        neutral .3, negative .05; the single judge and unset dimensions neutral or positive as `__call__` grades them)."""
        self.calls.append(agent)
        self.prompts[agent] = str(messages[-1].content)
        if agent in self.fail:
            error = self.fail[agent]
            error.call = LLMCall(agent=agent, ok=False, attempts=1, latency_s=0.0, error=str(error))  # type: ignore[attr-defined]
            raise error
        dimension = agent.split(":")[-1].rstrip("]")
        grade = self.grades.get(dimension, "neutral" if dimension == "single" else "positive")
        call = LLMCall(agent=agent, ok=True, attempts=1, latency_s=0.01, prompt_tokens=100, completion_tokens=1)
        return {"positive": 0.9, "neutral": 0.3, "negative": 0.05}[grade], call


def _under(path: str, category: str | None) -> bool:
    return not category or path == category or path.startswith(category + " > ")


def _category_labels(schema: type) -> list[str]:
    """The enum of a grounded expert schema's `category` field ([] when the schema is not grounded)."""
    from typing import get_args

    tag_model = get_args(schema.model_fields["tags"].annotation)[0]
    field = getattr(tag_model, "model_fields", {}).get("category")
    return list(get_args(field.annotation)) if field is not None else []


def _tokens(text: str) -> set[str]:
    """Lower-cased words, a plural "s" dropped (so "lamp" meets "Lamps")."""
    return {w[:-1] if len(w) > 3 and w.endswith("s") else w for w in re.findall(r"[a-z0-9]+", text.lower())}


def _distance(query: set[str], text: str) -> float:
    """1 - the share of the query's words found in `text`: 0 is every word, 1 is none."""
    return 1.0 - len(query & _tokens(text)) / len(query) if query else 1.0


class FakeRetriever:
    """An in-memory `Retriever` over one dataset, for graph tests without Chroma or embeddings.

    Deterministic: items rank by the share of the query's words in their title + category path (ties by item id),
    categories likewise among `dataset.categories()`. Like a vector index it always answers k hits when the
    catalogue has them, however poor the match. Records what it was asked (`queries`, `users`)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.queries: list[str] = []
        self.users: list[UserSignals | None] = []
        self.categories: list[str | None] = []

    def search_items(self, queries: list[str], k: int, exclude: set[str] = frozenset(),
                     user: UserSignals | None = None, categories: list[str | None] | None = None) -> list[list[ItemHit]]:
        self.queries += queries
        self.users.append(user)
        grounded = list(categories or [None] * len(queries))
        self.categories += grounded
        out: list[list[ItemHit]] = []
        for query, category in zip(queries, grounded):
            words = _tokens(query)
            ranked = sorted((not _under(item.category, category), _distance(words, f"{item.title} {item.category}"), item.item_id)
                            for item in self.dataset.items.values() if item.item_id not in exclude)
            ranked = [(d, i) for _, d, i in ranked]  # the grounded category's items first, then the rest (as Chroma fills)
            out.append([ItemHit(item_id=i, title=self.dataset.items[i].title, category=self.dataset.items[i].category,
                                distance=d) for d, i in ranked[:k]])
        return out

    def nearest_categories(self, queries: list[str], k: int = 1) -> list[list[CategoryHit]]:
        categories = self.dataset.categories()
        return [[CategoryHit(category=c, distance=d) for d, c in sorted((_distance(_tokens(q), c), c) for c in categories)[:k]]
                for q in queries]


def fake_resources(dataset_dir: Any, retriever: Any = FakeRetriever, registry: Any = None) -> Any:
    """The resources of a JSONL test dataset, in a private `Registry` (nothing shared with other tests), retrieved by
    the in-memory `FakeRetriever` (or another factory)."""
    from recgpt.services.resources import Registry

    return (registry or Registry()).resources(str(dataset_dir), retriever=retriever)


def fake_graph(dataset_dir: Any, plugins: Any = None, retriever: Any = FakeRetriever, **options: Any) -> Any:
    """`build_graph` on `fake_resources(dataset_dir, retriever)`."""
    from recgpt.graph import build_graph

    return build_graph(fake_resources(dataset_dir, retriever), plugins=plugins, **options)
