"""Classical recommenders on the same split, catalogue and K as recgpt.

All of them are fitted on *training sequences only*: for the test split each user's history before
the test target, for the validation split the history before the validation target. No held-out
target ever enters a count, a co-occurrence or a gradient.
"""

from __future__ import annotations

import logging
import math
import random
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from rich.progress import Progress
from torch import nn

from recgpt.data.dataset import Dataset

logger = logging.getLogger(__name__)


class Popularity:
    """Global popularity: items ranked by interaction count in the training sequences."""

    name = "popularity"

    def fit(self, sequences: dict[str, list[str]]) -> Popularity:
        counts = Counter(item for seq in sequences.values() for item in seq)
        self.ranking = [item for item, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        return self

    def recommend(self, history: Sequence[str], k: int) -> list[str]:
        seen = set(history)
        return [i for i in self.ranking if i not in seen][:k]


class ItemKNN:
    """Item–item co-occurrence: sim(i,j) = c_ij / sqrt(c_i · c_j) over users' training sequences;
    score(j) = Σ_{i ∈ history} sim(i, j); ties and cold users fall back to popularity."""

    name = "itemknn"

    def fit(self, sequences: dict[str, list[str]]) -> ItemKNN:
        self.popularity = Popularity().fit(sequences)
        vocab = sorted({i for seq in sequences.values() for i in seq})
        self.index = {item: n for n, item in enumerate(vocab)}
        self.items = vocab
        matrix = np.zeros((len(vocab), len(vocab)), dtype=np.float32)
        for seq in sequences.values():
            ids = sorted({self.index[i] for i in seq})
            for a in ids:
                matrix[a, ids] += 1.0
        counts = np.diag(matrix).copy()
        np.fill_diagonal(matrix, 0.0)
        norm = np.sqrt(np.outer(counts, counts))
        self.sim = np.divide(matrix, norm, out=np.zeros_like(matrix), where=norm > 0)
        self.pop_rank = np.zeros(len(vocab), dtype=np.float32)
        for rank, item in enumerate(self.popularity.ranking):
            self.pop_rank[self.index[item]] = -rank * 1e-9  # tie-break by popularity
        return self

    def recommend(self, history: Sequence[str], k: int) -> list[str]:
        known = [self.index[i] for i in set(history) if i in self.index]
        scores = self.sim[known].sum(axis=0) if known else np.zeros(len(self.items), dtype=np.float32)
        scores = scores + self.pop_rank
        scores[known] = -np.inf
        order = np.argsort(-scores, kind="stable")
        seen = set(history)
        return [self.items[j] for j in order[: k + len(seen)] if self.items[j] not in seen][:k]


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


class SASRec:
    """SASRec (Kang & McAuley 2018): a causal self-attention next-item model, trained on CPU with
    full-softmax cross-entropy at every position of the training sequences (left-padded)."""

    name = "sasrec"

    def __init__(self, dim: int = 64, layers: int = 2, heads: int = 2, maxlen: int = 50, dropout: float = 0.2,
                 epochs: int = 30, batch_size: int = 128, lr: float = 1e-3, seed: int = 0, show_progress: bool = True) -> None:
        self.hparams = dict(dim=dim, layers=layers, heads=heads, maxlen=maxlen, dropout=dropout, epochs=epochs,
                            batch_size=batch_size, lr=lr, seed=seed)
        self.show_progress = show_progress
        self.losses: list[float] = []

    def _encode(self, seq: Sequence[str], length: int) -> list[int]:
        ids = [self.index[i] for i in seq if i in self.index][-length:]
        return [0] * (length - len(ids)) + ids

    def fit(self, sequences: dict[str, list[str]]) -> SASRec:
        hp = self.hparams
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
        self.net = _SASRecNet(len(vocab), hp["dim"], hp["layers"], hp["heads"], maxlen, hp["dropout"])
        optimiser = torch.optim.Adam(self.net.parameters(), lr=hp["lr"], betas=(0.9, 0.98))
        loss_fn = nn.CrossEntropyLoss(ignore_index=0)
        generator = torch.Generator().manual_seed(hp["seed"])
        self.net.train()
        with Progress(disable=not self.show_progress, transient=True) as progress:
            task = progress.add_task("training SASRec", total=hp["epochs"])
            for _ in range(hp["epochs"]):
                order = torch.randperm(len(data), generator=generator)
                total = 0.0
                for start in range(0, len(data), hp["batch_size"]):
                    batch = data[order[start : start + hp["batch_size"]]]
                    logits = self.net(batch[:, :-1])
                    loss = loss_fn(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
                    optimiser.zero_grad()
                    loss.backward()
                    optimiser.step()
                    total += float(loss.detach()) * len(batch)
                self.losses.append(total / max(1, len(data)))
                progress.update(task, advance=1, description=f"training SASRec (loss {self.losses[-1]:.3f})")
                if not self.show_progress:
                    logger.info("SASRec epoch %d/%d loss %.4f", len(self.losses), hp["epochs"], self.losses[-1])
        self.net.eval()
        return self

    @torch.no_grad()
    def recommend(self, history: Sequence[str], k: int) -> list[str]:
        seq = torch.tensor([self._encode(history, self.maxlen)], dtype=torch.long)
        scores = self.net(seq)[0, -1].clone()
        scores[0] = -torch.inf
        for item in history:
            if item in self.index:
                scores[self.index[item]] = -torch.inf
        top = torch.topk(scores, min(k, len(self.items))).indices.tolist()
        return [self.items[i - 1] for i in top if i > 0][:k]


def training_sequences(dataset: Dataset, split: str) -> dict[str, list[str]]:
    """Every user's history before the held-out target of `split` (what models may learn from)."""
    out: dict[str, list[str]] = {}
    for user_id in dataset.split_users(split):
        out[user_id] = [e.item_id for e in dataset.example(user_id, split).history]
    return out


def history_categories(dataset: Dataset, history: Sequence[str]) -> list[str]:
    """History categories (full paths) by frequency, ties broken by recency: the category baseline's 'tags'."""
    counts: Counter[str] = Counter()
    last_seen: dict[str, int] = {}
    for position, item_id in enumerate(history):
        category = dataset.items[item_id].category
        if category:
            counts[category] += 1
            last_seen[category] = position
    return sorted(counts, key=lambda c: (-counts[c], -last_seen[c]))
