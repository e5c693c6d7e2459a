"""Serving in a web process: the active index of a pipeline, loaded once, hot-swapped.

- Each process keeps the engines it loaded (``SearchEngine``: the faiss index memory-mapped
  where FAISS allows, the BM25 index, the product table, the encoder) by index version, a few
  at most (LRU), and encoders by model folder.
- The active pointer of a pipeline is read from the database at most every
  ``STEWARD_ACTIVE_CHECK_SECONDS`` (2 s by default). When it moved, the new index is loaded in a
  background thread while requests keep being answered by the index served until then; the
  swap is one assignment, so no request fails or waits for a load, and every answer names the
  index version that produced it. Only the very first load of a process is synchronous.
- faiss and torch are pinned to ``STEWARD_SERVING_THREADS`` threads (1 by default): on a small
  machine several requests in parallel beat one request using every core.
- Once an engine is loaded, the process's objects are frozen out of the garbage collector
  (``gc.freeze``): an engine is ~500k long-lived Python objects, and a full collection walking
  them stalled a request for ~0.3 s every few seconds under load (p99 77 ms → 5.6 ms for bm25
  with wrk, one client).
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

from core.errors import ApplicationError
from recsys.models import ActiveIndex, IndexVersion, Pipeline
from recsys.pipelines.engine import SearchEngine
from recsys.pipelines.indexing import META_FILE, IndexChecksumError

logger = logging.getLogger(__name__)
ENGINE_CACHE_SIZE = 3
RETRY_FAILED_LOAD_AFTER = 60.0  # seconds before a failed background load is tried again


class NoActiveIndexError(ApplicationError):
    """The pipeline serves no index yet (HTTP 503: the service is not available)."""

    status_code = 503


class IndexUnavailableError(ApplicationError):
    """The index's files cannot be loaded (missing or damaged): HTTP 503."""

    status_code = 503


@dataclass(frozen=True)
class EngineSpec:
    """What loading an index version needs, read from the database by the request thread."""

    index_id: int
    path: str
    model_path: str
    default_mode: str
    dense_weight: float

    @classmethod
    def of(cls, index: IndexVersion) -> EngineSpec:
        from recsys.services.indexes import serving_dense_weight, serving_mode

        return cls(
            index.pk,
            index.path,
            index.model_version.path,
            serving_mode(index),
            serving_dense_weight(index),
        )


class _Registry:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.engines: OrderedDict[int, SearchEngine] = OrderedDict()
        self.encoders: dict[str, object] = {}
        self.load_locks: dict[int, threading.Lock] = {}
        self.serving: dict[int, int] = {}  # pipeline id -> index id answering now
        self.checked: dict[int, tuple[float, int | None]] = {}  # pipeline id -> (when, pointer)
        self.loading: set[int] = set()
        self.failed: dict[int, tuple[float, str]] = {}  # index id -> (when, why) of a failed load
        self.threads_pinned = False

    def clear(self) -> None:
        with self.lock:
            self.engines.clear()
            self.encoders.clear()
            self.serving.clear()
            self.checked.clear()
            self.loading.clear()
            self.load_locks.clear()
            self.failed.clear()


_registry = _Registry()


def reset() -> None:
    """Forget every loaded engine and pointer (tests; a process that must reload)."""
    _registry.clear()


def _pin_threads() -> None:
    if _registry.threads_pinned:
        return
    threads = int(getattr(settings, "STEWARD_SERVING_THREADS", 1) or 0)
    if threads > 0:
        import faiss
        import torch

        faiss.omp_set_num_threads(threads)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    _registry.threads_pinned = True


def _encoder(path: str, artifact: str):
    """The encoder for an index artifact, shared by the engines that use the same model and
    the same max length (the fast tokenizer keeps its truncation length as state, so engines
    with different lengths must not share one)."""
    from recsys.pipelines.encoding import load_encoder

    with open(os.path.join(artifact, META_FILE), encoding="utf-8") as fh:
        max_length = json.load(fh).get("extra", {}).get("max_length")
    key = (path, max_length)
    with _registry.lock:
        encoder = _registry.encoders.get(key)
    if encoder is None:
        encoder = load_encoder(path)
        with _registry.lock:
            encoder = _registry.encoders.setdefault(key, encoder)
    return encoder


