//! Steps 3 and 4: ensure the collection (with payload indexes, before the bulk load), then load
//! embedded shards; `restore_indexing` restores normal indexing afterwards, also after a failure.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use serde::Serialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{ErrorKind, Result, VdbError};
use crate::handoff::ids::{vector_key, TextHash};
use crate::handoff::shard::{self, ID, PLANNED_COLUMNS, TEXT, VECTOR_SHARD};
use crate::handoff::RebuildState;
use crate::handoff::{Manifest, RunDir, ShardState};
use crate::pipeline::rebuild::{build_target, generation_name};
use crate::progress::{peak_rss_mib, Progress};
use crate::source::values::{formatter, json_value};
use crate::sparse::{Bm25, Bm25Config};
use crate::store::{
    validate_collection_name, CollectionOptions, CollectionSpec, Distance, EnsureOutcome, IndexKind, LoadOptions,
    PointRecord, VectorStore, TEXT_KEY,
};

/// Payload fields people filter SEC sentences by; indexed when they are payload columns.
pub const INDEXED_FIELDS: &[&str] =
    &["company", "ticker", "cik", "form_type", "fiscal_year", "filing_date", "section", "filing_id"];

fn index_kind(t: &DataType) -> Option<IndexKind> {
    use DataType::*;
    match t {
        Utf8 | LargeUtf8 | Utf8View => Some(IndexKind::Keyword),
        // Dates and timestamps are stored as YYYY-MM-DD / RFC 3339 text: a datetime index makes
        // them range-filterable as dates (Qdrant's `range` with date strings).
        Date32 | Date64 | Timestamp(_, _) => Some(IndexKind::Datetime),
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Some(IndexKind::Integer),
        Float32 | Float64 => Some(IndexKind::Float),
        Boolean => None,
        _ => None,
    }
}

