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


def _check(value, declared, where: str) -> None:
    """`value` has exactly the keys the TypedDict `declared` lists (recursively into nested
    TypedDicts, lists of them and dicts of them), and the required ones are there."""
    from typing import Union, get_origin, get_type_hints, is_typeddict

    if is_typeddict(declared):
        assert isinstance(value, dict), f"{where}: {type(value).__name__}, declared {declared.__name__}"
        keys = declared.__required_keys__ | declared.__optional_keys__
        assert set(value) <= keys, f"{where}: not declared in vdb_core.types.{declared.__name__}: {set(value) - keys}"
        assert declared.__required_keys__ <= set(value), (
            f"{where}: declared in {declared.__name__} but missing: {declared.__required_keys__ - set(value)}"
        )
        hints = get_type_hints(declared)
        for k, v in value.items():
            _check(v, hints[k], f"{where}.{k}")
        return
    origin, args = get_origin(declared), get_args(declared)
    if origin is list and value is not None:
        assert isinstance(value, list), f"{where}: {type(value).__name__}, declared a list"
        for i, v in enumerate(value):
            _check(v, args[0], f"{where}[{i}]")
    elif origin is dict and value is not None and len(args) == 2:
        assert isinstance(value, dict), f"{where}: {type(value).__name__}, declared a dict"
        for k, v in value.items():
            _check(v, args[1], f"{where}[{k!r}]")
    elif origin in (Union, type(int | None)) and value is not None:
        typed = [a for a in args if is_typeddict(a) or get_origin(a) in (list, dict)]
        if len(typed) == 1:
            _check(value, typed[0], where)


def test_every_result_is_what_vdb_core_types_declares(tmp_path, embedder):
    """Each step's result, the settings, the CPU, the kernels, hits, changes and the sparse
    parameters have exactly the keys their `vdb_core.types` TypedDict (the `.pyi`'s return type)
    declares: a field added or renamed on the Rust side fails here until the stub says it."""
    from vdb_core import types as t

    _check(vdb_core.settings(), list[t.SettingRow], "settings()")
    _check(vdb_core.resolved_settings(), t.ResolvedSettings, "resolved_settings()")
    _check(vdb_core.cpu_info(), t.CpuInfo, "cpu_info()")
    _check(embedder.kernels, t.Kernels, "Embedder.kernels")
    target = vdb_core.store_target(store_path=tmp_path / "store")
    _check(target, t.EmbeddedTarget, "store_target()")
    _check(vdb_core.store_target(qdrant_url="http://localhost:6334"), t.ServerTarget, "store_target(url)")
    data = tmp_path / "d.parquet"
    _check(vdb_core.sample_data(data, rows=40, seed=5, yearly=2, change_rate=0.5), t.SampleInfo, "sample_data()")
    _check(vdb_core.inspect(data), t.Inspection, "inspect()")
    _check(vdb_core.inspect(data, text_column="nope"), t.Inspection, "inspect(bad mapping)")
    run = tmp_path / "run"
    plan = vdb_core.plan(run, data, shard_rows=30, changes_scope=["ticker"], changes_order="fiscal_year")
    _check(plan, t.PlanSummary, "plan()")
    for shard in plan["shards"]:
        _check(vdb_core.embed_shard(run, shard, embedder), t.EmbedResult, "embed_shard()")
    _check(vdb_core.ensure_collection(run, "c", target=target), t.EnsureResult, "ensure_collection()")
    for shard in plan["shards"]:
        _check(vdb_core.load_shard(run, shard, "c", target=target), t.LoadResult, "load_shard()")
    vdb_core.restore_indexing("c", target=target, run_dir=run)
    report = vdb_core.verify(run, "c", target=target)
    _check(report, t.Report, "verify()")
    assert "rows" in vdb_core.report_summary(report)
    _check(vdb_core.sync(run, "c", ["filing_id"], target=target), t.SyncResult, "sync()")
    _check(
        vdb_core.update_first_seen(run, "c", scope=["ticker"], order="fiscal_year", target=target),
        t.FirstSeenResult,
        "update_first_seen()",
    )
    _check(vdb_core.switch(run, "c", target=target), t.SwitchResult, "switch()")
    result = vdb_core.ingest(
        data, run_dir=tmp_path / "run2", collection="c2", target=target, embedder=embedder, rebuild=True
    )
    _check(result, t.IngestResult, "ingest()")
    with vdb_core.Store(target, embedder=embedder, collection="c") as s:
        _check(s.search("revenue", limit=3), list[t.Hit], "Store.search(text)")
        _check(s.search("revenue", limit=3, distinct=True), list[t.Hit], "Store.search(distinct)")
        _check(s._native.search_text("c", "revenue", embedder._native, 2), t.TextSearch, "_native.search_text")
        hits = s.search(list(embedder.encode("revenue")), limit=3)
        _check(hits, list[t.Hit], "Store.search(vector)")
        _check(s.retrieve([h["id"] for h in hits]), list[t.Hit], "Store.retrieve()")
        _check(s.sparse(), t.Bm25Params, "Store.sparse()")
        rows = s.changes(scope=["ticker"], order="fiscal_year")
        assert rows, "two yearly filings per company give change rows"
        _check(rows, list[t.ChangeRow], "Store.changes()")


