"""The ``qdrant`` connection type as Airflow users know it, through real Airflow: vdb_core registers
it as a provider (the official Qdrant provider's form, our hook), the hook's Test opens vdb_core's
store on the real test server (right key, wrong key, wrong port, inconsistent fields), and the
api-server's form metadata and ``POST /api/v2/connections/test`` (the UI's Test button) answer
with it. No mocks."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import vdb_core
from airflow_stack import AirflowStack, free_port, with_api_port
from conftest import QdrantTestServer
from vdb_core.provider_info import HOOK_CLASS_NAME

KEY = "t3st-api-key"

#: The official provider's form (apache-airflow-providers-qdrant 1.6.1, get_provider_info):
#: field -> (label, JSON type, default).
OFFICIAL_FIELDS = {
    "url": ("URL", ["string", "null"], None),
    "grpc_port": ("GRPC Port", ["integer", "null"], 6334),
    "prefer_gprc": ("Prefer GRPC", ["boolean", "null"], False),
    "https": ("HTTPS", ["boolean", "null"], None),
    "prefix": ("Prefix", ["string", "null"], None),
}
OFFICIAL_HIDDEN = ["schema", "login", "extra"]

PROVIDERS_PROBE = """
import json
from airflow.providers_manager import ProvidersManager
pm = ProvidersManager()
hook = pm.hooks["qdrant"]
widgets = {k: v.field for k, v in pm.connection_form_widgets.items() if k.startswith("extra__qdrant__")}
print(json.dumps({
    "hook": [hook.hook_class_name, hook.package_name, hook.hook_name, hook.connection_testable,
             hook.connection_id_attribute_name],
    "provider": pm.providers["vdb-core"].data["package-name"],
    "widgets": widgets,
    "behaviour": pm.field_behaviours["qdrant"],
}, default=str))
"""


def test_providers_manager_lists_the_qdrant_type_with_our_hook_and_the_official_form(airflow_env):
    r = subprocess.run(
        [sys.executable, "-c", PROVIDERS_PROBE], env=airflow_env, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["hook"] == [HOOK_CLASS_NAME, "vdb-core", "Qdrant", True, "conn_id"]
    assert got["provider"] == "vdb-core"
    fields = {k.removeprefix("extra__qdrant__"): v for k, v in got["widgets"].items()}
    assert list(fields) == list(OFFICIAL_FIELDS)
    for name, (label, json_type, default) in OFFICIAL_FIELDS.items():
        assert fields[name]["schema"]["title"] == label, name
        assert fields[name]["schema"]["type"] == json_type, name
        assert fields[name]["value"] == default, name
        assert fields[name]["schema"]["description"].startswith("Optional."), name
    assert got["behaviour"]["hidden_fields"] == OFFICIAL_HIDDEN
    assert got["behaviour"]["relabeling"] == {"password": "API Key"}


# --------------------------------------------------------------------------------------------------
# The hook against the real test server
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def keyed_server(tmp_path, embedder):
    """The test server with an API key and one collection, ``sec_a``."""
    srv = QdrantTestServer(tmp_path / "keyed", api_key=KEY)
    data, run = tmp_path / "small.parquet", tmp_path / "run"
    vdb_core.sample_data(data, rows=8, seed=3)
    shard = vdb_core.plan(run, data)["shards"][0]
    vdb_core.embed_shard(run, shard, embedder)
    vdb_core.ensure_collection(run, "sec_a", target={**vdb_core.store_target(qdrant_url=srv.url), "api_key": KEY})
    yield srv
    srv.stop()


def _hook(monkeypatch, conn_id: str = "qdrant_test", **fields):
    from vdb_core.airflow_hook import VdbQdrantHook

    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "qdrant", **fields}))
    return VdbQdrantHook(conn_id)


def _fields(port: int, key: str | None = KEY) -> dict:
    """A connection as the form writes it: host, the REST port, the API key, extra grpc_port."""
    return {"host": "127.0.0.1", "port": 6333, "password": key, "extra": {"grpc_port": port, "https": False}}


def test_hook_test_connection_lists_the_collections(monkeypatch, keyed_server):
    ok, message = _hook(monkeypatch, **_fields(keyed_server.port)).test_connection()
    assert ok, message
    assert f"qdrant server http://127.0.0.1:{keyed_server.port} (with API key)" in message
    assert "1 collection(s): sec_a" in message
    assert KEY not in message


def test_hook_get_conn_is_our_store_and_target_is_what_tasks_use(monkeypatch, keyed_server):
    hook = _hook(monkeypatch, **_fields(keyed_server.port))
    assert hook.target() == {**hook.target(), "kind": "server", "url": keyed_server.url, "api_key": KEY}
    with hook.get_conn() as store:
        assert isinstance(store, vdb_core.Store) and store.collections() == ["sec_a"]


def test_hook_test_connection_with_a_wrong_key(monkeypatch, keyed_server):
    ok, message = _hook(monkeypatch, **_fields(keyed_server.port, key="wrong-key")).test_connection()
    assert not ok
    assert message.startswith("StoreError [store_auth]:") and "API key is missing or wrong" in message, message
    assert "wrong-key" not in message
    ok, message = _hook(monkeypatch, **_fields(keyed_server.port, key=None)).test_connection()
    assert not ok and "API key is missing or wrong" in message, message


def test_hook_test_connection_with_a_wrong_port(monkeypatch):
    port = free_port()  # nothing listens there
    ok, message = _hook(monkeypatch, **_fields(port)).test_connection()
    assert not ok
    assert message.startswith("StoreError [store_unavailable]:"), message
    assert f"http://127.0.0.1:{port}" in message and "unavailable" in message


def test_hook_test_connection_with_inconsistent_fields(monkeypatch):
    ok, message = _hook(monkeypatch, host="127.0.0.1:6333", password=KEY).test_connection()
    assert not ok
    assert message.startswith("ConfigError [invalid_config]:") and "contains a port" in message, message


# --------------------------------------------------------------------------------------------------
# The api-server: the form's metadata and the Test button's endpoint
# --------------------------------------------------------------------------------------------------


@pytest.mark.airflow
def test_the_ui_form_and_its_test_button_through_the_api_server(airflow_env, keyed_server, tmp_path):
    env = {**with_api_port(airflow_env, free_port()), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"}
    with AirflowStack(env, tmp_path / "logs") as stack:
        stack.start("api-server", "api-server", "--port", env["AIRFLOW__API__PORT"])
        stack.wait_api()
        meta = {m["connection_type"]: m for m in stack.api("GET", "/ui/connections/hook_meta")}
        qdrant = meta["qdrant"]
        assert qdrant["hook_class_name"] == HOOK_CLASS_NAME and qdrant["hook_name"] == "Qdrant"
        assert list(qdrant["extra_fields"]) == list(OFFICIAL_FIELDS)
        assert qdrant["standard_fields"]["password"]["title"] == "API Key"
        assert qdrant["standard_fields"]["login"]["hidden"] is True

        def test_button(password: str | None, grpc_port: int) -> dict:
            body = {
                "connection_id": "qdrant_ui",
                "conn_type": "qdrant",
                "host": "127.0.0.1",
                "port": 6333,
                "password": password,
                "extra": json.dumps({"grpc_port": grpc_port, "prefer_gprc": True, "https": False}),
            }
            return stack.api("POST", "/api/v2/connections/test", body)

        ok = test_button(KEY, keyed_server.port)
        assert ok["status"] is True and "1 collection(s): sec_a" in ok["message"], ok
        bad = test_button("wrong-key", keyed_server.port)
        assert bad["status"] is False and "API key is missing or wrong" in bad["message"], bad
