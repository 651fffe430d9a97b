"""Bad input, one table per front end (Python API, CLI, DAG): each row is an input and what must
come of it: an error of a given class and kind whose message names the file / row / column, with
nothing written to the store; or a success with the counts given."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import vdb_core
from conftest import vdb_cli

LONG_TEXT = "Revenue grew in every segment of the business. " * 21_000  # ~1 MB
SCRIPTS = [
    "营业收入同比增长百分之十二。",
    "Выручка компании выросла на 12%.",
    "ارتفعت الإيرادات بنسبة 12٪.",
    "Revenue 📈 grew 🚀 12%.",
]


def _table(texts: list[str | None], ids: list[int | None] | None = None, **extra: pa.Array) -> pa.Table:
    n = len(texts)
    cols = {
        "filing_id": pa.array(["f1"] * n),
        "sentence_index": pa.array(ids if ids is not None else list(range(n)), pa.int32()),
        "sentence": pa.array(texts, pa.string()),
        "company": pa.array(["Acme"] * n),
    }
    cols.update(extra)
    return pa.table(cols)


GOOD = [f"Risk factor {i}: our margins depend on the cost of {w}." for i, w in enumerate(["steel", "oil", "chips"])]


def write(tmp: Path, table: pa.Table, name: str = "in.parquet") -> Path:
    p = tmp / name
    pq.write_table(table, p)
    return p


def raw(tmp: Path, data: bytes, name: str = "in.parquet") -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p


def truncated(tmp: Path) -> Path:
    good = write(tmp, _table(GOOD), "good.parquet").read_bytes()
    return raw(tmp, good[: len(good) - 40])


def directory(tmp: Path) -> Path:
    (tmp / "in.parquet").mkdir()
    return tmp / "in.parquet"


@dataclass
class Case:
    """`make(tmp)` writes the input; `args` are ingest's keyword arguments. An error case names the
    exception class, its kind and strings the message must contain ("{file}" stands for the input
    path); `row`/`column` are the error's fields. A success case gives report fields."""

    id: str
    make: Callable[[Path], Path]
    args: dict[str, Any] = field(default_factory=dict)
    error: type | None = None
    kind: str | None = None
    says: tuple[str, ...] = ()
    row: int | None = None
    column: str | None = None
    report: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("missing_file", lambda t: t / "nope.parquet", error=vdb_core.InputError, kind="file_not_found",
         says=("{file}", "does not exist")),
    Case("directory", directory, error=vdb_core.InputError, kind="not_parquet", says=("{file}", "is a directory")),
    Case("zero_bytes", lambda t: raw(t, b""), error=vdb_core.InputError, kind="not_parquet",
         says=("{file}", "not a parquet file", "size 0")),
    Case("random_bytes", lambda t: raw(t, random.Random(1).randbytes(5000)), error=vdb_core.InputError,
         kind="not_parquet", says=("{file}", "PAR1")),
    Case("truncated_parquet", truncated, error=vdb_core.InputError, kind="corrupt_file", says=("{file}", "truncated")),
    Case("zero_rows", lambda t: write(t, _table(GOOD).slice(0, 0)), error=vdb_core.InputError, kind="no_rows",
         says=("{file}", "0 rows read")),
    Case("missing_text_column", lambda t: write(t, _table(GOOD)), {"text_column": "body"}, vdb_core.InputError,
         "missing_column", ("{file}", '"body"', "sentence_index"), column="body"),
    Case("text_column_of_another_type", lambda t: write(t, _table(GOOD)), {"text_column": "sentence_index"},
         vdb_core.InputError, "wrong_column_type", ("{file}", "Int32", "expected a string"), column="sentence_index"),
    Case("list_column_as_text", lambda t: write(t, _table(GOOD, tags=pa.array([["a"]] * 3))), {"text_column": "tags"},
         vdb_core.InputError, "wrong_column_type", ("{file}", '"tags"', "List"), column="tags"),
    Case("list_column_as_payload", lambda t: write(t, _table(GOOD, tags=pa.array([["a"]] * 3))),
         {"payload_columns": ["tags"]}, vdb_core.InputError, "wrong_column_type", ("{file}", '"tags"', "scalar"),
         column="tags"),
    Case("unsupported_payload_type", lambda t: write(t, _table(GOOD, blob=pa.array([b"\x00"] * 3, pa.binary()))),
         {"payload_columns": ["blob"]}, vdb_core.InputError, "wrong_column_type", ("{file}", '"blob"', "Binary"),
         column="blob"),
    Case("null_and_blank_text_skipped", lambda t: write(t, _table([*GOOD, None, "", "  \t "])),
         report={"rows_read": 6, "rows_valid": 3, "skipped": {"null_text": 1, "empty_text": 2, "duplicate_id": 0}}),
    Case("null_text_strict", lambda t: write(t, _table([GOOD[0], None, *GOOD[1:]])), {"strict": True},
         vdb_core.InputError, "empty_text", ("{file}", "row 1", '"sentence"', "null"), row=1, column="sentence"),
    Case("whitespace_text_strict", lambda t: write(t, _table([*GOOD, " "])), {"strict": True}, vdb_core.InputError,
         "empty_text", ("{file}", "row 3", "whitespace-only"), row=3, column="sentence"),
    Case("one_megabyte_text", lambda t: write(t, _table([*GOOD, LONG_TEXT])), report={"rows_valid": 4}),
    Case("non_latin_scripts_and_emoji", lambda t: write(t, _table(SCRIPTS)), report={"rows_valid": 4}),
    Case("duplicate_ids_skipped", lambda t: write(t, _table([*GOOD, "Another sentence."], ids=[0, 1, 2, 1])),
         report={"rows_valid": 3, "skipped": {"null_text": 0, "empty_text": 0, "duplicate_id": 1}}),
    Case("duplicate_ids_strict", lambda t: write(t, _table([*GOOD, "Another sentence."], ids=[0, 1, 2, 1])),
         {"strict": True}, vdb_core.InputError, "duplicate_id", ("{file}", "row 3", "filing_id, sentence_index"),
         row=3),
    Case("null_in_id_column", lambda t: write(t, _table(GOOD, ids=[0, None, 2])), error=vdb_core.InputError,
         kind="null_id", says=("{file}", "row 1", '"sentence_index"', "null"), row=1, column="sentence_index"),
    Case("collection_name_qdrant_rejects", lambda t: write(t, _table(GOOD)), {"collection": "bad/name"},
         vdb_core.ConfigError, "invalid_config", ('"bad/name"', "invalid collection name")),
    Case("shard_rows_0", lambda t: write(t, _table(GOOD)), {"shard_rows": 0}, vdb_core.ConfigError, "invalid_config",
         ("shard_rows", "at least 1")),
    Case("shard_rows_10e12", lambda t: write(t, _table(GOOD)), {"shard_rows": 10**12},
         report={"rows_valid": 3, "shards": 1}),
    Case("batch_size_0", lambda t: write(t, _table(GOOD)), {"batch_size": 0}, vdb_core.ConfigError, "invalid_config",
         ("batch_size", "at least 1")),
    Case("upsert_batch_size_0", lambda t: write(t, _table(GOOD)), {"upsert_batch_size": 0}, vdb_core.ConfigError,
         "invalid_config", ("upsert batch_size", "at least 1")),
]  # fmt: skip


