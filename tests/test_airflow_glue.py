"""vdb_core.airflow and docker/deploy.py without a scheduler: the Qdrant connection as the official
provider reads it, no silent fallback, fail-fast errors, the data root, pruning run directories,
and the secrets airflow-init writes. Real Airflow (its Connection and exceptions), no mocks except
one injected failure of the secrets lookup."""

from __future__ import annotations

import base64
import fcntl
import importlib.util
import json
import logging
import os
import stat
import time
import warnings
from pathlib import Path

import pytest
import vdb_core
from vdb_core.airflow import (
    collection_asset_uri,
    connection_target,
    fail_fast,
    is_deterministic,
    prune_run_dirs,
    resolve_input,
    resolve_target,
)

ROOT = Path(__file__).resolve().parents[1]


def _load_script(path: Path):
    """A script of the image (not part of the vdb_core package) imported as a module."""
    spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


deploy = _load_script(ROOT / "docker" / "deploy.py")

CLOUD = "xyz-example.eu-central.aws.cloud.qdrant.io"

# (id, host, port, password, extra, expected gRPC url or ("error", text), expected api key)
CONNECTIONS = [
    # The compose file's connection: REST port 6333, gRPC 6334, https explicitly off despite the key.
    (
        "compose",
        "qdrant",
        6333,
        "k3y",
        {"grpc_port": 6334, "prefer_gprc": True, "https": False},
        "http://qdrant:6334",
        "k3y",
    ),
    # The Qdrant Cloud bug: extra url with the REST port, as the provider's form example shows it.
    ("cloud url", None, None, "cloudkey", {"url": f"https://{CLOUD}:6333"}, f"https://{CLOUD}:6334", "cloudkey"),
    (
        "cloud url, own grpc port",
        None,
        None,
        "ck",
        {"url": f"https://{CLOUD}", "grpc_port": 7334},
        f"https://{CLOUD}:7334",
        "ck",
    ),
    # No scheme in url: https follows the provider's rule (on exactly when an API key is set).
    ("url no scheme + key", None, None, "ck", {"url": f"{CLOUD}:6333"}, f"https://{CLOUD}:6334", "ck"),
    ("url no scheme, no key", None, None, None, {"url": f"{CLOUD}:6333"}, f"http://{CLOUD}:6334", None),
    ("url localhost:port", None, None, None, {"url": "localhost:6333"}, "http://localhost:6334", None),
    # The url's scheme wins over the https field.
    (
        "url scheme wins",
        None,
        None,
        None,
        {"url": "http://q.internal:6333", "https": True},
        "http://q.internal:6334",
        None,
    ),
    ("host + key -> https", "q.example", 6333, "k", {}, "https://q.example:6334", "k"),
    ("host, no key -> http", "q.example", None, None, {}, "http://q.example:6334", None),
    ("host + https, no key", "q.example", None, None, {"https": True}, "https://q.example:6334", None),
    ("nothing -> localhost", None, None, None, {}, "http://localhost:6334", None),
    # Connections given as URIs (AIRFLOW_CONN_...=qdrant://...?https=false) carry strings in extra.
    ("uri strings", "h", 6333, "k", {"https": "false", "grpc_port": "6335"}, "http://h:6335", "k"),
    ("uri strings true", "h", 6333, None, {"https": "True"}, "https://h:6334", None),
    # An empty password is "a key is set" to the provider's client (api_key is not None).
    ("empty password", "h", None, "", {}, "https://h:6334", None),
    ("prefix is REST only", "h", 6333, None, {"prefix": "service/v1"}, "http://h:6334", None),
    ("url path is REST only", None, None, None, {"url": "http://h:6333/qdrant"}, "http://h:6334", None),
    ("host and url", "h", None, None, {"url": "http://other:6333"}, ("error", "only one"), None),
    ("host with scheme", "https://h", None, None, {}, ("error", "contains a scheme"), None),
    ("host with port", "h:6333", None, None, {}, ("error", "contains a port"), None),
    ("ipv6 host", "[::1]", 6333, None, {}, "http://[::1]:6334", None),
    ("url qdrant:6333", None, None, None, {"url": "qdrant:6333"}, ("error", "scheme 'qdrant'"), None),
    ("url ftp", None, None, None, {"url": "ftp://h:6333"}, ("error", "scheme 'ftp'"), None),
    ("prefix twice", None, None, None, {"url": "http://h:6333/a", "prefix": "b"}, ("error", "both"), None),
    ("bad https", "h", None, None, {"https": "maybe"}, ("error", "true or false"), None),
    ("bad grpc_port", "h", None, None, {"grpc_port": "grpc"}, ("error", "port number"), None),
    ("grpc_port out of range", "h", None, None, {"grpc_port": 70000}, ("error", "port number"), None),
]


