"""``vdb``: the command line for people who are not writing DAGs.

Same pipeline code as the Airflow tasks. Exit codes: 0 success, 1 a vdb_core error (the message
names the file/row/column), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import vdb_core
from vdb_core import qdrant_url as _qdrant_url
from vdb_core.types import StoreTarget


def _settings_epilog() -> str:
    rows = "\n".join(f"  {s['env']:<20} {s['default'] or '(unset)':<22} {s['help']}" for s in vdb_core.settings())
    return "configuration (flag > environment variable > default):\n" + rows


def _progress() -> str:
    return "bar" if sys.stderr.isatty() else "lines"


def _target(args: argparse.Namespace) -> StoreTarget:
    return vdb_core.store_target(args.qdrant_url, args.api_key, args.store)


def _add_store_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--collection", default=None, help="Qdrant collection (default: VDB_COLLECTION or sec_filings)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--qdrant-url",
        default=None,
        help="Qdrant server URL (default: QDRANT_URL). The REST URL you copy from the dashboard or Qdrant Cloud "
        "(http://localhost:6333) is fine: port 6333, or no port, goes to the gRPC port 6334 (logged); any "
        "other port is taken as the gRPC port",
    )
    g.add_argument(
        "--store", default=None, help="embedded store directory (default: VDB_STORE_PATH; used when no Qdrant URL)"
    )
    p.add_argument("--api-key", default=None, help="Qdrant API key (default: QDRANT_API_KEY)")
    p.add_argument("--model-dir", default=None, help="model folder (default: VDB_MODEL_DIR or the bundled package)")


def _split(v: str | None) -> list[str] | None:
    if v is None:
        return None
    return [c.strip() for c in v.split(",") if c.strip()]


def _payload_columns(args: argparse.Namespace) -> list[str] | None:
    """``--payload-columns``; empty means what it means in the DAG's form: every column but the text."""
    return _split(args.payload_columns) or None


def cmd_inspect(args: argparse.Namespace) -> int:
    info = vdb_core.inspect(args.parquet, args.text_column, _split(args.id_columns), _payload_columns(args))
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['path']}: {info['rows']} rows in {info['row_groups']} row groups, {info['size_bytes']} bytes")
    for c in info["columns"]:
        nulls = "?" if c["null_count"] is None else c["null_count"]
        print(f"  {c['name']:<20} {c['type']:<28} nulls {nulls}")
    if info["mapping"]:
        m = info["mapping"]
        ids = ", ".join(m["id_columns"]) or "(row text)"
        print(f"mapping: text={m['text']}  ids={ids}  payload={', '.join(m['payload_columns'])}")
    else:
        print(f"mapping: {info['mapping_error']}")
    return 0


