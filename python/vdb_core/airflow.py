"""Glue for Airflow DAGs: where Qdrant is, where the run's files live, which errors are worth a retry.

Kept here (not in the DAG files) so DAGs only orchestrate. Importing this module does not import
Airflow; functions that need it import it lazily.

The Qdrant connection is read exactly as the official Qdrant provider's ``QdrantHook.get_conn``
reads it (``apache-airflow-providers-qdrant``): the connection's host, port (REST, default 6333),
password (the API key) and the extra fields ``url``, ``grpc_port`` (default 6334), ``prefer_gprc``
(sic, the provider's spelling), ``https`` and ``prefix``, combined the way ``qdrant_client``
combines them. vdb_core speaks gRPC only, so the target is always ``<scheme>://<host>:<grpc_port>``.
Two readings are stricter than the provider's client, which would connect somewhere wrong instead:
boolean extras given as strings (a connection URI's ``?https=false``) are read as words, and a port
inside ``host`` is refused.

The connection itself is read in one place, the ``qdrant`` connection type's hook
(:class:`vdb_core.airflow_hook.VdbQdrantHook`, registered with Airflow by
:mod:`vdb_core.provider_info`): :func:`resolve_target` asks it, and :func:`connection_target` is the
rule it applies to the connection's fields.
"""

from __future__ import annotations

import fcntl
import functools
import importlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import vdb_core
from vdb_core._kinds import ErrorKind
from vdb_core.qdrant_url import DEFAULT_GRPC_PORT as _DEFAULT_GRPC_PORT
from vdb_core.qdrant_url import DEFAULT_REST_PORT as _DEFAULT_REST_PORT
from vdb_core.qdrant_url import port_note
from vdb_core.types import StoreTarget

log = logging.getLogger("vdb_core")

#: The Airflow connection the DAGs read Qdrant's location from (the Qdrant provider's default id).
QDRANT_CONN_ID = "qdrant_default"

#: The extra fields of the provider's connection form (``QdrantHook.get_connection_form_widgets``).
PROVIDER_EXTRA_FIELDS = ("url", "grpc_port", "prefer_gprc", "https", "prefix")
_HINTS = {
    "prefer_grpc": "the provider spells it 'prefer_gprc'",
    "api_key": "the provider reads the API key from the connection's password field",
    "host": "the host is the connection's host field (or a full URL in extra 'url')",
    "port": "the REST port is the connection's port field; the gRPC port is extra 'grpc_port'",
}

F = TypeVar("F", bound=Callable[..., Any])


def _config_error(message: str) -> vdb_core.ConfigError:
    return vdb_core._error(vdb_core.ConfigError, message)


def _input_error(message: str, kind: ErrorKind, file: str | None = None) -> vdb_core.InputError:
    return vdb_core._error(vdb_core.InputError, message, kind, file=file)


