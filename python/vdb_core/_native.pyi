"""Type stubs of the Rust extension ``vdb_core._native``: the contract the runtime is checked
against (``python -m mypy.stubtest vdb_core._native``, in ``make lint``).

Options go in as the Python dicts and lists of ``vdb_core.types`` and results come back as
such (the core converts them with serde; an option that does not fit is a ``ConfigError`` naming
the argument and what was expected). Errors are raised as the exceptions below, each with
``kind`` (a stable slug such as ``"missing_column"``), ``file``, ``row`` and ``column`` attributes
(None when not applicable).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias, final

from vdb_core._kinds import ErrorKind
from vdb_core.types import (
    Bm25Params,
    ChangeRow,
    CollectionOptions,
    ColumnMapping,
    Condition,
    CpuInfo,
    EmbedResult,
    EnsureResult,
    FirstSeenResult,
    Hit,
    IngestResult,
    Inspection,
    Kernels,
    LoadOptions,
    LoadResult,
    PlanSummary,
    Report,
    ResolvedSettings,
    SampleInfo,
    SearchParams,
    SettingRow,
    StoreTarget,
    SwitchResult,
    SyncResult,
    TextSearch,
)

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
    "NativeEmbedder",
    "NativeStore",
    "error_kinds",
    "bm25",
    "update_first_seen",
    "settings",
    "cpu_info",
    "linear_gflops",
    "resolved_settings",
    "resolve_target",
    "run_dir",
    "remove_run_dir",
    "inspect",
    "sample_data",
    "plan",
    "embed_shard",
    "ensure_collection",
    "load_shard",
    "restore_indexing",
    "verify",
    "sync",
    "switch",
    "report_summary",
    "ingest",
]

__version__: str
CUDA_BUILT: bool
"""True in a build with the ``cuda`` cargo feature (``make cuda``): ``device="cuda"`` can work."""
EMBEDDED_BUILT: bool
"""True in a build with the ``embedded`` cargo feature (the default; the Docker image leaves it out)."""

_Progress: TypeAlias = None | str | Callable[[str], Any]

class VdbError(Exception):
    """Base of every vdb_core error."""

    kind: ErrorKind
    """Stable error slug (``vdb_core._kinds.ErrorKind``), e.g. ``"missing_column"``."""
    file: str | None
    row: int | None
    column: str | None

class InputError(VdbError):
    """The input parquet or its column mapping is unusable."""

class ConfigError(VdbError):
    """A setting has a value that cannot work."""

class ModelError(VdbError):
    """The model folder is missing or malformed, or embedding failed."""

class StoreError(VdbError):
    """Qdrant refused, was unreachable, or holds a mismatching collection."""

class HandoffError(VdbError):
    """A run directory, manifest or shard file is missing, damaged, locked or from another run."""

@final
class NativeEmbedder:
    def __new__(
        cls,
        model_dir: str | None = None,
        threads: int | None = None,
        precision: str = "float32",
        device: str = "cpu",
        gpu_batch_tokens: int | None = None,
    ) -> NativeEmbedder:
        """``precision``: ``"float32"``, ``"int8"`` or ``"bf16"`` (also ``"bfloat16"``) on the CPU;
        ``"float32"``, ``"float16"`` (also ``"fp16"``) or ``"bf16"`` on a GPU; bf16 on a CPU without
        AVX512-BF16 raises ``ConfigError``. ``device``: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; a GPU
        in a build without the cuda feature, or none found, raises ``ConfigError``.
        ``gpu_batch_tokens``: padded tokens per forward pass on a GPU (None: 16384)."""
    @property
    def dim(self) -> int: ...
    @property
    def max_seq_length(self) -> int: ...
    @property
    def model_id(self) -> str: ...
    @property
    def precision(self) -> str:
        """``"float32"``, ``"int8"``, ``"bf16"`` or ``"float16"``."""
    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda:N"``."""
    @property
    def kernels(self) -> Kernels:
        """The kernels in use."""
    def token_lengths(self, texts: list[str]) -> list[int]: ...
    def encode(
        self, texts: list[str], batch_size: int = 32, normalize: bool = True, progress: _Progress = None
    ) -> bytes:
        """Little-endian float32 bytes, ``len(texts) * dim`` values, row-major, input order."""

