"""`vdb_core.Store`: a store opened once and kept, with typed hits, on both stores."""

from __future__ import annotations

import json
import subprocess
import sys

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
        assert len(hits) == 3 and set(hits[0]) == {"id", "score", "payload", "mode"}
        assert hits[0]["mode"] == "hybrid"
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


def test_short_filters_keep_every_bound_and_refuse_what_they_do_not_know(loaded, embedder):
    with vdb_core.Store(loaded, embedder=embedder, collection="c") as s:
        years = sorted({h["payload"]["fiscal_year"] for h in s.search("revenue", limit=600)})
        assert len(years) >= 3, years
        lo, mid, hi = years[0], years[1], years[2]
        # Open bounds (gt / lt) are kept: only the year strictly between them.
        short = s.search("revenue", limit=200, filters={"fiscal_year": {"gt": lo, "lt": hi}})
        assert short and {h["payload"]["fiscal_year"] for h in short} == {mid}
        qdrant = {"must": [{"key": "fiscal_year", "range": {"gt": lo, "lt": hi}}]}
        assert s.search("revenue", limit=200, filters=qdrant) == short
        # A list matches any of its values; a date range filters dates as dates.
        two = s.search("revenue", limit=600, filters={"fiscal_year": [lo, hi]})
        assert {h["payload"]["fiscal_year"] for h in two} == {lo, hi}
        first = min(h["payload"]["filing_date"] for h in s.search("revenue", limit=600))
        year = first[:4]
        dated = s.search("revenue", limit=200, filters={"filing_date": {"gte": f"{year}-01-01", "lt": f"{year}-12-31"}})
        assert dated and all(h["payload"]["filing_date"].startswith(f"{year}-") for h in dated)
        for bad, says in [
            ({"fiscal_year": {"gte": 2018, "below": 2021}}, "below"),
            ({"fiscal_year": {}}, "no bound"),
            ([{"op": "nearly", "field": "fiscal_year", "value": 2020}], "'op' must be one of"),
            ({"must": [{"key": "fiscal_year", "match": {"value": 2020}, "rnage": {"gt": 1}}]}, "rnage"),
        ]:
            with pytest.raises(vdb_core.ConfigError, match=says) as raised:
                s.search("revenue", limit=5, filters=bad)
            assert raised.value.kind == "invalid_config"


def test_an_exception_of_a_progress_callable_is_raised_not_discarded(sample_parquet, tmp_path):
    lines: list[str] = []

    def broken(line: str) -> None:
        lines.append(line)
        raise RuntimeError("the progress sink is broken")

    with pytest.raises(RuntimeError, match="the progress sink is broken"):
        vdb_core.plan(tmp_path / "run", sample_parquet, progress=broken)
    assert len(lines) == 1, "a callable that raised is not called again"
    # The work itself completed: the same plan again finds it done.
    assert vdb_core.plan(tmp_path / "run", sample_parquet)["rows_valid"] == 600


CLOSE_WHILE_A_CALL_LOGS = """
import json, logging, sys, threading, time
import vdb_core

entered = threading.Event()

class SlowHandler(logging.Handler):
    def emit(self, record):
        # The first record of the call on the other thread: hold it while the main thread closes.
        if "opened" in record.getMessage() and not entered.is_set():
            entered.set()
            time.sleep(1.0)

log = logging.getLogger("vdb_core")
log.setLevel(logging.DEBUG)
log.addHandler(SlowHandler())
store = vdb_core.Store(json.loads(sys.argv[1]), collection="c")
counted = []
t = threading.Thread(target=lambda: counted.append(store.count()))
t.start()
assert entered.wait(60), "the call on the other thread logged nothing"
store.close()  # waits for the call in flight, which needs the GIL to finish logging
t.join(60)
print("closed after", counted)
"""


def test_close_while_a_call_on_another_thread_logs_does_not_deadlock(loaded, tmp_path):
    script = tmp_path / "close_while_logging.py"
    script.write_text(CLOSE_WHILE_A_CALL_LOGS)
    try:
        r = subprocess.run(
            [sys.executable, str(script), json.dumps(dict(loaded))], capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("Store.close() deadlocked with a call on another thread that was logging")
    assert r.returncode == 0, r.stderr
    assert "closed after [600]" in r.stdout, r.stdout
