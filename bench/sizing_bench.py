"""CPU sizing point for Airflow workers (not a test): on this machine's cores, is it faster to run
one embed task with all threads at a time, or one single-threaded embed task per core?

    python bench/sizing_bench.py [--rows-per-shard 1024] [--rounds 3] [--precision float32|int8]

Plans 2 x ROWS_PER_SHARD sample rows into two shards once, then, alternating the two
configurations ROUNDS times (after one untimed warm-up of each), embeds both shards from a fresh
copy of that run directory, every shard in its own process (as Airflow runs each task):
  A  "1 task x 2 threads":  shard 0 then shard 1, one process at a time, VDB_THREADS=2
  B  "2 tasks x 1 thread":  shard 0 and shard 1 in two processes at once, VDB_THREADS=1
The command of every process is the same (`embed_shard` of one shard, model load included).
Prints sentences/s of each trial (both shards' rows / wall time from the first start to the last
exit), the medians and their ratio, the CPU model, and how busy the machine was otherwise during
each trial: the share of the machine's CPU time (/proc/stat) not used by the benchmark's processes.
A round is "quiet" when that share stayed under --quiet (10%) in both of its trials; the summary
gives the medians over all rounds and over the quiet rounds alone (other engineers' compiles on a
shared machine slow the two configurations unequally).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EMBED = "import sys, vdb_core; vdb_core.embed_shard(sys.argv[1], int(sys.argv[2]), vdb_core.Embedder())"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


def children_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def trial(base: Path, work: Path, threads: int, concurrent: bool) -> tuple[float, float]:
    """(wall seconds, share of the machine's CPU used by other processes) for both shards."""
    run = work / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(base, run)
    env = {**os.environ, "VDB_THREADS": str(threads)}
    busy0, total0 = machine_cpu_seconds()
    ours0 = children_cpu_seconds()
    t = time.perf_counter()
    if concurrent:
        procs = [subprocess.Popen([sys.executable, "-c", EMBED, str(run), str(s)], env=env) for s in (0, 1)]
        codes = [p.wait() for p in procs]
    else:
        codes = [subprocess.run([sys.executable, "-c", EMBED, str(run), str(s)], env=env).returncode for s in (0, 1)]
    wall = time.perf_counter() - t
    busy1, total1 = machine_cpu_seconds()
    assert codes == [0, 0], codes
    others = max(0.0, (busy1 - busy0) - (children_cpu_seconds() - ours0))
    return wall, others / max(total1 - total0, 1e-9)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows-per-shard", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--precision", choices=["float32", "int8"], default="float32")
    ap.add_argument("--quiet", type=float, default=0.10, help="most CPU share of other processes in a quiet round")
    args = ap.parse_args()
    os.environ["VDB_PRECISION"] = args.precision

    import vdb_core

    cores = len(os.sched_getaffinity(0))
    print(f"CPU: {cpu_model()}; {cores} cores usable; {os.cpu_count()} online")
    if cores != 2:
        print(f"note: the configurations are written for 2 cores, this process may use {cores}")
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="vdb-sizing-") as tmp:
        tmp = Path(tmp)
        rows = 2 * args.rows_per_shard
        vdb_core.sample_data(tmp / "in.parquet", rows=rows, seed=3)
        planned = vdb_core.plan(tmp / "base", tmp / "in.parquet", shard_rows=args.rows_per_shard)
        assert planned["shards"] == [0, 1] and planned["rows_valid"] == rows, planned
        configs = {"A 1 task x 2 threads": (2, False), "B 2 tasks x 1 thread": (1, True)}
        rounds: list[tuple[float, float, bool]] = []  # (A sentences/s, B sentences/s, quiet)
        for round_ in range(args.rounds + 1):
            rates, quiet = [], True
            for name, (threads, concurrent) in configs.items():
                wall, others = trial(tmp / "base", tmp, threads, concurrent)
                label = "warm-up" if round_ == 0 else f"round {round_}"
                print(f"{label:8} {name}: {wall:6.2f} s = {rows / wall:6.1f} sentences/s (others used {others:.0%})")
                rates.append(rows / wall)
                quiet = quiet and others <= args.quiet
            if round_:
                rounds.append((rates[0], rates[1], quiet))
        print(f"load average after: {os.getloadavg()}")
        for label, chosen in (("all", rounds), ("quiet", [r for r in rounds if r[2]])):
            if not chosen:
                print(f"median over {label} rounds: none")
                continue
            a, b = statistics.median(r[0] for r in chosen), statistics.median(r[1] for r in chosen)
            print(
                f"median over {len(chosen)} {label} rounds ({args.precision}, {rows} sentences): "
                f"A {a:.1f}, B {b:.1f} sentences/s; B/A = {b / a:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
