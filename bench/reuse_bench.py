"""Benchmark of vector reuse (not a test): two consecutive "yearly" ingests into one collection,
with reuse on (the default) and off (`reuse=False`, every row embedded), alternating, in this one
process.

    python bench/reuse_bench.py [--rows 4000] [--duplicate-rate 0.6] [--repeat 0.6] [--rounds 1]
                                [--threads N] [--precision float32|int8]

Year 1 is `vdb sample-data --duplicate-rate R` (a share R of the sentences repeats an earlier
sentence of the same company). Year 2 is year 1's filings filed again a year later (new filing
ids): a share REPEAT of its sentences are year 1's, the rest new. Both years go into a fresh
embedded store per configuration. Prints the CPU, each ingest's wall time, texts embedded and
reused, and the ratio reuse-off / reuse-on. `--unique --repeat 0` makes every sentence distinct
(the sample's templates repeat some by chance): what reuse costs when nothing repeats.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import vdb_core


def next_year(year1: Path, fresh: Path, out: Path, repeat: float) -> None:
    """Year 1's rows with new filing ids; rows whose position hash falls above `repeat` get the
    sentence of the same row of `fresh` (another sample) instead."""
    t = pq.read_table(year1)
    new = pq.read_table(fresh).column("sentence")
    n = t.num_rows
    keep = pa.array([((i * 2654435761) % 1000) / 1000 < repeat for i in range(n)])
    sentences = pc.if_else(keep, t.column("sentence"), new.slice(0, n))
    t = t.set_column(t.schema.get_field_index("sentence"), "sentence", sentences)
    ids = pc.binary_join_element_wise(t.column("filing_id"), pa.scalar("-next"), "")
    t = t.set_column(t.schema.get_field_index("filing_id"), "filing_id", ids)
    t = t.set_column(t.schema.get_field_index("fiscal_year"), "fiscal_year", pc.add(t.column("fiscal_year"), 1))
    pq.write_table(t, out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=4000)
    ap.add_argument("--duplicate-rate", type=float, default=0.6)
    ap.add_argument("--repeat", type=float, default=0.6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--unique", action="store_true", help="make every sentence distinct (suffix with its id)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--precision", choices=["float32", "int8", "bf16"], default=None)
    a = ap.parse_args()

    cpu = vdb_core.cpu_info()
    kernels = ", ".join(f"{k} {cpu[k]}" for k in ("f32_gemm", "int8", "bf16"))
    print(f"CPU: {cpu['cpu']} ({', '.join(cpu['features'])}); kernels: {kernels}; vdb_core {vdb_core.__version__}")
    embedder = vdb_core.Embedder(threads=a.threads, precision=a.precision)
    print(f"model {embedder.model_id}, precision {embedder.precision}")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        y1, fresh, y2 = d / "year1.parquet", d / "fresh.parquet", d / "year2.parquet"
        vdb_core.sample_data(y1, rows=a.rows, seed=1, duplicate_rate=a.duplicate_rate)
        vdb_core.sample_data(fresh, rows=a.rows, seed=2)
        if a.unique:
            for path, tag in ((y1, "a"), (fresh, "b")):
                t = pq.read_table(path)
                ids = pc.binary_join_element_wise(
                    pa.scalar(f" [{tag}"),
                    t.column("filing_id"),
                    pc.cast(t.column("sentence_index"), pa.string()),
                    pa.scalar("]"),
                    "",
                )
                text = pc.binary_join_element_wise(t.column("sentence"), ids, "")
                pq.write_table(t.set_column(t.schema.get_field_index("sentence"), "sentence", text), path)
        next_year(y1, fresh, y2, a.repeat)
        totals = {True: 0.0, False: 0.0}
        for r in range(a.rounds):
            for reuse in (True, False):
                store = d / f"store-{r}-{reuse}"
                target = vdb_core.store_target(store_path=store)
                wall = 0.0
                for year, path in (("year 1", y1), ("year 2", y2)):
                    t = time.perf_counter()
                    res = vdb_core.ingest(
                        path,
                        run_dir=d / f"run-{r}-{reuse}-{year}",
                        collection="bench",
                        target=target,
                        embedder=embedder,
                        reuse=reuse,
                    )
                    s = time.perf_counter() - t
                    wall += s
                    rep = res["report"]
                    print(
                        f"round {r} reuse={'on ' if reuse else 'off'} {year}: {s:7.1f} s  rows {rep['rows_valid']}"
                        f"  distinct {rep['distinct_texts']}  embedded {rep['texts_embedded']}"
                        f"  reused {rep['vectors_reused']}  collection {rep['collection_count']}"
                    )
                totals[reuse] += wall
        print(
            f"both years, {a.rounds} round(s): reuse on {totals[True]:.1f} s, off {totals[False]:.1f} s: "
            f"off/on = {totals[False] / totals[True]:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
