"""Embedding throughput: vdb_core vs sentence-transformers, in ONE run on the same sentences.

    python bench/embed_bench.py [--sentences 2048] [--rounds 3] [--threads 2] [--no-int8] [--no-bf16]

Prints where it ran first: the CPU model (``/proc/cpuinfo``) and the kernel each matrix-product
path uses on it (``vdb_core.cpu_info()``, each engine's ``Embedder.kernels``). Then alternates the
engines (vdb_core float32, int8 and bf16 where the CPU has AVX512-BF16; sentence-transformers in
float32 and, where the CPU has bf16, under ``torch.autocast("cpu", dtype=torch.bfloat16)``)
``--rounds`` times and prints sentences/s of each round, the median and best ratios to
sentence-transformers float32 and to vdb_core float32 (on a shared machine the best round is the
least disturbed one), the cosine of each reduced precision to its float32 vectors, and vdb_core's
achieved GFLOP/s against the peak of the same GEMM code on the same instruction set:
the best of MiniLM's three linear-layer shapes run by vdb_core's own kernels
(``vdb_core._native.linear_gflops``; the `gemm` crate for float32). A baseline that is not
installed is skipped, saying so. Nothing here is a test: the numbers depend on the machine and on
what else runs on it.
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


# MiniLM's linear layers (inputs, outputs): QKV, FFN up, FFN down (the attention output is 384x384).
SHAPES = [(384, 1152), (384, 1536), (1536, 384)]


def gemm_peak(precision: str, tokens: int, threads: int) -> tuple[float, str]:
    """Best GFLOP/s of vdb_core's own `precision` GEMM over MiniLM's shapes, `tokens` rows."""
    from vdb_core import _native

    rates = {f"{tokens}x{i}x{o}": _native.linear_gflops(precision, tokens, i, o, threads) for i, o in SHAPES}
    best = max(rates, key=rates.get)
    return rates[best], best


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
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 modes (vdb_core and torch autocast)")
    ap.add_argument("--no-st", action="store_true", help="skip sentence-transformers even if installed")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.threads))

    import numpy as np
    import vdb_core

    info = vdb_core.cpu_info()
    cpu_bf16 = any(f in info["features"] for f in ("avx512_bf16", "amx_bf16"))
    print(f"CPU: {info['cpu']}; flags: {' '.join(info['features']) or '(none reported)'}")
    print(f"kernels here: float32 gemm {info['f32_gemm']}, int8 {info['int8']}, bf16 {info['bf16'] or 'none'}")

    texts = sentences(args.sentences)
    models = {"vdb_core float32": vdb_core.Embedder(threads=args.threads)}
    if not args.no_int8:
        models["vdb_core int8"] = vdb_core.Embedder(threads=args.threads, precision="int8")
    if args.no_bf16:
        pass
    elif info["bf16"] is None:
        print(f"vdb_core bf16 skipped: this CPU has no bf16 kernel ({info['cpu']})")
    else:
        models["vdb_core bf16"] = vdb_core.Embedder(threads=args.threads, precision="bf16")
    for name, m in models.items():
        print(f"  {name}: kernels {m.kernels}")
    engines = {k: (lambda t=texts, m=m: m.encode(t, batch_size=args.batch_size)) for k, m in models.items()}
    st = None
    if not args.no_st:
        try:
            import torch
            from sentence_transformers import SentenceTransformer

            torch.set_num_threads(args.threads)
            st = SentenceTransformer(vdb_core.default_model_dir(), device="cpu")
            engines["st float32"] = lambda t=texts: st.encode(t, batch_size=32)
            print(f"  sentence-transformers: torch {torch.__version__}, {torch.get_num_threads()} threads")
            if cpu_bf16 and not args.no_bf16:

                def st_bf16(t=texts):
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        return st.encode(t, batch_size=32)

                engines["st bf16 autocast"] = st_bf16
            elif not args.no_bf16:
                print("sentence-transformers bf16 autocast skipped: the CPU has no bf16 instructions")
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
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()) + " sentences/s")

    med = {k: statistics.median(v) for k, v in rates.items()}
    best = {k: max(v) for k, v in rates.items()}
    print(f"\n{len(texts)} sentences, {args.threads} threads, batch {args.batch_size}, CPU {info['cpu']}")
    for k, v in med.items():
        print(f"  {k:<22} median {v:7.1f}, best {best[k]:7.1f} sentences/s")
    for base, label in (("st float32", "sentence-transformers float32"), ("vdb_core float32", "vdb_core float32")):
        if base in med:
            for k in med:
                if k != base and not (base.startswith("vdb") and k.startswith("st")):
                    print(f"  ratio {k} / {label}: median {med[k] / med[base]:.2f}x, best {best[k] / best[base]:.2f}x")

    if "vdb_core bf16" in med and "st bf16 autocast" in med:
        m, b = med["vdb_core bf16"] / med["st bf16 autocast"], best["vdb_core bf16"] / best["st bf16 autocast"]
        print(f"  ratio vdb_core bf16 / sentence-transformers bf16 autocast: median {m:.2f}x, best {b:.2f}x")

    ref = models["vdb_core float32"].encode(texts)
    for k in ("vdb_core int8", "vdb_core bf16"):
        if k in models:
            cos = (ref * models[k].encode(texts)).sum(axis=1)
            print(f"  {k} vs vdb_core float32 cosine: mean {cos.mean():.6f}, min {cos.min():.6f}")
    if "st bf16 autocast" in engines:
        a = np.asarray(st.encode(texts, batch_size=32, normalize_embeddings=True), dtype=np.float32)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = np.asarray(st.encode(texts, batch_size=32, normalize_embeddings=True), dtype=np.float32)
        cos = (a * b).sum(axis=1)
        print(f"  st bf16 autocast vs st float32 cosine: mean {cos.mean():.6f}, min {cos.min():.6f}")

    lengths = models["vdb_core float32"]._native.token_lengths(texts)
    flops = sum(flops_per_sentence(n) for n in lengths)
    tokens = args.batch_size * round(sum(lengths) / len(lengths))
    print(f"  mean tokens {sum(lengths) / len(lengths):.1f}; GEMM peaks measured on {tokens}-row MiniLM shapes")
    for k, m in models.items():
        precision = m.precision
        isa = m.kernels["f32_gemm"] if precision == "float32" else m.kernels[precision]
        peak, shape = gemm_peak(precision, tokens, args.threads)
        achieved = flops / (len(texts) / med[k]) / 1e9
        print(
            f"  {k}: {achieved:.1f} GFLOP/s = {100 * achieved / peak:.0f}% of its own {precision} GEMM peak "
            f"{peak:.1f} GFLOP/s ({isa}, {shape})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
