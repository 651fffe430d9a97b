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

**Qdrant:** the Airflow connection `qdrant_default`, read as the official Qdrant provider defines it
(host, port = REST, password = API key, extra `url`, `grpc_port`, `prefer_gprc`, `https`, `prefix`;
vdb_core uses the gRPC port). Only when that connection is not defined at all: `QDRANT_URL`, else
the embedded store at `VDB_STORE_PATH`; with `VDB_REQUIRE_SERVER=1` (docker-compose) that is an error.

**Errors:** bad input, settings or model fail the task at once (no retries); a Qdrant outage is
retried. On success the task `publish` updates the asset `qdrant://qdrant_default/<collection>`
(only for the default collection), on which `sec_filings_search` is scheduled.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import vdb_core
from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowSkipException
from vdb_core.airflow import (
    changes_report_path,
    collection_asset,
    current_run_dir,
    describe,
    fail_fast,
    fit_shard_rows,
    max_map_length,
    on_dag_failure,
    resolve_input,
    resolve_target,
    task_progress,
)

log = logging.getLogger(__name__)
_defaults = vdb_core.resolved_settings()
#: The asset this DAG updates: the default collection (VDB_COLLECTION) behind qdrant_default.
COLLECTION_ASSET = collection_asset(_defaults["collection"])
#: Sections of the trigger form.
_INPUT, _COLLECTION, _EMBEDDING, _LAYOUT = "Input", "Collection", "Embedding", "Qdrant layout (new collections)"