def _bool_field(name: str, value: Any, conn_id: str) -> bool | None:
    """A boolean extra field. The UI form stores JSON booleans; a connection given as a URI
    (``qdrant://...?https=false``) stores strings, read here as the words they are."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
        return False
    raise _config_error(f"connection {conn_id!r}: extra {name!r} must be true or false, not {value!r}")


def _port_field(name: str, value: Any, default: int, conn_id: str) -> int:
    if value is None or value == "":
        return default
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = -1
    if isinstance(value, bool) or not 0 < port < 65536:
        raise _config_error(f"connection {conn_id!r}: {name} must be a port number, not {value!r}")
    return port


@dataclass
class ConnectionTarget:
    """What a ``qdrant`` connection resolves to, with the reasons, for the task log."""

    url: str
    api_key: str | None
    notes: list[str] = field(default_factory=list)

    def target(self) -> StoreTarget:
        t = vdb_core.store_target(qdrant_url=self.url)  # the REST -> gRPC port rule
        if t["kind"] != "server":
            raise _config_error(f"connection URL {self.url!r} does not name a Qdrant server")
        # The connection's key, never QDRANT_API_KEY behind its back.
        return {"kind": "server", "url": t["url"], "api_key": self.api_key}


def connection_target(
    host: str | None,
    port: int | None,
    password: str | None,
    extra: Mapping[str, Any] | None,
    conn_id: str = QDRANT_CONN_ID,
) -> ConnectionTarget:
    """The gRPC target of a ``qdrant`` connection, following ``QdrantHook.get_conn`` and
    ``qdrant_client``'s ``QdrantRemote``:

    - ``host`` and extra ``url`` are exclusive; a host must not carry a scheme (use ``url``);
    - ``https``: the extra field if set, else on exactly when an API key (password) is set; the
      scheme of ``url`` overrides both;
    - the REST port (``url``'s port, else the connection's port, else 6333) is NOT where gRPC
      listens: gRPC goes to extra ``grpc_port`` (default 6334) on the same host;
    - ``prefix`` (or a path in ``url``) applies to REST only; both at once is an error;
    - ``prefer_gprc`` chooses REST or gRPC for the provider's own client; vdb_core always uses gRPC.

    Anything the provider would refuse raises ``ConfigError``; nothing falls back silently."""
    extra = dict(extra or {})
    notes: list[str] = []
    unknown = sorted(set(extra) - set(PROVIDER_EXTRA_FIELDS))
    if unknown:
        hints = "; ".join(f"{k!r}: {_HINTS[k]}" for k in unknown if k in _HINTS)
        notes.append(
            f"extra field(s) {', '.join(map(repr, unknown))} are not fields of the Qdrant provider's "
            f"connection and are ignored" + (f" ({hints})" if hints else "")
        )
    host = host or None
    rest_port = _port_field("port", port, _DEFAULT_REST_PORT, conn_id)
    api_key = password
    url = extra.get("url") or None
    grpc_port = _port_field("extra grpc_port", extra.get("grpc_port"), _DEFAULT_GRPC_PORT, conn_id)
    prefer_gprc = _bool_field("prefer_gprc", extra.get("prefer_gprc", False), conn_id)
    https = _bool_field("https", extra.get("https"), conn_id)
    prefix = extra.get("prefix") or ""
    if prefix and not prefix.startswith("/"):
        prefix = "/" + prefix

    use_https = https if https is not None else api_key is not None
    scheme = "https" if use_https else "http"
    scheme_from_url = False

    if url is not None and host is not None:
        raise _config_error(
            f"connection {conn_id!r} sets both host ({host!r}) and extra url: the Qdrant provider accepts only one"
        )
    if host is not None and host.startswith(("http://", "https://")):
        raise _config_error(
            f"connection {conn_id!r}: host {host!r} contains a scheme; put a full URL in extra 'url' instead"
        )
    if host is not None and not host.startswith("[") and re.search(r":\d*$", host):
        # The provider would pass it on and fail to connect later; say so now.
        raise _config_error(
            f"connection {conn_id!r}: host {host!r} contains a port; put the REST port in the port field "
            f"and the gRPC port in extra 'grpc_port'"
        )
    if url is not None:
        from urllib3.util import parse_url

        raw = url
        if raw.startswith("localhost"):
            raw = "//" + raw  # as qdrant_client does: 'localhost:6333' is not a scheme
        try:
            parsed = parse_url(raw)
        except ValueError as e:
            raise _config_error(f"connection {conn_id!r}: extra url {url!r} is not a URL ({e})") from None
        if parsed.scheme:
            scheme, scheme_from_url = parsed.scheme, True
            use_https = scheme == "https"
        if prefix and parsed.path:
            raise _config_error(
                f"connection {conn_id!r}: a path prefix is set both in extra url ({parsed.path!r}) and in "
                f"extra prefix ({prefix!r}); the Qdrant provider accepts only one"
            )
        if scheme not in ("http", "https"):
            raise _config_error(
                f"connection {conn_id!r}: extra url {url!r} has the scheme {scheme!r}; write http://... or https://..."
            )
        if not parsed.host:
            raise _config_error(f"connection {conn_id!r}: extra url {url!r} names no host")
        target_host = parsed.host
        rest_from = "extra url" if parsed.port else ("the connection's port" if port else "the default")
        rest_port = parsed.port or rest_port
        prefix = prefix or (parsed.path if parsed.path not in (None, "/") else "")
    else:
        target_host = host or "localhost"
        rest_from = "the connection's port" if port else "the default"

    if https is None and api_key is not None and not scheme_from_url:
        notes.append("extra 'https' is not set and an API key is: https, as the provider's client decides")
    notes.append(
        port_note(rest_port, grpc_port, rest_from, f"extra grpc_port{'' if 'grpc_port' in extra else ', default'}")
    )
    if prefix:
        notes.append(f"REST path prefix {prefix!r} does not apply to gRPC (as in the provider's own client)")
    if not prefer_gprc:
        notes.append("prefer_gprc is off: the provider's own client would prefer REST; vdb_core always uses gRPC")
    if api_key and not use_https:
        notes.append("an API key is sent over plain http (fine on a private network only)")
    return ConnectionTarget(url=f"{scheme}://{target_host}:{grpc_port}", api_key=api_key or None, notes=notes)


def require_server() -> bool:
    """``VDB_REQUIRE_SERVER``: a Qdrant server is expected (docker-compose sets it)."""
    return bool(vdb_core.resolved_settings()["require_server"])


def resolve_target(conn_id: str = QDRANT_CONN_ID) -> StoreTarget:
    """Where the vectors go: the Airflow connection ``conn_id``; only when that connection is
    genuinely not defined, ``QDRANT_URL``, else the embedded store. With ``VDB_REQUIRE_SERVER=1``
    a missing connection is a ``ConfigError`` too. Any other failure to read the connection (a
    secrets backend error, a malformed ``AIRFLOW_CONN_...`` variable) propagates."""
    try:
        from airflow.sdk.exceptions import AirflowNotFoundException

        from vdb_core.airflow_hook import VdbQdrantHook
    except ImportError as e:  # no Airflow at all: only the non-Airflow settings can apply
        if require_server():
            raise _config_error(
                f"VDB_REQUIRE_SERVER is set but Airflow is not importable ({e}) to read {conn_id!r}"
            ) from None
        target = vdb_core.store_target()
        log.info("Airflow not importable; using %s (QDRANT_URL or the embedded store)", describe(target))
        return target
    try:
        target = VdbQdrantHook(conn_id).target()
    except AirflowNotFoundException:
        env_name = f"AIRFLOW_CONN_{conn_id.upper()}"
        if os.environ.get(env_name, "").strip():
            # Airflow skips a secrets backend that fails to parse a connection and then reports it as
            # not defined: that must not turn into a silent fallback.
            raise _config_error(
                f"{env_name} is set, but Airflow cannot read it as a connection (malformed JSON or URI?)"
            ) from None
        if require_server():
            raise _config_error(
                f"the Airflow connection {conn_id!r} is not defined and VDB_REQUIRE_SERVER is set: define "
                f"it (e.g. {env_name}) instead of writing vectors to a worker's local disk"
            ) from None
        target = vdb_core.store_target()
        log.info("no Airflow connection %r; using %s (QDRANT_URL or the embedded store)", conn_id, describe(target))
        return target
    log.info("connection %r -> %s", conn_id, describe(target))
    return target


def describe(target: Mapping[str, Any]) -> str:
    """For logs: never prints the API key."""
    if target.get("kind") == "server":
        return f"qdrant server {target['url']}" + (" (with API key)" if target.get("api_key") else "")
    return f"embedded store {target['path']}"


# --------------------------------------------------------------------------------------------------
# Errors: fail now or retry
# --------------------------------------------------------------------------------------------------

#: Error kinds a retry cannot fix (besides every InputError, ConfigError and ModelError).
DETERMINISTIC_KINDS = frozenset(
    {"collection_mismatch", "run_mismatch", "invalid_config", "outside_data_root", "store_auth"}
)


def is_deterministic(err: BaseException) -> bool:
    """True for errors a retry repeats: bad input, bad settings, a bad model, a collection or run
    directory that belongs to something else, credentials the store refuses. False for the rest
    (store unavailable or refusing, a lock held by another task, I/O, a hand-off file that is
    missing or damaged and that a retry redoes)."""
    if isinstance(err, vdb_core.InputError | vdb_core.ConfigError | vdb_core.ModelError):
        return True
    return isinstance(err, vdb_core.VdbError) and getattr(err, "kind", None) in DETERMINISTIC_KINDS


def fail_fast(fn: F) -> F:
    """Task decorator (under ``@task``): a deterministic ``VdbError`` fails the task instance at once
    (``AirflowFailException``: no retries left to burn); a transient one propagates as it is, so the
    task's ``retries`` apply."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except vdb_core.VdbError as e:
            if not is_deterministic(e):
                raise
            from airflow.sdk.exceptions import AirflowFailException

            kind = getattr(e, "kind", None) or "error"
            raise AirflowFailException(f"{type(e).__name__} [{kind}], not retried: {e}") from e

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# Input paths and run directories
# --------------------------------------------------------------------------------------------------


