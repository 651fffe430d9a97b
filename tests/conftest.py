"""Shared fixtures: generated data, the model, the test-support Qdrant gRPC server, Postgres, a
migrated Airflow metadata database."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import vdb_core

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def sample_parquet(tmp_path_factory) -> Path:
    """600 deterministic SEC-like rows (a few shards at shard_rows=250)."""
    p = tmp_path_factory.mktemp("data") / "sample.parquet"
    vdb_core.sample_data(p, rows=600, seed=1)
    return p


@pytest.fixture(scope="session")
def embedder() -> vdb_core.Embedder:
    return vdb_core.Embedder()


def server_binary() -> Path:
    env = os.environ.get("VDB_TEST_SERVER_BIN")
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    p = Path(env) if env else target / "debug" / "qdrant_test_server"
    if not p.exists():
        msg = f"test-support Qdrant server not built at {p}: run `cargo build --workspace` first"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return p


class QdrantTestServer:
    """The test-support Qdrant gRPC server (real qdrant engine behind Qdrant's own gRPC API); with
    ``api_key``, requests without that key are refused as Qdrant refuses them."""

    def __init__(self, storage: Path, port: int = 0, api_key: str | None = None):
        key = ["--api-key", api_key] if api_key else []
        self.proc = subprocess.Popen(
            [str(server_binary()), "--port", str(port), "--storage", str(storage), *key],
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise RuntimeError(f"test server did not start: {line!r}")
        self.address = line.removeprefix("listening on ")
        self.url = f"http://{self.address}"
        self.port = int(self.address.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def qdrant_server(tmp_path):
    srv = QdrantTestServer(tmp_path / "qdrant-server")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh database on the local PostgreSQL (trust auth), dropped afterwards."""
    import psycopg2

    name = f"vdb_test_{uuid.uuid4().hex[:10]}"
    user = os.environ.get("VDB_TEST_PG_USER", "postgres")
    admin = psycopg2.connect(host="127.0.0.1", port=5432, user=user, dbname="postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg2://{user}@127.0.0.1:5432/{name}"
    admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


#: The Airflow pool the DAG's embed task runs in (created by docker-compose.yml's airflow-init).
EMBED_POOL = "vdb_embed"


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory, postgres_url):
    """Environment of an Airflow stack on the test database: migrated, with the embed pool
    (2 slots: this machine's cores, one thread per embed task)."""
    from airflow_stack import airflow_cli, base_env, free_port

    env = base_env(tmp_path_factory.mktemp("airflow_home"), postgres_url, port=free_port())
    airflow_cli(env, "db", "migrate")
    airflow_cli(env, "pools", "set", EMBED_POOL, "2", "vdb_core embed tasks (tests)")
    return env


def vdb_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the `vdb` console script of this environment."""
    exe = shutil.which("vdb", path=str(Path(sys.executable).parent)) or "vdb"
    return subprocess.run([exe, *args], capture_output=True, text=True, env=env, timeout=timeout)
