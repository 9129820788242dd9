"""GRPO rollouts decoded under the grammar serving decodes with.

The server answers the experts under their JSON schema (xgrammar, `disable_any_whitespace`): every served answer is
a valid grounded answer naming real catalogue categories. Rollouts sampled freely by transformers' `generate` are
not: GRPO-SUM's policy wrote category paths that do not exist, learnt from rewards on answers serving can never
give. So `constrain_generation` wraps the trained model's `generate` with xgrammar's logits processor for that same
schema (a fresh processor per call: it keeps per-sequence matcher state), compiled once with the same compact
separators, so TRL's rollouts are drawn from the distribution serving draws from.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from pydantic import BaseModel

SEPARATORS = (",", ":")
"""What vLLM's `disable_any_whitespace` emits: no space after a comma or a colon."""


def compile_schema(tokenizer: Any, schema: type[BaseModel] | dict[str, Any], vocab_size: int) -> Any:
    """The xgrammar grammar of a pydantic model (or JSON schema) for this tokenizer and the model's vocabulary size
    (which may exceed the tokenizer's: padded embeddings)."""
    import xgrammar as xgr  # deferred: installed with vLLM; only constrained training needs it here

    info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size)
    text = json.dumps(schema if isinstance(schema, dict) else schema.model_json_schema())
    return xgr.GrammarCompiler(info).compile_json_schema(text, any_whitespace=False, separators=SEPARATORS)


def constrain_generation(model: Any, compiled: Any) -> Any:
    """Make every `model.generate` call decode under `compiled` (idempotent); returns the model."""
    import xgrammar as xgr  # deferred: as above
    from transformers import LogitsProcessorList

    if getattr(model, "_recgpt_constrained", False):
        return model
    original = model.generate

    @functools.wraps(original)
    def generate(*args: Any, **kwargs: Any) -> Any:
        processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
        processors.append(xgr.contrib.hf.LogitsProcessor(compiled))
        return original(*args, logits_processor=processors, **kwargs)

    model.generate = generate
    model._recgpt_constrained = True
    return model
