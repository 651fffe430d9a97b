//! Step 2, embed: one planned shard in, one embedded shard out: a vector for each distinct text
//! the shard provides (see `plan`), taken from the collection when it already holds one for the
//! same text and model, computed by the model otherwise.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::embed::{Embedder, EncodeOptions};
use crate::error::{ErrorKind, Result, VdbError};
use crate::handoff::ids::{vector_key, TextHash};
use crate::handoff::manifest::ModelInfo;
use crate::handoff::shard::{self, EMBED, TEXT};
use crate::handoff::{Manifest, RunDir, ShardState};
use crate::progress::{peak_rss_mib, Progress};
use crate::store::{VectorStore, TEXT_KEY};

/// Keys per look-up request in the collection.
const LOOKUP_BATCH: usize = 256;

/// What an embed step did.
#[derive(Debug, Clone, Serialize)]
pub struct EmbedResult {
    pub shard: usize,
    pub rows: u64,
    /// Distinct texts whose vectors this shard provides.
    pub texts: u64,
    /// Of those, computed by the model (the rest were found in the collection).
    pub texts_embedded: u64,
    /// False when the step found the work already done (and verified) and skipped it.
    pub done_now: bool,
    pub seconds: f64,
}

/// Where an embed step may find vectors computed before: the target collection.
#[derive(Clone, Copy)]
pub struct VectorSource<'a> {
    pub store: &'a dyn VectorStore,
    pub collection: &'a str,
    /// The run replaces the collection (recreate, or a rebuild): a collection of another model is
    /// no error then, it just has nothing to reuse.
    pub replaces: bool,
}

/// Refuse to mix two models in one run.
pub fn check_model(m: &Manifest, embedder: &dyn Embedder, run: &RunDir) -> Result<()> {
    match &m.model {
        Some(prev) if prev.model_id != embedder.model_id() || prev.dim != embedder.dim() => Err(VdbError::new(
            ErrorKind::RunMismatch,
            format!(
                "run directory {} was embedded with model {} (dim {}), not {} (dim {}); use a new run directory",
                run.path.display(),
                prev.model_id,
                prev.dim,
                embedder.model_id(),
                embedder.dim()
            ),
        )),
        _ => Ok(()),
    }
}

/// Vectors the collection already holds for `keys` (stored under [`TEXT_KEY`]), by key. A
/// collection of another model is refused (unless it is about to be recreated): its vectors must
/// never mix with this model's. The store's hold on the collection is released afterwards, so
/// parallel embed tasks do not wait for each other's model work.
pub fn find_vectors(source: &VectorSource<'_>, model_id: &str, keys: &[String]) -> Result<HashMap<String, Vec<f32>>> {
    let found = lookup(source, model_id, keys);
    source.store.release(source.collection);
    found
}

fn lookup(source: &VectorSource<'_>, model_id: &str, keys: &[String]) -> Result<HashMap<String, Vec<f32>>> {
    let mut found = HashMap::new();
    let (store, collection) = (source.store, source.collection);
    if keys.is_empty() || !store.collection_exists(collection)? {
        return Ok(found);
    }
    if let Some(other) = store.collection_model(collection)?.filter(|m| m != model_id) {
        if source.replaces {
            return Ok(found);
        }
        return Err(VdbError::new(
            ErrorKind::CollectionMismatch,
            format!(
                "collection '{collection}' at {} holds vectors of model {other}, but this run uses {model_id}; \
                 use another collection name, or recreate it (recreate=true drops its points)",
                store.describe()
            ),
        ));
    }
    for batch in keys.chunks(LOOKUP_BATCH) {
        let ids = store.find_keys(collection, TEXT_KEY, batch)?;
        if ids.is_empty() {
            continue;
        }
        let wanted: Vec<_> = ids.values().copied().collect();
        let mut vectors = store.vectors(collection, &wanted)?;
        for (key, id) in ids {
            if let Some(v) = vectors.remove(&id) {
                found.insert(key, v);
            }
        }
    }
    Ok(found)
}

