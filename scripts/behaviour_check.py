"""Same tags before and after a refactor: `recgpt eval --method recgpt` on validation users through a deterministic,
prompt-sensitive fake LLM (no server; per-request seeds are off on CPU, so a real model is not repeatable).

The fake answers every agent from a hash of the exact messages and schema it was given, picking words from the
user's history in the prompt: any change in prompts, context, schemas, fan-out order or retrieval changes the tags.

    python scripts/behaviour_check.py --users 20 --out /tmp/after.json   # then diff against a run of the old code
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

WORD = re.compile(r"[A-Za-z]{4,}")


def _digest(*parts: Any) -> int:
    return int(hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest(), 16)


async def fake_acall_structured(model: Any, messages: list[Any], schema: type, agent: str, base_url: str,
                                attempts: int = 2) -> tuple[Any, Any]:
    LLMCall = type(getattr(sys.modules["recgpt.tools.llm"], "call_of")(RuntimeError("x"), agent))  # where it lives varies

    text = "\n".join(str(m.content) for m in messages)
    seed = _digest(text, agent, json.dumps(schema.model_json_schema(), sort_keys=True))
    words = sorted(set(WORD.findall(text.split("History", 1)[-1])))[:400] or ["paper"]
    pick = lambda i: words[(seed >> (i * 7)) % len(words)].lower()  # noqa: E731
    fields = schema.model_fields
    if "personas" in fields:
        n = schema.model_json_schema()["properties"]["personas"].get("minItems", 3)
        data: dict[str, Any] = {"personas": [{"name": f"buyer of {pick(i)}", "focus": f"{pick(i + 9)} needs", "evidence": []}
                                             for i in range(n)]}
    elif "tags" in fields:
        full = schema.model_json_schema()
        n = full["properties"]["tags"].get("minItems", 5)
        ref = full["properties"]["tags"]["items"].get("$ref", "")
        item = full.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {}) if ref else full["properties"]["tags"]["items"]
        enum = item.get("properties", {}).get("category", {}).get("enum")  # grounded: one catalogue category per tag
        data = {"tags": [{"tag": f"{pick(i)} {pick(i + 20)}", "rationale": "seen in history",
                          **({"category": enum[(seed >> (5 * i)) % len(enum)]} if enum else {})} for i in range(n)]}
    elif "selected" in fields:
        props = schema.model_json_schema()["properties"]["selected"]
        choices = props["items"]["enum"]
        data = {"selected": [choices[(seed >> (3 * i)) % len(choices)] for i in range(props.get("minItems", 5))],
                "reason": "best mix"}
    else:
        raise AssertionError(f"unexpected schema for {agent}: {list(fields)}")
    call = LLMCall(agent=agent, ok=True, attempts=1, latency_s=0.0, prompt_tokens=len(text) // 4, completion_tokens=10)
    return schema.model_validate(data), call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--dataset", default="office")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(Path.cwd()))
    import recgpt.graph.builder  # noqa: F401 - loads every agent module, so that the loop below patches them all
    import recgpt.runner  # noqa: F401
    from recgpt.eval.harness import EvalConfig, run_eval

    for module in list(sys.modules.values()):  # every `from recgpt.tools.llm import acall_structured` binding
        if getattr(module, "__name__", "").startswith("recgpt") and hasattr(module, "acall_structured"):
            module.acall_structured = fake_acall_structured
        if getattr(module, "__name__", "").startswith("recgpt") and hasattr(module, "check_endpoint"):
            module.check_endpoint = lambda ctx: None
    config = EvalConfig(dataset=args.dataset, split="validation", users=args.users, method="recgpt", concurrency=4,
                        context={"base_url": "http://127.0.0.1:9/v1", "model": "fake-policy"})
    with tempfile.TemporaryDirectory() as home:
        _, results, _ = run_eval(config, Path(home), show_progress=False)
    answer = {r.user_id: {"tags": r.tags, "items": r.ranked_items, "categories": r.ranked_categories, "flags": r.flags}
              for r in results}
    args.out.write_text(json.dumps(answer, indent=1, sort_keys=True))
    print(f"{len(answer)} users, {sum(len(a['tags']) for a in answer.values())} tags -> {args.out}")


if __name__ == "__main__":
    main()
