"""The Airflow product on real Airflow 3 + the real PostgreSQL: DAG import, `airflow dags test`
end to end (embedded store and the gRPC test server), and a real scheduler run over REST."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import vdb_core
import yaml
from airflow_stack import AirflowStack, run_dags_test
from conftest import EMBED_POOL, ROOT, QdrantTestServer

pytestmark = pytest.mark.airflow
DAG_ID = "sec_filings_to_qdrant"


def _dagbag():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older layout
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dagbag_imports_without_errors():
    bag = _dagbag()
    assert bag.import_errors == {}
    dag = bag.dags[DAG_ID]
    assert {t.task_id for t in dag.tasks} == {
        "plan",
        "embed",
        "ensure_collection",
        "load",
        "restore_indexing",
        "verify",
        "sync",
        "switch",
        "changes",
        "publish",
        "cleanup",
    }
    assert dag.get_task("restore_indexing").trigger_rule == "all_done"
    # Embedding is CPU-bound: its slots come from one pool (sized to the cluster's cores / VDB_THREADS).
    assert dag.get_task("embed").pool == EMBED_POOL
    assert dag.get_task("embed").retries >= 1 and dag.get_task("load").retries >= 1
    assert set(dag.params.keys()) >= {
        "input_path",
        "collection",
        "text_column",
        "id_columns",
        "payload_columns",
        "shard_rows",
        "batch_size",
        "recreate",
        "model_dir",
        "precision",
        "device",
        "sparse",
        "changes_scope",
        "changes_order",
    }
    assert dag.params["device"] == "cpu"
    assert "float16" in dag.params.get_param("precision").schema["enum"]
    assert dag.params.get_param("recreate").schema["type"] == "boolean"
    assert dag.params.get_param("rebuild").schema["type"] == "boolean"
    assert dag.params.get_param("shard_rows").schema["type"] == "integer"
    assert dag.params.get_param("input_path").description
    assert dag.catchup is False
    assert "sec_filings_search" in bag.dags


def test_every_task_has_a_doc_and_a_timeout_and_every_dag_a_failure_hook():
    from vdb_core.airflow import on_dag_failure

    bag = _dagbag()
    assert {DAG_ID, "sec_filings_search", "vdb_maintenance"} <= set(bag.dags)
    for dag in bag.dags.values():
        assert dag.on_failure_callback is on_dag_failure or on_dag_failure in (dag.on_failure_callback or []), dag
        assert dag.doc_md, dag.dag_id
        for t in dag.tasks:
            assert t.doc_md and len(t.doc_md) > 20, f"{dag.dag_id}.{t.task_id} has no doc_md"
            assert t.execution_timeout is not None, f"{dag.dag_id}.{t.task_id} has no execution_timeout"
    ingest = bag.dags[DAG_ID]
    assert ingest.get_task("embed").execution_timeout > ingest.get_task("publish").execution_timeout


def test_dag_failure_callback_calls_the_user_hook(monkeypatch, tmp_path):
    from vdb_core.airflow import on_dag_failure

    (tmp_path / "my_alerts.py").write_text("calls = []\ndef notify(context):\n    calls.append(context['reason'])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("VDB_ON_FAILURE_CALLBACK", "my_alerts:notify")
    on_dag_failure({"reason": "task_failure"})
    import my_alerts

    assert my_alerts.calls == ["task_failure"]
    monkeypatch.setenv("VDB_ON_FAILURE_CALLBACK", "no_colon_here")
    with pytest.raises(vdb_core.ConfigError, match="module:function"):
        on_dag_failure({})


def test_collection_asset_in_the_serialized_dags():
    from airflow.serialization.serialized_objects import DagSerialization

    bag = _dagbag()
    uri = "qdrant://qdrant_default/" + vdb_core.resolved_settings()["collection"]
    ingest = json.dumps(DagSerialization.to_dict(bag.dags[DAG_ID]))
    assert uri in ingest
    outlets = bag.dags[DAG_ID].get_task("publish").outlets
    assert [o.uri for o in outlets] == [uri]
    search = DagSerialization.to_dict(bag.dags["sec_filings_search"])["dag"]
    assert uri in json.dumps(search["timetable"]), search["timetable"]


def dags_test(env: dict, dag_id: str, conf: dict) -> subprocess.CompletedProcess:
    r = run_dags_test(env, dag_id, conf)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return r


def test_dags_test_into_the_embedded_store(airflow_env, sample_parquet, tmp_path):
    env = {**airflow_env, "VDB_STORE_PATH": str(tmp_path / "store")}
    conf = {"input_path": str(sample_parquet), "collection": "dagtest", "shard_rows": 250}
    dags_test(env, DAG_ID, conf)
    target = vdb_core.store_target(store_path=tmp_path / "store")
    assert vdb_core.count("dagtest", target=target) == 600
    # The run directory is removed after success.
    assert not list((Path(env["VDB_WORK_DIR"]) / DAG_ID).glob("*/manifest.json"))
    # A second run adds nothing, and embeds nothing: every text's vector is in the collection. It
    # writes the changes report (the collection is the asset's here: its event carries the totals).
    env = {**env, "VDB_COLLECTION": "dagtest"}
    out = dags_test(env, DAG_ID, {**conf, "changes_scope": ["ticker"], "changes_order": "fiscal_year"})
    assert vdb_core.count("dagtest", target=target) == 600
    log = out.stdout + out.stderr
    assert "texts embedded 0 of" in log, log[-3000:]
    assert "0 added, 0 updated, 600 unchanged" in log, log[-3000:]
    with vdb_core.Store(target) as s:
        rows = s.changes("dagtest", scope=["ticker"], order="fiscal_year")
    assert rows and f"changes report: {len(rows)} pairs of consecutive filings" in log, log[-3000:]
    assert "_vdb_first_seen: 600 points of" in log, log[-3000:]
    with vdb_core.Store(target) as s:
        assert s.payload_indexes("dagtest")["_vdb_first_seen"] == "integer"
    (report,) = (Path(env["VDB_WORK_DIR"]) / "reports" / "dagtest").glob("changes-*.parquet")
    written = pq.read_table(report).to_pylist()
    assert [(w["ticker"], w["from"], w["to"], w["new"], w["removed"], w["kept"]) for w in written] == [
        (r["scope"]["ticker"], str(r["from"]), str(r["to"]), r["new"], r["removed"], r["kept"]) for r in rows
    ]
    event = _asset_events(env, "qdrant://qdrant_default/dagtest")[-1]
    assert event["changes_pairs"] == len(rows) and event["changes_new"] == sum(r["new"] for r in rows), event


def test_dags_test_rebuild_switches_the_name_after_verify(airflow_env, sample_parquet, tmp_path):
    """Two blue/green rebuilds through the DAG: the first makes the name an alias of a new
    collection, the second builds another from a smaller input (embedding nothing: every text is in
    the live collection) and switches; the previous collection is kept."""
    env = {**airflow_env, "VDB_STORE_PATH": str(tmp_path / "store")}
    dags_test(env, DAG_ID, {"input_path": str(sample_parquet), "collection": "dagrb", "rebuild": True})
    with vdb_core.Store(store_path=tmp_path / "store") as store:
        first = store.aliases()["dagrb"]
        assert first.startswith("dagrb__v") and store.count("dagrb") == 600
    table = pq.read_table(sample_parquet)
    smaller = tmp_path / "smaller.parquet"
    pq.write_table(table.slice(0, 450), smaller)
    out = dags_test(env, DAG_ID, {"input_path": str(smaller), "collection": "dagrb", "rebuild": True})
    log = out.stdout + out.stderr
    assert "texts embedded 0 of" in log, log[-3000:]
    assert "now names" in log, log[-3000:]
    with vdb_core.Store(store_path=tmp_path / "store") as store:
        second = store.aliases()["dagrb"]
        assert second != first and store.count("dagrb") == 450
        assert {first, second} <= set(store.collections()), "the previous collection is kept"
        assert store.count(first) == 600


def test_dags_test_into_the_server_and_search_dag(airflow_env, sample_parquet, tmp_path):
    srv = QdrantTestServer(tmp_path / "server")
    try:
        env = {**airflow_env, "QDRANT_URL": srv.url}
        dags_test(env, DAG_ID, {"input_path": str(sample_parquet), "collection": "dagsrv", "shard_rows": 300})
        target = vdb_core.store_target(qdrant_url=srv.url)
        assert vdb_core.count("dagsrv", target=target) == 600
        row = pq.read_table(sample_parquet).to_pylist()[7]
        probe = row["sentence"]
        # Qdrant's own filter JSON (datetime range on the date column + keyword match) through the DAG.
        qfilter = {
            "must": [
                {"key": "filing_date", "range": {"gte": str(row["filing_date"]), "lte": str(row["filing_date"])}},
                {"key": "company", "match": {"value": row["company"]}},
            ]
        }
        out = dags_test(
            env, "sec_filings_search", {"query": probe, "collection": "dagsrv", "limit": 3, "filters": qfilter}
        )
        assert probe in out.stdout + out.stderr
        assert "hits (hybrid)" in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]
        # The mode Param: BM25 only, through the DAG.
        out = dags_test(
            env, "sec_filings_search", {"query": probe, "collection": "dagsrv", "limit": 3, "mode": "sparse"}
        )
        assert "hits (sparse)" in out.stdout + out.stderr and probe in out.stdout + out.stderr
        hits = vdb_core.search(probe, "dagsrv", target=target, limit=50, filters=qfilter)
        assert hits and all(h["payload"]["filing_date"] == str(row["filing_date"]) for h in hits)
        other_day = {"must": [{"key": "filing_date", "range": {"gt": str(row["filing_date"]), "lt": "1971-01-01"}}]}
        assert vdb_core.search(probe, "dagsrv", target=target, limit=5, filters=other_day) == []

        # Next version of the input: one filing lost its sentences from index 5 on. A sync run by
        # filing_id deletes exactly those points, and embeds nothing (every text is known).
        table = pq.read_table(sample_parquet)
        rows = table.to_pylist()
        filing = rows[0]["filing_id"]
        lost = [r for r in rows if r["filing_id"] == filing and r["sentence_index"] >= 5]
        assert lost, "the first filing has more than 5 sentences"
        kept = pa.Table.from_pylist([r for r in rows if r not in lost], schema=table.schema)
        newer = tmp_path / "newer.parquet"
        pq.write_table(kept, newer)
        conf = {"input_path": str(newer), "collection": "dagsrv", "shard_rows": 300, "sync_scope": ["filing_id"]}
        out = dags_test(env, DAG_ID, conf)
        assert vdb_core.count("dagsrv", target=target) == 600 - len(lost)
        log = out.stdout + out.stderr
        assert f"{len(lost)} points deleted" in log, log[-3000:]
        assert "texts embedded 0 of" in log, log[-3000:]
    finally:
        srv.stop()


def _first_run_step() -> str:
    """The first-run step of airflow-init's command in docker-compose.yml, as the container's shell
    gets it (Compose turns `$$` into `$`)."""
    script = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["airflow-init"]["command"][1]
    start, end = script.index("# --- first run: sample data ---"), script.index("# --- end first run ---")
    return 'warn() { echo "WARNING: $*" >&2; }\n' + script[start:end].replace("$$", "$")


def _compose_connection(api_key: str, **overrides) -> dict:
    """docker-compose.yml's default qdrant_default connection (the JSON after `-` in its default)."""
    raw = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-airflow-common"]["environment"][
        "AIRFLOW_CONN_QDRANT_DEFAULT"
    ]
    prefix = "${AIRFLOW_CONN_QDRANT_DEFAULT-"
    assert raw.startswith(prefix) and raw.endswith("}"), raw
    conn = json.loads(raw[len(prefix) : -1].replace("${QDRANT_API_KEY:-local-dev-qdrant-key}", api_key))
    extra = {**conn["extra"], **overrides.pop("extra", {})}
    return {**conn, **overrides, "extra": extra}


