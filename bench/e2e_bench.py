"""End-to-end benchmark of `vdb ingest` (not a test).

    python bench/e2e_bench.py [--rows 200000] [--big-rows 2000000] [--big-shards 1] [--threads N]
                              [--precision float32|int8]

1. Generates ROWS sample rows and runs `vdb ingest` into a fresh embedded store in a child
   process; prints wall time, per-step time and rate (from the run's report.json), sentences/s,
   the share of wall time spent embedding, and the child's peak RSS (wait4 rusage).
   With `--server`, the same ingest goes to the test-support Qdrant gRPC server (started on a free
   port, `target/debug/qdrant_test_server`): the worker's own memory and time, as with
   the Qdrant server of docker-compose (which then builds its index in its own process).
2. Generates BIG_ROWS rows and, in a child process, plans them all (streaming split into shards)
   then embeds + loads only the first BIG_SHARDS shards: peak RSS must stay flat in input size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIG_SCRIPT = r"""
import sys, vdb_core
src, run, store, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
target = vdb_core.store_target(store_path=store)
p = vdb_core.plan(run, src, progress="lines")
e = vdb_core.Embedder()
for s in p["shards"][:n]:
    vdb_core.embed_shard(run, s, e, progress="lines")
vdb_core.ensure_collection(run, "big", target=target)
for s in p["shards"][:n]:
    vdb_core.load_shard(run, s, "big", target=target)
print("planned", len(p["shards"]), "shards,", p["rows_valid"], "rows; embedded+loaded", n)
"""


def run_child(cmd: list[str], env: dict) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of a child process."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - t, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--big-rows", type=int, default=2_000_000)
    ap.add_argument("--big-shards", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precision", choices=["float32", "int8"], default=None)
    ap.add_argument(
        "--server", action="store_true", help="ingest into the test gRPC server instead of the embedded store"
    )
    ap.add_argument(
        "--server-bin",
        type=Path,
        default=Path(os.environ.get("CARGO_TARGET_DIR", Path(__file__).resolve().parents[1] / "target"))
        / "debug"
        / "qdrant_test_server",
    )
    ap.add_argument("--skip-big", action="store_true", help="skip part 2")
    args = ap.parse_args()
    vdb = str(Path(sys.executable).parent / "vdb")
    env = {**os.environ}
    if args.threads:
        env["VDB_THREADS"] = str(args.threads)
    if args.precision:
        env["VDB_PRECISION"] = args.precision

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        src = d / "sample.parquet"
        subprocess.run([vdb, "sample-data", "--rows", str(args.rows), "--out", str(src)], check=True)
        run = d / "run"
        server = None
        if args.server:
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            from store_bench import TestServer

            server = TestServer(args.server_bin, d / "server")
            where = ["--qdrant-url", server.url]
        else:
            where = ["--store", str(d / "store")]
        try:
            wall, rss, code = run_child(
                [vdb, "ingest", str(src), *where, "--run-dir", str(run), "--collection", "bench"], env
            )
        finally:
            if server:
                server.stop()
        if code != 0:
            print(f"vdb ingest failed with exit code {code}")
            return 1
        report = json.loads((run / "report.json").read_text())
        print(f"\n== vdb ingest, {args.rows} rows, {'test gRPC server' if args.server else 'embedded store'} ==")
        print(f"wall {wall:.1f}s, {report['rows_valid'] / wall:.1f} sentences/s end to end, peak RSS {rss:.0f} MiB")
        for step, st in report["steps"].items():
            rate = st["rows"] / st["seconds"] if st["seconds"] else 0
            print(
                f"  {step:<7} {st['seconds']:8.1f}s {rate:10.1f} rows/s  ({100 * st['seconds'] / wall:4.1f}% of wall)"
            )

        if args.skip_big:
            return 0
        big = d / "big.parquet"
        subprocess.run([vdb, "sample-data", "--rows", str(args.big_rows), "--out", str(big)], check=True)
        wall_b, rss_b, code = run_child(
            [sys.executable, "-c", BIG_SCRIPT, str(big), str(d / "bigrun"), str(d / "bigstore"), str(args.big_shards)],
            env,
        )
        print(f"\n== {args.big_rows} rows planned, {args.big_shards} shard(s) embedded+loaded ==")
        print(f"wall {wall_b:.1f}s, peak RSS {rss_b:.0f} MiB (vs {rss:.0f} MiB for the {args.rows}-row ingest)")
        return code


if __name__ == "__main__":
    sys.exit(main())
