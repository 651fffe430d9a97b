"""The changes report (`Store.changes`, `vdb changes`): new / removed / kept sentences between
consecutive filings of each company, checked against set arithmetic done here with pyarrow, on
both stores, after out-of-order ingests, a re-ingest and a sync that deletes sentences."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import vdb_core
from conftest import vdb_cli

S = {i: f"Risk factor sentence number {i} about topic {i * 7 % 5}." for i in range(1, 12)}
# (ticker, year, [sentence numbers]): duplicates within a filing (3 twice in AAA 2016), the same
# sentence in two companies (2), a company with one filing only (CCC).
FILINGS = [
    ("AAA", 2016, [1, 2, 3, 3, 4]),
    ("AAA", 2017, [2, 3, 5, 6]),
    ("AAA", 2018, [5, 6, 7]),
    ("BBB", 2017, [2, 8]),
    ("BBB", 2018, [8, 9, 10]),
    ("CCC", 2016, [11]),
]
IDS = ["ticker", "year", "idx"]


def _table(filings):
    rows = [(t, y, i, S[n]) for t, y, ns in filings for i, n in enumerate(ns)]
    return pa.table(
        {
            "ticker": [r[0] for r in rows],
            "year": pa.array([r[1] for r in rows], pa.int64()),
            "idx": [r[2] for r in rows],
            "sentence": [r[3] for r in rows],
        }
    )


def _expected(table: pa.Table, embedder) -> list[dict]:
    """The report computed independently: sets of texts per (ticker, year) from the table."""
    texts: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in table.to_pylist():
        texts[r["ticker"]][r["year"]].append(r["sentence"])
    out = []
    for ticker in sorted(texts):
        years = sorted(texts[ticker])
        for a, b in zip(years, years[1:], strict=False):
            ta, tb = set(texts[ticker][a]), set(texts[ticker][b])
            ma = embedder.encode(texts[ticker][a]).astype(np.float64).mean(axis=0)
            mb = embedder.encode(texts[ticker][b]).astype(np.float64).mean(axis=0)
            out.append(
                {
                    "scope": {"ticker": ticker},
                    "from": a,
                    "to": b,
                    "new": len(tb - ta),
                    "removed": len(ta - tb),
                    "kept": len(ta & tb),
                    "jaccard": len(ta & tb) / len(ta | tb),
                    "cosine": float(ma @ mb / np.linalg.norm(ma) / np.linalg.norm(mb)),
                }
            )
    return out


def _check(rows, expected):
    assert [{k: r[k] for k in ("scope", "from", "to", "new", "removed", "kept")} for r in rows] == [
        {k: e[k] for k in ("scope", "from", "to", "new", "removed", "kept")} for e in expected
    ]
    for r, e in zip(rows, expected, strict=True):
        assert r["jaccard"] == pytest.approx(e["jaccard"], abs=1e-12)
        assert r["cosine"] == pytest.approx(e["cosine"], abs=1e-5)


def _ingest(path, table, tmp_path, name, target, embedder, ids=IDS, **kw):
    pq.write_table(table, path)
    return vdb_core.ingest(
        path, run_dir=tmp_path / name, collection="ch", target=target, embedder=embedder, id_columns=ids, **kw
    )


@pytest.mark.parametrize("store_kind", ["embedded", "server"])
def test_counts_equal_set_arithmetic_after_out_of_order_ingests_reingest_and_sync(
    store_kind, tmp_path, embedder, request
):
    if store_kind == "server":
        target = vdb_core.store_target(qdrant_url=request.getfixturevalue("qdrant_server").url)
    else:
        target = vdb_core.store_target(store_path=tmp_path / "store")
    # Out of order: 2018, then 2016, then 2017, each its own run.
    for year in (2018, 2016, 2017):
        part = [f for f in FILINGS if f[1] == year]
        _ingest(tmp_path / f"{year}.parquet", _table(part), tmp_path, f"r{year}", target, embedder)
    full = _table(FILINGS)
    with vdb_core.Store(target, embedder=embedder) as s:
        rows = s.changes("ch", scope=["ticker"], order="year")
        _check(rows, _expected(full, embedder))
        assert [(r["scope"]["ticker"], r["from"], r["to"]) for r in rows] == [
            ("AAA", 2016, 2017),
            ("AAA", 2017, 2018),
            ("BBB", 2017, 2018),
        ]
        # A filter restricts the points (only AAA).
        only = s.changes("ch", scope=["ticker"], order="year", filters={"ticker": "AAA"})
        assert [r["scope"]["ticker"] for r in only] == ["AAA", "AAA"]
    # A re-ingest of a filing changes nothing.
    _ingest(tmp_path / "again.parquet", _table([FILINGS[1]]), tmp_path, "again", target, embedder)
    with vdb_core.Store(target, embedder=embedder) as s:
        _check(s.changes("ch", scope=["ticker"], order="year"), _expected(full, embedder))
    # A new version of AAA 2017 without sentence 6, synced by (ticker, year): 6 is deleted.
    fixed = [("AAA", 2017, [2, 3, 5])]
    _ingest(
        tmp_path / "fixed.parquet", _table(fixed), tmp_path, "sync", target, embedder, sync_scope=["ticker", "year"]
    )
    now = _table([f for f in FILINGS if f[:2] != ("AAA", 2017)] + fixed)
    with vdb_core.Store(target, embedder=embedder) as s:
        rows = s.changes("ch", scope=["ticker"], order="year")
        _check(rows, _expected(now, embedder))
        # 2017 {2, 3, 5} -> 2018 {5, 6, 7}: 6 is new again.
        assert (rows[1]["new"], rows[1]["removed"], rows[1]["kept"]) == (2, 2, 1)


def test_bad_columns_are_named(tmp_path, embedder):
    target = vdb_core.store_target(store_path=tmp_path / "store")
    _ingest(tmp_path / "a.parquet", _table(FILINGS[:2]), tmp_path, "a", target, embedder)
    with vdb_core.Store(target) as s:
        with pytest.raises(vdb_core.ConfigError, match="scope column 'cik'") as e:
            s.changes("ch", scope=["cik"], order="year")
        assert e.value.column == "cik"
        with pytest.raises(vdb_core.ConfigError, match="order column 'fiscal_year'") as e:
            s.changes("ch", scope=["ticker"], order="fiscal_year")
        assert e.value.column == "fiscal_year"
        with pytest.raises(vdb_core.ConfigError, match="not a scope column"):
            s.changes("ch", scope=["ticker"], order="ticker")
    # Null years in a later run: the order column has no value for those points.
    nulls = _table([("DDD", 2016, [1, 2])]).set_column(1, "year", pa.array([None, 2016], pa.int64()))
    _ingest(tmp_path / "n.parquet", nulls, tmp_path, "n", target, embedder, ids=["ticker", "idx"])
    with vdb_core.Store(target) as s, pytest.raises(vdb_core.ConfigError, match="no value in the order column 'year'"):
        s.changes("ch", scope=["ticker"], order="year")
    # Mixed types: years as text in another collection's run.
    target2 = vdb_core.store_target(store_path=tmp_path / "store2")
    _ingest(tmp_path / "b.parquet", _table(FILINGS[:1]), tmp_path, "b", target2, embedder)
    text_years = _table(FILINGS[1:2]).set_column(1, "year", pa.array(["2017"] * 4))
    _ingest(tmp_path / "c.parquet", text_years, tmp_path, "c", target2, embedder)
    with vdb_core.Store(target2) as s, pytest.raises(vdb_core.ConfigError, match="mixes numbers and text") as e:
        s.changes("ch", scope=["ticker"], order="year")
    assert e.value.column == "year"


def test_cli_changes(tmp_path, embedder):
    store = str(tmp_path / "store")
    target = vdb_core.store_target(store_path=store)
    _ingest(tmp_path / "a.parquet", _table(FILINGS), tmp_path, "a", target, embedder)
    out = vdb_cli("changes", "--store", store, "--collection", "ch", "--scope", "ticker", "--order", "year", "--json")
    assert out.returncode == 0, out.stderr
    _check(json.loads(out.stdout), _expected(_table(FILINGS), embedder))
    out = vdb_cli("changes", "--store", store, "--collection", "ch", "--scope", "ticker", "--order", "year")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["scope", "from", "to", "new", "removed", "kept", "jaccard", "cosine"]
    assert out.stdout.splitlines()[1].split()[:6] == ["AAA", "2016", "2017", "2", "2", "2"]


@pytest.mark.parametrize("store_kind", ["embedded", "server"])
def test_distinct_search_gives_each_sentence_once_with_its_filings(store_kind, tmp_path, embedder, request):
    """The same sentence in several companies' and years' filings is one hit with all of them;
    limits and filters apply to distinct texts."""
    if store_kind == "server":
        target = vdb_core.store_target(qdrant_url=request.getfixturevalue("qdrant_server").url)
    else:
        target = vdb_core.store_target(store_path=tmp_path / "store")
    _ingest(tmp_path / "a.parquet", _table(FILINGS), tmp_path, "a", target, embedder)
    full = _table(FILINGS).to_pylist()
    holders = defaultdict(set)
    for r in full:
        holders[r["sentence"]].add((r["ticker"], r["year"], r["idx"]))
    with vdb_core.Store(target, embedder=embedder) as s:
        plain = s.search(S[2], "ch", limit=10)
        assert len({h["payload"]["text"] for h in plain}) < len(plain), "the fixture repeats sentences"
        hits = s.search(S[2], "ch", limit=20, distinct=True)
        texts = [h["payload"]["text"] for h in hits]
        assert sorted(texts) == sorted(S.values()), "every distinct sentence once, however many filings hold it"
        hits = s.search(S[2], "ch", limit=5, distinct=True)
        assert len(hits) == 5 and len({h["payload"]["text"] for h in hits}) == 5
        assert hits[0]["payload"]["text"] == S[2]
        for h in hits:
            got = {(f["payload"]["ticker"], f["payload"]["year"], f["payload"]["idx"]) for f in h["filings"]}
            assert got == holders[h["payload"]["text"]], h["payload"]["text"]
            assert h["id"] in {f["id"] for f in h["filings"]}
            assert all("text" not in f["payload"] for f in h["filings"])
        # A filter applies to the hits and to the filings listed.
        hits = s.search(S[2], "ch", limit=3, distinct=True, filters={"ticker": "AAA"})
        assert hits[0]["payload"]["text"] == S[2]
        assert {f["payload"]["ticker"] for h in hits for f in h["filings"]} == {"AAA"}
        assert {(f["payload"]["year"]) for f in hits[0]["filings"]} == {2016, 2017}
        with pytest.raises(vdb_core.ConfigError, match="distinct needs a text"):
            s.search([0.0] * 384, "ch", distinct=True)


def test_yearly_sample_data_gives_one_row_per_company_and_year_pair(tmp_path, embedder):
    """`vdb sample-data --yearly`: consecutive filings of every company with a share of sentences
    replaced each year; its changes report has a row per company and pair of years, and each filing
    holds as many distinct sentences as the last (new = removed)."""
    data = tmp_path / "y.parquet"
    out = vdb_cli("sample-data", "--yearly", "3", "--rows", "1200", "--change-rate", "0.5", "--out", str(data))
    assert out.returncode == 0, out.stderr
    table = pq.read_table(data)
    assert table.num_rows == 1200 and sorted(set(table.column("fiscal_year").to_pylist())) == [2022, 2023, 2024]
    target = vdb_core.store_target(store_path=tmp_path / "store")
    vdb_core.ingest(data, run_dir=tmp_path / "r", collection="y", target=target, embedder=embedder)
    with vdb_core.Store(target) as s:
        rows = s.changes("y", scope=["ticker"], order="fiscal_year")
    tickers = set(table.column("ticker").to_pylist())
    assert len(rows) == 2 * len(tickers) == 40
    for r in rows:
        assert r["new"] == r["removed"] and r["new"] + r["kept"] == 20, r
    share = sum(r["new"] for r in rows) / sum(r["new"] + r["kept"] for r in rows)
    assert 0.35 < share < 0.65, share


def _first_seen_expected(table: pa.Table) -> dict[tuple, int]:
    """(ticker, year, idx) -> the earliest year of the ticker holding that point's sentence."""
    first: dict[tuple, int] = {}
    for r in table.to_pylist():
        key = (r["ticker"], r["sentence"])
        first[key] = min(first.get(key, r["year"]), r["year"])
    return {(r["ticker"], r["year"], r["idx"]): first[(r["ticker"], r["sentence"])] for r in table.to_pylist()}


