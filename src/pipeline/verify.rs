//! Step 5, verify: every valid row of the run is a point in the collection, a sample search finds
//! a row of this run, and the run report is written.

use std::time::Instant;

use arrow::array::Array;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{ErrorKind, Result, VdbError};
use crate::files::write_bytes_atomic;
use crate::handoff::ids::vector_key;
use crate::handoff::manifest::{Skipped, StepStats};
use crate::handoff::shard::{self, ID};
use crate::handoff::{Manifest, RunDir, ShardState};
use crate::pipeline::rebuild::build_target;
use crate::progress::{format_duration, peak_rss_mib};
use crate::store::{VectorStore, TEXT_KEY};

/// `report.json`: what a run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub input: String,
    pub rows_read: u64,
    pub rows_valid: u64,
    pub skipped: Skipped,
    pub shards: usize,
    /// Distinct texts among the valid rows.
    pub distinct_texts: u64,
    /// Texts the model computed in this run; every other row's vector was reused: from an
    /// identical text of this run, or already in the collection.
    pub texts_embedded: u64,
    pub vectors_reused: u64,
    pub points_loaded: u64,
    /// Points whose id was new to the collection (= added).
    pub new_points: u64,
    pub updated_points: u64,
    pub unchanged_points: u64,
    /// Points of the sync scope that the input no longer has, deleted by the sync step.
    #[serde(default)]
    pub deleted_points: u64,
    /// The sync scope columns (empty: no sync).
    #[serde(default)]
    pub sync_scope: Vec<String>,
    /// Points loaded with a BM25 sparse vector (all of them in a collection with BM25).
    #[serde(default)]
    pub sparse_vectors: u64,
    /// The BM25 parameters of the collection's sparse vector; `None`: dense only.
    #[serde(default)]
    pub sparse: Option<crate::sparse::Bm25Config>,
    /// Points of this run found in the collection (must equal rows_valid).
    pub points_verified: u64,
    /// Points in the whole collection (may hold other runs' points too).
    pub collection_count: u64,
    pub sample_search_ok: bool,
    pub model: Option<String>,
    pub target: Option<String>,
    pub collection: String,
    /// A rebuild: the collection this run built (what `collection` names after the switch).
    #[serde(default)]
    pub built_collection: Option<String>,
    /// A rebuild, after the switch: the collection `collection` named before (kept).
    #[serde(default)]
    pub previous_collection: Option<String>,
    #[serde(default)]
    pub switched: bool,
    pub steps: std::collections::BTreeMap<String, StepStats>,
    pub peak_rss_mib: f64,
}

