"""`vdb_core.Store`: a store opened once and kept, with typed hits, on both stores."""

from __future__ import annotations

import pytest
import vdb_core


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, sample_parquet, embedder):
    d = tmp_path_factory.mktemp("store")
    target = vdb_core.store_target(store_path=d / "store")
    vdb_core.ingest(sample_parquet, run_dir=d / "run", collection="c", target=target, embedder=embedder)
    return target


def test_store_handle_counts_searches_retrieves_and_closes(loaded, embedder):
    with vdb_core.Store(loaded, embedder=embedder, collection="c") as s:
        assert s.collections() == ["c"]
        assert s.count() == 600
        hits = s.search("effective tax rate", limit=3)
        assert len(hits) == 3 and set(hits[0]) == {"id", "score", "payload"}
        assert "tax" in hits[0]["payload"]["text"]
        # A vector query, the same store: the point itself comes back first.
        again = s.retrieve([hits[0]["id"]])
        assert again[0]["payload"]["text"] == hits[0]["payload"]["text"]
        v = embedder.encode(hits[0]["payload"]["text"])
        assert s.search(list(v), limit=1, exact=True)[0]["id"] == hits[0]["id"]
        # Filters in Qdrant's JSON and the short form.
        form = hits[0]["payload"]["form_type"]
        q = s.search("effective tax rate", limit=5, filters={"must": [{"key": "form_type", "match": {"value": form}}]})
        assert q and all(h["payload"]["form_type"] == form for h in q)
        assert s.search("effective tax rate", limit=5, filters={"form_type": form}) == q
    assert s.closed
    with pytest.raises(vdb_core.ConfigError, match="closed"):
        s.count()
    s.close()  # idempotent


def test_embedded_lock_is_released_on_request(loaded):
    a = vdb_core.Store(loaded, collection="c")
    assert a.count() == 600  # a now holds the collection's file lock
    a.release()
    b = vdb_core.Store(loaded, collection="c")
    try:
        assert b.count() == 600  # would wait for a's lock without the release
    finally:
        b.close()
        a.close()


def test_store_on_the_server(qdrant_server, sample_parquet, embedder, tmp_path):
    target = vdb_core.store_target(qdrant_url=qdrant_server.url)
    vdb_core.ingest(sample_parquet, run_dir=tmp_path / "run", collection="s", target=target, embedder=embedder)
    with vdb_core.Store(qdrant_url=qdrant_server.url, embedder=embedder) as s:
        assert "s" in s.collections()
        assert s.count("s") == 600
        assert len(s.search("revenue growth", "s", limit=4, hnsw_ef=128)) == 4
