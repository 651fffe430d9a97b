"""Glue for Airflow DAGs: where the run's files live, where Qdrant is, and task-log progress.

Kept here (not in the DAG files) so DAGs only orchestrate. Importing this module does not import
Airflow; functions that need it import it lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import vdb_core

log = logging.getLogger("vdb_core")

#: The Airflow connection the DAGs read Qdrant's location from (the Qdrant provider's default id).
QDRANT_CONN_ID = "qdrant_default"


def target_from_connection_fields(
    host: str | None,
    port: int | None,
    password: str | None,
    extra: Mapping[str, Any] | None,
    schema: str | None = None,
) -> dict[str, Any]:
    """A store target from the fields of a ``qdrant`` connection, as the official Qdrant provider
    defines them: host, port (REST), password = API key, extra ``grpc_port`` (default 6334) and
    ``https``. vdb_core speaks gRPC, so the URL uses ``grpc_port``. A host that already is a URL
    (``http://...``) is used as is."""
    extra = dict(extra or {})
    if host and "://" in host:
        url = host
    else:
        https = bool(extra.get("https")) or (schema or "").lower() == "https"
        grpc_port = int(extra.get("grpc_port") or 6334)
        url = f"{'https' if https else 'http'}://{host or 'localhost'}:{grpc_port}"
    api_key = password or extra.get("api_key") or None
    return vdb_core.store_target(qdrant_url=url, api_key=api_key)


def resolve_target(conn_id: str = QDRANT_CONN_ID) -> dict[str, Any]:
    """The Airflow connection ``conn_id`` if it exists, else ``QDRANT_URL``, else the embedded store."""
    try:
        from airflow.sdk import Connection

        conn = Connection.get(conn_id)
    except Exception as e:  # not defined (AirflowNotFoundException) or no Airflow context
        log.info("no Airflow connection %r (%s); using QDRANT_URL or the embedded store", conn_id, type(e).__name__)
        return vdb_core.store_target()
    return target_from_connection_fields(conn.host, conn.port, conn.password, conn.extra_dejson, conn.schema)


def current_run_dir() -> str:
    """This DAG run's handoff directory, ``$VDB_WORK_DIR/<dag_id>/<run_id>``: every task of the run
    derives the same path from its context, so no path travels through XCom."""
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    return vdb_core.run_dir(ctx["dag"].dag_id, ctx["run_id"])


def describe(target: Mapping[str, Any]) -> str:
    """For logs: never prints the API key."""
    return f"qdrant server {target['url']}" if target.get("kind") == "server" else f"embedded store {target['path']}"


def task_progress(logger: logging.Logger | None = None) -> Callable[[str], None]:
    """A progress sink for vdb_core steps that writes count/rate/ETA lines into the task log."""
    return (logger or log).info


#: Airflow's default ``[core] max_map_length``: the most mapped task instances one XCom may expand to.
DEFAULT_MAX_MAP_LENGTH = 1024


def max_map_length() -> int:
    """``[core] max_map_length`` as this task process sees it. The api-server enforces it when the
    plan task pushes its shard list, so every Airflow component should share the setting."""
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # no Airflow, or a layout without the task SDK's config
        return DEFAULT_MAX_MAP_LENGTH
    return conf.getint("core", "max_map_length", fallback=DEFAULT_MAX_MAP_LENGTH)


def fit_shard_rows(rows: int, shard_rows: int, max_shards: int) -> int:
    """Rows per shard for an input of ``rows`` rows so that the plan has at most ``max_shards``
    shards: ``shard_rows`` itself when that already fits, else the smallest size that does.

    ``rows`` is the input's row count; invalid rows are dropped before shards are cut, so the plan
    never has more shards than ``ceil(rows / result)``. The result only depends on its arguments,
    so a retried plan task asks for the same plan as the first try."""
    if max_shards < 1:
        raise ValueError(f"max_shards must be at least 1, got {max_shards}")
    if rows <= shard_rows * max_shards:
        return shard_rows
    return -(-rows // max_shards)