def data_root() -> str | None:
    """``VDB_DATA_ROOT``: where trigger-form input paths must resolve (unset: anywhere)."""
    return vdb_core.resolved_settings()["data_root"] or None


def resolve_input(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str:
    """The real path of an input file, refused (``InputError``, kind ``outside_data_root``) when it
    resolves outside the data root (``root``, else ``VDB_DATA_ROOT``), through ``..`` or a symlink.
    A relative path is taken relative to the data root. Without a data root, the path as given."""
    path = os.fspath(path)
    root = os.fspath(root) if root else data_root()
    if not root:
        return path
    real_root = os.path.realpath(root)
    candidate = path if os.path.isabs(path) else os.path.join(real_root, path)
    real = os.path.realpath(candidate)
    if os.path.commonpath([real_root, real]) != real_root:
        raise _input_error(
            f"input {path!r} resolves to {real!r}, outside the data root {real_root!r} (VDB_DATA_ROOT)",
            "outside_data_root",
            file=path,
        )
    return real


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o770)  # owner and group (the Airflow image's shared group 0) only


def current_run_dir() -> str:
    """This DAG run's handoff directory, ``$VDB_WORK_DIR/<dag_id>/<run_id>``: every task of the run
    derives the same path from its context, so no path travels through XCom. Created owner/group
    only (mode 0770)."""
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    path = Path(vdb_core.run_dir(ctx["dag"].dag_id, ctx["run_id"]))
    _private_dir(path.parent)
    _private_dir(path)
    return str(path)


