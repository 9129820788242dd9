"""Train the hybrid-compression entity adaptor with the LLM frozen (the paper's Atomized Entity Compression).

Two tasks, one loss (next-token cross-entropy on the answer, through the frozen LLM into the adaptor):

- **self-perception**: questions about one entity `⟦title⟧` whose answers come from its own catalogue
  metadata (leaf category, brand, product type). Entities are split once (seeded) into training and
  held-out ones; accuracy is measured on held-out entities only.
- **production alignment** (self-distillation): the frozen LLM's own greedy answers to expert
  prompts in full text (generated locally once by `collect_distill_targets`, so training needs no
  server) are the targets for the same prompts in hybrid form. Prompts come from training-prefix cuts only.

Only the adaptor's parameters get gradients. The loop is a plain torch loop rather than a TRL/HF
trainer: those train model parameters from token ids, while here the trainable part sits *before*
the model's input embeddings and the frozen model is only a differentiable loss.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM

from recgpt.errors import RecGPTError
from recgpt.services.resources import default_registry
from recgpt.tools.context.adaptor import AdaptorConfig, EntityAdaptor, ModelIdentity
from recgpt.tools.context.entities import entity
from recgpt.tools.context.hybrid import HybridAssembler, HybridPrompt, assemble
from recgpt.tools.jsonl import append_line
from recgpt.training.configs import AdaptorTrainConfig
from recgpt.training.datasets import expert_prompt, target_tag, training_cuts
from recgpt.training.runs import start_run

QUESTIONS = {
    "category": "Which product category does this item belong to?",
    "brand": "Which brand makes this item?",
    "type": "What kind of product is this?",
}


@dataclass
class Example:
    messages: list[dict[str, str]]
    answer: str
    task: str


def perception_examples(item: Any, text: bool = False) -> list[Example]:
    """Questions about one catalogue item answered by its own metadata (`text`: the title spelled out, the ceiling)."""
    shown = f'"{item.title}"' if text else entity(item.title)
    answers = {"category": item.category_path[-1] if item.category_path else "", "brand": item.brand or "", "type": target_tag(item)}
    return [Example([{"role": "user", "content": f"Item: {shown}\n{QUESTIONS[task]} Answer in a few words."}], answer, task)
            for task, answer in answers.items() if answer]


def split_entities(dataset: Any, train: int, heldout: int, seed: int) -> tuple[list[Any], list[Any]]:
    """Disjoint training and held-out entities (catalogue items with a category), seeded."""
    pool = sorted((i for i in dataset.items.values() if i.category_path), key=lambda i: i.item_id)
    random.Random(seed).shuffle(pool)
    if len(pool) < 2:
        raise RecGPTError(f"dataset has {len(pool)} categorised items; the adaptor needs at least 2")
    heldout = min(heldout, len(pool) // 4 or 1)
    return pool[heldout: heldout + train], pool[:heldout]


def distill_prompts(dataset: Any, users: int, m: int, max_items: int, seed: int, category_text: bool = True) -> list[dict[str, Any]]:
    """Expert prompts from training-prefix cuts (no held-out target), in text and hybrid form."""
    cuts = [c for c in training_cuts(dataset) if c.context]
    random.Random(seed).shuffle(cuts)
    return [{"user_id": c.user_id, "text": expert_prompt(dataset, c, m, max_items=max_items),
             "hybrid": expert_prompt(dataset, c, m, max_items=max_items, entities=True, entity_categories=category_text)}
            for c in cuts[:users]]


def collect_distill_targets(lm: "FrozenLM", tokenizer: Any, prompts: list[dict[str, Any]], max_new_tokens: int,
                            path: Path) -> dict[str, str]:
    """The frozen LLM's own greedy answers to the *text* form of each prompt, generated locally once and stored
    in `path` (resumable): the targets the hybrid form of the same prompt is trained to reproduce.

    An empty answer (the model stopped at once) is stored too, so a rerun does not generate it again and the run's
    metrics can count it; the caller trains only on the non-empty ones."""
    done: dict[str, str] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
            done[row["user_id"]] = row["target"]
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a kill: that target is generated again
    for prompt in tqdm([p for p in prompts if p["user_id"] not in done], desc="distillation targets", leave=False):
        ids = tokenizer.apply_chat_template(prompt["text"], add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            generated = lm.model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
                                          or tokenizer.eos_token_id)
        target = tokenizer.decode(generated[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        append_line(path, json.dumps({"user_id": prompt["user_id"], "target": target}))
        done[prompt["user_id"]] = target
    return done


def _answer_ids(assembler: HybridAssembler, messages: list[dict[str, str]], answer: str) -> tuple[HybridPrompt, int]:
    """The prompt + answer as one hybrid sequence, and where the answer starts."""
    prompt = assembler.render(messages, add_generation_prompt=True)
    full = assembler.render([*messages, {"role": "assistant", "content": answer}], add_generation_prompt=False)
    return full, len(prompt.token_ids)


def batch_inputs(sequences: Sequence[tuple[HybridPrompt, int]], entity_z: dict[str, torch.Tensor],
                 embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded (inputs_embeds, attention_mask, labels): loss only on answer tokens."""
    rows, labels = [], []
    for prompt, answer_start in sequences:
        vectors = torch.stack([entity_z[t] for t in prompt.titles]) if prompt.titles else torch.zeros((0, embedding.shape[1]))
        rows.append(assemble(prompt.token_ids, vectors, embedding))
        labels.append([-100 if (i < answer_start or t is None) else t for i, t in enumerate(prompt.token_ids)])
    width = max(r.shape[0] for r in rows)
    embeds = torch.zeros((len(rows), width, embedding.shape[1]))
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    label = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (row, lab) in enumerate(zip(rows, labels)):
        embeds[i, : row.shape[0]] = row
        mask[i, : row.shape[0]] = 1
        label[i, : row.shape[0]] = torch.tensor(lab)
    return embeds, mask, label


