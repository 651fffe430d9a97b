"""Hybrid search (dense MiniLM + Qdrant's BM25, fused by the engine) through the Python API and the
CLI, on both stores, on a labelled set: queries whose answer needs an exact rare word (BM25 finds it)
and paraphrases that share no word with their answer (only the dense vector finds them)."""

from __future__ import annotations

import json
import logging

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import vdb_core
from conftest import vdb_cli

# Sentences of three companies; most are distractors about other risks.
SENTENCES = [
    # 0: the answer to the rare-word query "Tianjin" (a word found nowhere else).
    ("acme", "A fire at our Tianjin plant could interrupt deliveries for several months."),
    # 1: the answer to the paraphrase (no word in common with it after stop words and stemming).
    ("acme", "We may be unable to repay our debt obligations when they mature."),
    # 2: the rare-word answer of another company (the filtered query).
    ("globex", "Our Tianjin distribution centre handles most of our exports to Europe."),
    ("acme", "Competition in our markets is intense and new entrants keep arriving."),
    ("acme", "Our success depends on retaining key employees and senior management."),
    ("acme", "Changes in accounting standards could affect our reported results."),
    ("acme", "Severe weather and natural disasters could disrupt our operations."),
    ("acme", "Our products may contain defects that harm customers and our brand."),
    ("globex", "Regulatory investigations could result in fines and penalties."),
    ("globex", "Fluctuations in currency exchange rates affect our revenue."),
    ("globex", "Cyber attacks on our systems could expose customer data."),
    ("globex", "Demand for our products is seasonal and hard to forecast."),
    ("globex", "Litigation over intellectual property is costly and uncertain."),
    ("initech", "Tax law changes could increase our effective tax rate."),
    ("initech", "Our insurance may not cover every loss we suffer."),
    ("initech", "Labor shortages could raise our costs and delay projects."),
    ("initech", "A pandemic could reduce demand and disrupt supply chains."),
    ("initech", "Our stock price may be volatile."),
]
RARE = "Tianjin"
PARAPHRASE = "the company might not find a way to pay back the money it borrowed"


def _write(path, rows=SENTENCES):
    pq.write_table(
        pa.table(
            {
                "sentence_id": [f"s{i}" for i in range(len(rows))],
                "company": [c for c, _ in rows],
                "sentence": [t for _, t in rows],
            }
        ),
        path,
    )
    return path


def _text_of(hit):
    return hit["payload"]["text"]


def _labelled_modes(store, collection):
    """The modes each find their kind of answer first; hybrid finds both kinds in its top 3."""
    rare = store.search(RARE, collection, limit=3, mode="sparse")
    assert {_text_of(h) for h in rare} == {SENTENCES[0][1], SENTENCES[2][1]}, "BM25: only the sentences with the word"
    assert all(h["mode"] == "sparse" for h in rare)
    para = store.search(PARAPHRASE, collection, limit=3, mode="dense")
    assert _text_of(para[0]) == SENTENCES[1][1], [_text_of(h) for h in para]
    assert store.search(PARAPHRASE, collection, limit=3, mode="sparse") == [], "no word in common: BM25 finds nothing"
    for fusion in ("rrf", "dbsf"):
        for query, answers in ((RARE, {SENTENCES[0][1], SENTENCES[2][1]}), (PARAPHRASE, {SENTENCES[1][1]})):
            hits = store.search(query, collection, limit=3, fusion=fusion)
            assert all(h["mode"] == "hybrid" for h in hits)
            assert answers <= {_text_of(h) for h in hits}, (fusion, query, [_text_of(h) for h in hits])
    # Filters apply to both prefetches of a hybrid search.
    only = store.search(RARE, collection, limit=5, filters={"company": "globex"})
    assert only and all(h["payload"]["company"] == "globex" for h in only)
    assert _text_of(only[0]) == SENTENCES[2][1]


def test_hybrid_search_on_the_embedded_store(tmp_path, embedder):
    target = vdb_core.store_target(store_path=tmp_path / "store")
    r = vdb_core.ingest(
        _write(tmp_path / "l.parquet"), run_dir=tmp_path / "run", collection="h", target=target, embedder=embedder
    )
    assert r["report"]["sparse_vectors"] == len(SENTENCES)
    assert r["report"]["sparse"] == {"k": 1.2, "b": 0.75, "avg_len": 256.0}
    with vdb_core.Store(target, embedder=embedder) as s:
        assert s.sparse("h") == {"k": 1.2, "b": 0.75, "avg_len": 256.0}
        _labelled_modes(s, "h")
        # A vector query is dense; asking for another mode with one is an error.
        with pytest.raises(vdb_core.ConfigError, match="vector query"):
            s.search([0.0] * 384, "h", mode="sparse")


