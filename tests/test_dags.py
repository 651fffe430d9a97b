"""The Airflow product on real Airflow 3 + the real PostgreSQL: DAG import, `airflow dags test`
end to end (embedded store and the gRPC test server), and a real scheduler run over REST."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import vdb_core
from airflow_stack import AIRFLOW, AirflowStack
from conftest import EMBED_POOL, ROOT, QdrantTestServer

pytestmark = pytest.mark.airflow
DAG_ID = "sec_filings_to_qdrant"


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
    # A second run adds nothing.
    dags_test(env, DAG_ID, conf)
    assert vdb_core.count("dagtest", target=target) == 600


def test_dags_test_into_the_server_and_search_dag(airflow_env, sample_parquet, tmp_path):
    srv = QdrantTestServer(tmp_path / "server")
    try:
        env = {**airflow_env, "QDRANT_URL": srv.url}
        dags_test(env, DAG_ID, {"input_path": str(sample_parquet), "collection": "dagsrv", "shard_rows": 300})
        target = vdb_core.store_target(qdrant_url=srv.url)
        assert vdb_core.count("dagsrv", target=target) == 600
        import pyarrow.parquet as pq

        probe = pq.read_table(sample_parquet).to_pylist()[7]["sentence"]
        out = dags_test(env, "sec_filings_search", {"query": probe, "collection": "dagsrv", "limit": 3})
        assert probe in out.stdout + out.stderr
    finally:
        srv.stop()


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
