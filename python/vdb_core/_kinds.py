"""The Literal kinds of the API: the stable slugs of ``VdbError.kind`` (what a DAG or script branches on),
and the search modes and fusions of :meth:`vdb_core.Store.search`.

The Rust core's kinds (``vdb_core._native.error_kinds()``, ``ErrorKind::ALL``) and the ones the
Python layer adds; ``tests/test_contract.py`` fails when this list and the Rust side drift apart.
"""

from typing import Literal, TypeAlias

ErrorKind: TypeAlias = Literal[
    "file_not_found",
    "not_parquet",
    "corrupt_file",
    "missing_column",
    "wrong_column_type",
    "empty_text",
    "duplicate_id",
    "null_id",
    "no_rows",
    "invalid_config",
    "model",
    "embed",
    "store",
    "store_unavailable",
    "store_auth",
    "collection_mismatch",
    "handoff",
    "run_mismatch",
    "locked",
    "io",
    "internal",
    # Raised by the Python layer only:
    "outside_data_root",  # vdb_core.airflow.resolve_input: an input path outside VDB_DATA_ROOT
]
"""``VdbError.kind``."""

#: The kinds only the Python layer raises.
PYTHON_KINDS: frozenset[str] = frozenset({"outside_data_root"})

#: How a text query is searched (see :meth:`vdb_core.Store.search`): the dense MiniLM vector and
#: BM25 fused by the engine, one of them alone.
SearchMode: TypeAlias = Literal["hybrid", "dense", "sparse"]

#: How a hybrid search fuses its dense and BM25 results: reciprocal rank or distribution-based.
Fusion: TypeAlias = Literal["rrf", "dbsf"]
