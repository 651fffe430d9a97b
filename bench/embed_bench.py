"""Embedding throughput: vdb_core vs sentence-transformers, in ONE run on the same sentences.

    python bench/embed_bench.py [--sentences 2048] [--rounds 3] [--threads 2] [--no-int8]

Alternates the engines (vdb_core float32, vdb_core int8, sentence-transformers) `--rounds` times
and prints sentences/s of each round, the median ratios to sentence-transformers, the int8 mode's
cosine to the float32 vectors, and vdb_core's achieved GFLOP/s against the machine's measured
fp32 matmul peak (numpy sgemm with the same threads). A baseline that is not installed is skipped,
saying so. Nothing here is a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time


def sentences(n: int) -> list[str]:
    import pyarrow.parquet as pq
    import vdb_core

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "s.parquet")
        vdb_core.sample_data(p, rows=n, seed=11)
        return pq.read_table(p, columns=["sentence"]).column("sentence").to_pylist()


def matmul_peak_gflops() -> float:
    import numpy as np

    a = np.random.rand(2048, 2048).astype(np.float32)
    b = np.random.rand(2048, 2048).astype(np.float32)
    a @ b
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048**3 / (time.perf_counter() - t) / 1e9)
    return best


def flops_per_sentence(tokens: int, layers: int = 6, hidden: int = 384, ffn: int = 1536) -> float:
    """Multiply-adds of a BERT encoder for one sequence of `tokens` tokens, times 2."""
    per_token = layers * (4 * hidden * hidden + 2 * hidden * ffn) * 2
    attention = layers * 2 * 2 * tokens * tokens * hidden
    return per_token * tokens + attention


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 mode")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))

    import vdb_core

    texts = sentences(args.sentences)
    ours = vdb_core.Embedder(threads=args.threads)
    engines = {"vdb_core": lambda t=texts: ours.encode(t, batch_size=args.batch_size)}
    if not args.no_int8:
        fast = vdb_core.Embedder(threads=args.threads, precision="int8")
        engines["vdb_core int8"] = lambda t=texts: fast.encode(t, batch_size=args.batch_size)
    try:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(args.threads)
        st = SentenceTransformer(vdb_core.default_model_dir(), device="cpu")
        engines["sentence-transformers"] = lambda t=texts: st.encode(t, batch_size=32)
    except ImportError as e:
        print(f"sentence-transformers baseline skipped: not installed ({e.name})")

    for f in engines.values():  # warm-up: first-call allocations, thread pools
        f(texts[:64])
    rates: dict[str, list[float]] = {k: [] for k in engines}
    for r in range(args.rounds):
        for name, f in engines.items():
            t = time.perf_counter()
            f()
            rates[name].append(len(texts) / (time.perf_counter() - t))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} sentences/s" for k, v in rates.items()))

    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"\n{len(texts)} sentences, {args.threads} threads, batch {args.batch_size}")
    for k, v in med.items():
        print(f"  {k:<22} median {v:7.1f} sentences/s")
    if "sentence-transformers" in med:
        for k in med:
            if k.startswith("vdb_core"):
                print(f"  ratio {k} / sentence-transformers: {med[k] / med['sentence-transformers']:.2f}x")
    if "vdb_core int8" in engines:
        cos = (ours.encode(texts) * fast.encode(texts)).sum(axis=1)
        print(f"  int8 vs float32 cosine: mean {cos.mean():.5f}, min {cos.min():.5f}")
    if hasattr(ours._native, "token_lengths"):
        lengths = ours._native.token_lengths(texts)
        flops = sum(flops_per_sentence(n) for n in lengths)
        peak = matmul_peak_gflops()
        achieved = flops / (len(texts) / med["vdb_core"]) / 1e9
        print(
            f"  mean tokens {sum(lengths) / len(lengths):.1f}; vdb_core {achieved:.1f} GFLOP/s of a measured "
            f"{peak:.1f} GFLOP/s sgemm peak ({100 * achieved / peak:.0f}%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