def cmd_sample_data(args: argparse.Namespace) -> int:
    info = vdb_core.sample_data(
        args.out,
        rows=args.rows,
        seed=args.seed,
        duplicate_rate=args.duplicate_rate,
        yearly=args.yearly,
        change_rate=args.change_rate,
    )
    print(f"wrote {info['rows']} rows ({info['filings']} filings, {info['size_bytes']} bytes) to {info['path']}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = vdb_core.resolved_settings()
    run_dir = args.run_dir or vdb_core.run_dir("cli", "ingest-" + uuid.uuid4().hex[:12])
    target = _target(args)
    _private_run_dir(run_dir, own_parent=not args.run_dir)
    collection = args.collection or settings["collection"]
    print(
        f"vdb ingest {args.parquet} -> collection {collection!r} ({_describe(target)}); run dir {run_dir}",
        file=sys.stderr,
    )
    started = time.monotonic()
    # Check the input and the mapping before loading the model: bad input fails in a second.
    info = vdb_core.inspect(args.parquet, args.text_column, _split(args.id_columns), _payload_columns(args))
    if info["mapping_error"]:
        raise vdb_core._error(
            vdb_core.InputError,
            info["mapping_error"],
            info["mapping_error_kind"] or "invalid_config",
            file=info["path"],
            column=info["mapping_error_column"],
        )
    print(f"{info['rows']} rows in {info['row_groups']} row groups", file=sys.stderr)
    embedder = vdb_core.Embedder(args.model_dir, threads=args.threads, precision=args.precision, device=args.device)
    result = vdb_core.ingest(
        args.parquet,
        run_dir=run_dir,
        collection=collection,
        target=target,
        embedder=embedder,
        text_column=args.text_column,
        id_columns=_split(args.id_columns),
        payload_columns=_payload_columns(args),
        shard_rows=args.shard_rows,
        strict=args.strict,
        reuse=False if args.no_reuse else None,
        recreate=args.recreate,
        rebuild=args.rebuild,
        sync_scope=_split(args.sync_scope),
        changes_scope=_split(args.changes_scope),
        changes_order=args.changes_order,
        collection_options=vdb_core.collection_options(
            shard_number=args.shard_number,
            replication_factor=args.replication_factor,
            write_consistency_factor=args.write_consistency_factor,
            on_disk=args.on_disk,
            on_disk_payload=args.on_disk_payload,
            quantization=args.quantization,
            sparse=False if args.no_sparse else None,
        ),
        batch_size=args.batch_size,
        upsert_batch_size=args.upsert_batch_size,
        upsert_parallel=args.upsert_parallel,
        upsert_retries=args.upsert_retries,
        progress=_progress(),
    )
    report = result["report"]
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(vdb_core.report_summary(report))
        print(f"done in {time.monotonic() - started:.1f}s; report: {os.path.join(result['run_dir'], 'report.json')}")
    return 0


def _private_run_dir(run_dir: str, own_parent: bool) -> None:
    """Run directories hold the input's text: owner and group only (mode 0770), like the DAGs' ones."""
    path = os.path.abspath(run_dir)
    if own_parent:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.chmod(os.path.dirname(path), 0o770)
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o770)


def _describe(target: StoreTarget) -> str:
    return f"qdrant server {target['url']}" if target["kind"] == "server" else f"embedded store {target['path']}"


class UsageError(Exception):
    """A command-line argument that cannot work: one line on stderr naming it, exit code 2."""


def _typed(arg: str, field: str, kind: str | None, raw: str, collection: str, indexed: Sequence[str]) -> Any:
    """``raw`` as a value of ``field``'s type in the collection's payload index: keyword text stays
    text (``0000320193`` keeps its zeros), integers and floats are parsed, dates are checked."""
    if kind is None:
        raise UsageError(
            f"--filter {arg!r}: {field!r} has no payload index in collection {collection!r}, so its type is unknown "
            f"(indexed: {', '.join(indexed) or 'none'}); filter it with a Qdrant filter JSON instead"
        )
    try:
        if kind == "integer":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "datetime":
            datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return raw
    except ValueError:
        expected = {"integer": "an integer", "float": "a number", "datetime": "a date (YYYY-MM-DD) or RFC 3339 time"}
        raise UsageError(
            f"--filter {arg!r}: {field!r} is a {kind} field of collection {collection!r}; {raw!r} is not "
            f"{expected[kind]}"
        ) from None


