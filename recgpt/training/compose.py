"""One LoRA adapter on the base from a lineage of adapters, so a policy trained in rounds ships like any other.

An offline round trains a new LoRA on the merged weights of the round before (base + SFT, then + round 1, ...), so a
round-2 policy is W + ΔW_sft + ΔW_1 + ΔW_2. Each ΔW = s·B·A is low rank, and their sum is exactly one LoRA of the
summed rank with the A matrices stacked and the B matrices side by side (PEFT's `add_weighted_adapter(...,
combination_type="cat")`). The composed adapter is stored in bfloat16 so that two rank-8 adapters of the 0.5B model
(35 MB in float32) fit the 32 MiB a shipped adapter may take; the unit test checks that it reproduces the merged
lineage's logits.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from recgpt.errors import RecGPTError

COMPOSED = "composed"


def compose_adapters(adapters: list[Path], base_dir: Path, out: Path, dtype: str = "bfloat16") -> Path:
    """Write one adapter on `base_dir` equal to applying `adapters` in order; returns `out`."""
    if not adapters:
        raise RecGPTError("compose_adapters needs at least one adapter")
    for adapter in adapters:
        if not (adapter / "adapter_config.json").is_file():
            raise RecGPTError(f"{adapter} is not a LoRA adapter folder (no adapter_config.json)")
    # deferred: torch, peft and transformers take seconds to import
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    names = [f"a{i}" for i in range(len(adapters))]
    peft = PeftModel.from_pretrained(model, str(adapters[0]), adapter_name=names[0])
    for name, adapter in zip(names[1:], adapters[1:]):
        peft.load_adapter(str(adapter), adapter_name=name)
    if len(adapters) > 1:
        peft.add_weighted_adapter(names, [1.0] * len(names), COMPOSED, combination_type="cat")
        keep = COMPOSED
    else:
        keep = names[0]
    if dtype == "bfloat16":
        for param_name, param in peft.named_parameters():
            if f".{keep}." in param_name:
                param.data = param.data.to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.staging-") as staging:
        peft.save_pretrained(staging, selected_adapters=[keep])
        saved = Path(staging) / keep if (Path(staging) / keep).is_dir() else Path(staging)
        config = json.loads((saved / "adapter_config.json").read_text())
        config["base_model_name_or_path"] = str(base_dir)
        (saved / "adapter_config.json").write_text(json.dumps(config, indent=2))
        for name in ("adapter_model.safetensors", "adapter_config.json"):
            shutil.copy2(saved / name, out / name)
    (out / "composed_from.json").write_text(json.dumps([str(a) for a in adapters], indent=2))
    return out
