"""The pipeline steps (each idempotent, usable from separate processes that share a run
directory) and ``ingest``, which runs them all in one process."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from . import _native
from ._embedder import Embedder
from ._errors import _error
from ._native import ConfigError
from ._settings import _or_setting, _target
from .types import (
    Bm25Params,
    CollectionOptions,
    ColumnMapping,
    EmbedResult,
    EnsureResult,
    FirstSeenResult,
    IngestResult,
    Inspection,
    LoadOptions,
    LoadResult,
    PathLike,
    PlanSummary,
    Progress,
    Report,
    SampleInfo,
    StoreTarget,
    SwitchResult,
    SyncResult,
)


def _mapping(
    text_column: str | None, id_columns: Sequence[str] | None, payload_columns: Sequence[str] | None
) -> ColumnMapping:
    return {"text": text_column, "id_columns": _columns(id_columns), "payload_columns": _columns(payload_columns)}


def _columns(columns: str | Sequence[str] | None) -> list[str] | None:
    """A list of column names; one name is a list of one (never its letters)."""
    if columns is None:
        return None
    return [columns] if isinstance(columns, str) else list(columns)


def run_dir(dag_id: str, run_id: str, work_dir: PathLike | None = None) -> str:
    """The run's private handoff directory: ``<work_dir or VDB_WORK_DIR>/<dag_id>/<run_id>``."""
    return _native.run_dir(os.fspath(work_dir) if work_dir else None, dag_id, run_id)


def remove_run_dir(path: PathLike) -> None:
    _native.remove_run_dir(os.fspath(path))


def inspect(
    path: PathLike,
    text_column: str | None = None,
    id_columns: Sequence[str] | None = None,
    payload_columns: Sequence[str] | None = None,
) -> Inspection:
    """Rows, row groups, schema and null counts from the parquet footer, and the resolved mapping."""
    return _native.inspect(os.fspath(path), _mapping(text_column, id_columns, payload_columns))


def sample_data(
    path: PathLike,
    rows: int = 200_000,
    seed: int = 0,
    duplicate_rate: float = 0.0,
    yearly: int | None = None,
    change_rate: float = 0.3,
) -> SampleInfo:
    """Write a deterministic SEC-filings-like parquet of ``rows`` rows; a share ``duplicate_rate``
    of the sentences repeats an earlier sentence of the same company verbatim (as real filings do).
    With ``yearly=N``: N consecutive yearly 10-K filings (fiscal years ending 2024) of every sample
    company, each year keeping a share ``1 - change_rate`` of the company's previous sentences and
    replacing the rest with new ones (the input of :meth:`Store.changes`)."""
    return _native.sample_data(os.fspath(path), rows, seed, duplicate_rate, yearly, change_rate)


def plan(
    run_dir: PathLike,
    input: PathLike,
    *,
    text_column: str | None = None,
    id_columns: Sequence[str] | None = None,
    payload_columns: Sequence[str] | None = None,
    shard_rows: int | None = None,
    strict: bool = False,
    reuse: bool | None = None,
    progress: Progress = None,
    changes_scope: Sequence[str] | None = None,
    changes_order: str | None = None,
) -> PlanSummary:
    """Validate the parquet and split its valid rows into shard files under ``run_dir``. With
    ``reuse`` (default ``VDB_REUSE``, on), each distinct text is embedded once: its first shard
    provides the vector for every row with the same text. With ``changes_scope`` and
    ``changes_order``, the run's loads write ``_vdb_first_seen`` with their points (see
    :func:`update_first_seen`, which the run then calls for what the loads could not know)."""
    return _native.plan(
        os.fspath(run_dir),
        os.fspath(input),
        _mapping(text_column, id_columns, payload_columns),
        _or_setting(shard_rows, "shard_rows"),
        strict,
        _or_setting(reuse, "reuse"),
        progress,
        list(changes_scope or []),
        changes_order or None,
    )