def test_hybrid_search_on_the_server(qdrant_server, tmp_path, embedder):
    target = vdb_core.store_target(qdrant_url=qdrant_server.url)
    vdb_core.ingest(
        _write(tmp_path / "l.parquet"), run_dir=tmp_path / "run", collection="h", target=target, embedder=embedder
    )
    with vdb_core.Store(target, embedder=embedder) as s:
        assert s.sparse("h") == {"k": 1.2, "b": 0.75, "avg_len": 256.0}
        _labelled_modes(s, "h")


def test_a_dense_only_collection_stays_so_and_says_how_to_add_bm25(tmp_path, embedder, caplog):
    target = vdb_core.store_target(store_path=tmp_path / "store")
    data = _write(tmp_path / "l.parquet")
    r = vdb_core.ingest(data, run_dir=tmp_path / "r1", collection="d", target=target, embedder=embedder, sparse=False)
    assert r["report"]["sparse"] is None and r["report"]["sparse_vectors"] == 0
    with caplog.at_level(logging.WARNING):
        r = vdb_core.ingest(data, run_dir=tmp_path / "r2", collection="d", target=target, embedder=embedder)
    assert r["report"]["sparse_vectors"] == 0
    assert any("no BM25 sparse vector" in m and "--rebuild" in m for m in caplog.messages), caplog.messages
    with vdb_core.Store(target, embedder=embedder) as s:
        assert s.sparse("d") is None
        hits = s.search(PARAPHRASE, "d", limit=2)
        assert hits[0]["mode"] == "dense" and _text_of(hits[0]) == SENTENCES[1][1]
        with pytest.raises(vdb_core.VdbError, match="rebuild") as e:
            s.search(RARE, "d", mode="hybrid")
        assert e.value.kind == "collection_mismatch"


def test_other_bm25_parameters_are_refused_like_another_model(tmp_path, embedder):
    target = vdb_core.store_target(store_path=tmp_path / "store")
    data = _write(tmp_path / "l.parquet")
    vdb_core.ingest(data, run_dir=tmp_path / "r1", collection="p", target=target, embedder=embedder)
    with pytest.raises(vdb_core.VdbError, match="avg_len=20") as e:
        vdb_core.ingest(
            data, run_dir=tmp_path / "r2", collection="p", target=target, embedder=embedder, sparse={"avg_len": 20}
        )
    assert e.value.kind == "collection_mismatch"
    with pytest.raises(vdb_core.ConfigError, match="unknown BM25 parameter"):
        vdb_core.collection_options(sparse={"k1": 1.2})


def test_an_updated_sentence_gets_a_fresh_sparse_vector(tmp_path, embedder):
    """Re-ingesting a changed text under the same id replaces its BM25 vector: the search by the
    new word finds it, the old word no longer does, and verify (which compares stored BM25 vectors
    with their text) passes."""
    target = vdb_core.store_target(store_path=tmp_path / "store")
    ids = ["sentence_id"]
    vdb_core.ingest(
        _write(tmp_path / "a.parquet"),
        run_dir=tmp_path / "r1",
        collection="u",
        target=target,
        embedder=embedder,
        id_columns=ids,
    )
    changed = [("acme", "A flood at our Chongqing plant could interrupt deliveries.")] + SENTENCES[1:]
    r = vdb_core.ingest(
        _write(tmp_path / "b.parquet", changed),
        run_dir=tmp_path / "r2",
        collection="u",
        target=target,
        embedder=embedder,
        id_columns=ids,
    )
    assert r["report"]["updated_points"] == 1 and r["report"]["sparse_vectors"] == len(SENTENCES)
    with vdb_core.Store(target, embedder=embedder) as s:
        assert [_text_of(h) for h in s.search("Chongqing", "u", mode="sparse")] == [changed[0][1]]
        assert [_text_of(h) for h in s.search(RARE, "u", mode="sparse")] == [SENTENCES[2][1]]


def _cli(*args: str) -> list | dict:
    out = vdb_cli(*args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_cli_modes_and_no_sparse(tmp_path):
    data = _write(tmp_path / "l.parquet")
    store = str(tmp_path / "store")
    r = _cli("ingest", str(data), "--store", store, "--collection", "c", "--run-dir", str(tmp_path / "r"))
    assert r["report"]["sparse_vectors"] == len(SENTENCES)
    for mode in ("sparse", "hybrid", "dense"):
        hits = _cli("search", RARE, "--store", store, "--collection", "c", "--mode", mode, "--limit", "2")
        assert hits and all(h["mode"] == mode for h in hits)
    assert _cli("search", RARE, "--store", store, "--collection", "c", "--fusion", "dbsf")[0]["mode"] == "hybrid"
    r = _cli(
        "ingest", str(data), "--store", store, "--collection", "n", "--run-dir", str(tmp_path / "r2"), "--no-sparse"
    )
    assert r["report"]["sparse"] is None
    assert _cli("search", RARE, "--store", store, "--collection", "n")[0]["mode"] == "dense"
