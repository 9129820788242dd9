"""`recgpt train export`: a training output -> a plain Hugging Face directory `recgpt serve --model DIR` serves.

A LoRA adapter is merged into its base model (`peft` `merge_and_unload`); a full model is copied
as is. The tokenizer (with its chat template) travels along, and `recgpt_export.json` records where
the weights came from.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from recgpt.errors import RecGPTError


def export_model(trained: Path, out: Path, base_model: str | None = None) -> Path:
    trained, out = Path(trained), Path(out)
    if not trained.is_dir():
        raise RecGPTError(f"{trained} is not a training output directory")
    out.mkdir(parents=True, exist_ok=True)
    adapter = trained / "adapter_config.json"
    if adapter.is_file():
        from peft import AutoPeftModelForCausalLM  # deferred: peft (imports torch; `recgpt train --help` imports this module)

        model = AutoPeftModelForCausalLM.from_pretrained(str(trained))
        merged = model.merge_and_unload()
        merged.save_pretrained(str(out), safe_serialization=True)
        source = {"kind": "lora-merged", "adapter": str(trained), "base": json.loads(adapter.read_text()).get("base_model_name_or_path")}
    else:
        if not (trained / "config.json").is_file():
            raise RecGPTError(f"{trained} holds neither a LoRA adapter nor a model (no adapter_config.json / config.json)")
        for path in trained.iterdir():
            if path.is_file() and not path.name.startswith(("training_args", "optimizer", "scheduler", "rng_state")):
                shutil.copy2(path, out / path.name)
        source = {"kind": "full", "model": str(trained)}
    from transformers import AutoTokenizer  # deferred: transformers (imports torch; as peft above)

    AutoTokenizer.from_pretrained(str(trained if (trained / "tokenizer_config.json").is_file() else base_model or source.get("base"))).save_pretrained(str(out))
    (out / "recgpt_export.json").write_text(json.dumps(source, indent=2))
    return out
