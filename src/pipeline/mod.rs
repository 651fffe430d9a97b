//! The ingestion pipeline: plan -> embed -> ensure collection -> load -> verify.
//!
//! Each step is usable alone (the DAG runs them as separate task processes that share only the
//! run directory) or chained in one process by [`ingest`] (the CLI), with the same results. Every
//! step is idempotent: re-running it after a crash redoes only unfinished shards.

pub mod changes;
pub mod embed;
pub mod load;
pub mod plan;
pub mod rebuild;
pub mod sync;
pub mod verify;

use std::time::Instant;

use serde::Serialize;

pub use changes::{changes, update_first_seen, update_first_seen_for_run, ChangeRow, FirstSeenResult, FIRST_SEEN_KEY};
pub use embed::{embed_shard, EmbedResult, VectorSource};
pub use load::{ensure_collection, load_shard, restore_indexing, EnsureMode, EnsureResult, LoadResult, ShardResult};
pub use plan::{plan, PlanOptions, PlanSummary};
pub use rebuild::{switch, SwitchResult};
pub use sync::{sync, SyncResult};
pub use verify::{verify, Report};

use crate::embed::{Embedder, EncodeOptions};
use crate::error::{ErrorKind, Result, VdbError};
use crate::handoff::RunDir;
use crate::progress::Progress;
use crate::sparse::Bm25;
use crate::store::{
    no_sparse_error, CollectionOptions, Condition, Fusion, Hit, LoadOptions, QueryVectors, SearchMode, SearchParams,
    VectorStore, TEXT_KEY,
};

#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub plan: PlanOptions,
    pub collection: String,
    /// Keep, recreate, or rebuild (blue/green) the collection.
    pub mode: EnsureMode,
    /// Layout of the collection when this run creates it.
    pub collection_options: CollectionOptions,
    pub encode: EncodeOptions,
    pub load: LoadOptions,
    /// Columns whose values delimit what this input replaces (see [`sync`]); empty: no sync.
    pub sync_scope: Vec<String>,
    /// Track what changes between filings: (scope columns, order column). Each point of the scopes
    /// this input loads gets [`changes::FIRST_SEEN_KEY`] (see [`changes::update_first_seen`]).
    pub changes: Option<(Vec<String>, String)>,
}

impl IngestOptions {
    /// Settings that cannot work are refused before anything is written (a size of 0 is an error,
    /// never silently raised to 1).
    pub fn validate(&self) -> Result<()> {
        if self.plan.shard_rows == 0 {
            return Err(VdbError::new(ErrorKind::InvalidConfig, "shard_rows must be at least 1, not 0"));
        }
        self.encode.validate()?;
        self.load.validate()?;
        crate::store::validate_collection_name(&self.collection)
    }
}

