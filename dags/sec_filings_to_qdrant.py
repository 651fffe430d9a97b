"""
### SEC filings -> Qdrant

Embeds every sentence of a parquet file of SEC-filing sentences with all-MiniLM-L6-v2 (in Rust,
`vdb_core`) and upserts the vectors, with their filing metadata as payload, into a Qdrant
collection.

**Steps:** plan (validate + split into shards) -> embed (one mapped task per shard) -> ensure the
collection (+ payload indexes, indexing deferred) -> load (one mapped task per shard) -> restore
indexing (always) -> verify (every row is a point; a sample search finds its row) -> clean up the
run directory (only on success: a failed run keeps it, and a retry resumes from it).

Tasks hand data to each other only through files in the run's directory
(`$VDB_WORK_DIR/<dag_id>/<run_id>/`); XComs carry small metadata. Every task is idempotent
(stable UUIDv5 point ids, per-shard states in `manifest.json`), so retries never duplicate points.

**Qdrant:** the Airflow connection `qdrant_default` (host, port, password = API key,
extra `grpc_port`), else `QDRANT_URL`, else the embedded store at `VDB_STORE_PATH`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import vdb_core
from airflow.sdk import Param, dag, get_current_context, task
from vdb_core.airflow import current_run_dir, describe, fit_shard_rows, max_map_length, resolve_target, task_progress

log = logging.getLogger(__name__)
_defaults = vdb_core.resolved_settings()


@dag(
    dag_id="sec_filings_to_qdrant",
    dag_display_name="SEC filings -> Qdrant",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    tags=["vdb", "qdrant", "embeddings", "sec"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "retry_exponential_backoff": True},
    params={
        "input_path": Param(
            str(_defaults["input"]),
            type="string",
            title="Input parquet",
            description="Path of the parquet file as the workers see it (mounted at /opt/airflow/data in Docker).",
        ),
        "collection": Param(
            _defaults["collection"],
            type="string",
            title="Qdrant collection",
            description="Created if missing (cosine, 384-d); loading again never duplicates points.",
        ),
        "text_column": Param("sentence", type="string", title="Text column", description="The column to embed."),
        "id_columns": Param(
            ["filing_id", "sentence_index"],
            type=["array", "null"],
            title="Id columns",
            description="Columns whose values make the stable point id. Empty list: ids from the text.",
        ),
        "payload_columns": Param(
            None,
            type=["array", "null"],
            title="Payload columns",
            description="Columns stored with each vector. Empty: every column but the text.",
        ),
        "shard_rows": Param(
            _defaults["shard_rows"],
            type="integer",
            minimum=100,
            title="Rows per shard",
            description="Each shard is one embed task and one load task.",
        ),
        "batch_size": Param(
            _defaults["batch_size"], type="integer", minimum=1, maximum=512, title="Embedding batch size"
        ),
        "upsert_batch_size": Param(
            _defaults["upsert_batch"], type="integer", minimum=1, maximum=4096, title="Points per upsert"
        ),
        "recreate": Param(
            False,
            type="boolean",
            title="Recreate collection",
            description="Drop the collection first (all its points are deleted).",
        ),
        "strict": Param(
            False,
            type="boolean",
            title="Strict input",
            description="Fail on null/blank text or duplicate ids instead of skipping and counting them.",
        ),
        "model_dir": Param(
            None,
            type=["string", "null"],
            title="Model folder",
            description="A sentence-transformers folder; empty: the bundled all-MiniLM-L6-v2.",
        ),
        "precision": Param(
            _defaults["precision"],
            type="string",
            enum=["float32", "int8"],
            title="Embedding precision",
            description=(
                "float32: the same vectors as sentence-transformers. int8: about twice as fast, cosine >= 0.99."
            ),
        ),
    },
)
def sec_filings_to_qdrant():
    @task
    def plan() -> list[int]:
        """Returns only the shard numbers (the XCom the mapped tasks expand over)."""
        p = get_current_context()["params"]
        run_dir = current_run_dir()
        info = vdb_core.inspect(p["input_path"], p["text_column"], p["id_columns"], p["payload_columns"])
        log.info("input %s: %d rows, %d row groups", info["path"], info["rows"], info["row_groups"])
        # One mapped embed/load task per shard, and Airflow fails a plan that maps to more than
        # [core] max_map_length tasks: raise the shard size instead of failing the run.
        limit = max_map_length()
        shard_rows = fit_shard_rows(info["rows"], p["shard_rows"], limit)
        if shard_rows != p["shard_rows"]:
            log.warning(
                "shard_rows %d would plan more than %d shards ([core] max_map_length) for %d rows: using %d. "
                "For smaller shards raise AIRFLOW__CORE__MAX_MAP_LENGTH on every Airflow component.",
                p["shard_rows"],
                limit,
                info["rows"],
                shard_rows,
            )
        summary = vdb_core.plan(
            run_dir,
            p["input_path"],
            text_column=p["text_column"],
            id_columns=p["id_columns"],
            payload_columns=p["payload_columns"],
            shard_rows=shard_rows,
            strict=p["strict"],
            progress=task_progress(log),
        )
        log.info(
            "planned %d shards in %s: %d rows read, %d valid, skipped %s%s",
            len(summary["shards"]),
            run_dir,
            summary["rows_read"],
            summary["rows_valid"],
            summary["skipped"],
            " (resumed an earlier plan)" if summary["resumed"] else "",
        )
        return summary["shards"]

    # CPU-bound: the pool's slots are the cluster's embed capacity (cores / VDB_THREADS per worker).
    @task(retries=3, pool="vdb_embed", map_index_template="shard {{ task.op_kwargs['shard'] }}")
    def embed(shard: int) -> dict:
        p = get_current_context()["params"]
        run_dir = current_run_dir()
        embedder = vdb_core.Embedder(p["model_dir"] or None, precision=p["precision"])
        r = vdb_core.embed_shard(run_dir, shard, embedder, batch_size=p["batch_size"], progress=task_progress(log))
        log.info(
            "shard %d: %d rows %s", shard, r["rows"], "embedded" if r["done_now"] else "already embedded (verified)"
        )
        return r

    @task
    def ensure_collection() -> dict:
        p = get_current_context()["params"]
        target = resolve_target()
        r = vdb_core.ensure_collection(current_run_dir(), p["collection"], target=target, recreate=p["recreate"])
        log.info(
            "collection %r %s at %s; payload indexes %s", r["collection"], r["outcome"], describe(target), r["indexes"]
        )
        return r

    @task(retries=3, map_index_template="shard {{ task.op_kwargs['shard'] }}")
    def load(shard: int) -> dict:
        p = get_current_context()["params"]
        r = vdb_core.load_shard(
            current_run_dir(),
            shard,
            p["collection"],
            target=resolve_target(),
            batch_size=p["upsert_batch_size"],
            progress=task_progress(log),
        )
        log.info(
            "shard %d: %d points upserted (%d new)%s",
            shard,
            r["points"],
            r["new_points"],
            "" if r["done_now"] else " (already loaded)",
        )
        return r

    @task(trigger_rule="all_done")
    def restore_indexing() -> None:
        """Runs even when a load failed: indexing must never stay deferred."""
        p = get_current_context()["params"]
        vdb_core.finish_load(p["collection"], target=resolve_target(), run_dir=current_run_dir())

    @task
    def verify() -> dict:
        p = get_current_context()["params"]
        report = vdb_core.verify(current_run_dir(), p["collection"], target=resolve_target())
        for line in vdb_core.report_summary(report).splitlines():
            log.info("%s", line)
        return {k: report[k] for k in ("rows_read", "rows_valid", "points_loaded", "new_points", "collection_count")}

    @task
    def cleanup() -> None:
        run_dir = current_run_dir()
        vdb_core.remove_run_dir(run_dir)
        log.info("removed %s", run_dir)

    shards = plan()
    embedded = embed.expand(shard=shards)
    loaded = load.expand(shard=shards)
    verified = verify()
    embedded >> ensure_collection() >> loaded >> restore_indexing() >> verified >> cleanup()
    loaded >> verified  # a failed load fails the run (restore_indexing alone would let verify run)


sec_filings_to_qdrant()