/// The collection spec a run needs: the model's dimension, cosine, and indexes on the filterable
/// payload columns (types from the planned shards).
pub fn collection_spec(
    run: &RunDir,
    m: &Manifest,
    collection: &str,
    options: &CollectionOptions,
) -> Result<CollectionSpec> {
    let model = m.model.as_ref().ok_or_else(|| {
        VdbError::new(ErrorKind::Handoff, "no shard of this run is embedded yet: run the embed step first")
    })?;
    let mut payload_indexes = Vec::new();
    if let Some(first) = m.shards.first() {
        let schema = shard::read_shard(&run.shard_path(first.index), Some(&first.checksum))?.schema();
        for field in schema.fields() {
            if INDEXED_FIELDS.contains(&field.name().as_str()) {
                if let Some(kind) = index_kind(field.data_type()) {
                    payload_indexes.push((field.name().clone(), kind));
                }
            }
        }
    }
    payload_indexes.push((TEXT_KEY.to_string(), IndexKind::Keyword));
    Ok(CollectionSpec {
        name: collection.to_string(),
        dim: model.dim,
        distance: Distance::Cosine,
        payload_indexes,
        model: Some(model.model_id.clone()),
        options: options.clone(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct EnsureResult {
    pub collection: String,
    pub outcome: EnsureOutcome,
    pub dim: usize,
    pub indexes: Vec<String>,
    /// The BM25 parameters of the collection's sparse vector, which the loads write; `None`: dense only.
    pub sparse: Option<Bm25Config>,
}

/// How `ensure` treats an existing collection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnsureMode {
    /// Use it (its model and vector size must match).
    #[default]
    Keep,
    /// Drop its points and start empty.
    Recreate,
    /// Build a fresh collection beside it; the switch step points the name at it after verify
    /// (see [`super::rebuild`]).
    Rebuild,
}

impl EnsureMode {
    /// The mode of the `recreate` / `rebuild` flags of the front ends (at most one of them).
    pub fn from_flags(recreate: bool, rebuild: bool) -> Result<EnsureMode> {
        match (recreate, rebuild) {
            (true, true) => Err(VdbError::new(
                ErrorKind::InvalidConfig,
                "recreate and rebuild exclude each other: recreate empties the collection now, rebuild builds a \
                 new one and switches to it after verify",
            )),
            (true, false) => Ok(EnsureMode::Recreate),
            (false, true) => Ok(EnsureMode::Rebuild),
            (false, false) => Ok(EnsureMode::Keep),
        }
    }

    /// The existing collection is replaced (by `recreate` now, or by a rebuild's switch): a
    /// collection of another model is no error, it has nothing to give.
    pub fn replaces(self) -> bool {
        self != EnsureMode::Keep
    }
}

/// Create/check the collection and put it in bulk mode (indexing deferred) for the load. In a
/// rebuild, the collection is this run's own new one (the result names it).
pub fn ensure_collection(
    run: &RunDir,
    store: &dyn VectorStore,
    collection: &str,
    mode: EnsureMode,
    options: &CollectionOptions,
) -> Result<EnsureResult> {
    // One ensure of a run at a time, and the manifest read under that lock: two ensures of one
    // rebuild (a retry beside a zombie) must agree on one new collection, not make two.
    let _lock = run.lock("ensure", Duration::from_secs(600))?;
    let m = Manifest::read(run)?;
    let name = match (&m.rebuild, mode) {
        (Some(_), EnsureMode::Rebuild) => build_target(&m, collection, run)?,
        (None, EnsureMode::Rebuild) => {
            validate_collection_name(collection)?;
            generation_name(collection)
        }
        (Some(r), _) => {
            let msg = format!(
                "run {} is a rebuild of '{}' (into '{}'): run its ensure step with rebuild, or use a new run directory",
                run.path.display(),
                r.alias,
                r.collection
            );
            return Err(VdbError::new(ErrorKind::RunMismatch, msg));
        }
        (None, _) => collection.to_string(),
    };
    let spec = collection_spec(run, &m, &name, options)?;
    let outcome = store.ensure_collection(&spec, mode == EnsureMode::Recreate)?;
    store.set_bulk_mode(&name, true)?;
    // The collection's layout decides what the loads write, not the request: an existing collection
    // is never changed silently.
    let sparse = store.collection_sparse(&name)?;
    match (options.sparse.is_some(), sparse.is_some()) {
        (true, false) => log::warn!(
            "collection '{name}' at {} has no BM25 sparse vector (it was made dense-only): this run writes dense \
             vectors only and hybrid search is not available on it; rebuild it to add BM25 (`vdb ingest --rebuild`, \
             rebuild=True, the DAG's rebuild Param)",
            store.describe()
        ),
        (false, true) => log::info!(
            "collection '{name}' has a BM25 sparse vector: this run writes it too (sparse=False applies to new \
             collections only)"
        ),
        _ => {}
    }
    let target = (store.describe(), collection.to_string());
    Manifest::update(run, |m| {
        if outcome == EnsureOutcome::Recreated {
            // The points of this run are gone with the old collection: load every shard again.
            for s in m.shards.iter_mut().filter(|s| s.state == ShardState::Loaded) {
                s.state = ShardState::Embedded;
            }
        }
        if mode == EnsureMode::Rebuild && m.rebuild.is_none() {
            m.rebuild = Some(RebuildState {
                alias: collection.to_string(),
                collection: name.clone(),
                switched: false,
                previous: None,
            });
        }
        m.target = Some(target);
        m.sparse = sparse;
        Ok(())
    })?;
    if mode == EnsureMode::Rebuild {
        log::info!("rebuild of '{collection}' into the new collection '{name}' at {}", store.describe());
    }
    Ok(EnsureResult {
        collection: name.clone(),
        outcome,
        dim: spec.dim,
        indexes: spec.payload_indexes.iter().map(|(f, _)| f.clone()).collect(),
        sparse,
    })
}

/// Restore normal indexing after the bulk load (call it whether the load succeeded or not).
///
/// With the run's directory, the time is recorded as the step `restore_indexing` of the run report: the
/// embedded store indexes here what the load left unindexed (its last, partial segment; full
/// segments are indexed by the load itself), a server builds its index in the background afterwards.
/// A run whose plan never finished has no manifest: nothing is recorded then.
pub fn restore_indexing(run: Option<&RunDir>, store: &dyn VectorStore, collection: &str) -> Result<()> {
    let started = Instant::now();
    let run = run.filter(|r| r.manifest_path().is_file());
    let target = match run {
        Some(r) => build_target(&Manifest::read(r)?, collection, r)?,
        None => collection.to_string(),
    };
    let collection = target.as_str();
    log::info!("restoring indexing of '{collection}' at {}", store.describe());
    store.set_bulk_mode(collection, false)?;
    let seconds = started.elapsed().as_secs_f64();
    if let Some(run) = run {
        let points = store.count(collection)?;
        Manifest::update(run, |m| {
            m.add_step("restore_indexing", seconds, points, peak_rss_mib());
            Ok(())
        })?;
    }
    Ok(())
}

/// The vectors a planned shard's rows need, by fingerprint: each from the embedded shard its
/// `vector_shard` names (checksums verified). One embedded shard is read at a time.
fn gather_vectors(
    run: &RunDir,
    m: &Manifest,
    index: usize,
    batch: &RecordBatch,
) -> Result<HashMap<TextHash, Vec<f32>>> {
    let hashes = shard::hashes(batch)?;
    let from = shard::u32_column(batch, VECTOR_SHARD)?;
    let mut wanted: BTreeMap<usize, HashSet<TextHash>> = BTreeMap::new();
    for (r, h) in hashes.iter().enumerate() {
        wanted.entry(from.value(r) as usize).or_default().insert(*h);
    }
    let mut out = HashMap::with_capacity(hashes.len());
    for (j, need) in wanted {
        let e = m.shard(j)?;
        let sum = e.embedded_checksum.as_deref().filter(|_| e.state >= ShardState::Embedded).ok_or_else(|| {
            let why = if j == index {
                format!("shard {index} is not embedded yet: run the embed step first")
            } else {
                format!(
                    "shard {index} reuses vectors of shard {j}, which is not embedded yet: run its embed step first"
                )
            };
            VdbError::new(ErrorKind::Handoff, why)
        })?;
        let embedded = shard::read_shard(&run.embedded_path(j), Some(sum))?;
        let (vectors, dim) = shard::embeddings(&embedded)?;
        for (r, h) in shard::hashes(&embedded)?.into_iter().enumerate() {
            if need.contains(&h) {
                out.entry(h).or_insert_with(|| vectors[r * dim..(r + 1) * dim].to_vec());
            }
        }
    }
    if let Some(h) = hashes.iter().find(|h| !out.contains_key(*h)) {
        return Err(VdbError::new(
            ErrorKind::Handoff,
            format!(
                "no vector for text {} of shard {index} in the embedded shards of run {}",
                hex::encode(h),
                run.path.display()
            ),
        ));
    }
    Ok(out)
}

/// The points of shard `index` of an embedded run (checksums verified), as its load writes them.
pub fn shard_points(run: &RunDir, m: &Manifest, index: usize) -> Result<Vec<PointRecord>> {
    let entry = m.shard(index)?;
    let model = m.model.as_ref().ok_or_else(|| {
        VdbError::new(ErrorKind::Handoff, "no shard of this run is embedded yet: run the embed step first")
    })?;
    let batch = shard::read_shard(&run.shard_path(index), Some(&entry.checksum))?;
    let vectors = gather_vectors(run, m, index, &batch)?;
    let bm25 = m.sparse.map(Bm25::new).transpose()?;
    points_of(&batch, &vectors, &model.model_id, bm25.as_ref())
}

/// Points of a planned shard: its rows' vectors (by fingerprint), with `bm25` their BM25 vectors
/// (computed from the text: reused dense vectors get theirs too), and payload = `text`, the vector
/// key ([`TEXT_KEY`]) and the mapped payload columns.
pub fn points_of(
    batch: &RecordBatch,
    vectors: &HashMap<TextHash, Vec<f32>>,
    model_id: &str,
    bm25: Option<&Bm25>,
) -> Result<Vec<PointRecord>> {
    let ids = shard::string_column(batch, ID)?;
    let texts = shard::string_column(batch, TEXT)?;
    let hashes = shard::hashes(batch)?;
    let schema = batch.schema();
    let payload_cols: Vec<(usize, &str)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| !PLANNED_COLUMNS.contains(&f.name().as_str()))
        .map(|(i, f)| (i, f.name().as_str()))
        .collect();
    let fmts = payload_cols.iter().map(|(i, _)| formatter(batch.column(*i).as_ref())).collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(batch.num_rows());
    for (r, hash) in hashes.iter().enumerate() {
        let id = Uuid::parse_str(ids.value(r))
            .map_err(|e| VdbError::new(ErrorKind::Handoff, format!("bad point id {:?}: {e}", ids.value(r))))?;
        let mut payload = Map::new();
        payload.insert("text".into(), Value::String(texts.value(r).to_string()));
        payload.insert(TEXT_KEY.into(), Value::String(vector_key(model_id, hash)));
        for ((i, name), fmt) in payload_cols.iter().zip(&fmts) {
            if let Some(v) = json_value(batch.column(*i).as_ref(), r, fmt) {
                payload.insert((*name).to_string(), v);
            }
        }
        let vector = vectors.get(hash).ok_or_else(|| VdbError::internal("vector gathered"))?.clone();
        let sparse = bm25.map(|b| b.embed_document(texts.value(r)));
        out.push(PointRecord { id, vector, sparse, payload });
    }
    Ok(out)
}

/// What a step did to one shard.
#[derive(Debug, Clone, Serialize)]
pub struct ShardResult {
    pub shard: usize,
    pub rows: u64,
    /// False when the step found the work already done (and verified) and skipped it.
    pub done_now: bool,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    #[serde(flatten)]
    pub shard: ShardResult,
    pub points: u64,
    /// Points whose id was not in the collection before this load.
    pub new_points: u64,
    /// Points whose id was there with another text (their vector and payload are replaced).
    pub updated_points: u64,
    /// Points whose id was there with the same text.
    pub unchanged_points: u64,
    /// Points written with a BM25 sparse vector.
    pub sparse_vectors: u64,
}

pub fn load_shard(
    run: &RunDir,
    index: usize,
    store: &dyn VectorStore,
    collection: &str,
    opts: &LoadOptions,
    progress: &dyn Progress,
) -> Result<LoadResult> {
    let started = Instant::now();
    // The shard's lock first, then the manifest: a load that waited for another one of the same
    // shard sees it loaded, and does not load (and count) the shard again.
    let _lock = run.lock(&format!("shard-{index:05}"), Duration::from_secs(3600))?;
    let m = Manifest::read(run)?;
    let entry = m.shard(index)?.clone();
    if entry.state == ShardState::Loaded {
        return Ok(LoadResult {
            shard: ShardResult { shard: index, rows: entry.rows, done_now: false, seconds: 0.0 },
            points: entry.loaded_points.unwrap_or(0),
            new_points: entry.new_points.unwrap_or(0),
            updated_points: entry.updated_points.unwrap_or(0),
            unchanged_points: entry.unchanged_points.unwrap_or(0),
            sparse_vectors: entry.sparse_points.unwrap_or(0),
        });
    }
    if entry.state != ShardState::Embedded {
        return Err(VdbError::new(
            ErrorKind::Handoff,
            format!("shard {index} is not embedded yet: run the embed step first"),
        ));
    }
    let collection = &build_target(&m, collection, run)?;
    let mut points = shard_points(run, &m, index)?;
    if let Some((scope, order)) = &m.changes {
        super::changes::with_first_seen(store, collection, scope, order, &mut points)?;
    }
    let with_sparse = points.iter().filter(|p| p.sparse.is_some()).count() as u64;
    progress.start(&format!("load shard {index}"), points.len() as u64);
    let (mut written, mut added, mut updated, mut unchanged) = (0u64, 0u64, 0u64, 0u64);
    // Chunks bound the memory of request building and give progress; the store batches further.
    for chunk in points.chunks(4096) {
        let ids: Vec<Uuid> = chunk.iter().map(|p| p.id).collect();
        let before = store.existing(collection, &ids, TEXT_KEY)?;
        for p in chunk {
            match before.get(&p.id) {
                None => added += 1,
                Some(key)
                    if key.as_ref() == p.payload.get(TEXT_KEY).and_then(Value::as_str).map(str::to_string).as_ref() =>
                {
                    unchanged += 1
                }
                Some(_) => updated += 1,
            }
        }
        written += store.upsert(collection, chunk.to_vec(), opts)?;
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let seconds = started.elapsed().as_secs_f64();
    log::info!(
        "shard {index}: {written} points into '{collection}' at {} ({added} added, {updated} updated, {unchanged} unchanged), {seconds:.1}s",
        store.describe()
    );
    Manifest::update(run, |m| {
        let e = m.shards.get_mut(index).ok_or_else(|| VdbError::internal("shard vanished"))?;
        if e.embedded_checksum != entry.embedded_checksum || e.state != ShardState::Embedded {
            // Re-embedded or reset meanwhile (a recreate by another task): what was loaded is not
            // what the shard now holds; the shard stays to be loaded again.
            return Err(VdbError::new(
                ErrorKind::Handoff,
                format!("shard {index} changed while it was loaded (embedded again, or reset): load it again"),
            ));
        }
        e.state = ShardState::Loaded;
        m.verified = false;
        e.loaded_points = Some(written);
        e.new_points = Some(added);
        e.updated_points = Some(updated);
        e.unchanged_points = Some(unchanged);
        e.sparse_points = Some(with_sparse);
        m.add_step("load", seconds, written, peak_rss_mib());
        Ok(())
    })?;
    Ok(LoadResult {
        shard: ShardResult { shard: index, rows: entry.rows, done_now: true, seconds },
        points: written,
        new_points: added,
        updated_points: updated,
        unchanged_points: unchanged,
        sparse_vectors: with_sparse,
    })
}
