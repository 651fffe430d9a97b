"""The shapes that cross the Python door, as ``TypedDict``s: the options the pipeline steps take
(``target``, ``collection_options``, filters) and the dicts they return. The Rust core converts
them to and from its own types (serde, no JSON text); ``tests/test_contract.py`` checks every
result against its declaration here, and ``vdb_core/_native.pyi`` is typed with them.

Import them for annotations: ``from vdb_core.types import Report, Hit``.
"""

import os
from collections.abc import Callable, Mapping
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict, Union

from ._kinds import ErrorKind

__all__ = [
    "PathLike",
    "Progress",
    "ServerTarget",
    "EmbeddedTarget",
    "StoreTarget",
    "ColumnMapping",
    "Bm25Params",
    "CollectionOptions",
    "LoadOptions",
    "SearchParams",
    "Condition",
    "SettingRow",
    "ResolvedSettings",
    "CpuInfo",
    "Kernels",
    "ColumnInfo",
    "ResolvedMapping",
    "Inspection",
    "SampleInfo",
    "Skipped",
    "PlanSummary",
    "EmbedResult",
    "EnsureResult",
    "LoadResult",
    "StepStats",
    "Report",
    "IngestResult",
    "SyncResult",
    "SwitchResult",
    "FirstSeenResult",
    "Hit",
    "TextSearch",
    "ChangeRow",
]

PathLike: TypeAlias = Union[str, "os.PathLike[str]"]
#: A long call's progress: None (silent), ``"bar"`` (a terminal bar), ``"lines"`` (stderr lines) or
#: a callable taking one line (e.g. a logger's ``info``).
Progress: TypeAlias = None | str | Callable[[str], Any]


# --- Where vectors go -------------------------------------------------------------------------


class ServerTarget(TypedDict):
    """A Qdrant server: ``url`` is its gRPC endpoint (``http://host:6334``)."""

    kind: Literal["server"]
    url: str
    api_key: str | None


class EmbeddedTarget(TypedDict):
    """The embedded Qdrant engine, persisted under ``path``."""

    kind: Literal["embedded"]
    path: str


#: What :func:`vdb_core.store_target` returns and every ``target=`` argument takes.
StoreTarget: TypeAlias = ServerTarget | EmbeddedTarget


# --- Options ----------------------------------------------------------------------------------


class ColumnMapping(TypedDict):
    """Which column is the text, which make the point id, which go into the payload (None: the
    defaults, see :func:`vdb_core.inspect`)."""

    text: str | None
    id_columns: list[str] | None
    payload_columns: list[str] | None


class Bm25Params(TypedDict):
    """BM25 parameters of a collection's sparse vector (Qdrant's defaults: 1.2, 0.75, 256)."""

    k: float
    b: float
    avg_len: float


class CollectionOptions(TypedDict, total=False):
    """How a collection is laid out when a run creates it (:func:`vdb_core.collection_options`)."""

    sparse: Bm25Params | Mapping[str, float] | None
    shard_number: int | None
    replication_factor: int | None
    write_consistency_factor: int | None
    on_disk: bool
    on_disk_payload: bool
    quantization: Literal["int8"] | None


class LoadOptions(TypedDict):
    """How a bulk load upserts: points per request, requests in flight, retries."""

    batch_size: int
    parallel: int
    max_retries: int
    retry_base_ms: int


class SearchParams(TypedDict, total=False):
    """Qdrant's search parameters."""

    hnsw_ef: int | None
    exact: bool


#: One filter condition as the core reads it: ``{"op": "qdrant", "filter": <Qdrant filter JSON>}``,
#: ``{"op": "equals", "field", "value"}`` or ``{"op": "range", "field", "gte", "lte"}``.
Condition: TypeAlias = Mapping[str, Any]


# --- Settings and the machine -----------------------------------------------------------------


class SettingRow(TypedDict):
    """One row of :func:`vdb_core.settings`."""

    env: str
    default: str
    help: str


class ResolvedSettings(TypedDict):
    """:func:`vdb_core.resolved_settings`: each setting's value in force."""

    input: str
    work_dir: str
    model_dir: str | None
    qdrant_url: str | None
    qdrant_api_key: str | None
    store_path: str
    collection: str
    shard_rows: int
    batch_size: int
    upsert_batch: int
    upsert_parallel: int
    upsert_retries: int
    threads: int | None
    precision: str
    device: str
    gpu_batch_tokens: int
    reuse: bool
    sparse: bool
    data_root: str | None
    require_server: bool
    run_retention_days: int
    on_failure_callback: str | None


class CpuInfo(TypedDict):
    """:func:`vdb_core.cpu_info`."""

    cpu: str
    f32_gemm: str
    int8: str
    bf16: str | None
    features: list[str]


class Kernels(TypedDict):
    """:attr:`vdb_core.Embedder.kernels`."""

    f32_gemm: str
    int8: str | None
    bf16: str | None


