"""Benchmark of the Python query path (not a test): text queries against an embedded collection
through one kept `vdb_core.Store` vs through per-call functions that open the store each time
(what `vdb_core.search` did before `Store` existed: open the store and load the model per call).

    python bench/store_handle_bench.py [--rows 20000] [--queries 200] [--per-call-queries 10]

Ingests ROWS sample rows into a fresh embedded store, then times QUERIES text searches through one
handle, and PER-CALL-QUERIES searches that each open a new `Store` and load a new `Embedder`
(fewer: each takes seconds), alternating the two a few times in this one process. Prints the CPU,
the per-query time of each path and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import vdb_core

QUERIES = [
    "supply chain disruptions reduced gross margin",
    "effective tax rate increased",
    "foreign currency exchange risk",
    "share repurchase program authorized",
    "goodwill impairment test",
    "cybersecurity incidents could harm our reputation",
    "interest rate risk on outstanding debt",
    "number of full-time employees",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--per-call-queries", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    cpu = vdb_core.cpu_info()
    kernels = ", ".join(f"{k} {cpu[k]}" for k in ("f32_gemm", "int8", "bf16"))
    print(f"CPU: {cpu['cpu']} ({', '.join(cpu['features'])}); kernels: {kernels}; vdb_core {vdb_core.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        data = d / "sample.parquet"
        vdb_core.sample_data(data, rows=a.rows, seed=3)
        target = vdb_core.store_target(store_path=d / "store")
        t = time.perf_counter()
        vdb_core.ingest(data, run_dir=d / "run", collection="bench", target=target, embedder=vdb_core.Embedder())
        print(f"ingested {a.rows} rows in {time.perf_counter() - t:.1f} s")
        handle_ms, per_call_ms = [], []
        for _ in range(a.rounds):
            with vdb_core.Store(target, collection="bench") as store:
                store.search(QUERIES[0], limit=10)  # the model loads on first use; not timed
                t = time.perf_counter()
                for i in range(a.queries):
                    store.search(QUERIES[i % len(QUERIES)], limit=10)
                handle_ms.append((time.perf_counter() - t) * 1000 / a.queries)
            t = time.perf_counter()
            for i in range(a.per_call_queries):
                # Today's shortcuts share a loaded model; a per-call path as before loads its own.
                with vdb_core.Store(target, collection="bench", embedder=vdb_core.Embedder()) as s:
                    s.search(QUERIES[i % len(QUERIES)], limit=10)
            per_call_ms.append((time.perf_counter() - t) * 1000 / a.per_call_queries)
            print(f"round: handle {handle_ms[-1]:.1f} ms/query, per call {per_call_ms[-1]:.1f} ms/query")
        h, p = statistics.median(handle_ms), statistics.median(per_call_ms)
        print(f"median: one Store {h:.1f} ms/query vs open-per-call {p:.1f} ms/query: {p / h:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
