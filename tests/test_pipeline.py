"""The pipeline end to end on the real engines: embedded Qdrant and the test-support gRPC server."""

from __future__ import annotations

import fcntl
import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import vdb_core
from conftest import vdb_cli


def rewrite_manifest(path: Path, edit) -> None:
    """Edit a manifest as vdb_core would write it: its first member is the sha256 of the rest."""
    m = json.loads(path.read_text())
    m.pop("sha256")
    edit(m)
    body = json.dumps(m, indent=2, ensure_ascii=False)
    digest = hashlib.sha256(body.encode()).hexdigest()
    path.write_text('{\n  "sha256": "' + digest + '",\n' + body[2:])


def embedded(tmp_path: Path) -> dict:
    return vdb_core.store_target(store_path=tmp_path / "store")


def test_steps_alone_equal_the_chained_ingest(tmp_path, sample_parquet, embedder):
    # Steps one by one (as the DAG runs them) ...
    run, target = tmp_path / "steps", embedded(tmp_path / "a")
    planned = vdb_core.plan(run, sample_parquet, shard_rows=250)
    for s in planned["shards"]:
        assert vdb_core.embed_shard(run, s, embedder)["done_now"]
    vdb_core.ensure_collection(run, "c", target=target)
    loaded = [vdb_core.load_shard(run, s, "c", target=target) for s in planned["shards"]]
    vdb_core.restore_indexing("c", target=target, run_dir=run)
    report = vdb_core.verify(run, "c", target=target)
    assert sum(r["points"] for r in loaded) == 600 == report["points_verified"] == report["collection_count"]
    # Every step is in the report, the index build included (its rows: the points indexed).
    assert set(report["steps"]) == {"plan", "embed", "load", "restore_indexing", "verify"}
    assert report["steps"]["restore_indexing"]["rows"] == 600
    assert report["sample_search_ok"] and report["new_points"] == 600
    assert json.loads((run / "report.json").read_text())["rows_valid"] == 600

    # ... and chained (as the CLI runs them) give the same points.
    target_b = embedded(tmp_path / "b")
    result = vdb_core.ingest(
        sample_parquet, run_dir=tmp_path / "chained", collection="c", target=target_b, embedder=embedder, shard_rows=250
    )
    assert result["report"]["points_verified"] == 600
    assert set(result["report"]["steps"]) == set(report["steps"])
    some = [h["id"] for h in vdb_core.search_vector([0.05] * 384, "c", target=target, limit=20)]
    a = vdb_core.retrieve(some, "c", target=target)
    b = vdb_core.retrieve(some, "c", target=target_b)
    key = lambda h: h["id"]  # noqa: E731
    assert sorted(a, key=key) == sorted(b, key=key) and len(a) == 20


def test_rerun_skips_finished_work_and_never_duplicates(tmp_path, sample_parquet, embedder):
    target, run = embedded(tmp_path), tmp_path / "run"
    vdb_core.ingest(sample_parquet, run_dir=run, collection="c", target=target, embedder=embedder, shard_rows=250)
    again = vdb_core.ingest(
        sample_parquet, run_dir=run, collection="c", target=target, embedder=embedder, shard_rows=250
    )
    assert again["report"]["collection_count"] == 600
    # A fresh run of the same file: every point already exists, none is new, the count is unchanged.
    fresh = vdb_core.ingest(
        sample_parquet, run_dir=tmp_path / "run2", collection="c", target=target, embedder=embedder, shard_rows=250
    )
    assert fresh["report"]["new_points"] == 0 and vdb_core.count("c", target=target) == 600


