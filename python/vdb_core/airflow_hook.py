"""The hook of the ``qdrant`` connection type: the official Qdrant provider's contract, vdb_core's store.

``VdbQdrantHook`` has the official ``QdrantHook``'s shape (``apache-airflow-providers-qdrant``):
the same ``conn_type``, ``conn_name_attr``, ``default_conn_name`` and ``hook_name``, the same
connection form (declared in :mod:`vdb_core.provider_info`), ``get_conn()``, ``conn``,
``verify_connection()`` and ``test_connection()``. Behind it is vdb_core instead of the Python
``qdrant_client``:

- ``get_conn()`` returns a :class:`vdb_core.Store` on the connection's gRPC target;
- ``test_connection()`` (the UI's Test button, ``airflow connections test``) opens that store and
  lists the collections, so a green Test means the DAGs' own client reaches Qdrant with this key;
- :meth:`VdbQdrantHook.target` is where the DAGs' tasks get their store target
  (:func:`vdb_core.airflow.resolve_target`): the one place that reads the connection. The rule that
  turns its fields into a gRPC URL is :func:`vdb_core.airflow.connection_target`.

Importing this module imports Airflow's task SDK base hook only (no provider, no qdrant_client).
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook

import vdb_core
from vdb_core.airflow import QDRANT_CONN_ID, ConnectionTarget, connection_target, describe
from vdb_core.types import StoreTarget

log = logging.getLogger("vdb_core")

#: How many collection names a successful test lists before "and N more".
LISTED_COLLECTIONS = 20


class VdbQdrantHook(BaseHook):
    """A Qdrant connection, opened with vdb_core (gRPC).

    :param conn_id: The connection id to use when connecting to Qdrant. Defaults to ``qdrant_default``.
    """

    conn_name_attr = "conn_id"
    conn_type = "qdrant"
    default_conn_name = QDRANT_CONN_ID
    hook_name = "Qdrant"

    def __init__(self, conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conn_id = conn_id

    def connection_target(self) -> ConnectionTarget:
        """The connection's gRPC target with the reasons (:func:`vdb_core.airflow.connection_target`).
        Raises Airflow's ``AirflowNotFoundException`` when the connection is not defined and
        ``vdb_core.ConfigError`` when its fields are inconsistent."""
        conn = self.get_connection(self.conn_id)
        if conn.conn_type and conn.conn_type != self.conn_type:
            log.warning("connection %r has type %r, read as a 'qdrant' connection", self.conn_id, conn.conn_type)
        return connection_target(conn.host, conn.port, conn.password, conn.extra_dejson, self.conn_id)

    def target(self) -> StoreTarget:
        """The store target (``vdb_core.store_target`` form) of the connection; the reasoning (REST
        -> gRPC port, ignored fields) goes to the log, the API key never does."""
        ct = self.connection_target()
        for note in ct.notes:
            log.info("connection %r: %s", self.conn_id, note)
        return ct.target()

    def get_conn(self) -> vdb_core.Store:
        """A :class:`vdb_core.Store` on the connection's target (close it, or use ``with``)."""
        return vdb_core.Store(self.target())

    @cached_property
    def conn(self) -> vdb_core.Store:
        """The hook's store, opened on first use and kept."""
        return self.get_conn()

    def verify_connection(self) -> tuple[bool, str]:
        """Open vdb_core's store on the connection and list its collections: ``(ok, message)``."""
        try:
            ct = self.connection_target()
            with vdb_core.Store(ct.target()) as store:
                names = store.collections()
        except vdb_core.VdbError as e:
            kind = getattr(e, "kind", None) or "error"
            return False, f"{type(e).__name__} [{kind}]: {e}"
        where = describe(ct.target())
        if not names:
            return True, f"Connected to {where} over gRPC (vdb_core's client): no collections yet"
        shown = ", ".join(names[:LISTED_COLLECTIONS])
        more = f" and {len(names) - LISTED_COLLECTIONS} more" if len(names) > LISTED_COLLECTIONS else ""
        return True, f"Connected to {where} over gRPC (vdb_core's client): {len(names)} collection(s): {shown}{more}"

    def test_connection(self) -> tuple[bool, str]:
        """The Test button: :meth:`verify_connection`."""
        return self.verify_connection()