/// The run directory's ingest lock, taken without waiting: a second whole ingest of the same run
/// directory is refused while the first runs (the DAG's step tasks share a run directory on
/// purpose and do not take it).
pub fn lock_ingest(run: &RunDir) -> Result<crate::files::FileLock> {
    run.lock("ingest", std::time::Duration::ZERO).map_err(|e| match e.kind {
        ErrorKind::Locked => VdbError::new(
            ErrorKind::Locked,
            format!(
                "run directory {} is in use by another ingest (it holds locks/ingest.lock); wait for it to \
                 finish, or use another run directory",
                run.path.display()
            ),
        )
        .with_file(&run.path),
        _ => e,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct IngestResult {
    pub run_dir: String,
    pub report: Report,
    pub wall_seconds: f64,
}

/// All steps in one process: what `vdb ingest` runs.
pub fn ingest(
    run: &RunDir,
    opts: &IngestOptions,
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
    progress: &dyn Progress,
) -> Result<IngestResult> {
    let started = Instant::now();
    opts.validate()?;
    if opts.mode == EnsureMode::Rebuild && !opts.sync_scope.is_empty() {
        return Err(VdbError::new(
            ErrorKind::InvalidConfig,
            "a rebuild builds a collection holding exactly this input: there is nothing for sync_scope to delete; use one or the other",
        ));
    }
    let _ingest_lock = lock_ingest(run)?;
    let planned = plan(run, &opts.plan, progress)?;
    changes::track(run, opts.changes.as_ref())?;
    let source = VectorSource { store, collection: &opts.collection, replaces: opts.mode.replaces() };
    for &i in &planned.shards {
        embed_shard(run, i, embedder, &opts.encode, Some(source), progress)?;
    }
    ensure_collection(run, store, &opts.collection, opts.mode, &opts.collection_options)?;
    let loaded: Result<()> = planned
        .shards
        .iter()
        .try_for_each(|&i| load_shard(run, i, store, &opts.collection, &opts.load, progress).map(|_| ()));
    // Indexing is restored even when a load failed.
    let restored = restore_indexing(Some(run), store, &opts.collection);
    loaded?;
    restored?;
    let mut report = verify(run, store, &opts.collection)?;
    if !opts.sync_scope.is_empty() {
        let synced = sync(run, store, &opts.collection, &opts.sync_scope)?;
        report.record_sync(&synced.scope, synced.deleted_points, store.count(&opts.collection)?);
    }
    if opts.mode == EnsureMode::Rebuild {
        let switched = switch(run, store, &opts.collection)?;
        if let Some(built) = &switched.collection {
            report.record_switch(built, switched.previous.as_deref(), store.count(&opts.collection)?);
        }
    }
    if let Some((scope, order)) = &opts.changes {
        changes::update_first_seen_for_run(run, store, &opts.collection, scope, order)?;
    }
    Ok(IngestResult { run_dir: run.path.display().to_string(), report, wall_seconds: started.elapsed().as_secs_f64() })
}

/// How [`search_text`] searches.
#[derive(Debug, Clone, Default)]
pub struct TextSearchOptions {
    /// Results (distinct texts with `distinct`).
    pub limit: usize,
    pub filter: Vec<Condition>,
    pub params: SearchParams,
    /// `None`: hybrid where the collection has the BM25 vector, dense otherwise.
    pub mode: Option<SearchMode>,
    pub fusion: Fusion,
    /// One hit per distinct text (the best-scoring point of each), with every point that holds the
    /// text (and matches the filter) in [`TextSearch::filings`].
    pub distinct: bool,
}

/// What a search by text found, and how.
#[derive(Debug, Clone, Serialize)]
pub struct TextSearch {
    /// The vectors searched (the default: hybrid where the collection has BM25, dense otherwise).
    pub mode: SearchMode,
    /// The fusion of a hybrid search.
    pub fusion: Option<Fusion>,
    /// Best first; in hybrid mode `score` is the fused score.
    pub hits: Vec<Hit>,
    /// With `distinct`: for each hit (same order), every point holding its text that the filter
    /// matches (its filings), in id order, the hit itself included; `score` 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filings: Option<Vec<Vec<Hit>>>,
}

/// Search by text: embed `query` with the same model (dense) and/or with the collection's BM25
/// (sparse), then the best points (`opts.mode`; `None`: hybrid where the collection has the BM25
/// vector, dense otherwise). A collection whose recorded model is another one (other weights; the
/// precision may differ) is refused for dense and hybrid search: the neighbours of a query embedded
/// by another model mean nothing. With `opts.distinct`, the result holds `limit` distinct texts:
/// the same sentence in ten yearly filings is one hit, with its filings listed.
pub fn search_text(
    embedder: &dyn Embedder,
    store: &dyn VectorStore,
    collection: &str,
    query: &str,
    opts: &TextSearchOptions,
) -> Result<TextSearch> {
    let sparse = store.collection_sparse(collection)?;
    let mode = opts.mode.unwrap_or(if sparse.is_some() { SearchMode::Hybrid } else { SearchMode::Dense });
    if mode != SearchMode::Sparse {
        if let Some(recorded) = store.collection_model(collection)? {
            if !crate::embed::same_weights(&recorded, embedder.model_id()) {
                return Err(VdbError::new(
                    ErrorKind::CollectionMismatch,
                    format!(
                        "collection '{collection}' at {} holds vectors of model {recorded}, but the query would be \
                         embedded with {}: search it with the model that built it (Embedder(model_dir=...), --model-dir)",
                        store.describe(),
                        embedder.model_id()
                    ),
                ));
            }
        }
    }
    let bm25 = match (mode, sparse) {
        (SearchMode::Dense, _) => None,
        (_, Some(config)) => Some(Bm25::new(config)?.embed_query(query)),
        (_, None) => return Err(no_sparse_error(collection, &format!("at {}", store.describe()), mode)),
    };
    let dense = match mode {
        SearchMode::Sparse => Vec::new(),
        _ => embedder.embed(&[query], &EncodeOptions::default(), None)?,
    };
    let q = match (&bm25, mode) {
        (Some(s), SearchMode::Sparse) => QueryVectors::Sparse(s),
        (Some(s), _) => QueryVectors::Hybrid { dense: &dense, sparse: s, fusion: opts.fusion },
        (None, _) => QueryVectors::Dense(&dense),
    };
    let run = |limit: usize| -> Result<Vec<Hit>> {
        let mut hits = store.query(collection, &q, limit, &opts.filter, &opts.params)?;
        // Fused scores tie often (RRF: equal ranks give equal scores), and the engine returns ties
        // in no fixed order: ties are put in id order, so the same search gives the same list.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        Ok(hits)
    };
    let (hits, filings) = if opts.distinct {
        let hits = distinct_hits(opts.limit, run)?;
        let filings = filings_of(store, collection, &hits, &opts.filter)?;
        (hits, Some(filings))
    } else {
        (run(opts.limit)?, None)
    };
    Ok(TextSearch { mode, fusion: (mode == SearchMode::Hybrid).then_some(opts.fusion), hits, filings })
}

/// The best hit of each of the first `limit` distinct texts ([`TEXT_KEY`]): searches for more
/// points (4x, doubling) until `limit` distinct texts are found or the collection has no more.
fn distinct_hits(limit: usize, run: impl Fn(usize) -> Result<Vec<Hit>>) -> Result<Vec<Hit>> {
    let key = |h: &Hit| h.payload.get(TEXT_KEY).and_then(|v| v.as_str()).unwrap_or(&h.id).to_string();
    let mut fetch = limit.saturating_mul(4).max(40);
    loop {
        let hits = run(fetch)?;
        let exhausted = hits.len() < fetch;
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<Hit> = hits.into_iter().filter(|h| seen.insert(key(h))).take(limit).collect();
        if distinct.len() == limit || exhausted || limit == 0 {
            return Ok(distinct);
        }
        fetch = fetch.saturating_mul(2);
    }
}

/// For each hit, the points holding its text that `filter` matches (one scan for all of them).
fn filings_of(store: &dyn VectorStore, collection: &str, hits: &[Hit], filter: &[Condition]) -> Result<Vec<Vec<Hit>>> {
    let keys: Vec<String> =
        hits.iter().filter_map(|h| h.payload.get(TEXT_KEY).and_then(|v| v.as_str()).map(str::to_string)).collect();
    let mut by_key: std::collections::HashMap<String, Vec<Hit>> = std::collections::HashMap::new();
    if !keys.is_empty() {
        let mut conditions = filter.to_vec();
        conditions.push(Condition::Qdrant {
            filter: serde_json::json!({ "must": [{ "key": TEXT_KEY, "match": { "any": keys } }] }),
        });
        let fields: Vec<String> = hits
            .iter()
            .flat_map(|h| h.payload.keys().cloned())
            .filter(|k| k != "text")
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        store.scan(collection, &conditions, &fields, false, &mut |points| {
            for p in points {
                let key = p.payload.get(TEXT_KEY).and_then(|v| v.as_str()).unwrap_or_default().to_string();
                by_key.entry(key).or_default().push(Hit { id: p.id.to_string(), score: 0.0, payload: p.payload });
            }
            Ok(())
        })?;
    }
    Ok(hits
        .iter()
        .map(|h| {
            let key = h.payload.get(TEXT_KEY).and_then(|v| v.as_str()).unwrap_or_default();
            by_key.get(key).cloned().unwrap_or_default()
        })
        .collect())
}
