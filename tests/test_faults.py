"""Faults the Python tests can make real: a full disk under the run directory (a small tmpfs), and
concurrent ingests (into one collection from two run directories; twice into one run directory).
Killed processes: test_pipeline.py::test_resume_after_kill_9; the Qdrant server going away and
damaged hand-off files: tests/faults.rs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import vdb_core
from conftest import vdb_cli

# --- disk full ----------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs: a file system that really fills up (ENOSPC), unlike a size limit per file."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root with CAP_SYS_ADMIN): {r.stderr.strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(mnt: Path, leave: int = 0) -> Path:
    """Fill the file system but `leave` bytes; the filler file is returned (delete it: space is back)."""
    st = os.statvfs(mnt)
    filler = mnt / "filler"
    with open(filler, "wb") as f:
        f.write(b"\0" * (st.f_bavail * st.f_frsize - leave))
    assert os.statvfs(mnt).f_bavail * st.f_frsize == leave
    return filler


def _no_temp_files(run: Path) -> None:
    left = [p.name for p in run.rglob(".*tmp*")]
    assert not left, f"temp files left behind: {left}"


@pytest.fixture(scope="module")
def small_parquet(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("disk") / "in.parquet"
    vdb_core.sample_data(p, rows=200, seed=5)
    return p


@pytest.mark.parametrize("writing", ["shard", "embedded_shard", "manifest"])
def test_disk_full_then_space_back(small_disk, small_parquet, tmp_path, embedder, writing):
    """The disk under the run directory fills up while a shard / an embedded shard / the manifest is
    written: a clear error naming the file, the run directory still readable (no partial file, the
    manifest as before), and the same run completes once there is space again."""
    run = small_disk / "run"
    target = vdb_core.store_target(store_path=tmp_path / "store")
    before = None
    if writing == "shard":
        filler = fill(small_disk)
        with pytest.raises(vdb_core.VdbError) as e:
            vdb_core.plan(run, small_parquet, shard_rows=100)
        assert "shard-00000.arrow" in str(e.value)
        assert not (run / "manifest.json").exists()
    else:
        vdb_core.plan(run, small_parquet, shard_rows=100)
        before = (run / "manifest.json").read_bytes()
        leave = 0
        if writing == "manifest":
            # Room for the embedded shard (its size measured on a twin run), none for the manifest.
            twin = tmp_path / "twin"
            vdb_core.plan(twin, small_parquet, shard_rows=100)
            vdb_core.embed_shard(twin, 0, embedder)
            page = os.statvfs(small_disk).f_frsize
            leave = -(-(twin / "embedded" / "shard-00000.arrow").stat().st_size // page) * page
        filler = fill(small_disk, leave)
        with pytest.raises(vdb_core.VdbError) as e:
            vdb_core.embed_shard(run, 0, embedder)
        named = "manifest.json" if writing == "manifest" else "embedded/shard-00000.arrow"
        assert named in str(e.value), str(e.value)
        assert (run / "manifest.json").read_bytes() == before, "the manifest is as it was"
        assert json.loads(before)["shards"][0]["state"] == "planned"
    assert "No space left on device" in str(e.value), str(e.value)
    _no_temp_files(run)

    filler.unlink()
    r = vdb_core.ingest(small_parquet, run_dir=run, collection="c", target=target, embedder=embedder, shard_rows=100)
    assert r["report"]["points_verified"] == r["report"]["rows_valid"] == r["report"]["collection_count"] == 200


# --- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize("store_kind", ["embedded", "server"])
def test_two_ingests_into_one_collection_at_once(tmp_path, sample_parquet, request, store_kind):
    """Two `vdb ingest` processes, two run directories, overlapping inputs, one collection, at the
    same time: both succeed and the collection holds every row once."""
    table = pq.read_table(sample_parquet)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(table.slice(0, 400), a)
    pq.write_table(table.slice(200, 400), b)
    if store_kind == "server":
        srv = request.getfixturevalue("qdrant_server")
        where, target = ["--qdrant-url", srv.url], vdb_core.store_target(qdrant_url=srv.url)
    else:
        where, target = ["--store", str(tmp_path / "store")], vdb_core.store_target(store_path=tmp_path / "store")
    exe = str(Path(sys.executable).parent / "vdb")
    procs = [
        subprocess.Popen(
            [exe, "ingest", str(src), *where, "--collection", "both", "--run-dir", str(tmp_path / f"run-{src.stem}")]
            + ["--json", "--threads", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for src in (a, b)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-3000:]
        assert json.loads(out)["report"]["points_verified"] == 400
    assert vdb_core.count("both", target=target) == 600


HOLD_SCRIPT = r"""
import sys, vdb_core
run, src, store = sys.argv[1:4]
def hold(line):
    # Inside the run (its ingest lock held): say so, and wait for the test to let go.
    if line.startswith("embed shard 0:"):
        print("holding", flush=True)
        sys.stdin.readline()
target = vdb_core.store_target(store_path=store)
r = vdb_core.ingest(src, run_dir=run, collection="c", target=target, shard_rows=300, progress=hold)
print("done", r["report"]["points_verified"], flush=True)
"""


def test_second_ingest_of_the_same_run_dir_is_refused(tmp_path, sample_parquet):
    """While an ingest works on a run directory, a second one on it is refused at once (a lock),
    changes nothing there, and the first completes correctly."""
    run, store = tmp_path / "run", tmp_path / "store"
    target = vdb_core.store_target(store_path=store)
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(run), str(sample_parquet), str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout.readline().strip() == "holding"
        manifest = (run / "manifest.json").read_bytes()
        shards = sorted(p.name for p in run.rglob("*") if p.is_file())
        with pytest.raises(vdb_core.HandoffError) as e:
            vdb_core.ingest(sample_parquet, run_dir=run, collection="c", target=target, shard_rows=300)
        assert e.value.kind == "locked" and "in use by another ingest" in str(e.value) and str(run) in str(e.value)
        r = vdb_cli("ingest", str(sample_parquet), "--store", str(store), "--run-dir", str(run), "--shard-rows", "300")
        assert r.returncode == 1 and "[locked]" in r.stderr and "in use by another ingest" in r.stderr, r.stderr
        assert (run / "manifest.json").read_bytes() == manifest
        assert sorted(p.name for p in run.rglob("*") if p.is_file()) == shards
        first.stdin.write("go\n")
        first.stdin.flush()
        assert first.stdout.readline().split() == ["done", "600"]
        assert first.wait(timeout=600) == 0
    finally:
        if first.poll() is None:
            first.kill()
    assert vdb_core.count("c", target=target) == 600
    # Once the first is done, the same run directory is usable again (nothing left to do).
    again = vdb_core.ingest(sample_parquet, run_dir=run, collection="c", target=target, shard_rows=300)
    assert again["report"]["points_verified"] == again["report"]["collection_count"] == 600