def test_incremental_reingest_reports_new_points_and_updates_payloads(tmp_path, embedder):
    target = embedded(tmp_path)
    base = {
        "filing_id": ["f1"] * 3,
        "sentence_index": [0, 1, 2],
        "company": ["Old Co"] * 3,
        "sentence": ["Revenue grew strongly.", "Costs rose sharply.", "Cash declined."],
    }
    p1 = tmp_path / "v1.parquet"
    pq.write_table(pa.table(base), p1)
    vdb_core.ingest(p1, run_dir=tmp_path / "r1", collection="c", target=target, embedder=embedder)
    grown = {k: v + v[:0] for k, v in base.items()}
    grown["filing_id"] += ["f2", "f2"]
    grown["sentence_index"] += [0, 1]
    grown["company"] = ["New Co"] * 5
    grown["sentence"] += ["Debt was refinanced.", "Dividends were raised."]
    p2 = tmp_path / "v2.parquet"
    pq.write_table(pa.table(grown), p2)
    r = vdb_core.ingest(p2, run_dir=tmp_path / "r2", collection="c", target=target, embedder=embedder)
    assert r["report"]["new_points"] == 2 and vdb_core.count("c", target=target) == 5
    hits = vdb_core.search("Revenue grew strongly.", "c", target=target, embedder=embedder, limit=1)
    assert hits[0]["payload"]["company"] == "New Co" and hits[0]["payload"]["text"] == "Revenue grew strongly."


def test_search_finds_the_sentence_and_filters_work(tmp_path, sample_parquet, embedder):
    target = embedded(tmp_path)
    vdb_core.ingest(sample_parquet, run_dir=tmp_path / "run", collection="c", target=target, embedder=embedder)
    table = pq.read_table(sample_parquet).to_pylist()
    probe = table[123]
    hits = vdb_core.search(probe["sentence"], "c", target=target, embedder=embedder, limit=3)
    assert hits[0]["payload"]["text"] == probe["sentence"] and hits[0]["score"] > 0.99
    assert hits[0]["payload"]["filing_id"] == probe["filing_id"] and hits[0]["payload"]["cik"] == probe["cik"]
    hits = vdb_core.search(
        "risk factors",
        "c",
        target=target,
        embedder=embedder,
        limit=20,
        filters={"form_type": "10-Q", "fiscal_year": {"gte": 2018, "lte": 2020}},
    )
    assert hits and all(
        h["payload"]["form_type"] == "10-Q" and 2018 <= h["payload"]["fiscal_year"] <= 2020 for h in hits
    )


def test_collection_with_another_size_is_refused_unless_recreated(tmp_path, sample_parquet, embedder):
    target, run = embedded(tmp_path), tmp_path / "run"
    vdb_core.ingest(sample_parquet, run_dir=run, collection="c", target=target, embedder=embedder)
    # Same collection name, different model dimension: refused with a clear message.
    other = tmp_path / "other"
    vdb_core.plan(other, sample_parquet)
    rewrite_manifest(other / "manifest.json", lambda m: m.update(model={"model_id": "x", "dim": 8}))
    with pytest.raises(vdb_core.StoreError) as e:
        vdb_core.ensure_collection(other, "c", target=target)
    assert e.value.kind == "collection_mismatch" and "384" in str(e.value) and "8" in str(e.value)
    assert vdb_core.ensure_collection(run, "c", target=target, recreate=True)["outcome"] == "recreated"
    assert vdb_core.count("c", target=target) == 0


KILL_SCRIPT = r"""
import json, logging, os, re, signal, sys, vdb_core
run, src, target, kill_step, pattern = sys.argv[1:6]
target = json.loads(target)
step = None

def die_at(text):
    # SIGKILL this process at a point inside the step (a progress line or a log record of it).
    if step == kill_step and re.search(pattern, text):
        os.kill(os.getpid(), signal.SIGKILL)

class KillOnRecord(logging.Handler):
    def emit(self, record):
        die_at(record.getMessage())

logging.getLogger().setLevel(logging.DEBUG)
logging.getLogger().addHandler(KillOnRecord())
e = vdb_core.Embedder()
step = "plan"
p = vdb_core.plan(run, src, shard_rows=80, progress=die_at)
step = "embed"
for s in p["shards"]:
    vdb_core.embed_shard(run, s, e, progress=die_at)
vdb_core.ensure_collection(run, "c", target=target)
step = "load"
for s in p["shards"]:
    vdb_core.load_shard(run, s, "c", target=target, batch_size=16, progress=die_at)
step = "index"
vdb_core.restore_indexing("c", target=target, run_dir=run)
step = "verify"
vdb_core.verify(run, "c", target=target)
print("finished", flush=True)
"""

