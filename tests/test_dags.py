"""The Airflow product on real Airflow 3 + the real PostgreSQL: DAG import, `airflow dags test`
end to end (embedded store and the gRPC test server), and a real scheduler run over REST."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import vdb_core
from conftest import ROOT, QdrantTestServer

pytestmark = pytest.mark.airflow
AIRFLOW = str(Path(sys.executable).parent / "airflow")
DAG_ID = "sec_filings_to_qdrant"


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory, postgres_url):
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__API__PORT": "18080",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "http://127.0.0.1:18080/execution/",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "VDB_WORK_DIR": str(home / "vdb"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("QDRANT_URL", None)
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def test_dagbag_imports_without_errors():
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # older layout
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=str(ROOT / "dags"))
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
        "cleanup",
    }
    assert dag.get_task("restore_indexing").trigger_rule == "all_done"
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
    }
    assert dag.params.get_param("recreate").schema["type"] == "boolean"
    assert dag.params.get_param("shard_rows").schema["type"] == "integer"
    assert dag.params.get_param("input_path").description
    assert dag.catchup is False
    assert "sec_filings_search" in bag.dags


def dags_test(env: dict, dag_id: str, conf: dict) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [AIRFLOW, "dags", "test", dag_id, "--conf", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
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
    # A second run adds nothing, and embeds nothing: every text's vector is in the collection.
    out = dags_test(env, DAG_ID, conf)
    assert vdb_core.count("dagtest", target=target) == 600
    log = out.stdout + out.stderr
    assert "texts embedded 0 of" in log, log[-3000:]
    assert "0 added, 0 updated, 600 unchanged" in log, log[-3000:]


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


def _start(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.time() + 20
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _api(method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:
    req = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def test_scheduler_run_triggered_over_rest(airflow_env, sample_parquet, tmp_path):
    env = {**airflow_env, "VDB_STORE_PATH": str(tmp_path / "store")}
    base = "http://127.0.0.1:18080"
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [
        _start([AIRFLOW, "api-server", "--port", "18080"], env, logs / "api.log"),
        _start([AIRFLOW, "scheduler"], env, logs / "scheduler.log"),
        _start([AIRFLOW, "dag-processor"], env, logs / "dag-processor.log"),
    ]
    try:
        deadline = time.time() + 180
        while True:
            try:
                if _api("GET", f"{base}/api/v2/monitor/health").get("metadatabase", {}).get("status") == "healthy":
                    break
            except OSError:
                pass
            assert time.time() < deadline, "api-server did not become healthy"
            time.sleep(2)
        pw_file = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        users = json.loads(pw_file.read_text())
        user, password = next(iter(users.items()))
        token = _api("POST", f"{base}/auth/token", {"username": user, "password": password})["access_token"]
        while True:  # the dag-processor must have parsed the DAG
            try:
                _api("PATCH", f"{base}/api/v2/dags/{DAG_ID}", {"is_paused": False}, token)
                break
            except urllib.error.HTTPError as e:
                assert e.code == 404 and time.time() < deadline, f"DAG not registered: {e}"
                time.sleep(2)
        run = _api(
            "POST",
            f"{base}/api/v2/dags/{DAG_ID}/dagRuns",
            {
                "logical_date": None,
                "conf": {"input_path": str(sample_parquet), "collection": "rest", "shard_rows": 300},
            },
            token,
        )
        run_id = run["dag_run_id"]
        deadline = time.time() + 600
        state = None
        while time.time() < deadline:
            state = _api("GET", f"{base}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}", token=token)["state"]
            if state in ("success", "failed"):
                break
            time.sleep(3)
        assert state == "success", f"run ended {state}; see {logs}"
    finally:
        _stop(procs)
    assert vdb_core.count("rest", target=vdb_core.store_target(store_path=tmp_path / "store")) == 600