def changes_report_path(collection: str) -> str:
    """Where the DAG writes this run's changes report: ``$VDB_WORK_DIR/reports/<collection>/changes-
    <run_id>.parquet`` (beside the run directories, so it outlives the run's cleanup)."""
    from airflow.sdk import get_current_context

    ctx = get_current_context()
    folder = Path(vdb_core.resolved_settings()["work_dir"]) / "reports" / collection
    _private_dir(folder.parent)
    _private_dir(folder)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", ctx["run_id"])
    return str(folder / f"changes-{safe}.parquet")


def task_progress(logger: logging.Logger | None = None) -> Callable[[str], None]:
    """A progress sink for vdb_core steps that writes count/rate/ETA lines into the task log."""
    return (logger or log).info


def _last_activity(run: Path) -> float:
    newest = run.stat().st_mtime
    for dirpath, _dirs, files in os.walk(run):
        for name in [*files, "."]:
            try:
                newest = max(newest, os.stat(os.path.join(dirpath, name)).st_mtime)
            except FileNotFoundError:
                pass
    return newest


def _locked(run: Path) -> bool:
    """True when a task holds one of the run directory's locks right now."""
    for lock in (run / "locks").glob("*.lock"):
        try:
            with open(lock, "a") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(f, fcntl.LOCK_UN)
        except FileNotFoundError:
            pass
    return False