@pytest.mark.parametrize(
    "host,port,password,extra,expected,api_key",
    [c[1:] for c in CONNECTIONS],
    ids=[c[0] for c in CONNECTIONS],
)
def test_connection_table(host, port, password, extra, expected, api_key):
    if isinstance(expected, tuple):
        with pytest.raises(vdb_core.ConfigError, match=expected[1]) as e:
            connection_target(host, port, password, extra)
        assert e.value.kind == "invalid_config"
        if password:
            assert password not in str(e.value)
        return
    ct = connection_target(host, port, password, extra)
    assert ct.url == expected
    assert ct.api_key == api_key
    target = ct.target()
    assert target == {**target, "kind": "server", "url": expected, "api_key": api_key}


def test_connection_notes_explain_the_port_mapping_and_misspellings():
    ct = connection_target(None, None, "ck", {"url": f"https://{CLOUD}:6333", "prefer_grpc": True, "api_key": "x"})
    text = "\n".join(ct.notes)
    assert "REST port 6333 (from extra url) -> gRPC port 6334" in text
    assert "'prefer_grpc'" in text and "prefer_gprc" in text  # the provider's spelling is suggested
    assert "password field" in text  # extra api_key is not where the provider reads the key
    assert "ck" not in text.replace("check", "")
    ct = connection_target("h", 6333, None, {"prefix": "/svc", "prefer_gprc": False})
    text = "\n".join(ct.notes)
    assert "'/svc' does not apply to gRPC" in text and "prefer_gprc is off" in text


# --------------------------------------------------------------------------------------------------
# resolve_target: a fallback only when the connection is genuinely not defined
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AIRFLOW_CONN_") or name in ("QDRANT_URL", "QDRANT_API_KEY", "VDB_REQUIRE_SERVER"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("VDB_STORE_PATH", str(tmp_path / "store"))
    return monkeypatch


def _conn_json(**fields) -> str:
    return json.dumps({"conn_type": "qdrant", **fields})


def test_missing_connection_falls_back_to_the_embedded_store(clean_env, tmp_path):
    target = resolve_target()
    assert target["kind"] == "embedded" and target["path"] == str(tmp_path / "store")


def test_missing_connection_with_qdrant_url_uses_it(clean_env):
    clean_env.setenv("QDRANT_URL", "http://127.0.0.1:1")
    assert resolve_target()["url"] == "http://127.0.0.1:1"


def test_missing_connection_is_an_error_when_a_server_is_required(clean_env):
    clean_env.setenv("VDB_REQUIRE_SERVER", "1")
    with pytest.raises(vdb_core.ConfigError, match="qdrant_default.*VDB_REQUIRE_SERVER"):
        resolve_target()
    # ... and the plain store_target() refuses the embedded fallback too.
    with pytest.raises(vdb_core.ConfigError, match="VDB_REQUIRE_SERVER"):
        vdb_core.store_target()


def test_malformed_connection_variable_is_an_error_not_a_fallback(clean_env):
    # Airflow itself reports such a connection as "not defined"; we must not fall back.
    clean_env.setenv("AIRFLOW_CONN_QDRANT_DEFAULT", '{"conn_type": "qdrant", "host": ')
    with pytest.raises(vdb_core.ConfigError, match="AIRFLOW_CONN_QDRANT_DEFAULT is set"):
        resolve_target()


def test_other_lookup_failures_propagate(clean_env):
    from airflow.sdk import Connection

    def broken(conn_id):
        raise RuntimeError("secrets backend unreachable")

    clean_env.setattr(Connection, "get", classmethod(lambda cls, conn_id: broken(conn_id)))
    with pytest.raises(RuntimeError, match="secrets backend unreachable"):
        resolve_target()


