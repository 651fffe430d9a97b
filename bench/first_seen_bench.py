"""What keeping `_vdb_first_seen` costs an ingest: with and without it, alternating, in ONE run.

    python bench/first_seen_bench.py [--rows 10000] [--years 5] [--rounds 3] [--threads 2]

Prints the CPU and the embedder's kernels first. Writes `vdb sample-data --yearly` filings (every
sample company, ``--years`` consecutive years, 30% of the sentences changed each year) and ingests
them into a fresh embedded collection with ``changes_scope=["ticker"], changes_order="fiscal_year"``
and without, alternating, ``--rounds`` times with one embedder loaded once; prints each round's wall
time and the median ratio. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--years", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import vdb_core

    embedder = vdb_core.Embedder(threads=args.threads)
    print(f"CPU: {cpu_model()}")
    print(f"kernels: {embedder.kernels}")
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "yearly.parquet")
        info = vdb_core.sample_data(data, rows=args.rows, yearly=args.years, change_rate=0.3)
        print(f"input: {info['rows']} sentences, {info['filings']} filings ({args.years} years, 30% changed a year)")
        walls: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.rounds):
            for track in (True, False) if r % 2 == 0 else (False, True):
                tag = f"r{r}-{'track' if track else 'plain'}"
                target = vdb_core.store_target(store_path=os.path.join(d, tag, "store"))
                extra = {"changes_scope": ["ticker"], "changes_order": "fiscal_year"} if track else {}
                started = time.perf_counter()
                vdb_core.ingest(
                    data, run_dir=os.path.join(d, tag, "run"), collection="b", target=target, embedder=embedder, **extra
                )
                walls[track].append(time.perf_counter() - started)
                print(f"round {r} {'with _vdb_first_seen' if track else 'without          '} {walls[track][-1]:7.1f} s")
        ratio = statistics.median(walls[True]) / statistics.median(walls[False])
        print(f"median ingest with/without _vdb_first_seen: {ratio:.3f} (+{(ratio - 1) * 100:.1f}%)")


if __name__ == "__main__":
    main()