impl Report {
    /// Writes the run's report (`report.json`, atomically).
    pub fn write(&self, run: &RunDir) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| VdbError::internal(e.to_string()))?;
        write_bytes_atomic(&run.report_path(), &bytes)
    }

    /// The run's report, changed by `f` and written back: how the steps after verify (sync, switch)
    /// record what they did. The verify step writes the report, so a missing or unreadable one is
    /// an error naming the file (run the verify step again), never a step left out of the report.
    pub fn update(run: &RunDir, f: impl FnOnce(&mut Report) -> Result<()>) -> Result<Report> {
        let path = run.report_path();
        let unusable = |why: String| {
            VdbError::new(
                ErrorKind::Handoff,
                format!("run report {} {why}: run the verify step of this run again", path.display()),
            )
            .with_file(&path)
        };
        let bytes = std::fs::read(&path).map_err(|e| unusable(format!("cannot be read ({e})")))?;
        let mut report: Report =
            serde_json::from_slice(&bytes).map_err(|e| unusable(format!("is not a valid run report ({e})")))?;
        f(&mut report)?;
        report.write(run)?;
        Ok(report)
    }

    /// What a sync step did, and the collection's size after it.
    pub fn record_sync(&mut self, scope: &[String], deleted: u64, collection_count: u64) {
        self.sync_scope = scope.to_vec();
        self.deleted_points = deleted;
        self.collection_count = collection_count;
    }

    /// What the switch of a rebuild did, and the size of what the name now stands for.
    pub fn record_switch(&mut self, built: &str, previous: Option<&str>, collection_count: u64) {
        self.built_collection = Some(built.to_string());
        self.previous_collection = previous.map(str::to_string);
        self.switched = true;
        self.collection_count = collection_count;
    }

    /// A few lines for people (task log, CLI).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "rows read {}, valid {}, skipped {} (null text {}, empty text {}, duplicate id {})\n",
            self.rows_read,
            self.rows_valid,
            self.skipped.total(),
            self.skipped.null_text,
            self.skipped.empty_text,
            self.skipped.duplicate_id
        );
        s += &format!(
            "texts embedded {} of {} distinct, vectors reused {} (identical text in this run or already in the collection)\n",
            self.texts_embedded, self.distinct_texts, self.vectors_reused
        );
        s += &format!(
            "points loaded {} ({} added, {} updated, {} unchanged, {} deleted), verified {}/{} in {:?} ({}), collection holds {}\n",
            self.points_loaded,
            self.new_points,
            self.updated_points,
            self.unchanged_points,
            self.deleted_points,
            self.points_verified,
            self.rows_valid,
            self.collection,
            self.target.as_deref().unwrap_or("?"),
            self.collection_count
        );
        for (step, st) in &self.steps {
            let rate = if st.seconds > 0.0 { st.rows as f64 / st.seconds } else { 0.0 };
            s += &format!(
                "  {step:<16} {:>9} rows  {:>8}  {:>9.1} rows/s  peak {:.0} MiB\n",
                st.rows,
                format_duration(st.seconds),
                rate,
                st.peak_rss_mib
            );
        }
        if let Some(built) = &self.built_collection {
            s += &if self.switched {
                format!(
                    "rebuild: {:?} now names {built:?} (before: {})\n",
                    self.collection,
                    self.previous_collection.as_deref().map_or("none".to_string(), |p| format!("{p:?}"))
                )
            } else {
                format!("rebuild: built {built:?}; {:?} switches to it after verify\n", self.collection)
            };
        }
        s += &match &self.sparse {
            Some(c) => format!("sparse vectors {} ({}), checked against the text\n", self.sparse_vectors, c.describe()),
            None => "sparse vectors: none (a dense-only collection)\n".to_string(),
        };
        s += &format!("sample search {}", if self.sample_search_ok { "ok" } else { "FAILED" });
        s
    }
}

/// Points of the first shard whose stored BM25 vector is compared with one computed from the text.
const SPARSE_SAMPLE: usize = 64;

/// The BM25 vectors of a sample of the run's points are in the collection and equal what their text
/// gives (a point written without one, or with other parameters, is a `Store` error).
fn check_sparse_sample(
    run: &RunDir,
    store: &dyn VectorStore,
    collection: &str,
    config: crate::sparse::Bm25Config,
    first: &crate::handoff::manifest::ShardEntry,
) -> Result<()> {
    let bm25 = crate::sparse::Bm25::new(config)?;
    let batch = shard::read_shard(&run.shard_path(first.index), Some(&first.checksum))?;
    let (ids, texts) = (shard::string_column(&batch, ID)?, shard::string_column(&batch, shard::TEXT)?);
    let sample: Vec<(Uuid, &str)> = (0..ids.len().min(SPARSE_SAMPLE))
        .filter_map(|r| Uuid::parse_str(ids.value(r)).ok().map(|id| (id, texts.value(r))))
        .collect();
    let stored = store.sparse_vectors(collection, &sample.iter().map(|(id, _)| *id).collect::<Vec<_>>())?;
    for (id, text) in sample {
        let want = bm25.embed_document(text);
        match stored.get(&id) {
            Some(have) if *have == want => {}
            Some(_) => {
                return Err(VdbError::new(
                    ErrorKind::Store,
                    format!(
                        "point {id} in {collection:?} has a BM25 vector that differs from its text's ({})",
                        config.describe()
                    ),
                ))
            }
            // Qdrant stores no entry for an empty sparse vector (a text of stop words only).
            None if want.is_empty() => {}
            None => {
                return Err(VdbError::new(
                    ErrorKind::Store,
                    format!(
                    "point {id} in {collection:?} has no BM25 vector, but the collection has one: load its shard again"
                ),
                ))
            }
        }
    }
    Ok(())
}

