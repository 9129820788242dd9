"""SASRec, the sequential next-item model, as a tool: trained, scored, saved, and cached per dataset and split.

It lives in the tools layer (not in eval/, where it started as a baseline) because retrieval uses it: the
collaborative retriever (`recgpt.tools.retrieval.collaborative`) mixes its next-item logits with the tag's semantic
similarity, and tools may not import eval. `recgpt.eval.baselines.SASRec` is this class.

`collaborative_model` is the cache: one trained model per (dataset content, split, hyper-parameters), saved as a
`.pt` file beside the Chroma index (`$RECGPT_HOME/collab/`) and loaded by every later process, so that the graph
pays the training (Office: 142 s on 2 idle CPU cores, 195-270 s on one) once, not per run. It learns from
`Dataset.training_sequences(split)`: for `test` and `validation` only the interactions before that split's
held-out target, for `full` (serving) everything; a model scored on a split never saw that split's targets.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from recgpt.data.dataset import Dataset, Split

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
"""Bumped when the saved file's layout changes; a file of another version is retrained, not misread."""


class _SASRecNet(nn.Module):
    def __init__(self, n_items: int, dim: int, layers: int, heads: int, maxlen: int, dropout: float) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, dim, padding_idx=0)
        self.pos_emb = nn.Embedding(maxlen, dim)
        block = nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("causal", torch.triu(torch.full((maxlen, maxlen), float("-inf")), diagonal=1))
        # Small init as in the reference SASRec: N(0,1) item vectors tied to the output layer give
        # logits of norm ~dim at step 0 (initial loss ~50 instead of ln(n_items)) and slow training.
        for embedding in (self.item_emb, self.pos_emb):
            nn.init.normal_(embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        length = seq.shape[1]
        positions = torch.arange(length, device=seq.device)
        x = self.item_emb(seq) * math.sqrt(self.item_emb.embedding_dim) + self.pos_emb(positions)
        h = self.encoder(self.dropout(x), mask=self.causal[:length, :length])
        return self.norm(h) @ self.item_emb.weight.T  # tied output embedding


def training_threads() -> int:
    """Torch threads for training now: the cores that other processes leave free (1-minute load average), at least one.

    torch's intra-op threads spin-wait for each other, so with a core taken by another process (a vLLM server, a test
    suite) two threads are far slower than one: on Office, 2 cores, beside a vLLM server, 93 s per epoch on 2 threads
    against 10 s on 1. On an idle machine all of torch's threads are used."""
    threads = torch.get_num_threads()
    try:
        busy = os.getloadavg()[0]
    except OSError:  # not on every platform
        return threads
    return max(1, min(threads, (os.cpu_count() or threads) - int(busy + 0.5)))


class SASRec:
    """SASRec (Kang & McAuley 2018): a causal self-attention next-item model, trained on CPU with
    full-softmax cross-entropy at every position of the training sequences (left-padded).

    `recommend` ranks the whole catalogue (the baseline); `score` gives the next-item logits of chosen candidates
    (the collaborative term of retrieval); `save`/`load` persist a trained model."""

    name = "sasrec"

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 2, maxlen: int = 50, dropout: float = 0.2,
                 epochs: int = 30, batch_size: int = 128, lr: float = 1e-3, seed: int = 0, show_progress: bool = True) -> None:
        self.hparams: dict[str, Any] = dict(dim=dim, layers=layers, heads=heads, maxlen=maxlen, dropout=dropout, epochs=epochs,
                                            batch_size=batch_size, lr=lr, seed=seed)
        self.show_progress = show_progress
        self.losses: list[float] = []
        self.train_seconds: float = 0.0
        self.train_threads: int = 0
        self.items: list[str] = []
        self.index: dict[str, int] = {}
        self.maxlen: int = 0
        self.net: _SASRecNet | None = None

    def _encode(self, seq: Sequence[str], length: int) -> list[int]:
        ids = [self.index[i] for i in seq if i in self.index][-length:]
        return [0] * (length - len(ids)) + ids

    def _build_net(self) -> _SASRecNet:
        hp = self.hparams
        return _SASRecNet(len(self.items), hp["dim"], hp["layers"], hp["heads"], self.maxlen, hp["dropout"])

    def fit(self, sequences: dict[str, list[str]]) -> SASRec:
        threads = torch.get_num_threads()
        self.train_threads = training_threads()
        torch.set_num_threads(self.train_threads)
        try:
            return self._fit(sequences)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, sequences: dict[str, list[str]]) -> SASRec:
        hp = self.hparams
        started = time.perf_counter()
        torch.manual_seed(hp["seed"])
        random.seed(hp["seed"])
        vocab = sorted({i for seq in sequences.values() for i in seq})
        self.items = vocab
        self.index = {item: n + 1 for n, item in enumerate(vocab)}
        # Sequences are cut to the 95th-percentile length (capped at `maxlen`): on Office the median
        # history is 6 items, so padding every row to 50 would spend ~80% of the compute on padding.
        lengths = sorted(len(seq) for seq in sequences.values())
        maxlen = max(2, min(hp["maxlen"], lengths[int(0.95 * (len(lengths) - 1))] if lengths else 2))
        self.maxlen = maxlen
        rows = [self._encode(seq, maxlen + 1) for seq in sequences.values() if len(seq) >= 2]
        data = torch.tensor(rows, dtype=torch.long)
        self.net = net = self._build_net()
        optimiser = torch.optim.Adam(net.parameters(), lr=hp["lr"], betas=(0.9, 0.98))
        loss_fn = nn.CrossEntropyLoss(ignore_index=0)
        generator = torch.Generator().manual_seed(hp["seed"])
        net.train()
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, disable=not self.show_progress, transient=True) as progress:
            task = progress.add_task("training SASRec", total=hp["epochs"])
            for _ in range(hp["epochs"]):
                order = torch.randperm(len(data), generator=generator)
                total = 0.0
                for start in range(0, len(data), hp["batch_size"]):
                    batch = data[order[start : start + hp["batch_size"]]]
                    logits = net(batch[:, :-1])
                    loss = loss_fn(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    total += float(loss.detach()) * len(batch)
                self.losses.append(total / max(1, len(data)))
                progress.update(task, advance=1, description=f"training SASRec (loss {self.losses[-1]:.3f})")
                if not self.show_progress:
                    logger.info("SASRec epoch %d/%d loss %.4f", len(self.losses), hp["epochs"], self.losses[-1])
        net.eval()
        self.train_seconds = time.perf_counter() - started
        return self

    def _trained(self) -> _SASRecNet:
        if self.net is None:
            raise RuntimeError("SASRec is not trained: call fit() or SASRec.load() first")
        return self.net

    @torch.no_grad()
    def _next_logits(self, history: Sequence[str]) -> torch.Tensor:
        """Logits of every vocabulary id (0 = padding) as the item after `history`."""
        seq = torch.tensor([self._encode(history, self.maxlen)], dtype=torch.long)
        return self._trained()(seq)[0, -1]

    @torch.no_grad()
    def recommend(self, history: Sequence[str], k: int) -> list[str]:
        scores = self._next_logits(history).clone()
        scores[0] = -torch.inf
        for item in history:
            if item in self.index:
                scores[self.index[item]] = -torch.inf
        top = torch.topk(scores, min(k, len(self.items))).indices.tolist()
        return [self.items[i - 1] for i in top if i > 0][:k]

    def knows_any(self, history: Sequence[str]) -> bool:
        """Whether any history item is in the vocabulary: without one the logits say nothing about this user."""
        return any(i in self.index for i in history)

    def score(self, history: Sequence[str], item_ids: Sequence[str]) -> list[float]:
        """Next-item logits of `item_ids` after `history` (higher = more likely next), in the order given.

        Items the model never saw in training get `-inf`: it has no evidence for them, and a caller that mixes
        scores must floor them itself (the collaborative retriever maps them to its candidates' minimum)."""
        logits = self._next_logits(history).tolist()
        return [logits[self.index[i]] if i in self.index else float("-inf") for i in item_ids]

    def save(self, path: Path) -> Path:
        """Write weights, vocabulary, sequence length and hyper-parameters to `path` (torch.save).

        Atomic (a temporary file in the same folder, then a rename): a killed process or a concurrent reader never
        sees half a file, and two processes training the same model at once leave one complete file."""
        net = self._trained()
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"format": FORMAT_VERSION, "hparams": dict(self.hparams), "items": list(self.items), "maxlen": self.maxlen,
                   "losses": list(self.losses), "train_seconds": self.train_seconds, "train_threads": self.train_threads,
                   "state_dict": net.state_dict()}
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        os.chmod(temp, 0o644)  # mkstemp's 0600 would hide the cache from other users of the machine
        try:
            torch.save(payload, temp)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: Path, show_progress: bool = False) -> SASRec:
        """A trained model back from `save` (weights only: `weights_only=True`, no code is unpickled)."""
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: not a recgpt SASRec file of format {FORMAT_VERSION}")
        model = cls(**payload["hparams"], show_progress=show_progress)
        model.items = list(payload["items"])
        model.index = {item: n + 1 for n, item in enumerate(model.items)}
        model.maxlen = int(payload["maxlen"])
        model.losses = list(payload["losses"])
        model.train_seconds = float(payload.get("train_seconds", 0.0))
        model.train_threads = int(payload.get("train_threads", 0))
        model.net = model._build_net()
        model.net.load_state_dict(payload["state_dict"])
        model.net.eval()
        return model


