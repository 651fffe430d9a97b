"""
### Search SEC filings in Qdrant

Trigger with a query text (and optional payload filters): the task embeds the query with the same
model as the ingestion DAG, logs the top hits (score, company, sentence) and returns them as XCom
(plain JSON).

**Schedule:** besides manual triggers, it runs with its default Params whenever `sec_filings_to_qdrant`
updates the asset `qdrant://qdrant_default/<default collection>`: a search check after each ingest
(unpause it to turn that on).
"""

from __future__ import annotations

import logging
from datetime import timedelta

import vdb_core
from airflow.sdk import Param, dag, get_current_context, task
from vdb_core.airflow import collection_asset, describe, fail_fast, on_dag_failure, resolve_target

log = logging.getLogger(__name__)
_defaults = vdb_core.resolved_settings()


@dag(
    dag_id="sec_filings_search",
    dag_display_name="Search SEC filings",
    schedule=[collection_asset(_defaults["collection"])],
    catchup=False,
    tags=["vdb", "qdrant", "search"],
    doc_md=__doc__,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=20), "execution_timeout": timedelta(minutes=10)},
    on_failure_callback=on_dag_failure,
    params={
        "query": Param(
            "supply chain disruptions reduced gross margin",
            type="string",
            minLength=1,
            title="Query",
            section="Search",
            description="The text to search for: it is embedded with the same model as the sentences.",
        ),
        "collection": Param(
            _defaults["collection"],
            type="string",
            title="Qdrant collection",
            section="Search",
            description="The collection (or alias) to search.",
        ),
        "limit": Param(
            10,
            type="integer",
            minimum=1,
            maximum=100,
            title="Results",
            section="Search",
            description="Number of hits to return.",
        ),
        "mode": Param(
            None,
            type=["string", "null"],
            enum=[None, "hybrid", "dense", "sparse"],
            title="Search mode",
            section="Search",
            description="hybrid: the dense vector and BM25 fused by Qdrant; dense: the MiniLM vector only; sparse: "
            "BM25 only. Empty: hybrid where the collection has BM25, dense otherwise.",
        ),
        "fusion": Param(
            "rrf",
            type="string",
            enum=["rrf", "dbsf"],
            title="Fusion",
            section="Search",
            description="How hybrid search fuses its two result lists: rrf (reciprocal rank) or dbsf "
            "(distribution-based score fusion).",
        ),
        "distinct": Param(
            False,
            type="boolean",
            title="Distinct sentences",
            section="Search",
            description="One hit per distinct sentence: a sentence repeated in several filings is one result, "
            "listing the filings that hold it.",
        ),
        "filters": Param(
            {},
            type=["object", "null"],
            title="Payload filters",
            section="Filters",
            description=(
                'field: value pairs, e.g. {"form_type": "10-K", "fiscal_year": {"gte": 2020, "lte": 2022}}, or '
                'Qdrant\'s own filter JSON ({"must": [...]}). Empty ({} or null): no filter.'
            ),
        ),
        "model_dir": Param(
            None,
            type=["string", "null"],
            title="Model folder",
            section="Model",
            description=(
                "The sentence-transformers folder the collection was embedded with. "
                "Empty: the bundled all-MiniLM-L6-v2."
            ),
        ),
    },
)
def sec_filings_search():
    @task
    @fail_fast
    def search() -> list[dict]:
        """Searches the query (hybrid, dense or BM25: the mode Param) and returns the `limit` best
        sentences (id, score, payload, mode), filtered by the payload filters; logs them one per line."""
        p = get_current_context()["params"]
        target = resolve_target()
        hits = vdb_core.search(
            p["query"],
            p["collection"],
            target=target,
            embedder=vdb_core.Embedder(p["model_dir"] or None),
            limit=p["limit"],
            filters=p["filters"] or None,
            mode=p["mode"] or None,
            fusion=p["fusion"],
            distinct=p["distinct"],
        )
        mode = hits[0]["mode"] if hits else p["mode"] or "default"
        log.info("%d hits (%s) for %r in %r at %s", len(hits), mode, p["query"], p["collection"], describe(target))
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
            if len(h.get("filings", [])) > 1:
                log.info("    in %d filings", len(h["filings"]))
        return hits

    search()


sec_filings_search()