def _run_dirs(work_dir: Path) -> Iterator[tuple[str, Path]]:
    if not work_dir.is_dir():
        return
    for dag_dir in sorted(p for p in work_dir.iterdir() if p.is_dir() and p.name != "qdrant"):
        for run in sorted(p for p in dag_dir.iterdir() if p.is_dir()):
            if (run / "manifest.json").exists() or (run / "shards").is_dir():
                yield dag_dir.name, run


def prune_run_dirs(
    older_than_days: float,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    run_state: Callable[[str, str], str | None] | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> dict[str, list[str]]:
    """Delete run directories (``<work_dir>/<dag_id>/<run_id>/``) untouched for ``older_than_days``.

    A directory is kept while anything in it changed within the retention (a failed run can be
    resumed by clearing its tasks, and the retention is the promise of how long), while a task holds
    one of its locks, and while ``run_state(dag_id, run_id)`` says its DAG run is not finished
    (``queued``/``running``/...; ``None`` = unknown to Airflow, e.g. a CLI run)."""
    if older_than_days < 0:
        raise _config_error(f"older_than_days must be >= 0, not {older_than_days}")
    root = Path(work_dir or vdb_core.resolved_settings()["work_dir"])
    cutoff = (now if now is not None else time.time()) - older_than_days * 86400
    out: dict[str, list[str]] = {"removed": [], "kept_recent": [], "kept_active": []}
    for dag_id, run in _run_dirs(root):
        if _last_activity(run) > cutoff:
            out["kept_recent"].append(str(run))
            continue
        state = run_state(dag_id, run.name) if run_state else None
        if state not in (None, "success", "failed") or (dry_run and _locked(run)):
            out["kept_active"].append(str(run))
            continue
        if not dry_run:
            try:
                # Takes the directory's locks and deletes it while holding them (refused while a
                # task holds one): a task starting now cannot lose its files under it.
                vdb_core.remove_run_dir(run)
            except vdb_core.HandoffError as e:
                if getattr(e, "kind", None) != "locked":
                    raise
                out["kept_active"].append(str(run))
                continue
        out["removed"].append(str(run))
    return out


# --------------------------------------------------------------------------------------------------
# Assets and callbacks
# --------------------------------------------------------------------------------------------------


def collection_asset_uri(collection: str | None = None, conn_id: str = QDRANT_CONN_ID) -> str:
    """``qdrant://<connection id>/<collection>``: the asset a successful ingest updates. The
    authority is the connection id, not the host it points at, so re-pointing ``qdrant_default``
    (e.g. at Qdrant Cloud) does not rename the asset that downstream DAGs are scheduled on."""
    return f"qdrant://{conn_id}/{collection or vdb_core.resolved_settings()['collection']}"


def collection_asset(collection: str | None = None, conn_id: str = QDRANT_CONN_ID):
    from airflow.sdk import Asset

    uri = collection_asset_uri(collection, conn_id)
    return Asset(name=uri, uri=uri, group="qdrant")


def _user_callback() -> Callable[[Any], Any] | None:
    spec = os.environ.get("VDB_ON_FAILURE_CALLBACK", "").strip()
    if not spec:
        return None
    module, _, name = spec.partition(":")
    if not module or not name:
        raise _config_error(f"VDB_ON_FAILURE_CALLBACK={spec!r}: expected 'package.module:function'")
    return getattr(importlib.import_module(module), name)


def on_dag_failure(context: Mapping[str, Any]) -> None:
    """The DAGs' ``on_failure_callback``: logs what failed and that the run directory is kept for
    a resume, then calls the function named by ``VDB_ON_FAILURE_CALLBACK`` (``module:function``,
    e.g. a module in ``plugins/`` or the DAG folder) with the same context, if set."""
    dag_run = context.get("dag_run")
    log.error(
        "DAG run %s of %s failed: %s; its run directory is kept until pruned, clear the failed tasks to resume",
        getattr(dag_run, "run_id", "?"),
        getattr(context.get("dag"), "dag_id", "?"),
        context.get("reason") or "a task failed",
    )
    callback = _user_callback()
    if callback is not None:
        callback(context)


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