def test_defined_connection_wins_and_its_key_is_never_logged(clean_env, caplog):
    clean_env.setenv("QDRANT_URL", "http://should-not-be-used:6334")
    clean_env.setenv("QDRANT_API_KEY", "env-key-not-for-this-connection")
    clean_env.setenv(
        "AIRFLOW_CONN_QDRANT_DEFAULT", _conn_json(password="s3cret-cloud-key", extra={"url": f"https://{CLOUD}:6333"})
    )
    with caplog.at_level(logging.INFO, logger="vdb_core"):
        target = resolve_target()
    assert target["url"] == f"https://{CLOUD}:6334" and target["api_key"] == "s3cret-cloud-key"
    assert "REST port 6333 (from extra url) -> gRPC port 6334" in caplog.text
    assert "s3cret-cloud-key" not in caplog.text
    # A connection without a password sends no key, not QDRANT_API_KEY from elsewhere.
    clean_env.setenv("AIRFLOW_CONN_QDRANT_DEFAULT", _conn_json(host="q", extra={"https": False}))
    assert resolve_target()["api_key"] is None


def test_connection_as_uri(clean_env):
    clean_env.setenv("AIRFLOW_CONN_QDRANT_DEFAULT", "qdrant://:k3y@qdrant:6333?grpc_port=6334&https=false")
    target = resolve_target()
    assert target["url"] == "http://qdrant:6334" and target["api_key"] == "k3y"


# --------------------------------------------------------------------------------------------------
# fail_fast: deterministic errors fail the task, transient ones are retried
# --------------------------------------------------------------------------------------------------


def _err(cls, kind):
    e = cls(f"a {kind} error")
    e.kind = kind
    return e


@pytest.mark.parametrize(
    "error,fails",
    [
        (_err(vdb_core.InputError, "missing_column"), True),
        (_err(vdb_core.ConfigError, "invalid_config"), True),
        (_err(vdb_core.ModelError, "model"), True),
        (_err(vdb_core.StoreError, "collection_mismatch"), True),
        (_err(vdb_core.HandoffError, "run_mismatch"), True),
        (_err(vdb_core.StoreError, "store_auth"), True),
        (_err(vdb_core.VdbError, "io"), False),
        (_err(vdb_core.StoreError, "store_unavailable"), False),
        (_err(vdb_core.StoreError, "store"), False),
        (_err(vdb_core.HandoffError, "locked"), False),
        (_err(vdb_core.HandoffError, "handoff"), False),
    ],
    ids=lambda v: getattr(v, "kind", str(v)),
)
def test_fail_fast_classification(error, fails):
    from airflow.sdk.exceptions import AirflowFailException

    assert is_deterministic(error) is fails

    @fail_fast
    def task():
        raise error

    with pytest.raises(AirflowFailException if fails else type(error)) as raised:
        task()
    if fails:
        assert error.kind in str(raised.value) and raised.value.__cause__ is error
    else:
        assert raised.value is error


