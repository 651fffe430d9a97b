"""Parquet source: column mapping, inspection, bad input, streaming, ids, shards (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
import vdb_core
from conftest import vdb_cli


def write(path: Path, table: pa.Table, **kw) -> Path:
    pq.write_table(table, path, **kw)
    return path


def test_version_is_exposed():
    assert vdb_core.__version__.count(".") == 2
    r = vdb_cli("--version")
    assert r.returncode == 0 and vdb_core.__version__ in r.stdout


def test_inspect_reads_the_footer(sample_parquet):
    info = vdb_core.inspect(sample_parquet)
    assert info["rows"] == 600
    names = [c["name"] for c in info["columns"]]
    assert names == [
        "filing_id",
        "cik",
        "company",
        "ticker",
        "form_type",
        "filing_date",
        "fiscal_year",
        "section",
        "sentence_index",
        "sentence",
    ]
    assert info["mapping"]["text"] == "sentence"
    assert info["mapping"]["id_columns"] == ["filing_id", "sentence_index"]
    assert "sentence" not in info["mapping"]["payload_columns"]
    assert all(c["null_count"] == 0 for c in info["columns"])


def test_inspect_reports_a_mapping_that_does_not_fit(sample_parquet):
    info = vdb_core.inspect(sample_parquet, text_column="body")
    assert info["mapping"] is None
    assert "body" in info["mapping_error"] and "sentence" in info["mapping_error"]


def test_sample_data_is_deterministic(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    vdb_core.sample_data(a, rows=300, seed=3)
    vdb_core.sample_data(b, rows=300, seed=3)
    assert a.read_bytes() == b.read_bytes()
    t = pq.read_table(a)
    assert t.num_rows == 300
    assert t.column("sentence").to_pylist()[0].endswith(".")


# --- bad input: each error names the file and the column/row -------------------------------------


def test_missing_file(tmp_path):
    p = tmp_path / "nope.parquet"
    with pytest.raises(vdb_core.InputError) as e:
        vdb_core.inspect(p)
    assert e.value.kind == "file_not_found" and str(p) in str(e.value) and e.value.file == str(p)


def test_not_a_parquet_file(tmp_path):
    p = tmp_path / "notes.parquet"
    p.write_text("filing_id,sentence\n1,hello\n")
    with pytest.raises(vdb_core.InputError) as e:
        vdb_core.inspect(p)
    assert e.value.kind == "not_parquet" and str(p) in str(e.value)


def test_truncated_file(tmp_path, sample_parquet):
    p = tmp_path / "cut.parquet"
    data = sample_parquet.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(vdb_core.InputError) as e:
        vdb_core.plan(tmp_path / "run", p)
    assert e.value.kind == "corrupt_file" and "truncated" in str(e.value) and str(p) in str(e.value)


def test_missing_column_lists_the_columns(tmp_path, sample_parquet):
    with pytest.raises(vdb_core.InputError) as e:
        vdb_core.plan(tmp_path / "run", sample_parquet, text_column="body")
    assert e.value.kind == "missing_column" and e.value.column == "body"
    assert "filing_id" in str(e.value) and str(sample_parquet) in str(e.value)


def test_wrong_column_type_says_what_was_expected(tmp_path):
    p = write(tmp_path / "t.parquet", pa.table({"sentence": [1, 2, 3]}))
    with pytest.raises(vdb_core.InputError) as e:
        vdb_core.plan(tmp_path / "run", p)
    assert e.value.kind == "wrong_column_type" and e.value.column == "sentence"
    assert "int64" in str(e.value).lower() and "expected a string" in str(e.value)


def blanks_table() -> pa.Table:
    return pa.table(
        {
            "doc": ["a", "a", "b", "c", "d", "e"],
            "sentence": ["First sentence.", "Second one.", None, "", "   ", "Last."],
        }
    )


def test_blank_text_is_skipped_and_counted(tmp_path):
    p = write(tmp_path / "b.parquet", blanks_table())
    s = vdb_core.plan(tmp_path / "run", p, id_columns=["doc", "sentence"], shard_rows=10)
    assert s["rows_read"] == 6 and s["rows_valid"] == 3
    assert s["skipped"] == {"null_text": 1, "empty_text": 2, "duplicate_id": 0}


def test_blank_text_is_an_error_in_strict_mode(tmp_path):
    p = write(tmp_path / "b.parquet", blanks_table())
    with pytest.raises(vdb_core.InputError) as e:
        vdb_core.plan(tmp_path / "run", p, strict=True)
    assert e.value.kind == "empty_text" and e.value.row == 2 and e.value.column == "sentence"
    assert "row 2" in str(e.value) and str(p) in str(e.value)


def test_duplicate_ids_are_counted_and_strict_fails(tmp_path):
    p = write(
        tmp_path / "d.parquet",
        pa.table(
            {"filing_id": ["x", "x", "y"], "sentence_index": [0, 0, 0], "sentence": ["One.", "One again.", "Two."]}
        ),
    )
    s = vdb_core.plan(tmp_path / "run", p)
    assert s["rows_valid"] == 2 and s["skipped"]["duplicate_id"] == 1
    with pytest.raises(vdb_core.InputError) as e:
        vdb_core.plan(tmp_path / "run2", p, strict=True)
    assert e.value.kind == "duplicate_id" and e.value.row == 1


@pytest.mark.parametrize("kind", ["large_string", "dictionary", "string"])
def test_text_column_encodings(tmp_path, kind):
    texts = ["Revenue grew.", "Margins fell.", "Revenue grew."]
    arr = {
        "large_string": pa.array(texts, pa.large_string()),
        "dictionary": pa.array(texts).dictionary_encode(),
        "string": pa.array(texts),
    }[kind]
    p = write(tmp_path / "e.parquet", pa.table({"sentence": arr, "k": [1, 2, 3]}))
    s = vdb_core.plan(tmp_path / "run", p, shard_rows=10)
    # No id columns in this schema: ids come from the text, so the repeated sentence is a duplicate.
    assert s["rows_valid"] == 2 and s["skipped"]["duplicate_id"] == 1
    shard = ipc.open_file(tmp_path / "run" / "shards" / "shard-00000.arrow").read_all()
    assert shard.column("text").to_pylist() == ["Revenue grew.", "Margins fell."]
    assert shard.column("k").to_pylist() == [1, 2]


# --- streaming, shards, ids -------------------------------------------------------------------------


def test_streaming_split_into_shards_with_stable_ids(tmp_path):
    src = tmp_path / "big.parquet"
    vdb_core.sample_data(src, rows=20_000, seed=5)  # > 2 read batches of 8192 rows
    a = vdb_core.plan(tmp_path / "a", src, shard_rows=7_000)
    assert a["shards"] == [0, 1, 2] and a["rows_valid"] == 20_000
    rows = [ipc.open_file(tmp_path / "a" / "shards" / f"shard-0000{i}.arrow").read_all().num_rows for i in range(3)]
    assert rows == [7_000, 7_000, 6_000]
    b = vdb_core.plan(tmp_path / "b", src, shard_rows=7_000)
    assert not b["resumed"]
    ids_a = ipc.open_file(tmp_path / "a" / "shards" / "shard-00001.arrow").read_all().column("id").to_pylist()
    ids_b = ipc.open_file(tmp_path / "b" / "shards" / "shard-00001.arrow").read_all().column("id").to_pylist()
    assert ids_a == ids_b and len(set(ids_a)) == 7_000
    rows_col = ipc.open_file(tmp_path / "a" / "shards" / "shard-00002.arrow").read_all().column("row").to_pylist()
    assert rows_col[0] == 14_000 and rows_col[-1] == 19_999


def test_manifest_records_input_mapping_and_shards(tmp_path, sample_parquet):
    vdb_core.plan(tmp_path / "run", sample_parquet, shard_rows=250)
    m = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert m["input"]["size"] == sample_parquet.stat().st_size and len(m["input"]["fingerprint"]) == 64
    assert m["mapping"]["text"] == "sentence"
    assert [s["rows"] for s in m["shards"]] == [250, 250, 100]
    assert all(s["state"] == "planned" and len(s["checksum"]) == 64 for s in m["shards"])
    assert not list((tmp_path / "run" / "shards").glob(".*tmp*")), "temp files left behind"


def test_replan_resumes_and_repairs_a_damaged_shard(tmp_path, sample_parquet):
    run = tmp_path / "run"
    vdb_core.plan(run, sample_parquet, shard_rows=250)
    assert vdb_core.plan(run, sample_parquet, shard_rows=250)["resumed"]
    shard = run / "shards" / "shard-00001.arrow"
    good = shard.read_bytes()
    shard.write_bytes(good[:100])  # a damaged file must not be trusted
    s = vdb_core.plan(run, sample_parquet, shard_rows=250)
    assert not s["resumed"] and shard.read_bytes() == good


def test_a_run_dir_is_never_reused_for_other_input(tmp_path, sample_parquet):
    run = tmp_path / "run"
    vdb_core.plan(run, sample_parquet, shard_rows=250)
    other = tmp_path / "other.parquet"
    vdb_core.sample_data(other, rows=50, seed=9)
    with pytest.raises(vdb_core.HandoffError) as e:
        vdb_core.plan(run, other, shard_rows=250)
    assert e.value.kind == "run_mismatch" and str(other) in str(e.value)


def test_run_dirs_are_per_dag_and_run(tmp_path):
    a = vdb_core.run_dir("sec_filings_to_qdrant", "manual__2026-11-25T10:00:00+00:00", work_dir=tmp_path)
    b = vdb_core.run_dir("sec_filings_to_qdrant", "manual__2026-11-25T11:00:00+00:00", work_dir=tmp_path)
    assert a != b and a.startswith(str(tmp_path / "sec_filings_to_qdrant"))


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_inspect_and_sample_data(tmp_path):
    out = tmp_path / "s.parquet"
    r = vdb_cli("sample-data", "--rows", "100", "--out", str(out))
    assert r.returncode == 0, r.stderr
    r = vdb_cli("inspect", str(out), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["rows"] == 100


def test_cli_bad_input_exits_nonzero_with_the_file_name(tmp_path):
    r = vdb_cli("inspect", str(tmp_path / "missing.parquet"))
    assert r.returncode == 1 and "missing.parquet" in r.stderr and "file_not_found" in r.stderr
    r = vdb_cli("ingest", str(tmp_path / "missing.parquet"), "--store", str(tmp_path / "q"))
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_settings_table_is_the_documented_configuration():
    envs = {s["env"] for s in vdb_core.settings()}
    assert {"VDB_WORK_DIR", "VDB_MODEL_DIR", "QDRANT_URL", "QDRANT_API_KEY", "VDB_STORE_PATH"} <= envs
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    missing = [e for e in envs if e not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