def _filters(items: Sequence[str] | None, indexes: dict[str, str], collection: str) -> dict[str, Any]:
    """``--filter`` arguments as one Qdrant filter: ``FIELD=VALUE`` (an exact match; a date field:
    that day) and ``FIELD=LO..HI`` (a range, either end open), each value typed by the field's
    payload index in ``collection`` (``indexes``: field -> index type); or one Qdrant filter JSON."""
    items = list(items or [])
    must: list[dict[str, Any]] = []
    for item in items:
        if item.lstrip().startswith("{"):
            # Qdrant's own filter JSON: {"must": [...], "should": [...], "must_not": [...]}.
            try:
                qdrant = json.loads(item)
            except json.JSONDecodeError as e:
                raise UsageError(f"--filter {item!r} is not valid JSON: {e}") from None
            if items != [item]:
                raise UsageError("--filter: a Qdrant filter JSON must be the only --filter")
            return qdrant
        field, sep, value = item.partition("=")
        field = field.strip()
        if not sep or not field or not value:
            raise UsageError(f"--filter {item!r}: expected FIELD=VALUE or FIELD=LO..HI")
        kind = indexes.get(field)
        if ".." in value:
            lo, _, hi = value.partition("..")
            if not lo and not hi:
                raise UsageError(f"--filter {item!r}: a range needs at least one end (FIELD=LO.., ..HI or LO..HI)")
            if kind == "keyword":
                raise UsageError(f"--filter {item!r}: {field!r} is a keyword field; ranges need a number or date field")
            bounds = {
                name: _typed(item, field, kind, end, collection, sorted(indexes))
                for name, end in (("gte", lo), ("lte", hi))
                if end
            }
            must.append({"key": field, "range": bounds})
            continue
        typed = _typed(item, field, kind, value, collection, sorted(indexes))
        if kind == "datetime":
            must.append({"key": field, "range": {"gte": typed, "lte": typed}})
        else:
            must.append({"key": field, "match": {"value": typed}})
    return {"must": must} if must else {}


def cmd_search(args: argparse.Namespace) -> int:
    model = (args.model_dir, args.threads, args.precision, args.device)
    embedder = vdb_core.Embedder(*model) if any(v is not None for v in model) else None
    with vdb_core.Store(_target(args), embedder=embedder) as store:
        collection = args.collection or store.collection
        indexes = store.payload_indexes(collection) if args.filter or args.new_in else {}
        filter_args = list(args.filter or [])
        if args.new_in:
            if "_vdb_first_seen" not in indexes:
                raise UsageError(
                    f"--new-in: collection {collection!r} has no _vdb_first_seen; ingest with --changes-scope and "
                    "--changes-order first"
                )
            if filter_args and filter_args[0].lstrip().startswith("{"):
                raise UsageError("--new-in cannot be combined with a Qdrant filter JSON; add the condition to the JSON")
            filter_args.append(f"_vdb_first_seen={args.new_in}")
        filters = _filters(filter_args, indexes, collection) if filter_args else None
        try:
            hits = store.search(
                args.query,
                collection,
                limit=args.limit,
                filters=filters,
                hnsw_ef=args.hnsw_ef,
                exact=args.exact,
                mode=args.mode,
                fusion=args.fusion,
                distinct=args.distinct,
            )
        except vdb_core.ConfigError as e:
            if filters and str(e).startswith("Qdrant filter"):
                raise UsageError(f"--filter: {e}") from None
            raise
    if args.json:
        print(json.dumps(hits, indent=2))
        return 0
    for i, h in enumerate(hits, 1):
        p = h["payload"]
        # Whatever the payload holds (any schema): its fields but the text, then the text.
        fields = "  ".join(f"{k}={v}" for k, v in p.items() if k not in ("text", "_vdb_text"))
        print(f"{i:>2}. {h['score']:.4f} {h.get('mode', '')}  id={h['id']}  {fields}".rstrip())
        if "text" in p:
            print(f"    {p['text']}")
        if len(h.get("filings", [])) > 1:
            others = [f for f in h["filings"] if f["id"] != h["id"]]
            print(f"    also in {len(others)} other point(s): " + "; ".join(_brief(f["payload"]) for f in others[:5]))
    if not hits:
        print("no results")
    return 0


