"""The Rust core logs through Python's `logging` (and so into Airflow task logs)."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
import vdb_core
from conftest import QdrantTestServer, server_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_retry_with_its_reason_reaches_python_logging(tmp_path, caplog):
    server_binary()  # fails (CI) or skips with the reason when the test server is not built
    port = free_port()
    target = vdb_core.store_target(qdrant_url=f"http://127.0.0.1:{port}")
    started: list[QdrantTestServer] = []

    def start_later() -> None:
        time.sleep(1.5)
        started.append(QdrantTestServer(tmp_path / "srv", port=port))

    t = threading.Thread(target=start_later)
    t.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="vdb_core"):
            # The server is not there yet: the store retries, then gets the server's real answer.
            with pytest.raises(vdb_core.StoreError) as e:
                vdb_core.count("missing_collection", target=target)
    finally:
        t.join()
        for s in started:
            s.stop()
    assert e.value.kind == "store", e.value  # the server answered (not found), it was reachable
    retries = [r for r in caplog.records if r.name.startswith("vdb_core.store.server") and "retry 1/" in r.getMessage()]
    assert retries, [r.getMessage() for r in caplog.records]
    assert retries[0].levelno == logging.WARNING
    assert f"127.0.0.1:{port}" in retries[0].getMessage()
