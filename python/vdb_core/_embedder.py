"""``Embedder``: the sentence-transformers model on the Rust forward pass."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from . import _native
from ._settings import _model_dir, resolved_settings
from .types import Kernels, PathLike


class Embedder:
    """A sentence-transformers model (all-MiniLM-L6-v2 by default) running in Rust.

    >>> e = Embedder()
    >>> e.encode(["This is an example sentence"]).shape
    (1, 384)
    """

    def __init__(
        self,
        model_dir: PathLike | None = None,
        threads: int | None = None,
        precision: str | None = None,
        device: str | None = None,
    ) -> None:
        """``precision``: ``"float32"`` (identical to sentence-transformers), ``"int8"`` (opt-in
        fast mode) or ``"bf16"`` (opt-in, CPUs with AVX512-BF16; a ``ConfigError`` elsewhere); on a
        GPU ``"float32"``, ``"float16"`` or ``"bf16"``. ``device``: ``"cpu"`` or ``"cuda"`` /
        ``"cuda:N"`` (a build with the cuda feature, ``make cuda``, and an NVIDIA GPU; a
        ``ConfigError`` otherwise). Unset arguments fall back to ``VDB_MODEL_DIR`` /
        ``VDB_THREADS`` / ``VDB_PRECISION`` / ``VDB_DEVICE``."""
        st = resolved_settings()
        self._native = _native.NativeEmbedder(
            _model_dir(model_dir),
            threads if threads is not None else st["threads"],
            precision if precision is not None else st["precision"],
            device if device is not None else st["device"],
            st["gpu_batch_tokens"],
        )

    @property
    def dim(self) -> int:
        """Vector size (384)."""
        return self._native.dim

    def get_sentence_embedding_dimension(self) -> int:
        """sentence-transformers' name for :attr:`dim`."""
        return self._native.dim

    @property
    def max_seq_length(self) -> int:
        """Tokens per sentence after truncation (from the model folder's config)."""
        return self._native.max_seq_length

    @property
    def model_id(self) -> str:
        """Folder name + weights checksum (+ ``+int8`` / ``+bf16`` in those modes), recorded in run
        manifests."""
        return self._native.model_id

    @property
    def precision(self) -> str:
        """``"float32"``, ``"int8"``, ``"bf16"`` or ``"float16"``."""
        return self._native.precision

    @property
    def device(self) -> str:
        """``"cpu"`` or ``"cuda:N"``: where the forward pass runs."""
        return self._native.device

    @property
    def kernels(self) -> Kernels:
        """The kernels the matrix products run on here: ``f32_gemm`` (``"avx512f"``,
        ``"avx2-fma"`` or ``"scalar"``; attention, and the linear layers in float32), ``int8``
        (``"amx-int8"``, ``"avx512-vnni"``, ``"avx2"``, ``"scalar"``; None unless int8) and ``bf16``
        (``"amx-bf16"`` or ``"avx512-bf16"``; None unless bf16)."""
        return self._native.kernels

    def encode(
        self,
        sentences: str | Sequence[str],
        batch_size: int = 32,
        normalize_embeddings: bool = True,
        show_progress_bar: bool = False,
    ) -> np.ndarray:
        """Embed sentences like ``SentenceTransformer.encode``: a float32 array (n, dim) in input
        order, or (dim,) for a single string. The GIL is released while computing."""
        single = isinstance(sentences, str)
        texts: list[str] = [sentences] if isinstance(sentences, str) else list(sentences)
        raw = self._native.encode(texts, batch_size, normalize_embeddings, "bar" if show_progress_bar else None)
        out = np.frombuffer(raw, dtype="<f4").reshape(len(texts), self.dim)
        return out[0] if single else out


@functools.lru_cache(maxsize=4)
def _shared_embedder(model_dir: str | None, threads: int | None, precision: str | None, device: str) -> Embedder:
    # Loading and checksumming the model takes a second or two: the shortcuts share one per setting.
    return Embedder(model_dir, threads=threads, precision=precision, device=device)