@final
class NativeStore:
    """One opened store (server client or embedded engine), kept for many calls."""

    def __new__(cls, target: StoreTarget) -> NativeStore: ...
    def describe(self) -> str: ...
    def collections(self) -> list[str]: ...
    def aliases(self) -> list[tuple[str, str]]: ...
    def count(self, collection: str) -> int: ...
    def payload_indexes(self, collection: str) -> list[tuple[str, str]]: ...
    def search_vector(
        self,
        collection: str,
        vector: list[float],
        limit: int,
        filter: Sequence[Condition] | None = None,
        params: SearchParams | None = None,
    ) -> list[Hit]: ...
    def search_text(
        self,
        collection: str,
        query: str,
        embedder: NativeEmbedder,
        limit: int,
        filter: Sequence[Condition] | None = None,
        params: SearchParams | None = None,
        mode: str | None = None,
        fusion: str = "rrf",
        distinct: bool = False,
    ) -> TextSearch: ...
    def collection_sparse(self, collection: str) -> Bm25Params | None: ...
    def changes(
        self,
        collection: str,
        scope: list[str],
        order: str,
        filter: Sequence[Condition] | None = None,
        out: str | None = None,
    ) -> list[ChangeRow]: ...
    def retrieve(self, collection: str, ids: list[str]) -> list[Hit]: ...
    def release(self, collection: str) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...

def error_kinds() -> list[str]:
    """Every kind the Rust core raises (``ErrorKind::ALL``)."""

def settings() -> list[SettingRow]: ...
def bm25(text: str, query: bool = ...) -> tuple[list[int], list[float]]: ...
def cpu_info() -> CpuInfo:
    """The running CPU's name, the kernel of each matrix-product path, its relevant flags."""

def linear_gflops(precision: str, m: int, inp: int, out: int, threads: int, reps: int = 10) -> float:
    """GFLOP/s of one ``m x inp -> m x out`` linear layer in ``precision`` on this CPU's kernels
    (the forward pass's own GEMM code; best of 3 rounds of ``reps``)."""

def resolved_settings() -> ResolvedSettings: ...
def resolve_target(
    url: str | None = None, api_key: str | None = None, store_path: str | None = None
) -> StoreTarget: ...
def run_dir(work_dir: str | None, dag_id: str, run_id: str) -> str: ...
def remove_run_dir(path: str) -> None: ...
def inspect(path: str, mapping: ColumnMapping) -> Inspection: ...
def sample_data(
    path: str,
    rows: int,
    seed: int,
    duplicate_rate: float = ...,
    yearly: int | None = ...,
    change_rate: float = ...,
) -> SampleInfo: ...
def plan(
    run_dir: str,
    input: str,
    mapping: ColumnMapping,
    shard_rows: int,
    strict: bool,
    reuse: bool,
    progress: _Progress = None,
    changes_scope: list[str] = ...,
    changes_order: str | None = None,
) -> PlanSummary: ...
def embed_shard(
    run_dir: str,
    shard: int,
    embedder: NativeEmbedder,
    batch_size: int = 32,
    target: StoreTarget | None = None,
    collection: str | None = None,
    recreate: bool = False,
    rebuild: bool = False,
    progress: _Progress = None,
) -> EmbedResult: ...
def ensure_collection(
    run_dir: str,
    target: StoreTarget,
    collection: str,
    recreate: bool,
    rebuild: bool = False,
    options: CollectionOptions | None = None,
) -> EnsureResult: ...
def load_shard(
    run_dir: str,
    shard: int,
    target: StoreTarget,
    collection: str,
    load_options: LoadOptions,
    progress: _Progress = None,
) -> LoadResult: ...
def restore_indexing(target: StoreTarget, collection: str, run_dir: str | None = None) -> None: ...
def verify(run_dir: str, target: StoreTarget, collection: str) -> Report: ...
def sync(run_dir: str, target: StoreTarget, collection: str, scope: list[str]) -> SyncResult: ...
def switch(run_dir: str, target: StoreTarget, collection: str) -> SwitchResult: ...
def update_first_seen(
    run_dir: str, target: StoreTarget, collection: str, scope: list[str], order: str
) -> FirstSeenResult: ...
def report_summary(report: Mapping[str, Any]) -> str: ...
def ingest(
    run_dir: str,
    input: str,
    mapping: ColumnMapping,
    shard_rows: int,
    strict: bool,
    reuse: bool,
    collection: str,
    recreate: bool,
    target: StoreTarget,
    embedder: NativeEmbedder,
    batch_size: int,
    load_options: LoadOptions,
    sync_scope: list[str] = ...,
    collection_options: CollectionOptions | None = None,
    rebuild: bool = False,
    progress: _Progress = None,
    changes_scope: list[str] = ...,
    changes_order: str | None = None,
) -> IngestResult: ...
