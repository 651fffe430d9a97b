//! Step 2, embed: one planned shard in, one embedded shard out (vectors next to ids and payload).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::embed::{Embedder, EncodeOptions};
use crate::error::{ErrorKind, Result, VdbError};
use crate::handoff::manifest::ModelInfo;
use arrow::array::Array;

use crate::handoff::shard::{self, TEXT};
use crate::handoff::{Manifest, RunDir, ShardState};
use crate::progress::{peak_rss_mib, Progress};

#[derive(Debug, Clone, Serialize)]
pub struct ShardResult {
    pub shard: usize,
    pub rows: u64,
    /// False when the step found the work already done (and verified) and skipped it.
    pub done_now: bool,
    pub seconds: f64,
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

pub fn embed_shard(
    run: &RunDir,
    index: usize,
    embedder: &dyn Embedder,
    opts: &EncodeOptions,
    progress: &dyn Progress,
) -> Result<ShardResult> {
    let started = Instant::now();
    let m = Manifest::read(run)?;
    check_model(&m, embedder, run)?;
    let entry = m.shard(index)?.clone();
    // One process per shard at a time (a zombie retry and its successor must not both write).
    let _lock = run.lock(&format!("shard-{index:05}"), Duration::from_secs(3600))?;
    let out = run.embedded_path(index);
    if entry.state >= ShardState::Embedded {
        if let Some(sum) = &entry.embedded_checksum {
            if shard::verify(&out, sum) {
                return Ok(ShardResult { shard: index, rows: entry.rows, done_now: false, seconds: 0.0 });
            }
        }
    }
    let batch = shard::read_shard(&run.shard_path(index), Some(&entry.checksum))?;
    let texts = shard::string_column(&batch, TEXT)?;
    let texts: Vec<&str> = (0..texts.len()).map(|i| texts.value(i)).collect();
    progress.start(&format!("embed shard {index}"), texts.len() as u64);
    let last = std::sync::atomic::AtomicUsize::new(0);
    let on_progress = |done: usize| {
        let prev = last.swap(done, std::sync::atomic::Ordering::Relaxed);
        progress.advance(done.saturating_sub(prev) as u64);
    };
    let vectors = embedder.embed(&texts, opts, Some(&on_progress))?;
    progress.finish();
    let embedded = shard::with_embeddings(&batch, vectors, embedder.dim())?;
    let checksum = shard::write_shard(&out, &embedded)?;
    let seconds = started.elapsed().as_secs_f64();
    let model = ModelInfo { model_id: embedder.model_id().to_string(), dim: embedder.dim() };
    Manifest::update(run, |m| {
        if m.model.is_none() {
            m.model = Some(model.clone());
        }
        let e = m.shards.get_mut(index).ok_or_else(|| VdbError::internal("shard vanished"))?;
        e.state = ShardState::Embedded;
        e.embedded_checksum = Some(checksum.clone());
        e.loaded_points = None;
        e.new_points = None;
        m.add_step("embed", seconds, entry.rows, peak_rss_mib());
        Ok(())
    })?;
    Ok(ShardResult { shard: index, rows: entry.rows, done_now: true, seconds })
}
