"""Hybrid context: one soft token per entity, sent to vLLM as `prompt_embeds` (Atomized Entity Compression).

In `compression=hybrid` the compressed history names every listed item as an entity marker
`⟦title⟧` instead of a quoted title. The prefix stays a string, so every agent, the checkpointer
and Studio handle it unchanged; only the transport differs. When an agent's messages carry
markers and its endpoint is hybrid (it carries an assembler, from `load_assembler`), `HybridAssembler`
renders the messages with the model's own chat template, embeds every text token with the model's
input-embedding matrix, puts the adaptor's vector `z = adaptor(MiniLM(title))` at each marker's
single position, and the call goes to `/v1/completions` as `prompt_embeds` (the server needs `--enable-prompt-embeds`).
A text endpoint (e.g. a judge on another model) gets the markers back as quoted titles: exactly the
text-mode prompt.

Why completions with a full embedding tensor, not chat `prompt_embeds` content parts: vLLM joins
chat content parts with newlines (and without `--interleave-mm-strings` moves them to the front),
so an entity inside a sentence cannot be expressed as a part; a client-side tensor puts each
entity exactly where its title was, and is the same tensor the adaptor is trained on.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import httpx
import torch
from transformers import AutoTokenizer

from recgpt.errors import RecGPTError
from recgpt.settings import get_settings
from recgpt.tools.context.adaptor import EntityAdaptor, input_embedding_tensor
from recgpt.tools.context.entities import ENTITY_PATTERN
from recgpt.tools.retrieval.embeddings import Embedder
from recgpt.tools.serving.model_prep import base_folder_name


def assemble(token_ids: Sequence[int | None], entity_vectors: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """(T, H) prompt embeddings: row t is `embedding[token_ids[t]]`, or the next entity vector where the id is None."""
    slots = [i for i, t in enumerate(token_ids) if t is None]
    if len(slots) != entity_vectors.shape[0]:
        raise ValueError(f"{len(slots)} entity positions but {entity_vectors.shape[0]} entity vectors")
    if entity_vectors.shape[0] and entity_vectors.shape[1] != embedding.shape[1]:
        raise ValueError(f"entity vectors are {entity_vectors.shape[1]}-d, the model's embeddings {embedding.shape[1]}-d")
    ids = torch.tensor([0 if t is None else t for t in token_ids], dtype=torch.long)
    out = embedding[ids].to(entity_vectors.dtype if entity_vectors.shape[0] else embedding.dtype).clone()
    if slots:
        out[torch.tensor(slots)] = entity_vectors
    return out


def encode_tensor(tensor: torch.Tensor) -> str:
    """The wire format vLLM expects: base64 of `torch.save` of a (T, H) tensor."""
    buffer = io.BytesIO()
    torch.save(tensor.contiguous(), buffer)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_tensor(data: str) -> torch.Tensor:
    return torch.load(io.BytesIO(base64.b64decode(data)), weights_only=True)


@dataclass
class HybridPrompt:
    """A rendered hybrid prompt: token ids with `None` at entity positions, and the entities' titles."""

    token_ids: list[int | None]
    titles: list[str]

    @property
    def n_tokens(self) -> int:
        return len(self.token_ids)


