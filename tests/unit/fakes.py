"""The fake LLM layer of graph-logic unit tests (tests/integration covers the real one)."""

from __future__ import annotations

from typing import Any

from recgpt.schema.calls import LLMCall

DEAD_ENDPOINT = "http://127.0.0.1:9/v1"  # nothing listens on the discard port


class FakeLLM:
    """Stands in for `acall_structured`: returns valid schema objects, or fails for chosen agents."""

    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.fail = fail or {}
        self.calls: list[str] = []
        self.grades: dict[str, str] = {}

    async def __call__(self, model: Any, messages: list[Any], schema: type, agent: str, base_url: str,
                       attempts: int = 2) -> tuple[Any, LLMCall]:
        self.calls.append(agent)
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
            words = ["gel pens", "desk lamp", "notebook paper", "office chair"]
            data = {"tags": [{"tag": f"{w} {index}", "rationale": "because"} for w in words]}
        elif "tone" in fields:
            data = {"tone": "warm", "audience": "students", "emotional_angle": "pride", "rhetorical_device": "question",
                    "seasonal_framing": "back to school"}
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
