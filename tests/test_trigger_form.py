"""The trigger forms of both DAGs (#24): every Param described and in a section, the sections survive
serialization (what the UI renders), and empty values mean what the descriptions say, through a real
`airflow dags test`."""

from __future__ import annotations

import json

import pytest
import vdb_core
from airflow_stack import run_dags_test
from conftest import ROOT

pytestmark = pytest.mark.airflow
DAGS = ("sec_filings_to_qdrant", "sec_filings_search")


def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_every_param_is_described_and_in_a_section():
    from airflow.serialization.serialized_objects import DagSerialization

    bag = _dagbag()
    assert bag.import_errors == {}
    for dag_id in DAGS:
        dag = bag.dags[dag_id]
        serialized = json.dumps(DagSerialization.to_dict(dag))
        for name in dag.params:
            param = dag.params.get_param(name)
            assert param.description and len(param.description) > 15, f"{dag_id}.{name}: no description"
            assert param.schema.get("section"), f"{dag_id}.{name}: no section"
            assert param.schema.get("title"), f"{dag_id}.{name}: no title"
            assert json.dumps(param.schema["section"]) in serialized, f"{dag_id}.{name}: section lost in serialization"
            nullable = "null" in (param.schema.get("type") or [])
            if nullable or param.schema.get("type") == "array":
                # An empty value must be explained where the user types it.
                assert "Empty" in param.description, f"{dag_id}.{name}: what does an empty value mean?"
        sections = {dag.params.get_param(n).schema["section"] for n in dag.params}
        assert len(sections) >= 2, f"{dag_id}: one section is no grouping"


def test_emptied_id_and_payload_boxes_mean_the_defaults(airflow_env, sample_parquet, tmp_path):
    """The form sends null for an emptied id_columns box and [] or null for payload_columns: a run
    with those stores the same points (same ids, every payload column) as a run with the defaults."""
    env = {**airflow_env, "VDB_STORE_PATH": str(tmp_path / "store")}
    emptied = {"input_path": str(sample_parquet), "collection": "formempty", "id_columns": None, "payload_columns": []}
    r = run_dags_test(env, "sec_filings_to_qdrant", emptied)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "payload_columns is empty: storing every column but the text" in r.stdout + r.stderr
    target = vdb_core.store_target(store_path=tmp_path / "store")
    assert vdb_core.count("formempty", target=target) == 600
    hit = vdb_core.search("revenue", "formempty", target=target, limit=1)[0]
    assert {"company", "filing_id", "sentence_index", "text"} <= set(hit["payload"]), hit["payload"]
    # The defaults' run changes nothing: the same ids and payloads.
    r = run_dags_test(env, "sec_filings_to_qdrant", {"input_path": str(sample_parquet), "collection": "formempty"})
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert "0 added, 0 updated, 600 unchanged" in r.stdout + r.stderr


# One concept, one name, one default (#22): the API keyword, the CLI option and the DAG Param of
# each ingest option, and the setting its default comes from (None: a plain default, no setting).
CONCEPTS = {
    # concept: (ingest keyword, `vdb ingest` dest, DAG Param, setting key)
    "text column": ("text_column", "text_column", "text_column", None),
    "id columns": ("id_columns", "id_columns", "id_columns", None),
    "payload columns": ("payload_columns", "payload_columns", "payload_columns", None),
    "strict": ("strict", "strict", "strict", None),
    "collection": ("collection", "collection", "collection", "collection"),
    "recreate": ("recreate", "recreate", "recreate", None),
    "rebuild": ("rebuild", "rebuild", "rebuild", None),
    "reuse": ("reuse", "no_reuse", "reuse", "reuse"),
    "sync scope": ("sync_scope", "sync_scope", "sync_scope", None),
    "changes scope": ("changes_scope", "changes_scope", "changes_scope", None),
    "changes order": ("changes_order", "changes_order", "changes_order", None),
    "sparse": ("sparse", "no_sparse", "sparse", "sparse"),
    "shard rows": ("shard_rows", "shard_rows", "shard_rows", "shard_rows"),
    "embedding batch": ("batch_size", "batch_size", "batch_size", "batch_size"),
    "upsert batch": ("upsert_batch_size", "upsert_batch_size", "upsert_batch_size", "upsert_batch"),
    "upserts in flight": ("upsert_parallel", "upsert_parallel", "upsert_parallel", "upsert_parallel"),
    "upsert attempts": ("upsert_retries", "upsert_retries", "upsert_retries", "upsert_retries"),
}


def test_every_ingest_option_has_one_name_in_the_api_the_cli_and_the_dag():
    """Each option of an ingest exists in all three front ends under one name (the CLI's negative
    flags `--no-reuse`/`--no-sparse` aside), and the DAG's default is the setting's value: the one
    table (`vdb_core.settings()`) the CLI and the API fall back to as well."""
    import inspect as pyinspect

    from vdb_core import cli

    api = set(pyinspect.signature(vdb_core.ingest).parameters)
    ingest = cli.build_parser()._subparsers._group_actions[0].choices["ingest"]
    flags = {a.dest for a in ingest._actions}
    dag = _dagbag().dags["sec_filings_to_qdrant"]
    settings = vdb_core.resolved_settings()
    for concept, (keyword, dest, param, setting) in CONCEPTS.items():
        assert keyword in api, f"{concept}: vdb_core.ingest has no {keyword}="
        assert dest in flags, f"{concept}: vdb ingest has no --{dest.replace('_', '-')}"
        assert param in dag.params, f"{concept}: the DAG has no Param {param!r}"
        if setting is not None:
            assert dag.params.get_param(param).value == settings[setting], f"{concept}: the DAG's default"
            assert pyinspect.signature(vdb_core.ingest).parameters[keyword].default is None, (
                f"{concept}: ingest's default must be None (= the setting)"
            )
    # The model flags of a search are those of an ingest: a query is embedded like the sentences.
    search = cli.build_parser()._subparsers._group_actions[0].choices["search"]
    assert {"threads", "precision", "device", "model_dir"} <= {a.dest for a in search._actions}
