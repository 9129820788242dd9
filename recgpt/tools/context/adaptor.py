"""The entity adaptor of hybrid context compression: `z = W2·ReLU(W1·h + b1) + b2`.

`h` is an entity's offline MiniLM sentence embedding (384-d); `z` lives in the input-embedding
space of one particular LLM, so an adaptor is only meaningful for the model it was trained for.
It is saved with that model's identity (architecture, sizes and a hash of its input-embedding
matrix) and loading it for any other model is refused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from pydantic import BaseModel, Field
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from recgpt.errors import RecGPTError

ENTITY_DIM = 384
"""all-MiniLM-L6-v2's sentence-embedding size."""
CONFIG_FILE = "adaptor.json"
WEIGHTS_FILE = "adaptor.safetensors"


class AdaptorMismatch(RecGPTError):
    """The adaptor was trained for another model (its input space is not this model's)."""


class ModelIdentity(BaseModel):
    """What an adaptor depends on: the LLM's input-embedding space."""

    architecture: str
    hidden_size: int
    vocab_size: int
    embedding_sha256: str = Field(description="sha256 of the stored input-embedding matrix (bytes as saved).")

    @classmethod
    def of(cls, model_dir: Path) -> "ModelIdentity":
        config = json.loads((model_dir / "config.json").read_text())
        config = config.get("text_config", config) | {"architectures": config.get("architectures")}
        name, tensor = input_embedding_tensor(model_dir)
        digest = hashlib.sha256(tensor.contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()
        return cls(architecture=(config.get("architectures") or ["?"])[0], hidden_size=int(config["hidden_size"]),
                   vocab_size=int(config["vocab_size"]), embedding_sha256=digest)


def input_embedding_tensor(model_dir: Path) -> tuple[str, torch.Tensor]:
    """The input-embedding matrix straight from the safetensors files (no model instantiated)."""
    files = sorted(model_dir.glob("*.safetensors"))
    for path in files:
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():
                if key.endswith(("embed_tokens.weight", "wte.weight", "word_embeddings.weight")):
                    return key, handle.get_tensor(key)
    raise RecGPTError(f"{model_dir}: no input-embedding matrix found in {len(files)} safetensors file(s)")


class AdaptorConfig(BaseModel):
    entity_dim: int = ENTITY_DIM
    hidden_dim: int = Field(default=1024, ge=1, description="Width of the adaptor's hidden layer.")
    model: ModelIdentity
    model_dir: str = Field(description="Where the model was when the adaptor was trained (its tokenizer is read from there).")
    trained_on: dict[str, object] = Field(default_factory=dict, description="Training provenance (run config, metrics).")


class EntityAdaptor(nn.Module):
    """Two-layer MLP from sentence-embedding space to the LLM's input-embedding space."""

    def __init__(self, config: AdaptorConfig) -> None:
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.Linear(config.entity_dim, config.hidden_dim), nn.ReLU(),
                                 nn.Linear(config.hidden_dim, config.model.hidden_size))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(self.config.model_dump_json(indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path, model_dir: Path | None = None) -> "EntityAdaptor":
        """Load an adaptor; with `model_dir`, refuse it unless it was trained for exactly that model."""
        if not (folder / CONFIG_FILE).is_file():
            raise RecGPTError(f"{folder}: no entity adaptor here (train one with `recgpt train adaptor`)")
        config = AdaptorConfig.model_validate_json((folder / CONFIG_FILE).read_text())
        if model_dir is not None:
            actual = ModelIdentity.of(model_dir)
            if actual != config.model:
                differs = [f for f in ModelIdentity.model_fields if getattr(actual, f) != getattr(config.model, f)]
                raise AdaptorMismatch(
                    f"adaptor {folder} was trained for another model than {model_dir} (differs in {', '.join(differs)}); "
                    "train one for this model with `recgpt train adaptor --model DIR`")
        adaptor = cls(config)
        adaptor.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        adaptor.eval()
        return adaptor
