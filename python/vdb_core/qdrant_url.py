"""Qdrant URLs as people copy them, turned into the gRPC endpoint vdb_core speaks to.

One home for the REST -> gRPC port rule and its log line, used by ``vdb_core.store_target``
(``QDRANT_URL``, ``--qdrant-url``, the Python API) and by the Airflow connection ``qdrant_default``
(``vdb_core.airflow.connection_target``). Qdrant serves REST (and its web dashboard) on 6333 and gRPC
on 6334; the URL users see in the dashboard, in Qdrant Cloud's cluster page and in most tutorials is
the REST one.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

#: Qdrant's default REST port (the dashboard's, the one users copy) and its gRPC port.
DEFAULT_REST_PORT = 6333
DEFAULT_GRPC_PORT = 6334

#: The logger of this rule's notes (INFO). The CLI shows it on stderr; tasks show it in their log.
log = logging.getLogger("vdb_core.target")


def port_note(rest_port: int, grpc_port: int, rest_from: str, grpc_from: str) -> str:
    """The log line of the mapping, in one wording for every path."""
    return f"REST port {rest_port} (from {rest_from}) -> gRPC port {grpc_port} ({grpc_from}): vdb_core speaks gRPC"


def grpc_url(url: str, source: str = "QDRANT_URL", grpc_port: int = DEFAULT_GRPC_PORT) -> tuple[str, str | None]:
    """``url`` with Qdrant's REST port replaced by its gRPC port, and the note saying so (None when
    nothing changed). A URL with the REST port 6333, or with no port at all (a Qdrant Cloud URL as
    its page shows it), goes to ``grpc_port``; any other port is taken as the gRPC port it names."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return url, None  # not a port number: left to the store, which names the error
    if not parts.hostname or parts.scheme not in ("http", "https") or port not in (None, DEFAULT_REST_PORT):
        return url, None
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = parts.netloc[: -len(host)] if host != parts.netloc else ""
    if port is not None:
        host = host[: host.rindex(":")]
    mapped = urlunsplit((parts.scheme, f"{userinfo}{host}:{grpc_port}", parts.path, parts.query, parts.fragment))
    rest_port = port if port is not None else DEFAULT_REST_PORT
    how = f"{source}, {'its port' if port is not None else 'no port given: REST default'}"
    return mapped, port_note(rest_port, grpc_port, how, "default")
