"""Scale-out on Airflow's CeleryExecutor with real processes: api-server, scheduler, dag-processor
and TWO `airflow celery worker`s on the local Redis (broker) and PostgreSQL (metadata + Celery
result backend), loading into the test-support Qdrant gRPC server.

The two workers run on this one machine; each reports its own name as the task instances'
`hostname` (``[core] hostname_callable`` = `airflow_stack.worker_hostname`), as two hosts would.
Killing a worker means SIGKILL to its whole process group (worker, pool children, task processes):
the host is gone, nothing shuts down cleanly, and only Airflow's task heartbeat timeout notices.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import vdb_core
from airflow_stack import WORKER_HOSTNAME_VAR, AirflowStack, airflow_cli, free_port, with_api_port
from conftest import EMBED_POOL, ROOT, QdrantTestServer

pytestmark = pytest.mark.airflow
DAG_ID = "sec_filings_to_qdrant"
WORKERS = ("worker-a", "worker-b")
# Lower than Airflow's 1024 so that the first run's plan (600 rows at 100 rows per shard = 6 shards)
# must raise its shard size to stay within it (what a 200M-row input does at the default limit).
MAX_MAP_LENGTH = 4


@pytest.fixture(scope="module")
def redis_url():
    url = os.environ.get("VDB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as e:
        msg = f"Redis (the Celery broker) not reachable at {url}: {e}; start it (see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return url


@pytest.fixture(scope="module")
def celery_stack(airflow_env, postgres_url, redis_url, tmp_path_factory):
    """The whole stack, both workers connected; stopped (process groups) afterwards."""
    import redis
    from celery import Celery

    tmp = tmp_path_factory.mktemp("celery")
    qdrant = QdrantTestServer(tmp / "qdrant")
    queue = f"vdb-test-{uuid.uuid4().hex[:10]}"  # this test's own queue on a shared Redis
    env = {
        **with_api_port(airflow_env, free_port()),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": redis_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres_url.replace("postgresql+psycopg2://", "postgresql://"),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": queue,
        "AIRFLOW__CORE__MAX_MAP_LENGTH": str(MAX_MAP_LENGTH),
        # A killed worker's task stops heartbeating (every 5 s); declare it dead after 30 s, not 300.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "QDRANT_URL": qdrant.url,
        "VDB_THREADS": "1",  # 1 thread per embed task x 1 task per worker: no oversubscription
    }
    # One pool slot per worker: no embed task waits in a worker's queue while another worker idles.
    airflow_cli(env, "pools", "set", EMBED_POOL, str(len(WORKERS)), "vdb_core embed tasks (celery test)")
    stack = AirflowStack(env, tmp / "logs")
    try:
        stack.start_core()
        for name in WORKERS:
            worker_env = {
                **env,
                WORKER_HOSTNAME_VAR: name,
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "airflow_stack.worker_hostname",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests"), env.get("PYTHONPATH")])),
            }
            # --skip-serve-logs: two log servers on one machine would fight over port 8793; the
            # task logs are files in the shared AIRFLOW_HOME anyway.
            stack.start(
                name,
                *("celery", "worker", "--celery-hostname", name, "--concurrency", "1", "--queues", queue),
                *("--skip-serve-logs", "--without-mingle", "--without-gossip"),
                env=worker_env,
            )
        stack.wait_ready(DAG_ID)
        app = Celery(broker=redis_url)
        expected = {f"celery@{name}" for name in WORKERS}
        deadline = time.time() + 120
        while True:
            stack.check_alive()
            replies = app.control.ping(destination=sorted(expected), timeout=2)
            if {name for reply in replies for name in reply} == expected:
                break
            assert time.time() < deadline, f"Celery workers did not answer a ping: {replies}; see {stack.logs}"
        yield stack
    finally:
        stack.stop()
        qdrant.stop()
        r = redis.Redis.from_url(redis_url)
        r.delete(queue)
        for key, message in (r.hgetall("unacked") or {}).items():  # a killed worker's unacked task
            if queue.encode() in message:
                r.hdel("unacked", key)
                r.zrem("unacked_index", key)


def sample_with_invalid_rows(path: Path, rows: int) -> int:
    """``rows`` sample rows of which every 100th has a null or blank sentence; returns the valid count."""
    vdb_core.sample_data(path, rows=rows, seed=7)
    table = pq.read_table(path)
    sentences = table.column("sentence").to_pylist()
    for i in range(0, rows, 100):
        sentences[i] = None if i % 200 == 0 else "   "
    table = table.set_column(table.schema.get_field_index("sentence"), "sentence", pa.array(sentences, pa.string()))
    pq.write_table(table, path)
    return rows - len(range(0, rows, 100))


def check_loaded_exactly_once(stack: AirflowStack, run_id: str, collection: str, valid: int) -> None:
    report = stack.xcom(DAG_ID, run_id, "verify")
    assert report["rows_valid"] == valid, report
    assert report["points_loaded"] == valid and report["collection_count"] == valid, report
    # Independently of the DAG's own report: the store holds exactly the valid rows (stable ids:
    # a duplicate would be the same point, a lost shard a smaller count).
    target = vdb_core.store_target(qdrant_url=stack.env["QDRANT_URL"])
    assert vdb_core.count(collection, target=target) == valid


def test_embed_tasks_run_on_both_celery_workers(celery_stack, tmp_path):
    stack = celery_stack
    data = tmp_path / "input.parquet"
    valid = sample_with_invalid_rows(data, 600)
    conf = {"input_path": str(data), "collection": "celery_two_workers", "shard_rows": 100}
    run_id = stack.trigger(DAG_ID, conf)
    state = stack.wait_run(DAG_ID, run_id)
    assert state == "success", f"run ended {state}; see {stack.logs}"
    check_loaded_exactly_once(stack, run_id, "celery_two_workers", valid)

    # 600 rows at 100 per shard would map 6 embed tasks; the plan raised the shard size to fit
    # max_map_length (the api-server would have failed the plan task otherwise).
    embeds = stack.task_instances(DAG_ID, run_id, "embed")
    assert len(embeds) == MAX_MAP_LENGTH
    assert {ti["state"] for ti in embeds} == {"success"}
    assert {ti["pool"] for ti in embeds} == {EMBED_POOL}
    hosts = {ti["hostname"] for ti in embeds}
    assert hosts == set(WORKERS), f"embed tasks ran on {hosts}"


def test_a_killed_worker_is_rescheduled_and_every_row_loads_once(celery_stack, tmp_path):
    stack = celery_stack
    data = tmp_path / "input.parquet"
    valid = sample_with_invalid_rows(data, 1200)
    # Three shards of 400 rows: long enough embed tasks to be killed in the middle of one.
    conf = {"input_path": str(data), "collection": "celery_killed_worker", "shard_rows": 400}
    run_id = stack.trigger(DAG_ID, conf)
    victim = None
    deadline = time.time() + 300
    while victim is None:
        stack.check_alive()
        running = [ti for ti in stack.task_instances(DAG_ID, run_id, "embed") if ti["state"] == "running"]
        if running and running[0]["hostname"] in WORKERS:
            victim, killed_shard = running[0]["hostname"], running[0]["map_index"]
            stack.kill(victim)
        else:
            state = stack.run_state(DAG_ID, run_id)
            assert state in ("queued", "running") and time.time() < deadline, f"no embed task ran (run {state})"
            time.sleep(0.3)
    survivor = next(name for name in WORKERS if name != victim)

    state = stack.wait_run(DAG_ID, run_id)
    assert state == "success", f"run ended {state} after {victim} was killed; see {stack.logs}"
    check_loaded_exactly_once(stack, run_id, "celery_killed_worker", valid)

    tries = stack.tries(DAG_ID, run_id, "embed", killed_shard)
    first, last = tries[0], tries[-1]
    assert first["hostname"] == victim and first["state"] != "success", (
        f"the kill did not interrupt shard {killed_shard} (it finished first?): {tries}"
    )
    assert last["state"] == "success" and last["hostname"] == survivor and last["try_number"] > 1, tries
    # Everything after the kill ran on the survivor.
    later = [ti for ti in stack.task_instances(DAG_ID, run_id) if ti["task_id"] in ("load", "verify", "cleanup")]
    assert later and {ti["hostname"] for ti in later} == {survivor}