def _load(spec: EngineSpec) -> SearchEngine:
    """The engine of an index version, loading it at most once per process."""
    with _registry.lock:
        engine = _registry.engines.get(spec.index_id)
        if engine is not None:
            _registry.engines.move_to_end(spec.index_id)
            return engine
        load_lock = _registry.load_locks.setdefault(spec.index_id, threading.Lock())
    with load_lock:
        with _registry.lock:
            engine = _registry.engines.get(spec.index_id)
        if engine is not None:
            return engine
        _pin_threads()
        started = time.monotonic()
        engine = SearchEngine(
            spec.path,
            _encoder(spec.model_path, spec.path),
            default_mode=spec.default_mode,
            dense_weight=spec.dense_weight,
        )
        logger.info(
            "loaded index v%s (%s items) in %.2fs",
            spec.index_id,
            len(engine.index),
            time.monotonic() - started,
        )
        with _registry.lock:
            _registry.engines[spec.index_id] = engine
            keep = set(_registry.serving.values()) | {spec.index_id}
            while len(_registry.engines) > ENGINE_CACHE_SIZE:  # evict the least recently used
                victim = next((i for i in _registry.engines if i not in keep), None)
                if victim is None:
                    break
                _registry.engines.pop(victim)
                _registry.load_locks.pop(victim, None)
            in_use = {id(e.encoder) for e in _registry.engines.values()}
            for key in [k for k, e in _registry.encoders.items() if id(e) not in in_use]:
                _registry.encoders.pop(key)  # a model no cached index uses any more
        freeze_long_lived_objects()
        return engine


def freeze_long_lived_objects() -> None:
    """Move every object alive now out of the collector's reach (``gc.freeze``), so that a
    full collection walks only what requests allocate. Unfrozen and collected first, so that
    an engine evicted since the last freeze can still be freed."""
    started = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    logger.info(
        "froze %s objects out of the garbage collector in %.2fs",
        gc.get_freeze_count(),
        time.perf_counter() - started,
    )


def _load_or_unavailable(spec: EngineSpec) -> SearchEngine:
    """Load now; a missing or damaged artifact is a 503 naming the index, not a crash."""
    try:
        return _load(spec)
    except (OSError, IndexChecksumError, ValueError, KeyError) as exc:
        logger.exception("loading index v%s failed", spec.index_id)
        raise IndexUnavailableError(
            f"Index v{spec.index_id} cannot be loaded: {type(exc).__name__}: {exc}"
        ) from None


def engine_for_index(index: IndexVersion) -> SearchEngine:
    """The engine of one index version (a candidate, in the console), loaded once."""
    return _load_or_unavailable(EngineSpec.of(index))


def _pointer(pipeline_id: int) -> int | None:
    now = time.monotonic()
    interval = float(getattr(settings, "STEWARD_ACTIVE_CHECK_SECONDS", 2.0))
    with _registry.lock:
        checked = _registry.checked.get(pipeline_id)
    if checked is not None and now - checked[0] < interval:
        return checked[1]
    pointer = (
        ActiveIndex.objects.filter(pipeline_id=pipeline_id).values_list("index_id", flat=True)
    ).first()
    with _registry.lock:
        _registry.checked[pipeline_id] = (now, pointer)
    return pointer


def _swap_in_background(pipeline_id: int, spec: EngineSpec) -> None:
    with _registry.lock:
        failed = _registry.failed.get(spec.index_id)
        if spec.index_id in _registry.loading or (
            failed and time.monotonic() - failed[0] < RETRY_FAILED_LOAD_AFTER
        ):
            return
        _registry.loading.add(spec.index_id)

    def load_then_swap() -> None:
        try:
            _load(spec)
            with _registry.lock:
                _registry.failed.pop(spec.index_id, None)
                if _registry.checked.get(pipeline_id, (0, None))[1] == spec.index_id:
                    _registry.serving[pipeline_id] = spec.index_id
        except Exception as exc:
            logger.exception(
                "loading index v%s failed; still serving the previous one", spec.index_id
            )
            with _registry.lock:
                _registry.failed[spec.index_id] = (time.monotonic(), f"{type(exc).__name__}: {exc}")
        finally:
            with _registry.lock:
                _registry.loading.discard(spec.index_id)

    threading.Thread(target=load_then_swap, name=f"load-index-{spec.index_id}", daemon=True).start()


def active_engine(pipeline: Pipeline) -> tuple[int, SearchEngine]:
    """(index version id, engine) answering for the pipeline now. Raises NoActiveIndexError
    when the pipeline serves nothing."""
    pointer = _pointer(pipeline.pk)
    if pointer is None:
        raise NoActiveIndexError(
            f"No index is active for {pipeline.name} yet: activate one on the pipeline page."
        )
    with _registry.lock:
        ready = _registry.engines.get(pointer)
        if ready is not None:
            _registry.serving[pipeline.pk] = pointer
            return pointer, ready
        serving = _registry.serving.get(pipeline.pk)
        engine = _registry.engines.get(serving) if serving is not None else None
    spec = EngineSpec.of(IndexVersion.objects.select_related("model_version").get(pk=pointer))
    if engine is None:  # nothing to answer with meanwhile: load now
        engine = _load_or_unavailable(spec)
        with _registry.lock:
            _registry.serving[pipeline.pk] = pointer
        return pointer, engine
    _swap_in_background(pipeline.pk, spec)
    return serving, engine