def embed_shard(
    run_dir: PathLike,
    shard: int,
    embedder: Embedder,
    *,
    batch_size: int | None = None,
    collection: str | None = None,
    target: StoreTarget | None = None,
    recreate: bool = False,
    rebuild: bool = False,
    progress: Progress = None,
) -> EmbedResult:
    """Compute the vectors of the distinct texts one planned shard provides (skipped when already
    done). With ``collection``, vectors the collection already holds for the same text and model
    (in ``target``, default: the configured store) are taken from it instead of computed; a
    collection of another model is refused unless the run replaces it (``recreate`` or
    ``rebuild``). Returns ``{shard, rows, texts, texts_embedded, done_now, seconds}``."""
    return _native.embed_shard(
        os.fspath(run_dir),
        shard,
        embedder._native,
        _or_setting(batch_size, "batch_size"),
        _target(target) if collection is not None else None,
        collection,
        recreate,
        rebuild,
        progress,
    )


def _sparse_option(sparse: bool | Mapping[str, float] | None) -> Bm25Params | dict[str, float] | None:
    """The ``sparse`` layout option: ``True`` BM25 with Qdrant's parameters, ``False`` none, or the
    parameters ``{"k": ..., "b": ..., "avg_len": ...}``; ``None``: the ``VDB_SPARSE`` setting."""
    sparse = _or_setting(sparse, "sparse")
    if isinstance(sparse, bool):
        return {} if sparse else None
    if isinstance(sparse, Mapping):
        unknown = sorted(set(sparse) - {"k", "b", "avg_len"})
        if unknown:
            raise _error(ConfigError, f"sparse: unknown BM25 parameter(s) {unknown}; expected k, b, avg_len")
        return {k: float(v) for k, v in sparse.items()}
    raise _error(ConfigError, f"sparse must be True, False or a mapping of BM25 parameters, not {sparse!r}")


def collection_options(
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
    on_disk: bool = False,
    on_disk_payload: bool = False,
    quantization: str | None = None,
    sparse: bool | Mapping[str, float] | None = None,
) -> CollectionOptions:
    """How a collection is laid out when a run creates it, in Qdrant's terms: ``shard_number``,
    ``replication_factor``, ``write_consistency_factor`` (a Qdrant cluster; the embedded store
    refuses them), vectors / payloads ``on_disk``, ``quantization="int8"`` (scalar int8, searched
    in RAM and rescored). Unset: Qdrant's defaults. ``sparse`` (default ``VDB_SPARSE``, on): a BM25
    sparse vector next to the dense one, for hybrid search; ``False`` dense only; or the BM25
    parameters ``{"k": 1.2, "b": 0.75, "avg_len": 256}`` (Qdrant's defaults)."""
    if quantization not in (None, "", "int8"):
        raise _error(ConfigError, f"quantization must be 'int8' or unset, not {quantization!r}")
    return {
        "sparse": _sparse_option(sparse),
        "shard_number": shard_number,
        "replication_factor": replication_factor,
        "write_consistency_factor": write_consistency_factor,
        "on_disk": bool(on_disk),
        "on_disk_payload": bool(on_disk_payload),
        "quantization": "int8" if quantization else None,
    }


def _layout(options: Mapping[str, Any] | None, sparse: bool | Mapping[str, float] | None) -> CollectionOptions:
    """The collection options as the core reads them: ``sparse`` (the keyword, else the options'
    own, else ``VDB_SPARSE``) always spelled out."""
    o: dict[str, Any] = dict(options or {})
    if sparse is not None or "sparse" not in o:
        o["sparse"] = _sparse_option(sparse)
    return o  # type: ignore[return-value]  # the core checks the keys (unknown ones are refused)


def ensure_collection(
    run_dir: PathLike,
    collection: str,
    *,
    target: StoreTarget | None = None,
    recreate: bool = False,
    rebuild: bool = False,
    options: Mapping[str, Any] | None = None,
) -> EnsureResult:
    """Create (or check) the collection with payload indexes, and defer indexing for the load.
    ``options``: :func:`collection_options`, applied when the collection is created. ``recreate``
    empties an existing collection; ``rebuild`` creates a new collection for this run (the result's
    ``collection``) that :func:`switch` puts behind the name after verify."""
    return _native.ensure_collection(
        os.fspath(run_dir), _target(target), collection, recreate, rebuild, _layout(options, None)
    )