pub fn embed_shard(
    run: &RunDir,
    index: usize,
    embedder: &dyn Embedder,
    opts: &EncodeOptions,
    source: Option<VectorSource<'_>>,
    progress: &dyn Progress,
) -> Result<EmbedResult> {
    let started = Instant::now();
    // One process per shard at a time (a zombie retry and its successor must not both write). The
    // manifest is read under the lock: what it says about this shard is then current.
    let _lock = run.lock(&format!("shard-{index:05}"), Duration::from_secs(3600))?;
    let m = Manifest::read(run)?;
    check_model(&m, embedder, run)?;
    let entry = m.shard(index)?.clone();
    let out = run.embedded_path(index);
    if entry.state >= ShardState::Embedded {
        if let Some(sum) = &entry.embedded_checksum {
            if shard::checksum_matches(&out, sum) {
                return Ok(EmbedResult {
                    shard: index,
                    rows: entry.rows,
                    texts: entry.texts,
                    texts_embedded: entry.texts_embedded.unwrap_or(entry.texts),
                    done_now: false,
                    seconds: 0.0,
                });
            }
        }
    }
    let batch = shard::read_shard(&run.shard_path(index), Some(&entry.checksum))?;
    let texts = shard::string_column(&batch, TEXT)?;
    let provides = shard::bool_column(&batch, EMBED)?;
    let hashes = shard::hashes(&batch)?;
    // The distinct texts this shard provides, in row order.
    let rows: Vec<usize> = (0..batch.num_rows()).filter(|&r| provides.value(r)).collect();
    let mine: Vec<TextHash> = rows.iter().map(|&r| hashes[r]).collect();

    let dim = embedder.dim();
    let model_id = embedder.model_id();
    let mut vectors = vec![0f32; mine.len() * dim];
    let mut todo: Vec<usize> = (0..mine.len()).collect();
    if let Some(source) = source.filter(|_| m.reuse) {
        let keys: Vec<String> = mine.iter().map(|h| vector_key(model_id, h)).collect();
        let found = find_vectors(&source, model_id, &keys)?;
        todo.retain(|&i| match found.get(&keys[i]).filter(|v| v.len() == dim) {
            Some(v) => {
                vectors[i * dim..(i + 1) * dim].copy_from_slice(v);
                false
            }
            None => true,
        });
    }

    let todo_texts: Vec<&str> = todo.iter().map(|&i| texts.value(rows[i])).collect();
    progress.start(&format!("embed shard {index}"), todo_texts.len() as u64);
    let last = std::sync::atomic::AtomicUsize::new(0);
    let on_progress = |done: usize| {
        let prev = last.swap(done, std::sync::atomic::Ordering::Relaxed);
        progress.advance(done.saturating_sub(prev) as u64);
    };
    let computed = embedder.embed(&todo_texts, opts, Some(&on_progress))?;
    progress.finish();
    for (k, &i) in todo.iter().enumerate() {
        vectors[i * dim..(i + 1) * dim].copy_from_slice(&computed[k * dim..(k + 1) * dim]);
    }

    let embedded = shard::vectors_batch(&mine, vectors, dim)?;
    let checksum = shard::write_shard(&out, &embedded)?;
    let seconds = started.elapsed().as_secs_f64();
    let model = ModelInfo { model_id: model_id.to_string(), dim };
    let texts_embedded = todo.len() as u64;
    log::info!(
        "shard {index}: {} rows, {} distinct texts, {texts_embedded} embedded, {} taken from the collection, {seconds:.1}s",
        entry.rows,
        mine.len(),
        mine.len() as u64 - texts_embedded
    );
    Manifest::update(run, |m| {
        // Checked again under the manifest lock: another shard's first embed may have recorded
        // another model since this one started (its vectors must not mix with these).
        check_model(m, embedder, run)?;
        m.model.get_or_insert_with(|| model.clone());
        let e = m.shards.get_mut(index).ok_or_else(|| VdbError::internal("shard vanished"))?;
        e.state = ShardState::Embedded;
        e.embedded_checksum = Some(checksum.clone());
        e.texts_embedded = Some(texts_embedded);
        e.loaded_points = None;
        e.new_points = None;
        e.unchanged_points = None;
        e.updated_points = None;
        m.add_step("embed", seconds, texts_embedded, peak_rss_mib());
        Ok(())
    })?;
    Ok(EmbedResult {
        shard: index,
        rows: entry.rows,
        texts: mine.len() as u64,
        texts_embedded,
        done_now: true,
        seconds,
    })
}