#: Where each step is killed: a line of its own progress or log, matched in the step.
KILL_POINTS = {
    # every planned shard file written, the manifest not yet
    "plan": r"^plan: \d+/\d+ rows done",
    # shard 1's vectors written to its file, the manifest not yet updated
    "embed": r"^shard 1: .* distinct texts",
    # shard 1's points upserted, the manifest not yet updated
    "load": r"^shard 1: .* points into",
    # the collection still in bulk mode, indexing not restored
    "index": r"^restoring indexing",
    # the points counted, the sample search and report.json not done
    "verify": r"^verify: \d+ of \d+ points",
}
#: The embedded store is killed later in its index step: inside it, with the collection's lock taken.
KILL_IN_EMBEDDED_INDEX = r"^embedded collection .* opened"


@pytest.fixture(scope="module")
def kill_parquet(tmp_path_factory) -> Path:
    """200 rows: shards of 80, 80 and 40 at shard_rows=80."""
    p = tmp_path_factory.mktemp("kill") / "in.parquet"
    vdb_core.sample_data(p, rows=200, seed=3)
    return p


@pytest.mark.parametrize("store_kind", ["embedded", "server"])
@pytest.mark.parametrize("kill_step", list(KILL_POINTS))
def test_resume_after_kill_9(tmp_path, kill_parquet, embedder, request, kill_step, store_kind):
    """kill -9 inside each step (plan, embed, load, index, verify) on both stores, then the same run
    directory again: exactly the valid rows in the collection, and the report says so; the embedded
    store's lock is not left held by the dead process."""
    run, store = tmp_path / "run", tmp_path / "store"
    if store_kind == "server":
        target = vdb_core.store_target(qdrant_url=request.getfixturevalue("qdrant_server").url)
    else:
        target = vdb_core.store_target(store_path=store)
    point = KILL_IN_EMBEDDED_INDEX if (kill_step, store_kind) == ("index", "embedded") else KILL_POINTS[kill_step]
    args = [str(run), str(kill_parquet), json.dumps(target), kill_step, point]
    proc = subprocess.run([sys.executable, "-c", KILL_SCRIPT, *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, f"not killed in {kill_step}: rc {proc.returncode}\n{proc.stderr[-3000:]}"
    # What the dead process left: the step's work half done.
    if kill_step == "plan":
        assert not (run / "manifest.json").exists() and list((run / "shards").glob("shard-*.arrow"))
    else:
        m = json.loads((run / "manifest.json").read_text())
        states = [s["state"] for s in m["shards"]]
        expected = {
            "embed": ["embedded", "planned", "planned"],
            "load": ["loaded", "embedded", "embedded"],
        }.get(kill_step, ["loaded"] * 3)
        assert states == expected, states
        assert not (run / "report.json").exists()
    if kill_step == "embed":
        assert (run / "embedded" / "shard-00001.arrow").is_file(), "killed after the file, before the manifest"
    if store_kind == "embedded" and kill_step in ("load", "index", "verify"):
        # The dead holder's lock is free at once (an OS lock dies with its process).
        with open(store / "c" / "vdb.lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(f, fcntl.LOCK_UN)
    if kill_step == "load":
        assert vdb_core.count("c", target=target) == 160, "shards 0 and 1 were upserted before the kill"

    r = vdb_core.ingest(kill_parquet, run_dir=run, collection="c", target=target, embedder=embedder, shard_rows=80)
    report = r["report"]
    assert report["rows_valid"] == report["points_verified"] == report["collection_count"] == 200, report
    assert report["sample_search_ok"]
    assert vdb_core.count("c", target=target) == 200
    assert json.loads((run / "report.json").read_text())["points_verified"] == 200


def test_embedded_store_is_locked_across_processes(tmp_path, sample_parquet, embedder):
    target = embedded(tmp_path)
    vdb_core.ingest(sample_parquet, run_dir=tmp_path / "run", collection="c", target=target, embedder=embedder)
    code = (
        "import sys, vdb_core; t = vdb_core.store_target(store_path=sys.argv[1]);print(vdb_core.count('c', target=t))"
    )
    # Two processes counting at once both succeed (they wait for each other's lock).
    procs = [
        subprocess.Popen([sys.executable, "-c", code, target["path"]], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["600", "600"]


# --- the server store, over Qdrant's gRPC protocol ---------------------------------------------------


def test_server_store_end_to_end(tmp_path, sample_parquet, embedder, qdrant_server):
    target = vdb_core.store_target(qdrant_url=qdrant_server.url)
    r = vdb_core.ingest(
        sample_parquet,
        run_dir=tmp_path / "run",
        collection="sec",
        target=target,
        embedder=embedder,
        shard_rows=250,
        upsert_batch_size=64,
    )
    assert r["report"]["points_verified"] == 600 and vdb_core.count("sec", target=target) == 600
    probe = pq.read_table(sample_parquet).to_pylist()[42]
    hits = vdb_core.search(probe["sentence"], "sec", target=target, embedder=embedder, limit=1)
    assert hits[0]["payload"]["text"] == probe["sentence"]
    again = vdb_core.ingest(
        sample_parquet, run_dir=tmp_path / "run2", collection="sec", target=target, embedder=embedder, shard_rows=250
    )
    assert again["report"]["new_points"] == 0 and vdb_core.count("sec", target=target) == 600


def test_server_down_gives_a_clear_error(tmp_path, sample_parquet, embedder):
    run = tmp_path / "run"
    vdb_core.plan(run, sample_parquet, shard_rows=600)
    vdb_core.embed_shard(run, 0, embedder)
    target = vdb_core.store_target(qdrant_url="http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(vdb_core.StoreError) as e:
        vdb_core.ensure_collection(run, "sec", target=target)
    assert "127.0.0.1:9" in str(e.value)


# --- CLI --------------------------------------------------------------------------------------------


def test_cli_ingest_search_count(tmp_path, sample_parquet):
    store = str(tmp_path / "store")
    r = vdb_cli(
        "ingest",
        str(sample_parquet),
        "--store",
        store,
        "--run-dir",
        str(tmp_path / "run"),
        "--collection",
        "c",
        "--shard-rows",
        "300",
    )
    assert r.returncode == 0, r.stderr
    assert "points loaded 600" in r.stdout and "sample search ok" in r.stdout
    assert "plan:" in r.stderr and "rows/s" in r.stderr  # progress lines when not a terminal
    r = vdb_cli(
        "search",
        "net revenue increased",
        "--store",
        store,
        "--collection",
        "c",
        "--json",
        "--filter",
        "form_type=10-K",
        "--limit",
        "5",
    )
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert len(hits) == 5 and all(h["payload"]["form_type"] == "10-K" for h in hits)
    assert hits == sorted(hits, key=lambda h: -h["score"])
    r = vdb_cli("count", "--store", store, "--collection", "c", "--json")
    assert json.loads(r.stdout) == {"count": 600}


def test_cli_rebuild_switches_the_name_and_excludes_recreate(tmp_path, sample_parquet, qdrant_server):
    args = ("ingest", str(sample_parquet), "--qdrant-url", qdrant_server.url, "--collection", "rb", "--json")
    first = vdb_cli(*args, "--rebuild")
    assert first.returncode == 0, first.stderr
    r1 = json.loads(first.stdout)["report"]
    assert r1["switched"] and r1["built_collection"].startswith("rb__v") and r1["previous_collection"] is None
    second = vdb_cli(*args, "--rebuild")
    assert second.returncode == 0, second.stderr
    r2 = json.loads(second.stdout)["report"]
    assert r2["previous_collection"] == r1["built_collection"] and r2["texts_embedded"] == 0
    with vdb_core.Store(qdrant_url=qdrant_server.url) as store:
        assert store.aliases()["rb"] == r2["built_collection"]
        assert store.count("rb") == 600
    human = vdb_cli(*args[:-1], "--rebuild")
    assert human.returncode == 0 and '"rb" now names' in human.stdout, human.stdout
    both = vdb_cli(*args, "--rebuild", "--recreate")
    assert both.returncode == 2 and "not allowed with" in both.stderr


def test_cli_int8_run_records_its_precision_and_refuses_to_mix(tmp_path, sample_parquet):
    store, run = str(tmp_path / "store"), tmp_path / "run"
    args = ("ingest", str(sample_parquet), "--store", store, "--run-dir", str(run), "--collection", "c")
    r = vdb_cli(*args, "--precision", "int8", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "manifest.json").read_text())["model"]["model_id"].endswith("+int8")
    # Resuming the same run in float32 would mix two kinds of vectors: refused, naming both.
    r = vdb_cli(*args, "--precision", "float32")
    assert r.returncode != 0
    assert "+int8" in r.stderr and "new run directory" in r.stderr
    r = vdb_cli("ingest", str(sample_parquet), "--store", store, "--precision", "fp16")
    assert r.returncode == 2 and "invalid choice" in r.stderr


def test_cli_device_flag_reaches_the_embedder_and_a_gpu_in_a_cpu_build_fails_clearly(tmp_path, sample_parquet):
    if vdb_core.CUDA_BUILT:
        pytest.skip("this vdb_core was built with the cuda feature (make cuda)")
    store = tmp_path / "store"
    args = ("ingest", str(sample_parquet), "--store", str(store), "--run-dir", str(tmp_path / "run"))
    r = vdb_cli(*args, "--device", "cuda:0")
    assert r.returncode == 1, r.stderr
    assert "[invalid_config]" in r.stderr and "built without the cuda feature" in r.stderr, r.stderr
    assert "make cuda" in r.stderr
    assert not store.exists()  # refused before anything was written
    r = vdb_cli(*args, "--device", "gpu")
    assert r.returncode == 1 and "device must be cpu, cuda or cuda:N" in r.stderr, r.stderr


def test_cli_sample_data_with_duplicates_embeds_each_distinct_text_once(tmp_path, qdrant_server):
    data = tmp_path / "dup.parquet"
    r = vdb_cli("sample-data", "--rows", "500", "--duplicate-rate", "0.6", "--out", str(data))
    assert r.returncode == 0, r.stderr
    texts = pq.read_table(data).column("sentence").to_pylist()
    distinct = len(set(texts))
    assert distinct < 0.6 * len(texts), f"expected many repeats, {distinct} distinct of {len(texts)}"
    out = vdb_cli(
        "ingest", str(data), "--qdrant-url", qdrant_server.url, "--collection", "dup", "--shard-rows", "200", "--json"
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)["report"]
    assert report["distinct_texts"] == distinct
    assert report["texts_embedded"] == distinct
    assert report["vectors_reused"] == len(texts) - distinct
    assert report["collection_count"] == len(texts)
    # A bad rate is refused with a clear message, no file written.
    bad = vdb_cli("sample-data", "--rows", "10", "--duplicate-rate", "1.5", "--out", str(tmp_path / "x.parquet"))
    assert bad.returncode != 0 and "duplicate rate" in bad.stderr
    assert not (tmp_path / "x.parquet").exists()


def test_cli_bf16_run_records_its_precision_or_fails_naming_the_cpu(tmp_path, sample_parquet):
    store, run = str(tmp_path / "store"), tmp_path / "run"
    args = ("ingest", str(sample_parquet), "--store", store, "--run-dir", str(run), "--collection", "c")
    r = vdb_cli(*args, "--precision", "bf16", "--json")
    info = vdb_core.cpu_info()
    if info["bf16"] is None:
        # No bf16 instructions: a clear configuration error, never a silent float32 run.
        assert r.returncode != 0 and "bf16 needs AVX512-BF16 or AMX" in r.stderr, r.stderr
        pytest.skip(f"CPU lacks avx512_bf16 and amx_bf16 ({info['cpu']}): only the refusal was checked")
    assert r.returncode == 0, r.stderr
    assert json.loads((run / "manifest.json").read_text())["model"]["model_id"].endswith("+bf16")
    r = vdb_cli(*args, "--precision", "int8")
    assert r.returncode != 0
    assert "+bf16" in r.stderr and "new run directory" in r.stderr
