"""GGUF -> bf16 safetensors folder. Imports only the standard library until it converts (torch and transformers then),
so a bare GPU machine with torch, transformers and `gguf` can rebuild the exact base weights from the registry's GGUF
(`scripts/gpu_sft.sh`) without the rest of recgpt's dependencies."""

from __future__ import annotations

import json
from pathlib import Path


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF into a bf16 safetensors HF directory (model + tokenizer)."""
    # deferred: torch and transformers take seconds to import; only `recgpt model prepare` converts
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    # The GGUF loader records the source quantization; the saved weights are plain bf16, and
    # vLLM would otherwise try to load them as a quantized checkpoint.
    # transformers also marks the model as quantized, which save_pretrained refuses to serialize.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    config_path = out_dir / "config.json"
    config = json.loads(config_path.read_text())
    config.pop("quantization_config", None)
    config_path.write_text(json.dumps(config, indent=2))
