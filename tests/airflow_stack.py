"""Real Airflow 3 components as local processes, for the tests (one home for these helpers).

Each component is started in its own session (process group) and stopped with SIGTERM to the whole
group, then SIGKILL after a grace period: the scheduler may ignore TERM and Celery workers fork
pool children, so killing only the leader would leave processes behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

AIRFLOW = str(Path(sys.executable).parent / "airflow")
#: Name of the environment variable that `worker_hostname` reports (set per Celery worker process).
WORKER_HOSTNAME_VAR = "VDB_TEST_WORKER_HOSTNAME"


def worker_hostname() -> str:
    """An ``[core] hostname_callable`` for several workers on ONE machine: each worker process gets
    its own name (the one given to ``--celery-hostname``), so a task instance's ``hostname`` says
    which worker ran it, as it would with one worker per host."""
    return os.environ[WORKER_HOSTNAME_VAR]


def free_port() -> int:
    """A TCP port free right now on the loopback (other sessions' stacks may run on this machine)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_api_port(env: dict, port: int) -> dict[str, str]:
    """``env`` with the api-server (and the execution API the workers call) on ``port``."""
    return {
        **env,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
    }


def base_env(home: Path, postgres_url: str, port: int) -> dict[str, str]:
    """Environment of every component of a test stack (LocalExecutor unless overridden)."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_url,
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[1] / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        # The log server of task-running components: not the fixed 8793 another session may hold.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "VDB_WORK_DIR": str(home / "vdb"),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("QDRANT_URL", None)
    return with_api_port(env, port)


def airflow_cli(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"airflow {' '.join(args)}:\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
    return r


def run_dags_test(env: dict, dag_id: str, conf: dict) -> subprocess.CompletedProcess:
    """`airflow dags test DAG --conf CONF`, whatever its outcome (the caller asserts on it)."""
    return subprocess.run(
        [AIRFLOW, "dags", "test", dag_id, "--conf", json.dumps(conf)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


class AirflowStack:
    """api-server, scheduler, dag-processor (and whatever else is started) of one test, plus REST."""

    def __init__(self, env: dict, logs: Path):
        self.env = env
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.base = f"http://127.0.0.1:{env['AIRFLOW__API__PORT']}"
        self.procs: dict[str, subprocess.Popen] = {}
        self.killed: set[str] = set()
        self.token: str | None = None
        self.runs: list[tuple[str, str]] = []  # (dag_id, run_id) triggered through this stack

    # -- processes ---------------------------------------------------------------------------------

    def start(self, name: str, *args: str, env: dict | None = None) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "wb") as log:
            proc = subprocess.Popen(
                [AIRFLOW, *args],
                env=env or self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def start_core(self) -> None:
        self.start("api-server", "api-server", "--port", self.env["AIRFLOW__API__PORT"])
        self.start("scheduler", "scheduler")
        self.start("dag-processor", "dag-processor")

    def kill(self, name: str) -> None:
        """SIGKILL a component's whole process group: the host it stands for is gone."""
        os.killpg(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait()
        self.killed.add(name)

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if name not in self.killed and proc.poll() is not None:
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{tail}")

    def stop(self) -> None:
        self._fail_unfinished_runs()
        alive = [p for p in self.procs.values() if p.poll() is None]
        for p in alive:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 20
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group: children (task processes, pool workers) may outlive their leader
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()

    def _fail_unfinished_runs(self) -> None:
        """A test that failed mid-run must not leave a running DAG run in the shared database for the
        next stack's scheduler to pick up."""
        for dag_id, run_id in self.runs:
            try:
                if self.run_state(dag_id, run_id) not in ("success", "failed"):
                    self.api("PATCH", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}", {"state": "failed"})
            except (OSError, KeyError):
                pass  # the api-server is gone: nothing more to do

    def __enter__(self) -> AirflowStack:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- REST --------------------------------------------------------------------------------------

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(
            self.base + path,
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "Content-Type": "application/json",
                **({"Authorization": f"Bearer {self.token}"} if self.token else {}),
            },
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"{}")

    def wait_api(self, timeout: float = 240) -> None:
        """The api-server healthy, and a token of its admin user for the calls that follow."""
        deadline = time.time() + timeout
        while True:
            self.check_alive()
            try:
                if self.api("GET", "/api/v2/monitor/health").get("metadatabase", {}).get("status") == "healthy":
                    break
            except OSError:
                pass
            assert time.time() < deadline, f"api-server did not become healthy; see {self.logs}"
            time.sleep(2)
        passwords = Path(self.env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
        users = json.loads(passwords.read_text())
        user, password = next(iter(users.items()))
        self.token = self.api("POST", "/auth/token", {"username": user, "password": password})["access_token"]

    def wait_ready(self, dag_id: str, timeout: float = 240) -> None:
        """Health, a token, and ``dag_id`` parsed and unpaused."""
        deadline = time.time() + timeout
        self.wait_api(timeout)
        while True:  # the dag-processor must have parsed the DAG
            self.check_alive()
            try:
                self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
                return
            except urllib.error.HTTPError as e:
                assert e.code == 404 and time.time() < deadline, f"DAG not registered: {e}"
                time.sleep(2)

    def trigger(self, dag_id: str, conf: dict) -> str:
        run = self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
        self.runs.append((dag_id, run["dag_run_id"]))
        return run["dag_run_id"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        """The run's final state (success/failed); a hang guard, not a timing assertion."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.check_alive()
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(2)
        return self.run_state(dag_id, run_id)

    def task_instances(self, dag_id: str, run_id: str, task_id: str | None = None) -> list[dict]:
        query = f"?task_id={task_id}&limit=1000" if task_id else "?limit=1000"
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances{query}")["task_instances"]

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict]:
        """Every try of one task instance (hostname, state, try_number), oldest first."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        return sorted(self.api("GET", path)["task_instances"], key=lambda t: t["try_number"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value"):
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true"
        value = self.api("GET", path)["value"]
        return json.loads(value) if isinstance(value, str) else value