def test_fail_fast_on_a_real_error_and_passthrough(tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    @fail_fast
    def plan(path):
        """doc"""
        return vdb_core.inspect(path)

    assert plan.__doc__ == "doc" and plan.__name__ == "plan"
    with pytest.raises(AirflowFailException, match="file_not_found") as raised:
        plan(tmp_path / "missing.parquet")
    assert isinstance(raised.value.__cause__, vdb_core.InputError)

    @fail_fast
    def other():
        raise KeyError("not a vdb_core error")

    with pytest.raises(KeyError):
        other()


# --------------------------------------------------------------------------------------------------
# Input paths under the data root
# --------------------------------------------------------------------------------------------------


def test_input_paths_must_resolve_under_the_data_root(tmp_path, monkeypatch):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    inside = root / "sub" / "a.parquet"
    inside.write_bytes(b"x")
    outside = tmp_path / "secret.parquet"
    outside.write_bytes(b"x")
    (root / "link-out.parquet").symlink_to(outside)
    (root / "link-in.parquet").symlink_to(inside)

    assert resolve_input(inside, root) == str(inside)
    assert resolve_input("sub/a.parquet", root) == str(inside)
    assert resolve_input(root / "sub" / ".." / "sub" / "a.parquet", root) == str(inside)
    assert resolve_input(root / "link-in.parquet", root) == str(inside)
    for bad in (root / ".." / "secret.parquet", "../secret.parquet", root / "link-out.parquet", "/etc/passwd"):
        with pytest.raises(vdb_core.InputError, match="outside the data root") as e:
            resolve_input(bad, root)
        assert e.value.kind == "outside_data_root"
    # Without a data root the path is used as given; VDB_DATA_ROOT sets one.
    monkeypatch.delenv("VDB_DATA_ROOT", raising=False)
    assert resolve_input("/etc/passwd") == "/etc/passwd"
    monkeypatch.setenv("VDB_DATA_ROOT", str(root))
    with pytest.raises(vdb_core.InputError, match="VDB_DATA_ROOT"):
        resolve_input("/etc/passwd")


def test_new_settings_are_in_the_one_settings_table(monkeypatch):
    envs = {s["env"]: s for s in vdb_core.settings()}
    for name in ("VDB_DATA_ROOT", "VDB_REQUIRE_SERVER", "VDB_RUN_RETENTION_DAYS", "VDB_ON_FAILURE_CALLBACK"):
        assert envs[name]["help"], name
    monkeypatch.setenv("VDB_REQUIRE_SERVER", "perhaps")
    with pytest.raises(vdb_core.ConfigError, match="VDB_REQUIRE_SERVER"):
        vdb_core.resolved_settings()
    monkeypatch.setenv("VDB_REQUIRE_SERVER", "yes")
    monkeypatch.setenv("VDB_RUN_RETENTION_DAYS", "3")
    s = vdb_core.resolved_settings()
    assert s["require_server"] is True and s["run_retention_days"] == 3


# --------------------------------------------------------------------------------------------------
# Pruning run directories
# --------------------------------------------------------------------------------------------------


def _run(work: Path, dag: str, run: str, age_days: float, now: float) -> Path:
    d = work / dag / run
    (d / "shards").mkdir(parents=True)
    (d / "locks").mkdir()
    (d / "manifest.json").write_text("{}")
    (d / "shards" / "shard-00000.arrow").write_bytes(b"x")
    t = now - age_days * 86400
    for p in [d / "shards" / "shard-00000.arrow", d / "manifest.json", d / "shards", d / "locks", d]:
        os.utime(p, (t, t))
    return d


def test_prune_run_dirs_keeps_what_may_still_be_resumed(tmp_path):
    now = time.time()
    work = tmp_path / "work"
    old_failed = _run(work, "sec_filings_to_qdrant", "manual__old_failed", 10, now)
    old_success = _run(work, "sec_filings_to_qdrant", "manual__old_success", 10, now)
    recent_failed = _run(work, "sec_filings_to_qdrant", "manual__recent", 2, now)
    old_running = _run(work, "sec_filings_to_qdrant", "manual__running", 10, now)
    old_locked = _run(work, "sec_filings_to_qdrant", "manual__locked", 10, now)
    old_touched = _run(work, "sec_filings_to_qdrant", "manual__touched", 10, now)
    os.utime(old_touched / "manifest.json", (now - 3600, now - 3600))  # a retry wrote it an hour ago
    old_cli = _run(work, "cli", "ingest-abc", 10, now)
    store = work / "qdrant" / "sec_filings"  # the embedded store lives under the work dir too
    store.mkdir(parents=True)
    states = {
        "manual__old_failed": "failed",
        "manual__old_success": "success",
        "manual__running": "running",
        "manual__locked": "failed",
        "manual__touched": "failed",
    }
    lock = open(old_locked / "locks" / "manifest.lock", "w")  # noqa: SIM115 (held across the call)
    fcntl.flock(lock, fcntl.LOCK_EX)
    os.utime(old_locked / "locks" / "manifest.lock", (now - 864000, now - 864000))
    os.utime(old_locked / "locks", (now - 864000, now - 864000))
    try:

        def run_state(dag_id, run_id):
            return None if dag_id == "cli" else states[run_id]

        dry = prune_run_dirs(7, work_dir=work, run_state=run_state, dry_run=True, now=now)
        assert all(Path(p).exists() for p in dry["removed"])
        result = prune_run_dirs(7, work_dir=work, run_state=run_state, now=now)
    finally:
        lock.close()
    assert sorted(result["removed"]) == sorted(map(str, [old_failed, old_success, old_cli]))
    assert dry["removed"] == result["removed"]
    assert sorted(result["kept_recent"]) == sorted(map(str, [recent_failed, old_touched]))
    assert sorted(result["kept_active"]) == sorted(map(str, [old_running, old_locked]))
    for p in result["removed"]:
        assert not Path(p).exists()
    assert store.is_dir() and recent_failed.is_dir() and old_running.is_dir()
    with pytest.raises(vdb_core.ConfigError):
        prune_run_dirs(-1, work_dir=work)


def test_remove_run_dir_refuses_what_is_not_an_idle_run_directory(tmp_path):
    # Not a run directory (no manifest.json): refused, nothing in it touched.
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    with pytest.raises(vdb_core.ConfigError, match="not a run directory") as raised:
        vdb_core.remove_run_dir(photos)
    assert raised.value.kind == "invalid_config" and (photos / "a.jpg").is_file()
    # A run directory a task holds a lock on: refused (kind locked), left whole; then removed.
    run = _run(tmp_path / "work", "dag", "run", 10, time.time())
    with open(run / "locks" / "shard-00001.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with pytest.raises(vdb_core.HandoffError, match="shard-00001.lock") as raised:
            vdb_core.remove_run_dir(run)
        assert raised.value.kind == "locked" and (run / "manifest.json").is_file()
    vdb_core.remove_run_dir(run)
    assert not run.exists() and os.listdir(run.parent) == []


def test_collection_asset_uri_names_the_connection_and_collection():
    assert collection_asset_uri("sec_filings") == "qdrant://qdrant_default/sec_filings"
    assert collection_asset_uri("x", conn_id="qdrant_cloud") == "qdrant://qdrant_cloud/x"


# --------------------------------------------------------------------------------------------------
# Secrets written by airflow-init
# --------------------------------------------------------------------------------------------------


def test_init_secrets_generates_keeps_and_validates(tmp_path, capsys):
    import jwt

    auth = tmp_path / "auth"
    first = deploy.init_secrets(auth, env={"AIRFLOW_ADMIN_USERNAME": "alice"})
    assert first == {
        "jwt_secret": "generated",
        "fernet_key": "generated",
        "api_secret_key": "generated",
        "admin_password": "generated",
    }
    for name in ("jwt_secret", "fernet_key", "api_secret_key", deploy.PASSWORDS_FILE):
        assert stat.S_IMODE((auth / name).stat().st_mode) == 0o640, name
    secret = (auth / "jwt_secret").read_text()
    assert len(secret.encode()) >= 64
    assert len(base64.urlsafe_b64decode((auth / "fernet_key").read_text())) == 32
    password = json.loads((auth / deploy.PASSWORDS_FILE).read_text())["alice"]
    assert password in capsys.readouterr().out  # printed once, for the user to log in
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PyJWT warns about HMAC keys shorter than the digest
        token = jwt.encode({"sub": "x"}, secret, algorithm="HS512")
        assert jwt.decode(token, secret, algorithms=["HS512"])["sub"] == "x"

    again = deploy.init_secrets(auth, env={"AIRFLOW_ADMIN_USERNAME": "alice"})
    assert again == {"jwt_secret": "kept", "fernet_key": "kept", "api_secret_key": "kept", "admin_password": "kept"}
    assert len((auth / "api_secret_key").read_text().encode()) >= deploy.API_SECRET_MIN_BYTES
    assert (auth / "jwt_secret").read_text() == secret
    assert json.loads((auth / deploy.PASSWORDS_FILE).read_text())["alice"] == password

    own = {
        "AIRFLOW__API_AUTH__JWT_SECRET": "j" * 64,
        "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(b"k" * 32).decode(),
        "AIRFLOW__API__SECRET_KEY": "s" * 32,
        "AIRFLOW_ADMIN_PASSWORD": "a-long-password",
    }
    assert set(deploy.init_secrets(auth, env=own).values()) == {"from .env"}
    assert (auth / "jwt_secret").read_text() == "j" * 64
    assert (auth / "api_secret_key").read_text() == "s" * 32


def test_init_secrets_writes_the_database_urls_the_services_read(tmp_path):
    """With POSTGRES_* (airflow-init's environment only), the metadata database's and the Celery
    result backend's URLs are files (read through *_CMD), the password URL-quoted: SQLAlchemy reads
    back exactly the password that was set, special characters included."""
    from sqlalchemy.engine import make_url

    auth = tmp_path / "auth"
    env = {"POSTGRES_USER": "air flow", "POSTGRES_PASSWORD": "p@ss:w/rd%?#", "POSTGRES_DB": "meta"}
    assert deploy.init_secrets(auth, env=env)["database_urls"] == "written"
    for name, driver in (("sql_alchemy_conn", "postgresql+psycopg2"), ("celery_result_backend", "postgresql")):
        assert stat.S_IMODE((auth / name).stat().st_mode) == 0o640, name
        url = make_url((auth / name).read_text().removeprefix("db+"))
        assert (url.drivername, url.username, url.password, url.host, url.database) == (
            driver,
            "air flow",
            "p@ss:w/rd%?#",
            "postgres",
            "meta",
        ), name
    assert not (tmp_path / "no-db" / "sql_alchemy_conn").exists()
    deploy.init_secrets(tmp_path / "no-db", env={})
    assert not (tmp_path / "no-db" / "sql_alchemy_conn").exists()  # nothing to write without POSTGRES_PASSWORD


@pytest.mark.parametrize(
    "env,message",
    [
        ({"AIRFLOW__API_AUTH__JWT_SECRET": "local-dev-jwt-secret-change-me"}, "publicly known"),
        ({"AIRFLOW__API_AUTH__JWT_SECRET": "s" * 32}, "at least 64"),
        ({"AIRFLOW__API_AUTH__JWT_SECRET": ""}, "empty"),
        ({"AIRFLOW__CORE__FERNET_KEY": "TInluJjI4qYSmLXmZ0CSHU2dIkY9upcfsJZVU61vJMI="}, "publicly known"),
        ({"AIRFLOW__CORE__FERNET_KEY": "not-a-key"}, "not a Fernet key"),
        ({"AIRFLOW_ADMIN_PASSWORD": "admin"}, "publicly known"),
        ({"AIRFLOW_ADMIN_PASSWORD": "short"}, "shorter than 8"),
        ({"AIRFLOW__API__SECRET_KEY": "short"}, "at least 16"),
        ({"AIRFLOW__API__SECRET_KEY": "change-me"}, "publicly known"),
    ],
    ids=lambda v: v if isinstance(v, str) else next(iter(v)),
)
def test_init_secrets_refuses_known_or_weak_values(tmp_path, env, message):
    with pytest.raises(deploy.SecretError, match=message):
        deploy.init_secrets(tmp_path / "auth", env=env)


def test_init_secrets_command_exits_nonzero_on_a_refused_secret(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "airflow")
    assert deploy.main(["init-secrets", str(tmp_path / "auth")]) == 1
    err = capsys.readouterr().err
    assert "AIRFLOW__API_AUTH__JWT_SECRET" in err and "airflow" not in err.replace("AIRFLOW", "")


def test_env_example_holds_no_usable_secret():
    active = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            active[key.strip()] = value.strip()
    for key in ("AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__CORE__FERNET_KEY", "AIRFLOW_ADMIN_PASSWORD"):
        assert key not in active, f".env.example sets {key}: it must stay commented out (generated)"
    for key, value in active.items():
        if "SECRET" in key or "FERNET" in key:
            pytest.fail(f".env.example sets the secret {key}={value!r}")
    assert deploy.default_secret_warnings(active), "the public Qdrant/Postgres defaults must be flagged"


def test_cli_run_directories_are_owner_and_group_only(tmp_path, sample_parquet):
    from conftest import vdb_cli

    env = {**os.environ, "VDB_WORK_DIR": str(tmp_path / "work"), "VDB_STORE_PATH": str(tmp_path / "store")}
    env.pop("QDRANT_URL", None)
    env.pop("VDB_REQUIRE_SERVER", None)
    run = tmp_path / "explicit-run"
    r = vdb_cli("ingest", str(sample_parquet), "--run-dir", str(run), "--shard-rows", "300", env=env)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(run.stat().st_mode) == 0o770
    r = vdb_cli("ingest", str(sample_parquet), "--shard-rows", "300", env=env)  # default: VDB_WORK_DIR/cli/<id>
    assert r.returncode == 0, r.stderr
    cli_dir = tmp_path / "work" / "cli"
    assert stat.S_IMODE(cli_dir.stat().st_mode) == 0o770
    assert [stat.S_IMODE(d.stat().st_mode) for d in cli_dir.iterdir()] in ([], [0o770])
    # With a required server and no URL: refused before any directory or store is made.
    r = vdb_cli(
        "ingest", str(sample_parquet), env={**env, "VDB_REQUIRE_SERVER": "1", "VDB_WORK_DIR": str(tmp_path / "w2")}
    )
    assert r.returncode == 1 and "VDB_REQUIRE_SERVER" in r.stderr, r.stderr
    assert not (tmp_path / "w2").exists()