def cmd_changes(args: argparse.Namespace) -> int:
    with vdb_core.Store(_target(args)) as store:
        collection = args.collection or store.collection
        filters = _filters(args.filter, store.payload_indexes(collection), collection) if args.filter else None
        rows = store.changes(collection, scope=_split(args.scope) or [], order=args.order, filters=filters)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no scope has two filings")
        return 0
    scopes = [",".join(str(v) for v in r["scope"].values()) for r in rows]
    width = max(len("scope"), *(len(x) for x in scopes))
    order = max(len("from"), *(len(str(r[k])) for r in rows for k in ("from", "to")))
    head = f"{'scope':<{width}} {'from':>{order}} {'to':>{order}}"
    print(f"{head} {'new':>7} {'removed':>8} {'kept':>7} {'jaccard':>8} cosine")
    for scope, r in zip(scopes, rows, strict=True):
        print(
            f"{scope:<{width}} {r['from']!s:>{order}} {r['to']!s:>{order}} {r['new']:>7} {r['removed']:>8} "
            f"{r['kept']:>7} {r['jaccard']:>8.3f} {r['cosine']:.4f}"
        )
    return 0


_FILING_KEYS = ("ticker", "company", "fiscal_year", "filing_date", "form_type", "filing_id")


def _brief(payload: dict[str, Any]) -> str:
    """A filing in a few words: up to three of its identifying fields (any fields when it has none of
    the usual ones), never the text or the fingerprint."""
    keys = [k for k in _FILING_KEYS if k in payload] or [k for k in payload if k not in ("text", "_vdb_text")]
    return " ".join(str(payload[k]) for k in keys[:3])