def test_an_option_that_does_not_fit_its_type_names_the_argument_and_what_was_expected(tmp_path, embedder):
    """Options cross into Rust as typed values: a misspelt key, a wrong type or an unknown kind is
    a ConfigError (kind invalid_config) naming the argument and the allowed fields or values."""
    from vdb_core import _native

    data = tmp_path / "d.parquet"
    vdb_core.sample_data(data, rows=10, seed=1)
    cases = [
        (lambda: _native.inspect(str(data), {"txt": "sentence"}), "argument 'mapping'", "unknown field `txt`"),
        (
            lambda: _native.inspect(str(data), {"text": "sentence", "id_columns": None, "payload_columns": ["a", 3]}),
            "argument 'mapping'",
            "payload_columns[1]: ",
        ),
        (
            lambda: _native.NativeStore({"kind": "cloud", "url": "x"}),
            "argument 'target'",
            "kind: unknown variant `cloud`, expected `server` or `embedded`",
        ),
        (
            lambda: _native.NativeStore({"kind": "embedded", "path": str(tmp_path), "url": "x"}),
            "argument 'target'",
            "unknown field `url`",
        ),
        (
            lambda: _native.load_shard(
                str(tmp_path / "run"), 0, {"kind": "embedded", "path": str(tmp_path)}, "c", {"batch_size": 1}
            ),
            "argument 'load_options'",
            "missing field",
        ),
    ]
    with vdb_core.Store(store_path=tmp_path / "s", embedder=embedder) as s:
        cases += [
            (lambda: s._native.search_vector("c", [0.0] * 384, 1, None, {"hnsw": 8}), "argument 'params'", "hnsw_ef"),
            (lambda: s._native.search_vector("c", [0.0] * 384, 1, [{"op": "like"}]), "argument 'filter'", "`qdrant`"),
            (
                lambda: vdb_core.ensure_collection(tmp_path / "r", "c", target=s.target, options={"on_disc": True}),
                "argument 'options'",
                "unknown field `on_disc`",
            ),
        ]
        for call, argument, expected in cases:
            with pytest.raises(vdb_core.ConfigError) as e:
                call()
            assert e.value.kind == "invalid_config"
            assert argument in str(e.value) and expected in str(e.value), str(e.value)


def test_load_shard_takes_the_upsert_names_and_its_old_names_with_a_warning(tmp_path, embedder):
    """`batch_size` is the embedding batch everywhere; `load_shard`'s upsert batch is
    `upsert_batch_size` (like `ingest`, `vdb ingest` and the DAG). Its old names still work, with
    a DeprecationWarning, and giving both spellings is refused."""
    target = vdb_core.store_target(store_path=tmp_path / "store")
    data, run = tmp_path / "d.parquet", tmp_path / "run"
    vdb_core.sample_data(data, rows=30, seed=2)
    shards = vdb_core.plan(run, data, shard_rows=15)["shards"]
    for s in shards:
        vdb_core.embed_shard(run, s, embedder)
    vdb_core.ensure_collection(run, "c", target=target)
    assert vdb_core.load_shard(run, shards[0], "c", target=target, upsert_batch_size=4, upsert_retries=2)["done_now"]
    with pytest.warns(DeprecationWarning, match="batch_size= is now upsert_batch_size="):
        assert vdb_core.load_shard(run, shards[1], "c", target=target, batch_size=4, max_retries=2)["done_now"]
    with pytest.warns(DeprecationWarning), pytest.raises(vdb_core.ConfigError, match="give upsert_parallel= only"):
        vdb_core.load_shard(run, shards[1], "c", target=target, parallel=2, upsert_parallel=2)
    assert vdb_core.count("c", target=target) == 30
