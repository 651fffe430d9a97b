"""Bulk-load benchmark (not a test): vdb_core's load step against the Python qdrant-client.

In ONE run, on the same points (one embedded shard of the sample SEC data: ids, 384-d vectors,
payloads), it measures points/s of

- vdb_core ``load_shard`` into the embedded store (qdrant-edge, in-process), and the Python
  ``qdrant-client`` ``upload_points`` into its local mode (``QdrantClient(path=...)``): the
  embedded comparison;
- vdb_core ``load_shard`` into the test-support gRPC server (the Qdrant gRPC API on qdrant-edge,
  ``target/debug/qdrant_test_server``), and ``qdrant-client`` ``upload_points`` over gRPC
  into the same server: the server comparison;

prints the ratios, and the load time as a share of the time it took to embed the same rows
(target: under 10%). Baselines that are not installed (``pip install qdrant-client``) are
skipped, saying so.

    python bench/store_bench.py --rows 20000 [--precision int8] [--server-bin PATH]

vdb_core loads as the pipeline does: collection with payload indexes created first, HNSW indexing
deferred during the load (``m=0``) and the index built once by ``restore_indexing`` (timed separately).
The baselines upload into a collection with the same settings (``m=0``), batch 128, ``wait=True``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import vdb_core

COLLECTION = "bench"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TestServer:
    """The test-support Qdrant gRPC server, on a free loopback port."""

    def __init__(self, binary: Path, storage: Path) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(binary), "--port", str(self.port), "--storage", str(storage)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the test server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def copy_run(src: Path, dst: Path) -> Path:
    """A fresh copy of the embedded run directory (the manifest records loads per run)."""
    shutil.copytree(src, dst)
    return dst


def vdb_load(run: Path, target: dict) -> tuple[float, float, int]:
    """Seconds to load (ensure + load_shard) and to build the index (restore_indexing), and the count."""
    t0 = time.perf_counter()
    vdb_core.ensure_collection(run, COLLECTION, target=target, recreate=True)
    r = vdb_core.load_shard(run, 0, COLLECTION, target=target)
    t1 = time.perf_counter()
    vdb_core.restore_indexing(COLLECTION, target=target)
    t2 = time.perf_counter()
    assert r["points"] > 0, r
    return t1 - t0, t2 - t1, vdb_core.count(COLLECTION, target=target)


def shard_points(run: Path):
    """The embedded shard as qdrant-client PointStructs: the same ids, vectors and payloads
    (``text`` + payload columns, dates as ISO strings) that vdb_core loads."""
    import pyarrow.ipc as ipc
    from qdrant_client import models

    with ipc.open_file(run / "embedded" / "shard-00000.arrow") as f:
        table = f.read_all()
    cols = [c for c in table.column_names if c not in ("id", "row", "text", "embedding")]
    ids = table.column("id").to_pylist()
    texts = table.column("text").to_pylist()
    vectors = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(len(ids), -1)
    values = {c: table.column(c).to_pylist() for c in cols}
    points = []
    for i, pid in enumerate(ids):
        payload = {"text": texts[i]}
        for c in cols:
            v = values[c][i]
            payload[c] = v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v
        points.append(models.PointStruct(id=pid, vector=vectors[i].tolist(), payload=payload))
    return points


def client_load(client, points, dim: int) -> tuple[float, int]:
    from qdrant_client import models

    if client.collection_exists(COLLECTION):
        client.delete_collection(COLLECTION)
    client.create_collection(
        COLLECTION,
        vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
        hnsw_config=models.HnswConfigDiff(m=0),
    )
    t0 = time.perf_counter()
    client.upload_points(COLLECTION, points, batch_size=128, parallel=1, wait=True)
    t1 = time.perf_counter()
    return t1 - t0, client.count(COLLECTION, exact=True).count


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--precision", default="float32", help="embedding precision for the setup step")
    ap.add_argument("--threads", type=int, default=None)
    target_dir = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    ap.add_argument("--server-bin", type=Path, default=target_dir / "debug" / "qdrant_test_server")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="vdb-store-bench-"))
    print(f"{args.rows} rows, CPUs {os.cpu_count()}, work dir {tmp}")
    try:
        parquet = tmp / "sample.parquet"
        vdb_core.sample_data(parquet, rows=args.rows, seed=7)
        base = tmp / "run-base"
        vdb_core.plan(base, parquet, shard_rows=args.rows)
        embedder = vdb_core.Embedder(threads=args.threads, precision=args.precision)
        t0 = time.perf_counter()
        e = vdb_core.embed_shard(base, 0, embedder)
        embed_s = time.perf_counter() - t0
        n = e["rows"]
        print(f"embed ({args.precision}): {n} rows in {embed_s:.1f} s = {n / embed_s:.0f} sentences/s\n")

        try:
            from qdrant_client import QdrantClient
        except ImportError:
            QdrantClient = None
            print("baseline skipped: the Python qdrant-client is not installed (pip install qdrant-client)\n")
        points = shard_points(base) if QdrantClient else None

        rows = []  # (target, vdb load s, vdb index s, client s or None)
        # Embedded: qdrant-edge in-process vs qdrant-client local mode.
        load_s, index_s, count = vdb_load(
            copy_run(base, tmp / "run-edge"), vdb_core.store_target(store_path=tmp / "edge")
        )
        assert count == n, (count, n)
        client_s = None
        if QdrantClient:
            client = QdrantClient(path=str(tmp / "local"))
            client_s, c = client_load(client, points, embedder.dim)
            client.close()
            assert c == n, (c, n)
        rows.append(("embedded (qdrant-edge) vs qdrant-client local mode", load_s, index_s, client_s))

        # Server: the gRPC test server (Qdrant's API on qdrant-edge) for both.
        if args.server_bin.exists():
            server = TestServer(args.server_bin, tmp / "server")
            try:
                load_s, index_s, count = vdb_load(
                    copy_run(base, tmp / "run-server"), vdb_core.store_target(qdrant_url=server.url)
                )
                assert count == n, (count, n)
                client_s = None
                if QdrantClient:
                    client = QdrantClient(
                        host="127.0.0.1", grpc_port=server.port, prefer_grpc=True, check_compatibility=False
                    )
                    client_s, c = client_load(client, points, embedder.dim)
                    client.close()
                    assert c == n, (c, n)
                rows.append(("server (gRPC test server) vs qdrant-client gRPC", load_s, index_s, client_s))
            finally:
                server.stop()
        else:
            print(f"server comparison skipped: no test server binary at {args.server_bin} (cargo build --workspace)\n")

        print(
            f"{'target':52} {'vdb_core pts/s':>14} {'client pts/s':>12} {'ratio':>6} {'index s':>8} {'load/embed':>10}"
        )
        for name, load_s, index_s, client_s in rows:
            cps = f"{n / client_s:12.0f}" if client_s else f"{'-':>12}"
            ratio = f"{client_s / load_s:5.1f}x" if client_s else f"{'-':>6}"
            share = 100 * (load_s + index_s) / embed_s
            print(f"{name:52} {n / load_s:14.0f} {cps} {ratio} {index_s:8.1f} {share:9.1f}%")
        print(
            "\nratio = vdb_core points/s / qdrant-client points/s on the same points;"
            " load/embed = (load + index build) time / embedding time of the same rows."
        )
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
