"""Exceptions raised from Python carry what those raised from Rust carry: one constructor."""

from __future__ import annotations

from typing import TypeVar

from ._kinds import ErrorKind
from ._native import VdbError

_E = TypeVar("_E", bound=VdbError)


def _error(
    cls: type[_E],
    message: str,
    kind: ErrorKind = "invalid_config",
    *,
    file: str | None = None,
    row: int | None = None,
    column: str | None = None,
) -> _E:
    """An exception raised from Python, with the ``kind``/``file``/``row``/``column`` attributes
    that those raised from Rust carry."""
    err = cls(message)
    err.kind, err.file, err.row, err.column = kind, file, row, column
    return err
