"""The Python door's contract: the error kinds the stub declares are exactly those the Rust core
raises (plus the Python layer's own), and an exception raised from Python carries the same
attributes as one raised from Rust. (That `_native.pyi` matches the runtime is `make lint`'s
`mypy.stubtest`.)"""

from __future__ import annotations

from typing import get_args

import pytest
import vdb_core
from vdb_core._kinds import PYTHON_KINDS, ErrorKind


def test_the_stubs_error_kinds_are_the_rust_cores():
    declared = get_args(ErrorKind)
    assert len(declared) == len(set(declared)), "a kind is declared twice"
    rust = vdb_core._native.error_kinds()
    assert set(declared) - PYTHON_KINDS == set(rust), (
        f"declared only in python/vdb_core/_kinds.py: {sorted(set(declared) - PYTHON_KINDS - set(rust))}; "
        f"raised by Rust but not declared: {sorted(set(rust) - set(declared))}"
    )
    assert not PYTHON_KINDS & set(rust)


def test_a_rust_error_and_a_python_error_carry_the_same_attributes(tmp_path):
    with pytest.raises(vdb_core.InputError) as from_rust:
        vdb_core.inspect(tmp_path / "missing.parquet")
    from_python = vdb_core._error(vdb_core.InputError, "bad column", "missing_column", file="f.parquet", column="x")
    for err in (from_rust.value, from_python):
        assert all(hasattr(err, a) for a in ("kind", "file", "row", "column")), err
        assert err.kind in get_args(ErrorKind)
    assert (from_python.kind, from_python.file, from_python.row, from_python.column) == (
        "missing_column",
        "f.parquet",
        None,
        "x",
    )
    assert from_rust.value.kind == "file_not_found" and from_rust.value.row is None