def cmd_count(args: argparse.Namespace) -> int:
    n = vdb_core.count(args.collection, target=_target(args))
    print(json.dumps({"count": n}) if args.json else n)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vdb",
        description="SEC-filing sentences from parquet to vectors in Qdrant (all-MiniLM-L6-v2, Rust).",
        epilog=_settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"vdb {vdb_core.__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def mapping_flags(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--text-column", default=None, help="text column (default: sentence)")
        sp.add_argument(
            "--id-columns",
            default=None,
            help="comma-separated id columns (default: filing_id,sentence_index); '' for ids from the text itself",
        )
        sp.add_argument(
            "--payload-columns",
            default=None,
            help="comma-separated payload columns (default, or '': every column but the text)",
        )

    def embedding_flags(sp: argparse.ArgumentParser) -> None:
        """The model's flags, the same for ingest and search (a query is embedded like the sentences)."""
        sp.add_argument(
            "--threads", type=int, default=None, help="embedding threads (default: VDB_THREADS or all allowed CPUs)"
        )
        sp.add_argument(
            "--precision",
            choices=["float32", "int8", "bf16", "float16"],
            default=None,
            help=(
                "embedding arithmetic (default: VDB_PRECISION, float32); int8 is 1.1-1.3x as fast (measured: "
                "docs/benchmarks.md), cosine >= 0.99 to float32; "
                "bf16 needs AVX512-BF16 (or a GPU), cosine >= 0.9999 (GPU: 0.999); float16 runs on a GPU only"
            ),
        )
        sp.add_argument(
            "--device",
            default=None,
            metavar="cpu|cuda[:N]",
            help="where embedding runs (default: VDB_DEVICE, cpu); cuda needs a vdb_core built with `make cuda` and "
            "an NVIDIA GPU; raise --batch-size to a few hundred there",
        )

    sp = sub.add_parser("inspect", help="row count, schema, null counts and column mapping of a parquet file")
    sp.add_argument("parquet", help="the parquet file")
    mapping_flags(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_inspect)

    sp = sub.add_parser("sample-data", help="write a deterministic SEC-filings-like parquet")
    sp.add_argument("--rows", type=int, default=200_000, help="rows to write (default: 200000)")
    sp.add_argument(
        "--out", default="data/sample_sec_sentences.parquet", help="parquet file to write (default: %(default)s)"
    )
    sp.add_argument("--seed", type=int, default=0, help="random seed: the same seed writes the same file (default: 0)")
    sp.add_argument(
        "--duplicate-rate",
        type=float,
        default=0.0,
        help="share of sentences (0-1) that repeat an earlier sentence of the same company verbatim",
    )
    sp.add_argument(
        "--yearly",
        type=int,
        default=None,
        metavar="YEARS",
        help="consecutive yearly 10-K filings of every company instead (fiscal years ending 2024): the input of "
        "`vdb changes`",
    )
    sp.add_argument(
        "--change-rate",
        type=float,
        default=0.3,
        help="with --yearly: share of a filing's sentences (0-1) replaced by new ones the next year (default: 0.3)",
    )
    sp.set_defaults(func=cmd_sample_data)

    sp = sub.add_parser("ingest", help="parquet -> embeddings -> Qdrant, resumable")
    sp.add_argument("parquet", help="the parquet file of sentences to ingest")
    mapping_flags(sp)
    _add_store_flags(sp)
    sp.add_argument(
        "--run-dir", default=None, help="handoff directory; reuse one to resume (default: a new one under VDB_WORK_DIR)"
    )
    sp.add_argument("--shard-rows", type=int, default=None, help="rows per shard (default: VDB_SHARD_ROWS)")
    sp.add_argument("--batch-size", type=int, default=None, help="sentences per forward pass (default: VDB_BATCH_SIZE)")
    sp.add_argument("--upsert-batch-size", type=int, default=None, help="points per upsert (default: VDB_UPSERT_BATCH)")
    sp.add_argument(
        "--upsert-parallel",
        type=int,
        default=None,
        help="upsert requests in flight, server store (default: VDB_UPSERT_PARALLEL)",
    )
    sp.add_argument(
        "--upsert-retries",
        type=int,
        default=None,
        help="attempts per upsert on transient Qdrant errors (default: VDB_UPSERT_RETRIES)",
    )
    embedding_flags(sp)
    sp.add_argument(
        "--no-reuse",
        action="store_true",
        help="embed every row (default: VDB_REUSE, on: each distinct text once, and texts the collection already "
        "holds for the same model not again)",
    )
    mode = sp.add_mutually_exclusive_group()
    mode.add_argument("--recreate", action="store_true", help="drop and recreate the collection first")
    mode.add_argument(
        "--rebuild",
        action="store_true",
        help="blue/green: build a new collection and switch the name (a Qdrant alias) to it after verify; "
        "searches see the old data until then, the previous collection is kept until the next rebuild",
    )
    g = sp.add_argument_group("collection layout (applied when the collection is created; Qdrant's names)")
    g.add_argument("--shard-number", type=int, default=None, help="shards (a Qdrant cluster; server only)")
    g.add_argument("--replication-factor", type=int, default=None, help="copies of each shard (server only)")
    g.add_argument("--write-consistency-factor", type=int, default=None, help="replicas confirming a write")
    g.add_argument("--on-disk", action="store_true", help="vectors on disk (memory-mapped) instead of RAM")
    g.add_argument("--on-disk-payload", action="store_true", help="payloads on disk instead of RAM")
    g.add_argument("--quantization", choices=["int8"], default=None, help="scalar int8 quantization of the vectors")
    g.add_argument(
        "--no-sparse",
        action="store_true",
        help="dense vectors only: no BM25 sparse vector (default: VDB_SPARSE, on: hybrid search); an existing "
        "collection keeps its layout",
    )
    sp.add_argument(
        "--sync-scope",
        default=None,
        metavar="COLUMNS",
        help="comma-separated payload columns (e.g. filing_id): after a verified load, delete the points of each "
        "of their values in this input that the input no longer has",
    )
    sp.add_argument(
        "--changes-scope",
        default=None,
        metavar="COLUMNS",
        help="comma-separated payload columns naming the company (e.g. ticker): with --changes-order, every point "
        "of the companies in this input gets _vdb_first_seen (the first filing with its exact text; see "
        "vdb search --new-in)",
    )
    sp.add_argument(
        "--changes-order", default=None, metavar="COLUMN", help="payload column ordering the filings (e.g. fiscal_year)"
    )
    sp.add_argument(
        "--strict", action="store_true", help="fail on null/blank text and duplicate ids instead of skipping them"
    )
    sp.add_argument("--json", action="store_true", help="print the run result as JSON")
    sp.set_defaults(func=cmd_ingest)

    sp = sub.add_parser("search", help="nearest sentences to a query text")
    sp.add_argument("query", help="the query text (embedded with the same model as the sentences)")
    _add_store_flags(sp)
    embedding_flags(sp)
    sp.add_argument("--limit", type=int, default=10, help="number of hits (default: 10)")
    sp.add_argument(
        "--filter",
        action="append",
        metavar="FIELD=VALUE",
        help="payload filter on an indexed field, typed by its index (text, integer, float, date); FIELD=LO..HI "
        "for a range (either end may be left out); repeatable; or one Qdrant filter JSON "
        '(\'{"must": [{"key": "filing_date", "range": {"gte": "2021-01-01"}}]}\')',
    )
    sp.add_argument(
        "--mode",
        choices=["hybrid", "dense", "sparse"],
        default=None,
        help="hybrid: the dense vector and BM25 fused by Qdrant (the default where the collection has BM25); dense: "
        "the MiniLM vector only (the default otherwise); sparse: BM25 only",
    )
    sp.add_argument(
        "--fusion",
        choices=["rrf", "dbsf"],
        default="rrf",
        help="how hybrid search fuses its two result lists: reciprocal rank (rrf, default) or distribution-based "
        "score fusion (dbsf)",
    )
    sp.add_argument(
        "--new-in",
        default=None,
        metavar="VALUE",
        help="only sentences new in this filing of their company (e.g. 2017): _vdb_first_seen equals VALUE "
        "(needs an ingest with --changes-scope/--changes-order)",
    )
    sp.add_argument(
        "--distinct",
        action="store_true",
        help="one hit per distinct sentence (the same text in several filings is one hit, with the filings "
        "that hold it)",
    )
    sp.add_argument("--hnsw-ef", type=int, default=None, help="HNSW search breadth (Qdrant's hnsw_ef)")
    sp.add_argument("--exact", action="store_true", help="exact (brute-force) search instead of HNSW")
    sp.add_argument("--json", action="store_true", help="print hits as JSON")
    sp.set_defaults(func=cmd_search)

    sp = sub.add_parser("changes", help="what changed between consecutive filings of each company")
    _add_store_flags(sp)
    sp.add_argument(
        "--scope",
        required=True,
        metavar="COLUMNS",
        help="comma-separated payload columns naming the company (ticker, cik)",
    )
    sp.add_argument("--order", required=True, metavar="COLUMN", help="payload column ordering the filings (year, date)")
    sp.add_argument(
        "--filter",
        action="append",
        metavar="FIELD=VALUE",
        help="restrict the points, as vdb search --filter (repeatable, or one Qdrant filter JSON)",
    )
    sp.add_argument("--json", action="store_true", help="print the rows as JSON")
    sp.set_defaults(func=cmd_changes)

    sp = sub.add_parser("count", help="points in the collection")
    _add_store_flags(sp)
    sp.add_argument("--json", action="store_true", help='print {"count": N}')
    sp.set_defaults(func=cmd_count)
    return p


def _show_target_notes() -> None:
    """The store-target notes (the REST -> gRPC port mapping of vdb_core.qdrant_url) on stderr."""
    if not any(getattr(h, "_vdb_cli", False) for h in _qdrant_url.log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("vdb: %(message)s"))
        handler._vdb_cli = True  # type: ignore[attr-defined]
        _qdrant_url.log.addHandler(handler)
    _qdrant_url.log.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    _show_target_notes()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except UsageError as e:
        print(f"vdb: error: {e}", file=sys.stderr)
        return 2
    except vdb_core.VdbError as e:
        print(f"vdb: error [{getattr(e, 'kind', 'error')}]: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vdb: interrupted; run the same command with --run-dir to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