class HybridAssembler:
    """Messages with entity markers -> the prompt-embedding tensor for one served model."""

    def __init__(self, model_dir: Path, adaptor: EntityAdaptor, wire_dtype: torch.dtype = torch.bfloat16,
                 adaptor_dir: Path | None = None, embedder: Embedder | None = None) -> None:
        """`embedder`: the frozen sentence encoder of the entity titles (the registry's MiniLM; a fresh one if None)."""

        self.model_dir = model_dir
        self.adaptor_dir = adaptor_dir
        self.adaptor = adaptor
        self.embedder = embedder or Embedder()
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        self.embedding = input_embedding_tensor(model_dir)[1].float()
        self.wire_dtype = wire_dtype
        self._lock = threading.Lock()
        weights = torch.cat([p.detach().flatten().float() for p in adaptor.parameters()])
        self.adaptor_fingerprint = hashlib.sha256(weights.numpy().tobytes()).hexdigest()[:12]

    @property
    def category_text(self) -> bool | None:
        """The history layout the adaptor was trained for (`recgpt train adaptor --[no-]category-text`); None for an
        adaptor that does not record it (trained before the compact layout existed)."""
        config = self.adaptor.config.trained_on.get("config")
        value = config.get("category_text") if isinstance(config, dict) else None
        return value if isinstance(value, bool) else None

    def layout(self, requested: bool) -> bool:
        """Whether a run's hybrid history keeps category paths as text: the layout the adaptor was trained for, since
        its soft tokens were fitted to carry the category (compact) or not (grouped) and the other layout silently
        loses quality; `requested` (Context.hybrid_category_text) for an adaptor that does not record one."""
        return requested if self.category_text is None else self.category_text

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> HybridPrompt:
        """Apply the model's chat template, then tokenize the text between markers; each marker is one position."""
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
        ids: list[int | None] = []
        titles: list[str] = []
        cursor = 0
        for match in ENTITY_PATTERN.finditer(text):
            ids.extend(self.tokenizer(text[cursor:match.start()], add_special_tokens=False)["input_ids"])
            ids.append(None)
            titles.append(match.group(1))
            cursor = match.end()
        ids.extend(self.tokenizer(text[cursor:], add_special_tokens=False)["input_ids"])
        return HybridPrompt(token_ids=ids, titles=titles)

    def entity_vectors(self, titles: list[str]) -> torch.Tensor:
        if not titles:
            return torch.zeros((0, self.embedding.shape[1]))
        h = torch.from_numpy(self.embedder(titles))
        with self._lock, torch.no_grad():
            return self.adaptor(h).float()

    def embeds(self, messages: Sequence[dict[str, str]]) -> torch.Tensor:
        prompt = self.render(messages)
        return assemble(prompt.token_ids, self.entity_vectors(prompt.titles), self.embedding)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` as the model reads it in hybrid form (each entity is one)."""
        pieces = ENTITY_PATTERN.split(text)
        plain = "".join(pieces[0::2])
        return len(self.tokenizer(plain, add_special_tokens=False)["input_ids"]) + len(pieces[1::2])

    def request_body(self, messages: Sequence[dict[str, str]]) -> tuple[str, int]:
        tensor = self.embeds(messages)
        return encode_tensor(tensor.to(self.wire_dtype)), int(tensor.shape[0])


# --- the assembler of a served model -----------------------------------------------------------


def default_adaptor_dir(model_dir: Path) -> Path:
    """Where `recgpt train adaptor` puts the adaptor of a model by default. A merged policy (e.g. the shipped
    `office-sft`) looks in its base's place: the policies' LoRA targets leave the embeddings as they are, so the
    base's adaptor fits them (the fingerprint is still checked on load)."""
    return get_settings().home / "adaptors" / base_folder_name(model_dir)


def served_model_dir(base_url: str, model: str, api_key: str = "EMPTY") -> Path:
    """The local weights folder the endpoint serves `model` from (vLLM's /v1/models `root`)."""
    try:
        response = httpx.get(base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"}, timeout=10.0)
        response.raise_for_status()
        roots = [m.get("root") for m in response.json().get("data", []) if m.get("id") == model]
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        raise RecGPTError(f"LLM endpoint {base_url} unreachable ({type(exc).__name__}); start one with `recgpt serve --prompt-embeds`") from None
    folder = Path(str(roots[0])) if roots and roots[0] else None
    if folder is None or not (folder / "config.json").is_file():
        raise RecGPTError(f"hybrid compression needs the served model's weights on this machine; {base_url} serves {model!r} "
                          f"from {roots[0] if roots else 'an unknown folder'} (set adaptor_dir to an adaptor trained for it)")
    return folder


def check_accepts_embeds(base_url: str, model: str, hidden_size: int, api_key: str = "EMPTY") -> None:
    """One 1-token request with a 1-row embedding: a server started without `--enable-prompt-embeds` fails here,
    with one clear line, rather than on every agent call."""
    body = {"model": model, "prompt_embeds": encode_tensor(torch.zeros((1, hidden_size), dtype=torch.bfloat16)), "max_tokens": 1}
    try:
        response = httpx.post(base_url.rstrip("/") + "/completions", json=body, headers={"Authorization": f"Bearer {api_key}"}, timeout=60.0)
    except httpx.HTTPError as exc:
        raise RecGPTError(f"LLM endpoint {base_url} unreachable ({type(exc).__name__})") from None
    if response.status_code != 200:
        hint = " (start it with `recgpt serve --prompt-embeds`)" if "prompt-embeds" in response.text or "prompt_embeds" in response.text else ""
        raise RecGPTError(f"{base_url} does not accept prompt embeddings: HTTP {response.status_code}{hint}")


def load_assembler(base_url: str, model: str, adaptor_dir: Path | None, api_key: str = "EMPTY",
                   embedder: Embedder | None = None) -> HybridAssembler:
    """The assembler for the model an endpoint serves: the adaptor in `adaptor_dir` (default: the one trained for the
    served weights), checked against those weights and the server's prompt-embeds flag. Not cached here: a `Registry`
    keeps one per (endpoint, model, adaptor); whoever calls it carries the assembler (`Endpoint.assembler`)."""
    model_dir = served_model_dir(base_url, model, api_key)
    folder = adaptor_dir or default_adaptor_dir(model_dir)
    assembler = HybridAssembler(model_dir, EntityAdaptor.load(folder, model_dir), adaptor_dir=folder, embedder=embedder)
    check_accepts_embeds(base_url, model, int(assembler.embedding.shape[1]), api_key)
    return assembler


