"""
### vdb maintenance: prune old run directories

A successful ingest removes its run directory; a failed one keeps it so that clearing the failed
tasks resumes where it stopped. This DAG deletes run directories under `VDB_WORK_DIR` that nothing
has touched for `older_than_days` (default `VDB_RUN_RETENTION_DAYS`, 7). It never deletes one whose
DAG run is still queued or running, one whose state it cannot read, or one a task holds a lock on.
Daily; trigger it with `dry_run` to see what it would delete.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import vdb_core
from airflow.sdk import Param, dag, get_current_context, task
from vdb_core.airflow import on_dag_failure, prune_run_dirs

log = logging.getLogger(__name__)
_defaults = vdb_core.resolved_settings()


@dag(
    dag_id="vdb_maintenance",
    dag_display_name="vdb maintenance",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["vdb", "maintenance"],
    doc_md=__doc__,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=5), "execution_timeout": timedelta(minutes=30)},
    on_failure_callback=on_dag_failure,
    params={
        "older_than_days": Param(
            _defaults["run_retention_days"],
            type="number",
            minimum=0,
            title="Retention (days)",
            description="Run directories untouched for longer are deleted (VDB_RUN_RETENTION_DAYS).",
        ),
        "dry_run": Param(False, type="boolean", title="Dry run", description="Only list what would be deleted."),
    },
)
def vdb_maintenance():
    @task
    def prune_run_directories() -> dict:
        """Deletes run directories older than the retention whose DAG run has finished (success or
        failed) and that no task holds a lock on; logs what it removed and what it kept."""
        ctx = get_current_context()
        ti = ctx["ti"]

        def run_state(dag_id: str, run_id: str) -> str | None:
            if dag_id == "cli":
                return None  # `vdb ingest` run directories belong to no DAG run
            try:
                if ti.get_dr_count(dag_id=dag_id, run_ids=[run_id]) == 0:
                    return None  # the run is gone from Airflow: nothing can resume it
                return ti.get_dagrun_state(dag_id=dag_id, run_id=run_id)
            except Exception as e:  # unknown: keep the directory rather than guess
                log.warning("state of %s/%s unknown (%s): kept", dag_id, run_id, e)
                return "unknown"

        result = prune_run_dirs(
            ctx["params"]["older_than_days"],
            work_dir=vdb_core.resolved_settings()["work_dir"],
            run_state=run_state,
            dry_run=ctx["params"]["dry_run"],
        )
        verb = "would remove" if ctx["params"]["dry_run"] else "removed"
        for path in result["removed"]:
            log.info("%s %s", verb, path)
        log.info(
            "%s %d run directories; kept %d recent, %d active or unknown",
            verb,
            len(result["removed"]),
            len(result["kept_recent"]),
            len(result["kept_active"]),
        )
        return result

    prune_run_directories()


vdb_maintenance()