def _first_seen_stored(s) -> dict[tuple, int]:
    points = s.search("risk", "ch", limit=1000, mode="dense", exact=True)
    return {
        (p["payload"]["ticker"], p["payload"]["year"], p["payload"]["idx"]): p["payload"]["_vdb_first_seen"]
        for p in points
    }


@pytest.mark.parametrize("store_kind", ["embedded", "server"])
def test_first_seen_is_right_after_out_of_order_ingests_a_reingest_and_a_sync(store_kind, tmp_path, embedder, request):
    if store_kind == "server":
        target = vdb_core.store_target(qdrant_url=request.getfixturevalue("qdrant_server").url)
    else:
        target = vdb_core.store_target(store_path=tmp_path / "store")
    track = {"changes_scope": ["ticker"], "changes_order": "year"}
    for year in (2018, 2016, 2017):
        part = [f for f in FILINGS if f[1] == year]
        _ingest(tmp_path / f"{year}.parquet", _table(part), tmp_path, f"r{year}", target, embedder, **track)
    with vdb_core.Store(target, embedder=embedder) as s:
        assert _first_seen_stored(s) == _first_seen_expected(_table(FILINGS))
        assert s.payload_indexes("ch")["_vdb_first_seen"] == "integer"
        # What was new in 2017 at AAA: sentences 5 and 6 (2 and 3 were there in 2016).
        new = s.search("risk", "ch", limit=50, filters={"ticker": "AAA", "_vdb_first_seen": 2017})
        assert sorted({h["payload"]["text"] for h in new}) == sorted({S[5], S[6]})
    _ingest(tmp_path / "again.parquet", _table([FILINGS[1]]), tmp_path, "again", target, embedder, **track)
    # AAA 2016 loses sentence 2 (sync by ticker and year): 2 is first seen in 2017 now.
    fixed = [("AAA", 2016, [1, 9, 3, 3, 4])]
    _ingest(
        tmp_path / "fixed.parquet",
        _table(fixed),
        tmp_path,
        "sync",
        target,
        embedder,
        sync_scope=["ticker", "year"],
        **track,
    )
    now = _table([f for f in FILINGS if f[:2] != ("AAA", 2016)] + fixed)
    with vdb_core.Store(target, embedder=embedder) as s:
        stored = _first_seen_stored(s)
        assert stored == _first_seen_expected(now)
        assert stored[("AAA", 2017, 0)] == 2017  # sentence 2 at AAA 2017, once first seen in 2016
        assert stored[("BBB", 2017, 0)] == 2017  # the same text at BBB: its own company's history


def test_cli_new_in(tmp_path, embedder):
    store = str(tmp_path / "store")
    pq.write_table(_table(FILINGS), tmp_path / "a.parquet")
    ingest = [
        "ingest",
        str(tmp_path / "a.parquet"),
        "--store",
        store,
        "--collection",
        "ch",
        "--run-dir",
        str(tmp_path / "r"),
    ]
    out = vdb_cli(*ingest, "--id-columns", "ticker,year,idx", "--changes-scope", "ticker", "--changes-order", "year")
    assert out.returncode == 0, out.stderr
    out = vdb_cli(
        "search", "risk", "--store", store, "--collection", "ch", "--new-in", "2018", "--filter", "ticker=AAA", "--json"
    )
    assert out.returncode == 0, out.stderr
    assert sorted(h["payload"]["text"] for h in json.loads(out.stdout)) == [S[7]]
    out = vdb_cli("search", "risk", "--store", str(tmp_path / "other"), "--collection", "ch", "--new-in", "2018")
    assert out.returncode != 0
