"""What the BM25 sparse vector costs and what it finds: ingest with and without it, in ONE run.

    python bench/hybrid_bench.py [--rows 10000] [--rounds 3] [--threads 2]

Prints where it ran first (the CPU model and the kernels the embedder runs, as embed_bench.py does).
Then:

1. **Ingest cost.** The sample file (``--rows`` sentences plus the labelled answers below) is ingested
   into a fresh embedded collection with the BM25 vector and without it, alternating, ``--rounds``
   times, with one embedder loaded once. Prints each round's wall time, the median ratio (with /
   without) of the whole ingest and of its load step (where the BM25 vectors are computed and
   written).
2. **Size.** BM25 bytes per point: 8 bytes (a u32 index and an f32 value) per distinct token, the
   mean over the file (what Qdrant stores for the sparse vector, before its index).
3. **Recall@10** of dense, sparse, hybrid (RRF) and hybrid (DBSF) search on a labelled set hidden
   among the sample sentences: ``RARE`` queries whose answer holds an exact rare word (a code, a
   place, a rule number) and ``PARAPHRASE`` queries that share no word with their answer.

Nothing here is a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

# (answer sentence, query): the answer holds a word found nowhere else in the file.
RARE = [
    ("A fire at our Tianjin plant could interrupt deliveries for several months.", "Tianjin plant"),
    ("Our broker-dealer subsidiary must comply with Rule 15c3-3 on customer reserves.", "Rule 15c3-3"),
    ("The transition away from LIBOR may increase the interest we pay on our term loans.", "LIBOR transition"),
    ("Our Kentucky bourbon inventory ages for at least four years before sale.", "bourbon inventory"),
    ("A strike at the Rotterdam terminal delayed our shipments to Europe.", "Rotterdam strike"),
    ("We rely on a single supplier of gallium nitride wafers for our power chips.", "gallium nitride"),
    ("Our Medicare Advantage margins depend on CMS star ratings.", "CMS star ratings"),
    ("The EU Digital Markets Act may require changes to our app store.", "Digital Markets Act"),
    ("Hurricane damage to our Galveston refinery reduced throughput.", "Galveston refinery"),
    ("Our lithium offtake agreement with Albemarle expires in 2027.", "Albemarle offtake"),
    ("A recall of our Zantac products led to product liability claims.", "Zantac liability"),
    ("Basel III endgame rules could raise our capital requirements.", "Basel III endgame"),
    ("Our Permian Basin acreage holds most of our proved reserves.", "Permian acreage"),
    ("The FDA issued a complete response letter for our lead biosimilar.", "complete response letter biosimilar"),
    ("We hedge our exposure to the Brazilian real with currency forwards.", "Brazilian real hedge"),
    ("Section 232 tariffs on imported steel raised our input costs.", "Section 232 tariffs"),
]

# (answer sentence, query): no word in common after stop words and stemming.
PARAPHRASE = [
    (
        "We may be unable to repay our debt obligations when they mature.",
        "might not manage to pay back money it borrowed",
    ),
    ("The loss of key executives could harm our business.", "if top leaders quit things would suffer"),
    ("Our stock price has been volatile and may decline.", "shares swing wildly and could fall"),
    ("Cyber attacks could expose confidential customer information.", "hackers might leak private client records"),
    (
        "We depend on a small number of customers for most of our revenue.",
        "a handful of buyers bring in nearly all sales",
    ),
    ("Severe weather may disrupt our manufacturing operations.", "storms might halt factory work"),
    ("New competitors may offer lower prices than we do.", "rival entrants could undercut us"),
    ("We may need additional financing that might not be available.", "extra funding could prove impossible to obtain"),
    ("Our insurance coverage may be inadequate for certain losses.", "policies might fail to pay enough after damage"),
    (
        "Changes in tax law could raise our effective rate.",
        "new fiscal legislation might lift what we owe the government",
    ),
    ("We face lawsuits that could result in large judgments.", "courts might order big payouts against us"),
    ("Our growth strategy depends on successful acquisitions.", "expanding relies on buying other firms well"),
    ("Labor shortages could increase wages and delay projects.", "too few workers pushes pay up and slows jobs"),
    ("Inflation may reduce consumer spending on our products.", "rising prices could make shoppers buy less"),
    ("Our international sales are exposed to currency fluctuations.", "foreign revenue shifts with exchange moves"),
    ("Product defects could damage our reputation.", "faulty goods might hurt how people see us"),
]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown CPU"


def write_input(path: str, rows: int) -> tuple[int, list[tuple[str, str, str]]]:
    """The sample file plus the labelled answers; returns (rows, [(kind, query, answer id)])."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import vdb_core

    vdb_core.sample_data(path, rows=rows, seed=7)
    t = pq.read_table(path)
    extra = [("rare", a, q) for a, q in RARE] + [("paraphrase", a, q) for a, q in PARAPHRASE]
    cols = {name: t.column(name).to_pylist() for name in t.column_names}
    labels = []
    for i, (kind, answer, query) in enumerate(extra):
        for name in cols:
            cols[name].append(cols[name][i])  # the payload of some sample row
        cols["sentence"][-1] = answer
        cols["filing_id"][-1] = f"labelled-{i}"
        cols["sentence_index"][-1] = 0
        labels.append((kind, query, answer))
    pq.write_table(pa.table(cols, schema=t.schema), path)
    return len(cols["sentence"]), labels


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    import pyarrow.parquet as pq
    import vdb_core
    from vdb_core import _native

    embedder = vdb_core.Embedder(threads=args.threads)
    print(f"CPU: {cpu_model()}")
    print(f"kernels: {embedder.kernels}  (cpu_info: {vdb_core.cpu_info()})")
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "in.parquet")
        rows, labels = write_input(data, args.rows)
        print(f"input: {rows} sentences ({args.rows} sample + {len(labels)} labelled answers)")

        # 1. Ingest with and without BM25, alternating.
        walls: dict[bool, list[float]] = {True: [], False: []}
        loads: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.rounds):
            for sparse in (True, False) if r % 2 == 0 else (False, True):
                tag = f"r{r}-{'bm25' if sparse else 'dense'}"
                target = vdb_core.store_target(store_path=os.path.join(d, tag, "store"))
                started = time.perf_counter()
                res = vdb_core.ingest(
                    data,
                    run_dir=os.path.join(d, tag, "run"),
                    collection="b",
                    target=target,
                    embedder=embedder,
                    sparse=sparse,
                )
                walls[sparse].append(time.perf_counter() - started)
                loads[sparse].append(res["report"]["steps"]["load"]["seconds"])
                print(
                    f"round {r} {'with BM25   ' if sparse else 'dense only '} ingest {walls[sparse][-1]:7.1f} s, "
                    f"load step {loads[sparse][-1]:6.2f} s"
                )
        ratio = statistics.median(walls[True]) / statistics.median(walls[False])
        load_ratio = statistics.median(loads[True]) / statistics.median(loads[False])
        print(f"median ingest with/without BM25: {ratio:.3f} (+{(ratio - 1) * 100:.1f}%); load step {load_ratio:.2f}x")

        # 2. Bytes per point.
        texts = pq.read_table(data, columns=["sentence"]).column("sentence").to_pylist()
        nnz = [len(_native.bm25(t)[0]) for t in texts]
        print(
            f"BM25 vector: {statistics.mean(nnz):.1f} distinct tokens per sentence = {8 * statistics.mean(nnz):.0f} "
            f"bytes per point (dense: {4 * 384} bytes)"
        )

        # 3. Recall@10 on the labelled set (the last round's hybrid collection).
        target = vdb_core.store_target(store_path=os.path.join(d, f"r{args.rounds - 1}-bm25", "store"))
        with vdb_core.Store(target, embedder=embedder, collection="b") as s:
            print(
                f"recall@10 over {len(labels)} labelled queries ({len(RARE)} rare-word, {len(PARAPHRASE)} paraphrase):"
            )
            for mode, fusion in (("dense", "rrf"), ("sparse", "rrf"), ("hybrid", "rrf"), ("hybrid", "dbsf")):
                found = {"rare": 0, "paraphrase": 0}
                for kind, query, answer in labels:
                    hits = s.search(query, limit=10, mode=mode, fusion=fusion)
                    found[kind] += any(h["payload"]["text"] == answer for h in hits)
                total = sum(found.values()) / len(labels)
                name = mode if mode != "hybrid" else f"hybrid {fusion}"
                print(
                    f"  {name:<12} {total:.2f}  (rare-word {found['rare']}/{len(RARE)}, "
                    f"paraphrase {found['paraphrase']}/{len(PARAPHRASE)})"
                )


if __name__ == "__main__":
    main()