def test_first_run_then_a_default_trigger_into_the_compose_connection(airflow_env, tmp_path):
    """A fresh stack: airflow-init's first-run step writes the sample, then the DAG triggered with
    its defaults reads it (the input Param's default) and loads it through the compose file's
    connection form (gRPC port from extra, https off), with VDB_REQUIRE_SERVER on."""
    data = tmp_path / "data"
    data.mkdir()
    default_input = data / "sample_sec_sentences.parquet"
    srv = QdrantTestServer(tmp_path / "server")
    try:
        conn = _compose_connection("first-run-key", host="127.0.0.1", extra={"grpc_port": srv.port})
        assert conn["port"] == 6333 and conn["extra"]["https"] is False and conn["extra"]["prefer_gprc"] is True
        env = {
            **airflow_env,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "VDB_INPUT": str(default_input),
            "VDB_SAMPLE_ROWS": "300",
            "VDB_DATA_ROOT": str(data),
            "VDB_REQUIRE_SERVER": "1",
            "VDB_COLLECTION": "first_run",
            "AIRFLOW_CONN_QDRANT_DEFAULT": json.dumps(conn),
        }
        step = _first_run_step()
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", step], env=env, capture_output=True, text=True)
        assert r.returncode == 0 and default_input.is_file(), r.stdout + r.stderr
        assert vdb_core.inspect(default_input)["rows"] == 300
        written = default_input.stat().st_mtime_ns
        subprocess.run(["bash", "-euo", "pipefail", "-c", step], env=env, check=True)
        assert default_input.stat().st_mtime_ns == written, "a second `up` must keep the sample"

        out = dags_test(env, DAG_ID, {})  # no conf: every Param at its default
        log = out.stdout + out.stderr
        assert str(default_input) in log
        assert "REST port 6333" in log and f"gRPC port {srv.port}" in log
        assert "first-run-key" not in log
        assert vdb_core.count("first_run", target=vdb_core.store_target(qdrant_url=srv.url)) == 300
        # publish updated the collection's asset, with the run's counts as the event's extra.
        events = _asset_events(env, "qdrant://qdrant_default/first_run")
        assert len(events) == 1 and events[0]["collection"] == "first_run", events
        assert events[0]["points_loaded"] == 300 and events[0]["collection_count"] == 300, events
    finally:
        srv.stop()


