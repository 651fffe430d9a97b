"""vdb_core on a GPU vs sentence-transformers on the same GPU (run through bench/gpu_check.sh).

1. Where: the GPU (name, memory), torch's CUDA, vdb_core's build (CUDA_BUILT) and device.
2. Parity on the golden sentences (tests/fixtures/golden_minilm.json, sentence-transformers' own
   float32 vectors): vdb_core on cuda:0 in float32 (min cosine >= 0.9999), float16 and bf16
   (>= 0.999); sentence-transformers on the GPU against the same vectors (a check of the trimmed
   model folder). Each line says PASS or FAIL; any FAIL makes the exit code 1.
3. Throughput on the sample sentences (texts.json in the model tarball, `--sentences` of them):
   sentences/s of vdb_core float32 / float16 / bf16 and sentence-transformers float32 / float16
   (`model.half()`), each at the batch sizes of `--batch-sizes`, best of `--rounds` after a warm-up,
   and each one's ratio to sentence-transformers float16 at the same batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def best_rate(encode, texts: list[str], rounds: int) -> float:
    encode(texts[:256])  # warm-up: kernels loaded (PTX compiled by the driver), memory pools grown
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        out = encode(texts)
        elapsed = time.perf_counter() - t
        assert len(out) == len(texts)
        best = max(best, len(texts) / elapsed)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the model folder (bench/gpu_prep.py's, unpacked)")
    ap.add_argument("--sentences", type=int, default=8192)
    ap.add_argument("--batch-sizes", default="128,512")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]

    import torch
    import vdb_core

    print(f"python {sys.version.split()[0]}, torch {torch.__version__} (CUDA {torch.version.cuda})")
    print(f"GPU: {torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB")
    print(f"vdb_core {vdb_core.__version__}, CUDA_BUILT={vdb_core.CUDA_BUILT}")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        SentenceTransformer = None
        print("sentence-transformers is not installed: only vdb_core's numbers and the golden vectors")

    golden = json.loads((ROOT / "tests" / "fixtures" / "golden_minilm.json").read_text())
    g_texts = [i["text"] for i in golden["items"]]
    g_want = np.array([i["vector"] for i in golden["items"]], dtype=np.float32)
    texts = json.loads((Path(args.model) / "texts.json").read_text())
    assert texts["golden"] == g_texts, "texts.json is from another golden file: run make gpu-prep again"
    sample = texts["sample"][: args.sentences]
    tokens = None
    failed = False

    print("\n== parity on the golden sentences (min cosine to sentence-transformers' float32 vectors)")
    engines: dict[str, object] = {}
    for precision, floor in [("float32", 0.9999), ("float16", 0.999), ("bf16", 0.999)]:
        t = time.perf_counter()
        e = vdb_core.Embedder(args.model, precision=precision, device="cuda:0")
        load = time.perf_counter() - t
        assert e.device == "cuda:0", e.device
        got = e.encode(g_texts, batch_size=64)
        c = cosines(got, g_want)
        ok = bool(np.isfinite(got).all()) and c.min() >= floor
        failed |= not ok
        print(
            f"{'PASS' if ok else 'FAIL'} vdb_core cuda:0 {precision:8s} min {c.min():.6f} mean {c.mean():.6f} "
            f"(floor {floor}; max |diff| {np.abs(got - g_want).max():.2e}; loaded in {load:.1f}s; {e.model_id})"
        )
        engines[precision] = e
        if tokens is None:
            tokens = e._native.token_lengths(sample)
    if SentenceTransformer is not None:
        st = SentenceTransformer(args.model, device="cuda")
        got = st.encode(g_texts, batch_size=64, convert_to_numpy=True, normalize_embeddings=True)
        c = cosines(got, g_want)
        ok = c.min() >= 0.9999
        failed |= not ok
        print(f"{'PASS' if ok else 'FAIL'} sentence-transformers cuda float32 min {c.min():.6f} (the model folder)")
        vdb32 = engines["float32"].encode(g_texts, batch_size=64)
        print(
            f"     vdb_core float32 vs sentence-transformers float32 on this GPU: min {cosines(vdb32, got).min():.6f}"
        )

    print(
        f"\n== throughput: {len(sample)} sample sentences, mean {np.mean(tokens):.1f} tokens, "
        f"best of {args.rounds} rounds (sentences/s)"
    )
    rows = []
    st16 = SentenceTransformer(args.model, device="cuda").half() if SentenceTransformer is not None else None
    for bs in batch_sizes:
        rates: dict[str, float] = {}
        for precision, e in engines.items():
            rates[f"vdb_core {precision}"] = best_rate(
                lambda x, e=e, bs=bs: e.encode(x, batch_size=bs), sample, args.rounds
            )
        if SentenceTransformer is not None:
            for name, model in [("float32", st), ("float16", st16)]:

                def run(x, model=model, bs=bs):
                    out = model.encode(x, batch_size=bs, convert_to_numpy=True, normalize_embeddings=True)
                    torch.cuda.synchronize()
                    return out

                rates[f"sentence-transformers {name}"] = best_rate(run, sample, args.rounds)
        ref = rates.get("sentence-transformers float16")
        for name, rate in rates.items():
            ratio = f"{rate / ref:5.2f}x ST fp16" if ref else ""
            rows.append((bs, name, rate))
            print(f"batch {bs:5d}  {name:32s} {rate:10.0f}  {ratio}")
    if SentenceTransformer is not None:
        best_vdb = max(r for _, n, r in rows if n.startswith("vdb_core"))
        best_st16 = max(r for _, n, r in rows if n == "sentence-transformers float16")
        print(f"\nbest vdb_core / best sentence-transformers float16: {best_vdb / best_st16:.2f}x")
    out = os.environ.get("OUT")
    if out:
        Path(out, "gpu_check.json").write_text(json.dumps({"rows": rows, "failed": failed}))
    print("\nRESULT:", "FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
