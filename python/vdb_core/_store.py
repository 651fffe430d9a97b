"""``Store``: one opened Qdrant store kept for many calls, and the one-call shortcuts."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, cast

from . import _native
from ._embedder import Embedder, _shared_embedder
from ._errors import _error
from ._filters import _filter, _search_params
from ._kinds import Fusion, SearchMode
from ._native import ConfigError
from ._settings import _model_dir, _or_setting, resolved_settings, store_target
from .types import Bm25Params, ChangeRow, Hit, PathLike, StoreTarget


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
        target: StoreTarget | None = None,
        *,
        qdrant_url: str | None = None,
        api_key: str | None = None,
        store_path: PathLike | None = None,
        embedder: Embedder | None = None,
        collection: str | None = None,
    ) -> None:
        if target is None:
            target = store_target(qdrant_url=qdrant_url, api_key=api_key, store_path=store_path)
        self.target: StoreTarget = cast(StoreTarget, dict(target))
        self._native = _native.NativeStore(self.target)
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
            found = self._native.search_text(c, query, self.embedder._native, limit, f, p, mode, fusion, distinct)
            hits = found["hits"]
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
        hits = self._native.search_vector(c, [float(x) for x in query], limit, f, p)
        for h in hits:
            h["mode"] = "dense"
        return hits

    def sparse(self, collection: str | None = None) -> Bm25Params | None:
        """The BM25 parameters of the collection's sparse vector (``{"k", "b", "avg_len"}``), or
        ``None`` for a dense-only collection (search it dense; a rebuild adds BM25)."""
        return self._native.collection_sparse(collection or self.collection)

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
        return self._native.changes(collection or self.collection, list(scope), order, _filter(filters), path)

    def retrieve(self, ids: Sequence[str], collection: str | None = None) -> list[Hit]:
        """Points by id (missing ids are absent)."""
        return self._native.retrieve(collection or self.collection, list(ids))

    def release(self, collection: str | None = None) -> None:
        """Let go of the embedded store's file lock on a collection until the next call."""
        self._native.release(collection or self.collection)

    def close(self) -> None:
        """Close the store (the embedded store flushes and releases its locks). Idempotent."""
        self._native.close()


def search(
    query: str,
    collection: str | None = None,
    *,
    target: StoreTarget | None = None,
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
    target: StoreTarget | None = None,
    limit: int = 10,
    filters: Mapping[str, Any] | None = None,
    hnsw_ef: int | None = None,
    exact: bool = False,
) -> list[Hit]:
    """Nearest points to ``vector``; options as in :func:`search`."""
    with Store(target if target is not None else store_target()) as s:
        return s.search(list(vector), collection, limit=limit, filters=filters, hnsw_ef=hnsw_ef, exact=exact)


def retrieve(ids: Sequence[str], collection: str | None = None, *, target: StoreTarget | None = None) -> list[Hit]:
    """Points by id (missing ids are absent)."""
    with Store(target if target is not None else store_target()) as s:
        return s.retrieve(ids, collection)


def count(collection: str | None = None, *, target: StoreTarget | None = None) -> int:
    """Exact number of points in the collection."""
    with Store(target if target is not None else store_target()) as s:
        return s.count(collection)