#: Milliseconds before an upsert's first retry (doubling per attempt).
RETRY_BASE_MS = 200


def _load_options(
    upsert_batch_size: int | None,
    upsert_parallel: int | None,
    upsert_retries: int | None,
    retry_base_ms: int = RETRY_BASE_MS,
) -> LoadOptions:
    """The upsert options, each unset one from its setting (``VDB_UPSERT_BATCH``,
    ``VDB_UPSERT_PARALLEL``, ``VDB_UPSERT_RETRIES``)."""
    return {
        "batch_size": _or_setting(upsert_batch_size, "upsert_batch"),
        "parallel": _or_setting(upsert_parallel, "upsert_parallel"),
        "max_retries": _or_setting(upsert_retries, "upsert_retries"),
        "retry_base_ms": retry_base_ms,
    }


def _renamed(old: str, new: str, value: Any, current: Any) -> Any:
    """A keyword's old name still works (with a DeprecationWarning) when the new one is unset."""
    if value is None:
        return current
    warnings.warn(f"{old}= is now {new}= (one name per concept across the API, CLI and DAG)", DeprecationWarning, 3)
    if current is not None:
        raise _error(ConfigError, f"give {new}= only ({old}= is its old name)")
    return value


def load_shard(
    run_dir: PathLike,
    shard: int,
    collection: str,
    *,
    target: StoreTarget | None = None,
    upsert_batch_size: int | None = None,
    upsert_parallel: int | None = None,
    upsert_retries: int | None = None,
    retry_base_ms: int = RETRY_BASE_MS,
    progress: Progress = None,
    batch_size: int | None = None,
    parallel: int | None = None,
    max_retries: int | None = None,
) -> LoadResult:
    """Upsert one embedded shard (idempotent: stable ids; skipped when already loaded).
    ``upsert_batch_size`` points per request, ``upsert_parallel`` requests in flight,
    ``upsert_retries`` attempts per request on transient errors (the first retry after
    ``retry_base_ms``, doubling): unset, the settings
    ``VDB_UPSERT_BATCH`` / ``VDB_UPSERT_PARALLEL`` / ``VDB_UPSERT_RETRIES`` (the same names as in
    :func:`ingest`, ``vdb ingest`` and the DAG). ``batch_size``, ``parallel`` and ``max_retries`` are
    their old names (deprecated: ``batch_size`` means the embedding batch everywhere else)."""
    options = _load_options(
        _renamed("batch_size", "upsert_batch_size", batch_size, upsert_batch_size),
        _renamed("parallel", "upsert_parallel", parallel, upsert_parallel),
        _renamed("max_retries", "upsert_retries", max_retries, upsert_retries),
        retry_base_ms,
    )
    return _native.load_shard(os.fspath(run_dir), shard, _target(target), collection, options, progress)


def restore_indexing(collection: str, *, target: StoreTarget | None = None, run_dir: PathLike | None = None) -> None:
    """Restore the collection's normal indexing after a bulk load (also after a failed one). With
    ``run_dir``, its time is recorded as the step ``restore_indexing`` of the run's report."""
    _native.restore_indexing(_target(target), collection, os.fspath(run_dir) if run_dir else None)


def verify(run_dir: PathLike, collection: str, *, target: StoreTarget | None = None) -> Report:
    """Check every valid row is a point and a sample search finds its row; writes report.json."""
    return _native.verify(os.fspath(run_dir), _target(target), collection)


def sync(run_dir: PathLike, collection: str, scope: Sequence[str], *, target: StoreTarget | None = None) -> SyncResult:
    """After a verified run: for each distinct value of the ``scope`` columns in this run's input
    (e.g. a ``filing_id``), delete the collection's points with that value that the input no
    longer has. Points of other scopes are never touched; an unverified run deletes nothing.
    Returns ``{scope, scopes, deleted_points, seconds}``."""
    return _native.sync(os.fspath(run_dir), _target(target), collection, list(scope))


