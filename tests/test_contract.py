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


def test_the_search_literals_are_what_every_front_end_and_the_core_accept(tmp_path, embedder):
    """`SearchMode` and `Fusion` (the stub's Literals) list exactly the CLI's choices, the search
    DAG's Param enum and the values the Rust core accepts; another value is a ConfigError."""
    import ast
    from pathlib import Path

    from vdb_core import cli

    modes, fusions = set(get_args(vdb_core.SearchMode)), set(get_args(vdb_core.Fusion))
    assert modes == {"hybrid", "dense", "sparse"} and fusions == {"rrf", "dbsf"}
    search = cli.build_parser()._subparsers._group_actions[0].choices["search"]
    choices = {a.dest: set(a.choices) for a in search._actions if a.dest in ("mode", "fusion")}
    assert choices == {"mode": modes, "fusion": fusions}
    dag = Path(__file__).resolve().parents[1] / "dags" / "sec_filings_search.py"
    enums = {}
    for node in ast.walk(ast.parse(dag.read_text())):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=True):
                if isinstance(k, ast.Constant) and k.value in ("mode", "fusion") and isinstance(v, ast.Call):
                    enum = next(kw.value for kw in v.keywords if kw.arg == "enum")
                    enums[k.value] = {ast.literal_eval(e) for e in enum.elts} - {None}
    assert enums == {"mode": modes, "fusion": fusions}
    target = vdb_core.store_target(store_path=tmp_path / "store")
    data = tmp_path / "d.parquet"
    vdb_core.sample_data(data, rows=20, seed=3)
    vdb_core.ingest(data, run_dir=tmp_path / "run", collection="c", target=target, embedder=embedder)
    with vdb_core.Store(target, embedder=embedder, collection="c") as s:
        for mode in modes:
            for fusion in fusions:
                assert s.search("revenue", limit=2, mode=mode, fusion=fusion)[0]["mode"] == mode
        with pytest.raises(vdb_core.ConfigError, match="search mode"):
            s.search("revenue", mode="bm25")  # type: ignore[arg-type]
        with pytest.raises(vdb_core.ConfigError, match="fusion"):
            s.search("revenue", fusion="max")  # type: ignore[arg-type]