def _asset_events(env: dict, uri: str) -> list[dict]:
    import psycopg2

    dsn = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("postgresql+psycopg2://", "postgresql://")
    with psycopg2.connect(dsn) as db, db.cursor() as cur:
        cur.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = %s ORDER BY e.id",
            (uri,),
        )
        return [row[0] if isinstance(row[0], dict) else json.loads(row[0]) for row in cur.fetchall()]


def test_a_deterministic_error_fails_the_task_without_retries(airflow_env, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    outside = tmp_path / "outside.parquet"
    vdb_core.sample_data(outside, rows=10)
    env = {**airflow_env, "VDB_DATA_ROOT": str(data), "VDB_STORE_PATH": str(tmp_path / "store")}
    r = run_dags_test(env, DAG_ID, {"input_path": "../outside.parquet"})
    log = r.stdout + r.stderr
    assert "outside_data_root" in log and "not retried" in log, log[-4000:]
    assert "up_for_retry" not in log.lower(), log[-4000:]
    # plan (retries=2 by default_args) ran once; the run failed and the DAG's failure hook ran.
    assert log.count(f"[DAG TEST] running task <TaskInstance: {DAG_ID}.plan ") == 1, log[-4000:]
    assert "DagRun failed" in log and "of sec_filings_to_qdrant failed" in log, log[-4000:]


def test_the_device_param_reaches_the_embed_task(airflow_env, tmp_path):
    """`device` goes from the trigger form to the embed task's Embedder: in a CPU build a GPU is a
    configuration error, so embed fails at once (no retries), after plan succeeded."""
    if vdb_core.CUDA_BUILT:
        pytest.skip("this vdb_core was built with the cuda feature (make cuda)")
    data = tmp_path / "small.parquet"
    vdb_core.sample_data(data, rows=20)
    env = {**airflow_env, "VDB_STORE_PATH": str(tmp_path / "store")}
    conf = {"input_path": str(data), "collection": "gpu_param", "device": "cuda:0"}
    r = run_dags_test(env, DAG_ID, conf)
    log = r.stdout + r.stderr
    assert "device cuda:0: this vdb_core was built without the cuda feature" in log, log[-4000:]
    assert "ConfigError [invalid_config], not retried" in log, log[-4000:]
    # embed ran once (restore_indexing, trigger rule all_done, runs after it and may be retried).
    assert log.count(f"[DAG TEST] running task <TaskInstance: {DAG_ID}.embed ") == 1, log[-4000:]
    assert "DagRun failed" in log, log[-4000:]


def test_required_server_without_a_connection_fails_and_writes_nothing_locally(airflow_env, tmp_path):
    """VDB_REQUIRE_SERVER=1 (as in docker-compose) and no qdrant_default: the store tasks fail at once
    instead of writing to an embedded store on the worker's disk; the run directory the earlier
    tasks made is kept for a resume, owner/group only."""
    data = tmp_path / "data"
    data.mkdir()
    vdb_core.sample_data(data / "small.parquet", rows=20)
    store = tmp_path / "store"
    env = {
        **airflow_env,
        "VDB_DATA_ROOT": str(data),
        "VDB_REQUIRE_SERVER": "1",
        "VDB_STORE_PATH": str(store),
        "VDB_WORK_DIR": str(tmp_path / "work"),
    }
    for name in [k for k in env if k.startswith("AIRFLOW_CONN_") or k == "QDRANT_URL"]:
        env.pop(name)
    r = run_dags_test(env, DAG_ID, {"input_path": "small.parquet"})
    log = r.stdout + r.stderr
    assert "DagRun failed" in log, log[-4000:]
    assert "'qdrant_default' is not defined and VDB_REQUIRE_SERVER is set" in log, log[-4000:]
    # The first task that needs the store (embed: it looks known texts up in the collection) fails
    # once, without retries; nothing after it runs.
    assert log.count(f"[DAG TEST] running task <TaskInstance: {DAG_ID}.embed ") == 1, log[-4000:]
    assert f"[DAG TEST] running task <TaskInstance: {DAG_ID}.ensure_collection " not in log
    assert not store.exists(), "nothing may be written to the embedded store"
    runs = list((tmp_path / "work" / DAG_ID).iterdir())
    assert len(runs) == 1 and (runs[0] / "manifest.json").is_file()
    for d in (runs[0], runs[0].parent):
        assert d.stat().st_mode & 0o007 == 0, f"{d} is open to others: {oct(d.stat().st_mode)}"

    # The maintenance DAG, against the real Airflow state of that failed run: kept while recent,
    # deleted once older than the retention, like the directory of a run Airflow no longer knows.
    failed_run = runs[0]
    gone = tmp_path / "work" / DAG_ID / "manual__deleted-long-ago"
    (gone / "shards").mkdir(parents=True)
    (gone / "manifest.json").write_text("{}")
    _age(gone, days=30)
    out = dags_test(env, "vdb_maintenance", {"older_than_days": 7})
    assert failed_run.is_dir() and not gone.exists(), out.stdout[-3000:]
    _age(failed_run, days=8)
    dags_test(env, "vdb_maintenance", {"older_than_days": 7, "dry_run": True})
    assert failed_run.is_dir()
    dags_test(env, "vdb_maintenance", {"older_than_days": 7})
    assert not failed_run.exists()


def _age(path: Path, days: float) -> None:
    t = time.time() - days * 86400
    for p in [*path.rglob("*"), path]:
        os.utime(p, (t, t))


def test_scheduler_run_triggered_over_rest(airflow_env, sample_parquet, tmp_path):
    env = {**airflow_env, "VDB_STORE_PATH": str(tmp_path / "store")}
    with AirflowStack(env, tmp_path / "logs") as stack:
        stack.start_core()
        stack.wait_ready(DAG_ID)
        run_id = stack.trigger(DAG_ID, {"input_path": str(sample_parquet), "collection": "rest", "shard_rows": 300})
        state = stack.wait_run(DAG_ID, run_id)
        assert state == "success", f"run ended {state}; see {stack.logs}"
    assert vdb_core.count("rest", target=vdb_core.store_target(store_path=tmp_path / "store")) == 600


def test_fit_shard_rows_keeps_a_plan_within_max_map_length():
    from vdb_core.airflow import fit_shard_rows

    assert fit_shard_rows(600, 100, 1024) == 100
    assert fit_shard_rows(102_400, 100, 1024) == 100  # exactly 1024 shards
    assert fit_shard_rows(102_401, 100, 1024) == 101
    assert fit_shard_rows(100_000_000, 20_000, 1024) == 97_657
    for rows in (1, 1023, 1025, 1_000_007, 100_000_000):
        shard_rows = fit_shard_rows(rows, 100, 1024)
        assert shard_rows >= 100 and -(-rows // shard_rows) <= 1024
    with pytest.raises(ValueError):
        fit_shard_rows(10, 100, 0)
