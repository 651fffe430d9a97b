"""vdb_core: SEC-filing sentences from parquet to vectors in Qdrant.

The heavy work (parquet, tokenizer, MiniLM on candle, Qdrant) is Rust in ``vdb_core._native``; this
package re-exports it with Pythonic signatures: keyword arguments, dicts and numpy arrays out,
one exception hierarchy in (see ``VdbError``).

Pipeline steps (each idempotent, usable from separate processes that share a run directory)::

    plan -> embed_shard (per shard) -> ensure_collection -> load_shard (per shard) -> restore_indexing -> verify

or all of them in one call: ``ingest``.
"""

from __future__ import annotations

from pathlib import Path


def _load_cuda_driver() -> None:
    """A wheel built with the cuda feature links the NVIDIA driver's ``libcuda.so.1`` and carries a
    stand-in for it (``_cuda/libcuda.so.1``, every call answering "no CUDA device"). Load the real
    driver where there is one, else the stand-in, before the extension: one GPU image then also
    imports on nodes without a GPU, where ``device="cuda"`` is a ``ConfigError``. CPU wheels have
    no stand-in, and nothing happens."""
    import ctypes

    stand_in = Path(__file__).with_name("_cuda") / "libcuda.so.1"
    if not stand_in.is_file():
        return
    try:
        ctypes.CDLL("libcuda.so.1", mode=ctypes.RTLD_GLOBAL)
    except OSError:
        ctypes.CDLL(str(stand_in), mode=ctypes.RTLD_GLOBAL)


_load_cuda_driver()

from . import _native  # noqa: E402  (after the driver, see above)
from ._embedder import Embedder  # noqa: E402
from ._errors import _error as _error  # noqa: E402  (cli, airflow and tests raise through it)
from ._kinds import Fusion, SearchMode  # noqa: E402
from ._native import (  # noqa: E402
    ConfigError,
    HandoffError,
    InputError,
    ModelError,
    StoreError,
    VdbError,
)
from ._pipeline import (  # noqa: E402
    collection_options,
    embed_shard,
    ensure_collection,
    ingest,
    inspect,
    load_shard,
    plan,
    remove_run_dir,
    report_summary,
    restore_indexing,
    run_dir,
    sample_data,
    switch,
    sync,
    update_first_seen,
    verify,
)
from ._settings import (  # noqa: E402
    MODEL_INSTALL_HINT,
    MODEL_PACKAGE,
    cpu_info,
    default_model_dir,
    resolved_settings,
    settings,
    store_target,
)
from ._store import Store, count, retrieve, search, search_vector  # noqa: E402
from .types import ChangeRow, Hit, StoreTarget  # noqa: E402
from .types import PathLike as PathLike  # noqa: E402
from .types import Progress as Progress  # noqa: E402

__version__: str = _native.__version__
#: True in a build with the ``cuda`` cargo feature (``make cuda``), where ``device="cuda"`` can work.
CUDA_BUILT: bool = _native.CUDA_BUILT
#: True in a build with the ``embedded`` cargo feature (the default; the Docker image leaves it out):
#: the in-process Qdrant engine behind ``store_path``.
EMBEDDED_BUILT: bool = _native.EMBEDDED_BUILT

__all__ = [
    "__version__",
    "CUDA_BUILT",
    "EMBEDDED_BUILT",
    "VdbError",
    "InputError",
    "ConfigError",
    "ModelError",
    "StoreError",
    "HandoffError",
    "Embedder",
    "MODEL_PACKAGE",
    "MODEL_INSTALL_HINT",
    "settings",
    "resolved_settings",
    "default_model_dir",
    "cpu_info",
    "store_target",
    "run_dir",
    "remove_run_dir",
    "inspect",
    "sample_data",
    "plan",
    "embed_shard",
    "collection_options",
    "ensure_collection",
    "load_shard",
    "restore_indexing",
    "verify",
    "switch",
    "sync",
    "update_first_seen",
    "ingest",
    "report_summary",
    "search",
    "search_vector",
    "retrieve",
    "count",
    "Store",
    "Hit",
    "ChangeRow",
    "StoreTarget",
    "SearchMode",
    "Fusion",
]

#: The ``target=`` arguments' type (its old name; see :func:`store_target`).
Target = StoreTarget