/// Check the run against the collection and write `report.json`. Errors (kind `Store`) when a
/// shard is not loaded, a point is missing, or the sample search does not find its own row.
pub fn verify(run: &RunDir, store: &dyn VectorStore, collection: &str) -> Result<Report> {
    let started = Instant::now();
    let m = Manifest::read(run)?;
    // A rebuild checks the collection it built (the name still answers from the old one).
    let name = collection;
    let collection = &build_target(&m, name, run)?;
    let not_loaded: Vec<usize> = m.shards.iter().filter(|s| s.state != ShardState::Loaded).map(|s| s.index).collect();
    if !not_loaded.is_empty() {
        return Err(VdbError::new(
            ErrorKind::Handoff,
            format!("shards {not_loaded:?} of run {} are not loaded yet", run.path.display()),
        ));
    }
    let mut verified = 0u64;
    let mut sample_ok = m.shards.is_empty();
    for s in &m.shards {
        let batch = shard::read_shard(&run.shard_path(s.index), Some(&s.checksum))?;
        let ids = shard::string_column(&batch, ID)?;
        let ids: Vec<Uuid> = (0..ids.len()).filter_map(|i| Uuid::parse_str(ids.value(i)).ok()).collect();
        for chunk in ids.chunks(1000) {
            verified += store.existing(collection, chunk, TEXT_KEY)?.len() as u64;
        }
    }
    log::info!(
        "verify: {verified} of {} points of this run are in '{collection}' at {}",
        m.rows_valid,
        store.describe()
    );
    if let (Some(first), Some(model)) = (m.shards.first(), m.model.as_ref()) {
        // Search with the first vector of the run: a point with its text comes back first (score ~1).
        let embedded = shard::read_shard(&run.embedded_path(first.index), first.embedded_checksum.as_deref())?;
        let (vectors, dim) = shard::embeddings(&embedded)?;
        if let Some(h) = shard::hashes(&embedded)?.first() {
            let key = vector_key(&model.model_id, h);
            let hits = store.search(collection, &vectors[..dim], 5, &[])?;
            sample_ok = hits.iter().any(|h| h.payload.get(TEXT_KEY).and_then(|v| v.as_str()) == Some(key.as_str()));
        }
    }
    if let (Some(config), Some(first)) = (m.sparse, m.shards.first()) {
        check_sparse_sample(run, store, collection, config, first)?;
    }
    let collection_count = store.count(collection)?;
    let texts_embedded: u64 = m.shards.iter().map(|s| s.texts_embedded.unwrap_or(s.texts)).sum();
    let mut steps = m.steps.clone();
    let st = steps.entry("verify".into()).or_default();
    st.seconds += started.elapsed().as_secs_f64();
    st.rows += verified;
    st.peak_rss_mib = st.peak_rss_mib.max(peak_rss_mib());
    let report = Report {
        input: m.input.path.clone(),
        rows_read: m.rows_read,
        rows_valid: m.rows_valid,
        skipped: m.skipped.clone(),
        shards: m.shards.len(),
        distinct_texts: m.distinct_texts,
        texts_embedded,
        vectors_reused: m.rows_valid.saturating_sub(texts_embedded),
        points_loaded: m.shards.iter().filter_map(|s| s.loaded_points).sum(),
        new_points: m.shards.iter().filter_map(|s| s.new_points).sum(),
        updated_points: m.shards.iter().filter_map(|s| s.updated_points).sum(),
        unchanged_points: m.shards.iter().filter_map(|s| s.unchanged_points).sum(),
        deleted_points: m.synced.as_ref().map_or(0, |s| s.1),
        sync_scope: m.synced.as_ref().map(|s| s.0.clone()).unwrap_or_default(),
        points_verified: verified,
        sparse_vectors: m.shards.iter().filter_map(|s| s.sparse_points).sum(),
        sparse: m.sparse,
        collection_count,
        sample_search_ok: sample_ok,
        model: m.model.as_ref().map(|x| x.model_id.clone()),
        target: Some(store.describe()),
        collection: name.to_string(),
        built_collection: m.rebuild.as_ref().map(|r| r.collection.clone()),
        previous_collection: m.rebuild.as_ref().and_then(|r| r.previous.clone()),
        switched: m.rebuild.as_ref().is_some_and(|r| r.switched),
        peak_rss_mib: steps.values().map(|s| s.peak_rss_mib).fold(0.0, f64::max),
        steps,
    };
    report.write(run)?;
    if verified != m.rows_valid {
        return Err(VdbError::new(
            ErrorKind::Store,
            format!(
                "{} of {} points of this run are in collection {:?} at {}",
                verified,
                m.rows_valid,
                collection,
                store.describe()
            ),
        ));
    }
    if !sample_ok {
        return Err(VdbError::new(
            ErrorKind::Store,
            format!("sample search in {collection:?} did not return the row it was made from"),
        ));
    }
    Manifest::update(run, |m| {
        m.verified = true;
        Ok(())
    })?;
    Ok(report)
}