def training_sequences(dataset: Dataset, split: Split | str) -> dict[str, list[str]]:
    """Every user's history before the held-out target of `split` (what models may learn from); see
    `Dataset.training_sequences`."""
    return dataset.training_sequences(split)


DEFAULT_HPARAMS: dict[str, Any] = SASRec().hparams
"""The hyper-parameters of the `sasrec` baseline: the collaborative model is that baseline, so its ranking alone
is what `recgpt eval --method sasrec` reports."""


def _slug(name: str) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40].strip("-_")
    return cleaned or "dataset"


def model_path(dataset: Dataset, split: Split | str, cache_dir: Path, hparams: Mapping[str, Any] | None = None) -> Path:
    """Where the collaborative model of (dataset content, split, hyper-parameters) is saved."""
    hp = {**DEFAULT_HPARAMS, **(hparams or {})}
    key = hashlib.sha256(json.dumps(hp, sort_keys=True).encode()).hexdigest()[:8]
    return cache_dir / f"{_slug(dataset.name)}-{dataset.content_hash()}-{Split(split).value}-{key}.pt"


def load_or_train(dataset: Dataset, split: Split | str, cache_dir: Path, show_progress: bool = False,
                  hparams: Mapping[str, Any] | None = None) -> SASRec:
    """The SASRec of (dataset, split, hparams): from its file, else trained and saved there.

    Not cached in memory here: a `Registry` (`recgpt.services.resources`) keeps each loaded model and holds one lock
    per model file, so concurrent first calls train it once. A file that cannot be read (older format, cut short) is
    retrained and replaced. `hparams` overrides the baseline's (`DEFAULT_HPARAMS`); they are part of the file name."""
    path = model_path(dataset, split, cache_dir, hparams)
    if path.is_file():
        try:
            return SASRec.load(path, show_progress=show_progress)
        except Exception as exc:  # noqa: BLE001 - any unreadable file is retrained, never fatal
            logger.warning("collaborative model %s unreadable (%s: %s); retraining", path, type(exc).__name__, exc)
    split_name = Split(split).value
    sequences = dataset.training_sequences(split_name)
    logger.info("training the collaborative model of %s (%s split, %d sequences) once; cached at %s",
                dataset.name, split_name, len(sequences), path)
    model = SASRec(**{**DEFAULT_HPARAMS, **(hparams or {})}, show_progress=show_progress).fit(sequences)
    model.save(path)
    logger.info("collaborative model of %s (%s) trained in %.0f s", dataset.name, split_name, model.train_seconds)
    return model