# --- Pipeline results -------------------------------------------------------------------------


class ColumnInfo(TypedDict):
    name: str
    type: str
    nullable: bool
    null_count: int | None


class ResolvedMapping(TypedDict):
    text: str
    id_columns: list[str]
    payload_columns: list[str]


class Inspection(TypedDict):
    """:func:`vdb_core.inspect`: the parquet footer, and the mapping resolved against it."""

    path: str
    size_bytes: int
    rows: int
    row_groups: int
    columns: list[ColumnInfo]
    mapping: ResolvedMapping | None
    mapping_error: str | None
    mapping_error_kind: ErrorKind | None
    mapping_error_column: str | None


class SampleInfo(TypedDict):
    """:func:`vdb_core.sample_data`."""

    path: str
    rows: int
    filings: int
    size_bytes: int


class Skipped(TypedDict):
    """Rows left out by a lenient plan, by reason."""

    null_text: int
    empty_text: int
    duplicate_id: int


class PlanSummary(TypedDict):
    """:func:`vdb_core.plan`."""

    run_dir: str
    rows_read: int
    rows_valid: int
    distinct_texts: int
    skipped: Skipped
    shards: list[int]
    resumed: bool
    seconds: float


class EmbedResult(TypedDict):
    """:func:`vdb_core.embed_shard`."""

    shard: int
    rows: int
    texts: int
    texts_embedded: int
    done_now: bool
    seconds: float


class EnsureResult(TypedDict):
    """:func:`vdb_core.ensure_collection`."""

    collection: str
    outcome: Literal["created", "existed", "recreated"]
    dim: int
    indexes: list[str]
    sparse: Bm25Params | None


class LoadResult(TypedDict):
    """:func:`vdb_core.load_shard`."""

    shard: int
    rows: int
    done_now: bool
    seconds: float
    points: int
    new_points: int
    updated_points: int
    unchanged_points: int
    sparse_vectors: int


class StepStats(TypedDict):
    seconds: float
    rows: int
    peak_rss_mib: float


class Report(TypedDict):
    """A run's report (``report.json``; :func:`vdb_core.verify`, ``ingest(...)["report"]``)."""

    input: str
    rows_read: int
    rows_valid: int
    skipped: Skipped
    shards: int
    distinct_texts: int
    texts_embedded: int
    vectors_reused: int
    points_loaded: int
    new_points: int
    updated_points: int
    unchanged_points: int
    deleted_points: int
    sync_scope: list[str]
    sparse_vectors: int
    sparse: Bm25Params | None
    points_verified: int
    collection_count: int
    sample_search_ok: bool
    model: str | None
    target: str | None
    collection: str
    built_collection: str | None
    previous_collection: str | None
    switched: bool
    steps: dict[str, StepStats]
    peak_rss_mib: float


class IngestResult(TypedDict):
    """:func:`vdb_core.ingest`."""

    run_dir: str
    report: Report
    wall_seconds: float


class SyncResult(TypedDict):
    """:func:`vdb_core.sync`."""

    scope: list[str]
    scopes: int
    deleted_points: int
    seconds: float


class SwitchResult(TypedDict):
    """:func:`vdb_core.switch`."""

    switched: bool
    alias: str
    collection: str | None
    previous: str | None
    deleted: list[str]
    seconds: float


class FirstSeenResult(TypedDict):
    """:func:`vdb_core.update_first_seen`."""

    scopes: int
    points: int
    updated: int


# --- Search -----------------------------------------------------------------------------------


class Hit(TypedDict):
    """One search (or retrieve) result."""

    id: str
    """The point id (a UUID string)."""
    score: float
    """Dense search: cosine similarity to the query; sparse: the BM25 score; hybrid: the fused
    score (RRF or DBSF); 0 for retrieve."""
    payload: dict[str, Any]
    """The point's payload: ``text``, the mapped payload columns, ``_vdb_text`` (the vector key)."""
    mode: NotRequired[str]
    """Search results: the vectors that found it, ``"hybrid"``, ``"dense"`` or ``"sparse"``."""
    filings: NotRequired[list["Hit"]]
    """A ``distinct`` search: every point holding this text (``id``, ``payload`` without the text,
    ``score`` 0), the hit itself included, in id order."""


class TextSearch(TypedDict):
    """A text search as the core returns it (:meth:`vdb_core.Store.search` spreads it over the hits)."""

    mode: Literal["hybrid", "dense", "sparse"]
    fusion: Literal["rrf", "dbsf"] | None
    hits: list[Hit]
    filings: NotRequired[list[list[Hit]]]


#: One row of :meth:`vdb_core.Store.changes` (``from`` is a Python keyword, hence the functional form).
ChangeRow = TypedDict(
    "ChangeRow",
    {
        "scope": dict[str, Any],
        "from": Any,
        "to": Any,
        "new": int,
        "removed": int,
        "kept": int,
        "jaccard": float,
        "cosine": float,
    },
)
