"""
### Search SEC filings in Qdrant

Trigger with a query text (and optional payload filters): the task embeds the query with the same
model as the ingestion DAG, logs the top hits (score, company, sentence) and returns them as XCom
(plain JSON).
"""

from __future__ import annotations

import logging

import vdb_core
from airflow.sdk import Param, dag, get_current_context, task
from vdb_core.airflow import describe, resolve_target

log = logging.getLogger(__name__)


@dag(
    dag_id="sec_filings_search",
    dag_display_name="Search SEC filings",
    schedule=None,
    catchup=False,
    tags=["vdb", "qdrant", "search"],
    doc_md=__doc__,
    params={
        "query": Param("supply chain disruptions reduced gross margin", type="string", title="Query"),
        "collection": Param(vdb_core.resolved_settings()["collection"], type="string", title="Qdrant collection"),
        "limit": Param(10, type="integer", minimum=1, maximum=100, title="Results"),
        "filters": Param(
            {},
            type="object",
            title="Payload filters",
            description='e.g. {"form_type": "10-K", "fiscal_year": {"gte": 2020, "lte": 2022}}',
        ),
        "model_dir": Param(None, type=["string", "null"], title="Model folder"),
    },
)
def sec_filings_search():
    @task
    def search() -> list[dict]:
        p = get_current_context()["params"]
        target = resolve_target()
        hits = vdb_core.search(
            p["query"],
            p["collection"],
            target=target,
            embedder=vdb_core.Embedder(p["model_dir"] or None),
            limit=p["limit"],
            filters=p["filters"] or None,
        )
        log.info("%d hits for %r in %r at %s", len(hits), p["query"], p["collection"], describe(target))
        for i, h in enumerate(hits, 1):
            pl = h["payload"]
            log.info(
                "%2d. %.4f  %s %s %s  %s",
                i,
                h["score"],
                pl.get("company", ""),
                pl.get("form_type", ""),
                pl.get("fiscal_year", ""),
                pl.get("text", ""),
            )
        return hits

    search()


sec_filings_search()