@dag(
    dag_id="sec_filings_to_qdrant",
    dag_display_name="SEC filings -> Qdrant",
    schedule=None,
    catchup=False,
    max_active_runs=4,
    tags=["vdb", "qdrant", "embeddings", "sec"],
    doc_md=__doc__,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "execution_timeout": timedelta(minutes=30),
    },
    # Logs the failure, then calls VDB_ON_FAILURE_CALLBACK ("module:function") if set.
    on_failure_callback=on_dag_failure,
    # The trigger form: one section per topic (`section=`); every Param says what an empty value means.
    params={
        "input_path": Param(
            str(_defaults["input"]),
            type="string",
            title="Input parquet",
            section=_INPUT,
            description=(
                "Path of the parquet file as the workers see it. In Docker: under /opt/airflow/data "
                "(the sample is there; your ./data folder is /opt/airflow/data/host)."
            ),
        ),
        "text_column": Param(
            "sentence", type="string", title="Text column", section=_INPUT, description="The column to embed."
        ),
        "id_columns": Param(
            ["filing_id", "sentence_index"],
            type=["array", "null"],
            title="Id columns",
            section=_INPUT,
            description=(
                "Columns whose values make each point's stable id, one per line. Empty (null): the default, "
                "filing_id and sentence_index. [] (in the JSON configuration): ids from the text itself."
            ),
        ),
        "payload_columns": Param(
            None,
            type=["array", "null"],
            title="Payload columns",
            section=_INPUT,
            description=(
                "Columns stored with each vector, one per line. Empty (null or []): every column but the text. "
                "The text itself is always stored."
            ),
        ),
        "strict": Param(
            False,
            type="boolean",
            title="Strict input",
            section=_INPUT,
            description="Fail on null/blank text or duplicate ids instead of skipping and counting them.",
        ),
        "collection": Param(
            _defaults["collection"],
            type="string",
            title="Qdrant collection",
            section=_COLLECTION,
            description="Created if missing (cosine, 384-d); loading again never duplicates points.",
        ),
        "recreate": Param(
            False,
            type="boolean",
            title="Recreate collection",
            section=_COLLECTION,
            description="Drop the collection first (all its points are deleted).",
        ),
        "rebuild": Param(
            False,
            type="boolean",
            title="Rebuild (blue/green)",
            section=_COLLECTION,
            description=(
                "Build a new collection from this input and switch the collection name (a Qdrant alias) to it "
                "after verify; searches see the old data until then, and a failed run changes nothing. The "
                "previous collection is kept until the next rebuild. Excludes Recreate and Sync scope."
            ),
        ),
        "sync_scope": Param(
            [],
            type=["array", "null"],
            title="Sync scope",
            section=_COLLECTION,
            description=(
                "Payload columns (e.g. filing_id) whose values this input replaces: after a verified load, points "
                "with one of the input's values that the input no longer has are deleted. Empty (null or []): "
                "nothing is deleted."
            ),
        ),
        "changes_scope": Param(
            [],
            type=["array", "null"],
            title="Changes report: company columns",
            section=_COLLECTION,
            description=(
                "Payload columns naming the company (e.g. ticker or cik): after the load, a report of new, removed "
                "and kept sentences between consecutive filings of each company is written and logged. Empty "
                "(null or []): no report."
            ),
        ),
        "changes_order": Param(
            "fiscal_year",
            type=["string", "null"],
            title="Changes report: filing order column",
            section=_COLLECTION,
            description="The payload column that orders a company's filings (a year or a date). Empty: no report.",
        ),
        "precision": Param(
            _defaults["precision"],
            type="string",
            enum=["float32", "int8", "bf16", "float16"],
            title="Embedding precision",
            section=_EMBEDDING,
            description=(
                "float32: the same vectors as sentence-transformers. int8 (CPU): 1.1-1.3x as fast as float32 "
                "(measured, docs/benchmarks.md), cosine >= 0.99. bf16: CPUs with AVX512-BF16 (fails elsewhere) or "
                "a GPU, cosine >= 0.9999 (GPU: 0.999). float16: GPU only, cosine >= 0.999."
            ),
        ),
        "device": Param(
            _defaults["device"],
            type="string",
            pattern="^(cpu|cuda(:[0-9]+)?)$",
            title="Embedding device",
            section=_EMBEDDING,
            description=(
                "cpu, or cuda / cuda:N: an NVIDIA GPU on the worker (an image built with VDB_FEATURES=cuda; "
                "fails at once elsewhere). Raise the batch size to a few hundred on a GPU."
            ),
        ),
        "batch_size": Param(
            _defaults["batch_size"],
            type="integer",
            minimum=1,
            maximum=4096,
            title="Embedding batch size",
            section=_EMBEDDING,
            description="Sentences per forward pass (upper bound). CPU: 32; GPU: a few hundred.",
        ),
        "reuse": Param(
            _defaults["reuse"],
            type="boolean",
            title="Embed each distinct text once",
            section=_EMBEDDING,
            description="Embed each distinct text once and take vectors the collection already holds for the same "
            "text and model. Off: embed every row. Default: VDB_REUSE.",
        ),
        "model_dir": Param(
            None,
            type=["string", "null"],
            title="Model folder",
            section=_EMBEDDING,
            description="A sentence-transformers model folder on the workers. Empty: the bundled all-MiniLM-L6-v2.",
        ),
        "shard_rows": Param(
            _defaults["shard_rows"],
            type="integer",
            minimum=100,
            title="Rows per shard",
            section=_EMBEDDING,
            description=(
                "Each shard is one embed task and one load task (raised by itself when the input would need more "
                "than [core] max_map_length shards)."
            ),
        ),
        "upsert_batch_size": Param(
            _defaults["upsert_batch"],
            type="integer",
            minimum=1,
            maximum=4096,
            title="Points per upsert",
            section=_LAYOUT,
            description="Points sent to Qdrant in one upsert request. Default: VDB_UPSERT_BATCH.",
        ),
        "upsert_parallel": Param(
            _defaults["upsert_parallel"],
            type="integer",
            minimum=1,
            maximum=64,
            title="Upserts in flight",
            section=_LAYOUT,
            description="Upsert requests a load task keeps in flight (server store). Default: VDB_UPSERT_PARALLEL.",
        ),
        "upsert_retries": Param(
            _defaults["upsert_retries"],
            type="integer",
            minimum=1,
            maximum=100,
            title="Attempts per upsert",
            section=_LAYOUT,
            description="Attempts per upsert request on transient Qdrant errors (unavailable, deadline, overloaded), "
            "backing off from 200 ms, doubling; then the task fails and Airflow's task retries take over. "
            "Default: VDB_UPSERT_RETRIES.",
        ),
        # Collection layout for large collections and Qdrant clusters (applied when it is created).
        "shard_number": Param(
            None,
            type=["integer", "null"],
            minimum=1,
            title="Shards (Qdrant cluster)",
            section=_LAYOUT,
            description="Qdrant shard_number of a new collection. Empty: Qdrant's default (1).",
        ),
        "replication_factor": Param(
            None,
            type=["integer", "null"],
            minimum=1,
            title="Replication factor",
            section=_LAYOUT,
            description="Copies of each shard of a new collection in a Qdrant cluster. Empty: 1.",
        ),
        "write_consistency_factor": Param(
            None,
            type=["integer", "null"],
            minimum=1,
            title="Write consistency factor",
            section=_LAYOUT,
            description="Replicas that must confirm a write, for a new collection. Empty: 1.",
        ),
        "on_disk": Param(
            False,
            type="boolean",
            title="Vectors on disk",
            section=_LAYOUT,
            description="Memory-mapped vectors instead of RAM, for a new collection (large collections).",
        ),
        "on_disk_payload": Param(
            False,
            type="boolean",
            title="Payloads on disk",
            section=_LAYOUT,
            description="Payloads on disk instead of RAM, for a new collection.",
        ),
        "quantization": Param(
            None,
            type=["string", "null"],
            enum=[None, "int8"],
            title="Quantization",
            section=_LAYOUT,
            description="int8: scalar quantization of a new collection's vectors (4x less RAM for search). "
            "Empty: none.",
        ),
        "sparse": Param(
            _defaults["sparse"],
            type="boolean",
            title="BM25 sparse vectors (hybrid search)",
            section=_LAYOUT,
            description="A new collection gets Qdrant's BM25 sparse vector next to the dense one, and search fuses "
            "both (hybrid). Off: dense only. An existing collection keeps its layout (rebuild to add BM25). "
            "Default: VDB_SPARSE.",
        ),
    },
)
def sec_filings_to_qdrant():
    @task(execution_timeout=timedelta(hours=1))
    @fail_fast
    def plan() -> list[int]:
        """Checks the input parquet and its column mapping, then splits the valid rows into shard files
        in the run directory. Returns the shard numbers the mapped tasks expand over. The input path
        must resolve under `VDB_DATA_ROOT` when that is set."""
        p = get_current_context()["params"]
        if p["rebuild"] and (p["recreate"] or p["sync_scope"]):
            raise vdb_core.ConfigError("the rebuild Param excludes recreate and sync_scope: set one of them")
        input_path = resolve_input(p["input_path"])
        run_dir = current_run_dir()
        # An empty payload list means what the form says: every column but the text (never "none").
        payload_columns = p["payload_columns"] or None
        if p["payload_columns"] is not None and payload_columns is None:
            log.info("payload_columns is empty: storing every column but the text")
        info = vdb_core.inspect(input_path, p["text_column"], p["id_columns"], payload_columns)
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
            input_path,
            text_column=p["text_column"],
            id_columns=p["id_columns"],
            payload_columns=payload_columns,
            shard_rows=shard_rows,
            strict=p["strict"],
            reuse=p["reuse"],
            progress=task_progress(log),
            changes_scope=p["changes_scope"] or None,
            changes_order=p["changes_order"] if p["changes_scope"] else None,
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

    # Mapped tasks do not take their doc from the docstring: doc_md is given explicitly.
    @task(
        retries=3,
        # CPU-bound: the pool's slots are the cluster's embed capacity (cores / VDB_THREADS per worker).
        pool="vdb_embed",
        execution_timeout=timedelta(hours=4),
        map_index_template="shard {{ task.op_kwargs['shard'] }}",
        doc_md="Embeds one shard with all-MiniLM-L6-v2 (the `precision` and `device` Params) into an embedded-shard "
        "file. A shard already embedded by an earlier try is verified and skipped.",
    )
    @fail_fast
    def embed(shard: int) -> dict:
        p = get_current_context()["params"]
        run_dir = current_run_dir()
        embedder = vdb_core.Embedder(p["model_dir"] or None, precision=p["precision"], device=p["device"])
        # Texts the collection already holds (same model) are taken from it, not embedded again.
        r = vdb_core.embed_shard(
            run_dir,
            shard,
            embedder,
            batch_size=p["batch_size"],
            collection=p["collection"],
            target=resolve_target(),
            recreate=p["recreate"],
            rebuild=p["rebuild"],
            progress=task_progress(log),
        )
        log.info(
            "shard %d: %d rows, %d distinct texts, %d embedded now, %d found in the collection%s",
            shard,
            r["rows"],
            r["texts"],
            r["texts_embedded"],
            r["texts"] - r["texts_embedded"],
            "" if r["done_now"] else " (already done, verified)",
        )
        return r

    @task(execution_timeout=timedelta(minutes=15))
    @fail_fast
    def ensure_collection() -> dict:
        """Creates the collection (cosine, the model's size) with its payload indexes, or checks the
        existing one matches; defers indexing for the bulk load. A rebuild creates a new collection."""
        p = get_current_context()["params"]
        target = resolve_target()
        options = vdb_core.collection_options(
            shard_number=p["shard_number"],
            replication_factor=p["replication_factor"],
            write_consistency_factor=p["write_consistency_factor"],
            on_disk=p["on_disk"],
            on_disk_payload=p["on_disk_payload"],
            quantization=p["quantization"],
            sparse=p["sparse"],
        )
        r = vdb_core.ensure_collection(
            current_run_dir(),
            p["collection"],
            target=target,
            recreate=p["recreate"],
            rebuild=p["rebuild"],
            options=options,
        )
        log.info(
            "collection %r %s at %s; payload indexes %s", r["collection"], r["outcome"], describe(target), r["indexes"]
        )
        return r

    @task(
        retries=3,
        execution_timeout=timedelta(hours=1),
        map_index_template="shard {{ task.op_kwargs['shard'] }}",
        doc_md="Upserts one embedded shard into the collection (stable UUIDv5 point ids: a retry never "
        "duplicates points; a shard already loaded is skipped).",
    )
    @fail_fast
    def load(shard: int) -> dict:
        p = get_current_context()["params"]
        r = vdb_core.load_shard(
            current_run_dir(),
            shard,
            p["collection"],
            target=resolve_target(),
            upsert_batch_size=p["upsert_batch_size"],
            upsert_parallel=p["upsert_parallel"],
            upsert_retries=p["upsert_retries"],
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

    @task(trigger_rule="all_done", execution_timeout=timedelta(hours=2))
    @fail_fast
    def restore_indexing() -> None:
        """Restores the collection's normal indexing. Runs even when a load failed: indexing must
        never stay deferred."""
        p = get_current_context()["params"]
        vdb_core.restore_indexing(p["collection"], target=resolve_target(), run_dir=current_run_dir())

    @task(execution_timeout=timedelta(minutes=30))
    @fail_fast
    def verify() -> dict:
        """Checks that every valid row is a point and that a sample search finds its own row; writes
        the run report."""
        p = get_current_context()["params"]
        report = vdb_core.verify(current_run_dir(), p["collection"], target=resolve_target())
        for line in vdb_core.report_summary(report).splitlines():
            log.info("%s", line)
        keys = (
            "rows_read",
            "rows_valid",
            "texts_embedded",
            "vectors_reused",
            "points_loaded",
            "new_points",
            "updated_points",
            "unchanged_points",
            "sparse_vectors",
            "collection_count",
        )
        return {k: report[k] for k in keys}

    @task(execution_timeout=timedelta(hours=1))
    @fail_fast
    def sync() -> dict:
        """With the `sync_scope` Param: deletes the points of each scope value of this input (e.g. a
        filing_id) that the input no longer has. Runs after verify only: a run that failed earlier
        deletes nothing."""
        p = get_current_context()["params"]
        if not p["sync_scope"]:
            log.info("no sync scope: nothing to delete")
            return {"deleted_points": 0}
        r = vdb_core.sync(current_run_dir(), p["collection"], p["sync_scope"], target=resolve_target())
        log.info("sync by %s: %d scopes, %d points deleted", ", ".join(r["scope"]), r["scopes"], r["deleted_points"])
        return r

    @task(execution_timeout=timedelta(minutes=15))
    @fail_fast
    def switch() -> dict:
        """With the `rebuild` Param: points the collection name (a Qdrant alias) at the collection this
        run built, in one atomic step, after verify passed; the previous collection is kept, older
        ones are deleted. Without it: nothing to do."""
        p = get_current_context()["params"]
        r = vdb_core.switch(current_run_dir(), p["collection"], target=resolve_target())
        if r["switched"]:
            log.info(
                "%r now names %r (before: %s); old collections deleted: %s",
                r["alias"],
                r["collection"],
                r["previous"] or "none",
                r["deleted"] or "none",
            )
        else:
            log.info("not a rebuild: nothing to switch")
        return r

    @task(execution_timeout=timedelta(hours=1))
    @fail_fast
    def changes() -> dict:
        """What changed between consecutive filings of each company (Params changes_scope and
        changes_order; off when either is empty): `_vdb_first_seen` set on the points of this input's
        companies (so a search can ask for what was new in a year), the report written as parquet under
        `$VDB_WORK_DIR/reports/<collection>/` (it outlives the run directory), the biggest movers
        logged, the totals returned for the asset event."""
        p = get_current_context()["params"]
        scope, order = list(p["changes_scope"] or []), p["changes_order"] or ""
        if not scope or not order:
            log.info("changes report off: changes_scope %r, changes_order %r", scope, order)
            return {}
        out = changes_report_path(p["collection"])
        target = resolve_target()
        # Every point of this input's companies: the filing its text first appeared in.
        first = vdb_core.update_first_seen(current_run_dir(), p["collection"], scope=scope, order=order, target=target)
        log.info(
            "_vdb_first_seen: %d points of %d companies read, %d set",
            first["points"],
            first["scopes"],
            first["updated"],
        )
        with vdb_core.Store(target) as store:
            rows = store.changes(p["collection"], scope=scope, order=order, out=out)
        log.info("changes report: %d pairs of consecutive filings, written to %s", len(rows), out)
        for r in sorted(rows, key=lambda r: r["new"] + r["removed"], reverse=True)[:10]:
            log.info(
                "  %s %s -> %s: %d new, %d removed, %d kept (jaccard %.3f, cosine %.4f)",
                ",".join(str(v) for v in r["scope"].values()),
                r["from"],
                r["to"],
                r["new"],
                r["removed"],
                r["kept"],
                r["jaccard"],
                r["cosine"],
            )
        return {
            "changes_pairs": len(rows),
            "changes_new": sum(r["new"] for r in rows),
            "changes_removed": sum(r["removed"] for r in rows),
            "changes_kept": sum(r["kept"] for r in rows),
        }

    @task(outlets=[COLLECTION_ASSET], execution_timeout=timedelta(minutes=5))
    def publish(counts: dict, changed: dict) -> None:
        """Updates the asset `qdrant://qdrant_default/<default collection>` (DAGs scheduled on it run
        next). Skipped when this run loaded another collection: the asset stands for the default one."""
        ctx = get_current_context()
        collection = ctx["params"]["collection"]
        if COLLECTION_ASSET.uri != collection_asset(collection).uri:
            raise AirflowSkipException(f"collection {collection!r} is not the asset's ({COLLECTION_ASSET.uri})")
        ctx["outlet_events"][COLLECTION_ASSET].extra = {"collection": collection, **counts, **changed}

    @task(execution_timeout=timedelta(minutes=15))
    def cleanup() -> None:
        """Removes the run directory after a successful run (a failed run keeps it for a resume until
        the maintenance DAG prunes it)."""
        run_dir = current_run_dir()
        vdb_core.remove_run_dir(run_dir)
        log.info("removed %s", run_dir)

    shards = plan()
    embedded = embed.expand(shard=shards)
    loaded = load.expand(shard=shards)
    verified = verify()
    synced = sync()
    switched = switch()
    changed = changes()
    chain = embedded >> ensure_collection() >> loaded >> restore_indexing() >> verified >> synced >> switched
    chain >> changed >> cleanup()
    loaded >> verified  # a failed load fails the run (restore_indexing alone would let verify run)
    changed >> publish(verified, changed)  # the asset event comes once the collection holds this input


sec_filings_to_qdrant()