class FrozenLM:
    """The served model loaded for training: frozen, float32, eval mode (no dropout)."""

    def __init__(self, model_dir: Path) -> None:
        self.model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
        self.model.requires_grad_(False)
        self.model.eval()
        self.embedding = self.model.get_input_embeddings().weight.detach()

    def loss(self, embeds: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.model(inputs_embeds=embeds, attention_mask=mask, labels=labels).loss

    @torch.no_grad()
    def answer_logprob(self, embeds: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean log-probability of each row's labelled tokens."""
        logits = self.model(inputs_embeds=embeds, attention_mask=mask).logits[:, :-1].float()
        target = labels[:, 1:]
        logp = torch.log_softmax(logits, dim=-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        keep = (target != -100).float()
        return (logp * keep).sum(1) / keep.sum(1).clamp(min=1)


def perception_accuracy(lm: FrozenLM, assembler: HybridAssembler, items: list[Any], adaptor: EntityAdaptor | None,
                        choices: int = 4, seed: int = 0) -> dict[str, float]:
    """Held-out self-perception: rank the true leaf category among `choices` (others drawn from the catalogue)
    by the frozen LLM's answer likelihood. `adaptor=None` asks with the title as text (the ceiling)."""

    rng = random.Random(seed)
    leaves = sorted({i.category_path[-1] for i in items if i.category_path})
    if len(leaves) < 2:
        return {"accuracy": float("nan"), "chance": float("nan"), "n": 0}
    n_choices = min(choices, len(leaves))
    z: dict[str, torch.Tensor] = {}
    if adaptor is not None:
        with torch.no_grad():
            vectors = adaptor(torch.from_numpy(default_registry().embedder([i.title for i in items])))
        z = {i.title: v for i, v in zip(items, vectors)}
    correct = 0
    for item in tqdm(items, desc="self-perception eval", leave=False):
        truth = item.category_path[-1]
        options = [truth] + rng.sample([leaf for leaf in leaves if leaf != truth], n_choices - 1)
        example = perception_examples(item, text=adaptor is None)[0]
        seqs = [_answer_ids(assembler, example.messages, option) for option in options]
        embeds, mask, labels = batch_inputs(seqs, z, lm.embedding)
        scores = lm.answer_logprob(embeds, mask, labels)
        correct += int(int(scores.argmax()) == 0)
    return {"accuracy": correct / len(items), "chance": 1 / n_choices, "n": len(items)}


def train_adaptor(config: AdaptorTrainConfig) -> Path:
    """Train, evaluate on held-out entities and save the adaptor; returns its folder (`output_dir/adaptor`)."""
    torch.manual_seed(config.seed)
    out = start_run(config.output_dir, config)
    model_dir = Path(config.model)
    dataset = default_registry().dataset(config.dataset)
    lm = FrozenLM(model_dir)
    identity = ModelIdentity.of(model_dir)
    adaptor = EntityAdaptor(AdaptorConfig(hidden_dim=config.hidden_dim, model=identity, model_dir=str(model_dir.resolve())))
    _init_to_embedding_scale(adaptor, lm.embedding)
    assembler = HybridAssembler(model_dir, adaptor)

    train_items, heldout_items = split_entities(dataset, config.perception_entities, config.heldout_entities, config.seed)
    examples = [e for item in train_items for e in perception_examples(item)]
    distill: list[Example] = []
    empty_targets = 0
    if config.distill_users > 0:
        prompts = distill_prompts(dataset, config.distill_users, config.tags_per_expert, config.distill_max_items, config.seed,
                                  config.category_text)
        targets = collect_distill_targets(lm, assembler.tokenizer, prompts, config.distill_max_new_tokens, out / "distill_targets.jsonl")
        distill = [Example(p["hybrid"], targets[p["user_id"]], "distill") for p in prompts if targets.get(p["user_id"])]
        empty_targets = sum(1 for p in prompts if p["user_id"] in targets and not targets[p["user_id"]])
    titles = sorted({t for e in [*examples, *distill] for t in assembler.render(e.messages).titles})
    h = dict(zip(titles, torch.from_numpy(default_registry().embedder(titles)))) if titles else {}

    rng = random.Random(config.seed)
    batches: list[tuple[int, list[Example]]] = []
    for epoch in range(1, config.epochs + 1):
        rng.shuffle(examples)
        epoch_batches = [examples[i:i + config.batch_size] for i in range(0, len(examples), config.batch_size)]
        epoch_batches += [[e] for e in distill]
        rng.shuffle(epoch_batches)
        batches += [(epoch, b) for b in epoch_batches]
    optimiser = torch.optim.AdamW(adaptor.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(1, len(batches)))))
    encoded: dict[int, tuple[HybridPrompt, int]] = {}
    checkpoint = out / CHECKPOINT
    resumed = load_checkpoint(checkpoint, config, adaptor, optimiser, schedule)
    if resumed is not None:
        done, log, before, spent = resumed["step"], resumed["log"], resumed["before"], resumed["seconds"]
        print(f"adaptor: resuming at step {done + 1} of {len(batches)} from {checkpoint}")
    else:
        done, log, spent = 0, [], 0.0
        before = perception_accuracy(lm, assembler, heldout_items, adaptor, seed=config.seed)
    started = time.time() - spent
    adaptor.train()
    for step, (epoch, batch) in enumerate(tqdm(batches, desc="adaptor", initial=done), start=1):
        if step <= done:
            continue
        for e in batch:
            if id(e) not in encoded:
                encoded[id(e)] = _answer_ids(assembler, e.messages, e.answer)
        seqs = [encoded[id(e)] for e in batch]
        needed = {t for s, _ in seqs for t in s.titles}
        z = dict(zip(needed, adaptor(torch.stack([h[t] for t in needed])))) if needed else {}
        embeds, mask, labels = batch_inputs(seqs, z, lm.embedding)
        loss = lm.loss(embeds, mask, labels)
        optimiser.zero_grad()
        loss.backward()
        norm = float(torch.nn.utils.clip_grad_norm_(adaptor.parameters(), 1.0))
        optimiser.step()
        schedule.step()
        log.append({"step": step, "epoch": epoch, "task": batch[0].task, "loss": float(loss.detach()), "grad_norm": norm,
                    "seconds": time.time() - started})
        if config.save_steps > 0 and step % config.save_steps == 0 and step < len(batches):
            save_checkpoint(checkpoint, config, adaptor, optimiser, schedule, step, log, before, time.time() - started)
    adaptor.eval()
    after = perception_accuracy(lm, assembler, heldout_items, adaptor, seed=config.seed)
    ceiling = perception_accuracy(lm, assembler, heldout_items, None, seed=config.seed)
    epoch_loss = [_mean([r["loss"] for r in log if r["epoch"] == e]) for e in range(1, config.epochs + 1)]  # every example once per epoch
    metrics = {"self_perception_heldout": {"untrained_adaptor": before, "trained_adaptor": after, "full_text_title": ceiling},
               "epoch_mean_loss": epoch_loss,
               "examples": {"perception": len(examples), "distill": len(distill), "distill_empty_targets": empty_targets,
                            "heldout_entities": len(heldout_items)},
               "steps": len(batches), "train_seconds": time.time() - started, "log": log}
    adaptor.config.trained_on = {"run": str(out), "config": json.loads(json.dumps(asdict(config), default=str)),
                                 "self_perception_heldout_accuracy": after["accuracy"]}
    folder = adaptor.save(out / "adaptor")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    checkpoint.unlink(missing_ok=True)  # finished: a rerun trains afresh
    return folder


CHECKPOINT = "checkpoint.pt"


def _config_key(config: AdaptorTrainConfig) -> str:
    return json.dumps({k: v for k, v in asdict(config).items() if k not in ("output_dir", "save_steps")}, default=str, sort_keys=True)


def save_checkpoint(path: Path, config: AdaptorTrainConfig, adaptor: Any, optimiser: Any, schedule: Any, step: int,
                    log: list[dict[str, Any]], before: dict[str, Any], seconds: float) -> None:
    """Everything a rerun needs to go on from `step` (written atomically)."""
    tmp = path.with_suffix(".tmp")
    torch.save({"config": _config_key(config), "step": step, "adaptor": adaptor.state_dict(), "optimiser": optimiser.state_dict(),
                "schedule": schedule.state_dict(), "log": log, "before": before, "seconds": seconds}, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path, config: AdaptorTrainConfig, adaptor: Any, optimiser: Any, schedule: Any) -> dict[str, Any] | None:
    """The run's checkpoint, loaded into the adaptor, optimiser and schedule; None when there is none. A checkpoint of
    another config is refused (its batches and schedule would not be these)."""
    if not path.is_file():
        return None
    saved = torch.load(path, weights_only=False)
    if saved.get("config") != _config_key(config):
        raise RecGPTError(f"{path} was written by an adaptor run with another config: use another --out, or delete it")
    adaptor.load_state_dict(saved["adaptor"])
    optimiser.load_state_dict(saved["optimiser"])
    schedule.load_state_dict(saved["schedule"])
    return saved


def _init_to_embedding_scale(adaptor: EntityAdaptor, embedding: torch.Tensor) -> None:
    """Start the output layer near the embedding matrix's mean and per-dimension spread, so that an untrained
    soft token already sits inside the LLM's input distribution instead of far outside it."""
    last = adaptor.net[-1]
    with torch.no_grad():
        last.bias.copy_(embedding.mean(0))
        last.weight.mul_(float(embedding.std()) / max(float(last.weight.std()), 1e-8) * 0.1)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")