def switch(run_dir: PathLike, collection: str, *, target: StoreTarget | None = None) -> SwitchResult:
    """After a verified rebuild: point the name ``collection`` (a Qdrant alias) at the collection
    this run built, in one atomic step. The collection it named before is kept; older generations
    are deleted. Refused before verify; a no-op for a run that is not a rebuild. Returns
    ``{switched, alias, collection, previous, deleted, seconds}``."""
    return _native.switch(os.fspath(run_dir), _target(target), collection)


def report_summary(report: Mapping[str, Any]) -> str:
    """A few human lines about a run report."""
    return _native.report_summary(report)


def update_first_seen(
    run_dir: PathLike, collection: str, *, scope: Sequence[str], order: str, target: StoreTarget | None = None
) -> FirstSeenResult:
    """Set ``_vdb_first_seen`` on every point of the scope values (companies) a run loaded: the
    ``order`` value (year, date) of the earliest filing of the point's scope that holds its exact
    text, as the collection now holds them (right whatever order filings arrive in, after re-ingests
    and syncs). ``{"_vdb_first_seen": 2017}`` (or ``vdb search --new-in 2017``) then finds the
    sentences that were new in 2017. Returns ``{"scopes", "points", "updated"}``."""
    return _native.update_first_seen(os.fspath(run_dir), _target(target), collection, list(scope), order)


def ingest(
    input: PathLike,
    *,
    run_dir: PathLike,
    collection: str | None = None,
    target: StoreTarget | None = None,
    embedder: Embedder | None = None,
    text_column: str | None = None,
    id_columns: Sequence[str] | None = None,
    payload_columns: Sequence[str] | None = None,
    shard_rows: int | None = None,
    strict: bool = False,
    recreate: bool = False,
    rebuild: bool = False,
    reuse: bool | None = None,
    sync_scope: Sequence[str] | None = None,
    collection_options: Mapping[str, Any] | None = None,
    sparse: bool | Mapping[str, float] | None = None,
    changes_scope: Sequence[str] | None = None,
    changes_order: str | None = None,
    batch_size: int | None = None,
    upsert_batch_size: int | None = None,
    upsert_parallel: int | None = None,
    upsert_retries: int | None = None,
    progress: Progress = None,
) -> IngestResult:
    """Every step in this process (what ``vdb ingest`` runs). Resumes a run directory that died.
    With ``reuse`` (default ``VDB_REUSE``, on) each distinct text is embedded once, and texts the
    collection already holds (same model) are not embedded again. With ``sync_scope`` (columns such
    as ``["filing_id"]``), after a successful verify the points of every scope value in this input
    that the input no longer has are deleted (see :func:`sync`). With ``rebuild``, the run builds
    a new collection and switches the name ``collection`` to it only after verify (blue/green; see
    :func:`switch`): searches see the old data until then, and a failed run changes nothing.
    ``sparse`` (default ``VDB_SPARSE``, on): a new collection gets a BM25 sparse vector next to the
    dense one (see :func:`collection_options`); an existing collection keeps its layout. With
    ``changes_scope`` (the company columns, e.g. ``["ticker"]``) and ``changes_order`` (e.g.
    ``"fiscal_year"``), every point of the companies this input holds gets ``_vdb_first_seen``: the
    order value of the company's earliest filing with its exact text (see :func:`update_first_seen`).
    ``batch_size``: sentences per forward pass (``VDB_BATCH_SIZE``); ``upsert_batch_size``,
    ``upsert_parallel``, ``upsert_retries``: as in :func:`load_shard`."""
    emb = embedder if embedder is not None else Embedder()
    return _native.ingest(
        os.fspath(run_dir),
        os.fspath(input),
        _mapping(text_column, id_columns, payload_columns),
        _or_setting(shard_rows, "shard_rows"),
        strict,
        _or_setting(reuse, "reuse"),
        _or_setting(collection, "collection"),
        recreate,
        _target(target),
        emb._native,
        _or_setting(batch_size, "batch_size"),
        _load_options(upsert_batch_size, upsert_parallel, upsert_retries),
        list(sync_scope or []),
        _layout(collection_options, sparse),
        rebuild,
        progress,
        list(changes_scope or []),
        changes_order or None,
    )