def _store_is_empty(store: Path) -> None:
    with vdb_core.Store(store_path=store) as s:
        assert s.collections() == [], f"an error wrote to the store: {s.collections()}"


def _check_report(report: dict[str, Any], case: Case) -> None:
    for k, v in case.report.items():
        assert report[k] == v, f"{k}: {report[k]!r}, expected {v!r}"
    assert report["points_verified"] == report["rows_valid"] == report["collection_count"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_python_api(tmp_path, embedder, case: Case):
    src = case.make(tmp_path)
    store = tmp_path / "store"
    target = vdb_core.store_target(store_path=store)
    args = {"collection": "bad_input", **case.args}
    if case.error is None:
        r = vdb_core.ingest(src, run_dir=tmp_path / "run", target=target, embedder=embedder, **args)
        _check_report(r["report"], case)
        if case.id == "non_latin_scripts_and_emoji":
            for text in SCRIPTS:
                hit = vdb_core.search(text, "bad_input", target=target, embedder=embedder, limit=1)[0]
                assert hit["payload"]["text"] == text and hit["score"] > 0.99
        if case.id == "one_megabyte_text":
            hit = vdb_core.search(LONG_TEXT, "bad_input", target=target, embedder=embedder, limit=1)[0]
            assert hit["payload"]["text"] == LONG_TEXT
        return
    with pytest.raises(case.error) as e:
        vdb_core.ingest(src, run_dir=tmp_path / "run", target=target, embedder=embedder, **args)
    assert e.value.kind == case.kind, (e.value.kind, str(e.value))
    for s in case.says:
        assert s.replace("{file}", str(src)) in str(e.value), f"{s!r} not in {e.value}"
    if any("{file}" in s for s in case.says):
        assert e.value.file == str(src)
    if case.row is not None:
        assert e.value.row == case.row
    if case.column is not None:
        assert e.value.column == case.column
    _store_is_empty(store)


#: CLI flags of the ingest arguments above.
FLAGS = {
    "text_column": "--text-column",
    "payload_columns": "--payload-columns",
    "collection": "--collection",
    "shard_rows": "--shard-rows",
    "batch_size": "--batch-size",
    "upsert_batch_size": "--upsert-batch-size",
}


def _cli_args(args: dict[str, Any]) -> list[str]:
    out = ["--collection", "bad_input"]
    for k, v in args.items():
        if k == "strict":
            out.append("--strict")
        else:
            out += [FLAGS[k], ",".join(v) if isinstance(v, list) else str(v)]
    return out


# The CLI shares everything after argument parsing with the Python API: its table is the rows whose
# outcome goes through what the CLI adds (its own input check before loading the model, exit codes,
# the message on stderr) plus one success with counts.
CLI_CASES = [
    c
    for c in CASES
    if c.id
    in {
        "missing_file",
        "directory",
        "zero_bytes",
        "random_bytes",
        "truncated_parquet",
        "zero_rows",
        "missing_text_column",
        "text_column_of_another_type",
        "list_column_as_payload",
        "null_and_blank_text_skipped",
        "null_text_strict",
        "duplicate_ids_strict",
        "null_in_id_column",
        "collection_name_qdrant_rejects",
        "shard_rows_0",
        "batch_size_0",
        "upsert_batch_size_0",
    }
]


@pytest.mark.parametrize("case", CLI_CASES, ids=lambda c: c.id)
def test_cli(tmp_path, case: Case):
    src = case.make(tmp_path)
    store = tmp_path / "store"
    argv = ["ingest", str(src), "--store", str(store), "--run-dir", str(tmp_path / "run"), *_cli_args(case.args)]
    r = vdb_cli(*argv, "--json")
    if case.error is None:
        assert r.returncode == 0, r.stderr
        _check_report(json.loads(r.stdout)["report"], case)
        return
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"vdb: error [{case.kind}]" in r.stderr, r.stderr
    for s in case.says:
        assert s.replace("{file}", str(src)) in r.stderr, f"{s!r} not in {r.stderr}"
    assert "Traceback" not in r.stderr
    _store_is_empty(store)


# Each `airflow dags test` costs ~30-60 s: three rows that stand for the rest (the DAG's tasks call
# the same functions as the Python API): a missing file (fails in the plan task's input check), a
# null id (fails deep in the plan step, naming row and column) and blank text (skipped and counted).
DAG_CASES = [c for c in CASES if c.id in {"missing_file", "null_in_id_column", "null_and_blank_text_skipped"}]


@pytest.mark.airflow
@pytest.mark.parametrize("case", DAG_CASES, ids=lambda c: c.id)
def test_dag(airflow_env, tmp_path, case: Case):
    from airflow_stack import run_dags_test

    src = case.make(tmp_path)
    store = tmp_path / "store"
    env = {**airflow_env, "VDB_STORE_PATH": str(store), "VDB_WORK_DIR": str(tmp_path / "work")}
    conf = {"input_path": str(src), "collection": "bad_input", **case.args}
    r = run_dags_test(env, "sec_filings_to_qdrant", conf)
    log = r.stdout + r.stderr
    if case.error is None:
        assert r.returncode == 0 and "DagRun failed" not in log, log[-4000:]
        skipped = case.report["skipped"]
        assert f"null text {skipped['null_text']}, empty text {skipped['empty_text']}" in log, log[-4000:]
        assert vdb_core.count("bad_input", target=vdb_core.store_target(store_path=store)) == case.report["rows_valid"]
        return
    assert "DagRun failed" in log, log[-4000:]
    assert f"{case.error.__name__} [{case.kind}], not retried" in log, log[-4000:]
    for s in case.says:
        assert s.replace("{file}", str(src)) in log, f"{s!r} not in the log"
    _store_is_empty(store)


# --------------------------------------------------------------------------------------------------
# `vdb search --filter`: values typed by the collection's payload index; a usage error is one line
# naming the argument and exit code 2 (never a traceback, never a filter that silently matches
# nothing because a value was guessed into the wrong type)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def filings_store(tmp_path_factory, embedder) -> Path:
    """Six sentences of two filings: cik as zero-padded text, a date, an integer year."""
    d = tmp_path_factory.mktemp("search_cli")
    texts = [f"Our results depend on the price of {w}." for w in ["steel", "oil", "chips", "corn", "gold", "copper"]]
    table = pa.table(
        {
            "filing_id": pa.array(["a"] * 3 + ["b"] * 3),
            "sentence_index": pa.array([0, 1, 2] * 2, pa.int32()),
            "sentence": pa.array(texts),
            "cik": pa.array(["0000320193"] * 3 + ["0000789019"] * 3),
            "filing_date": pa.array([date(2016, 10, 26)] * 3 + [date(2021, 7, 29)] * 3, pa.date32()),
            "fiscal_year": pa.array([2016] * 3 + [2021] * 3, pa.int32()),
            "section": pa.array(["Risk Factors"] * 6),
        }
    )
    src = d / "filings.parquet"
    pq.write_table(table, src)
    store = d / "store"
    target = vdb_core.store_target(store_path=store)
    vdb_core.ingest(src, run_dir=d / "run", collection="filings", target=target, embedder=embedder)
    with vdb_core.Store(target) as s:
        assert s.payload_indexes("filings") == {
            "_vdb_text": "keyword",
            "cik": "keyword",
            "filing_date": "datetime",
            "fiscal_year": "integer",
            "section": "keyword",
            "filing_id": "keyword",
        }
    return store


# (id, --filter arguments, what the one stderr line must contain)
SEARCH_USAGE_ERRORS = [
    ("range_of_words", ["fiscal_year=abc..def"], ["fiscal_year=abc..def", "integer", "'abc'"]),
    ("word_for_integer", ["fiscal_year=twenty"], ["fiscal_year=twenty", "integer"]),
    ("not_a_date", ["filing_date=2021-13-45"], ["filing_date=2021-13-45", "date"]),
    ("range_on_keyword", ["cik=1..2"], ["cik=1..2", "keyword"]),
    ("open_both_ends", ["fiscal_year=.."], ["fiscal_year=..", "at least one end"]),
    ("no_equals", ["fiscal_year"], ["'fiscal_year'", "FIELD=VALUE"]),
    ("empty_value", ["cik="], ["'cik='", "FIELD=VALUE"]),
    ("unindexed_field", ["sentence_index=1"], ["sentence_index", "no payload index", "cik, filing_date"]),
    ("bad_json", ['{"must": [}'], ["not valid JSON"]),
    ("json_and_more", ['{"must": []}', "cik=1"], ["must be the only --filter"]),
    ("json_unknown_bound", ['{"must": [{"key": "fiscal_year", "range": {"gte": 1, "about": 2}}]}'], ["about"]),
]


@pytest.mark.parametrize("case", SEARCH_USAGE_ERRORS, ids=lambda c: c[0])
def test_cli_search_usage_errors_exit_2_with_one_line(filings_store, case):
    _, filters, says = case
    argv = ["search", "price of oil", "--store", str(filings_store), "--collection", "filings"]
    for f in filters:
        argv += ["--filter", f]
    r = vdb_cli(*argv)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("vdb: error: --filter") and all(s in lines[0] for s in says), lines[0]


# (id, --filter arguments, the filing ids the hits must come from)
SEARCH_TYPED_FILTERS = [
    ("zero_padded_cik_is_text", ["cik=0000320193"], {"a"}),
    ("date_range", ["filing_date=2015-01-01..2030-12-31"], {"a", "b"}),
    ("date_range_open_end", ["filing_date=2020-01-01.."], {"b"}),
    ("one_day", ["filing_date=2016-10-26"], {"a"}),
    ("integer_range", ["fiscal_year=..2016"], {"a"}),
    ("two_filters", ["fiscal_year=2016..2021", "cik=0000789019"], {"b"}),
]


@pytest.mark.parametrize("case", SEARCH_TYPED_FILTERS, ids=lambda c: c[0])
def test_cli_search_types_filter_values_by_the_payload_index(filings_store, case):
    _, filters, filings = case
    argv = ["search", "price of oil", "--store", str(filings_store), "--collection", "filings", "--json"]
    for f in filters:
        argv += ["--filter", f]
    r = vdb_cli(*argv)
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert {h["payload"]["filing_id"] for h in hits} == filings
