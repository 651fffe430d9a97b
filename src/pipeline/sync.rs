//! Step 6 (optional), sync: the collection ends up holding exactly this input for every scope the
//! input covers. For each distinct value of the scope columns in this run (e.g. one `filing_id`,
//! or one `ticker, fiscal_year`), points with that value whose ids this run does not have are
//! deleted; points of scopes the input does not mention are never touched.
//!
//! It runs only after a verify that found every row of the run in the collection, so a run that
//! fails earlier deletes nothing. Re-running it is harmless (nothing is left to delete).

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::{ErrorKind, Result, VdbError};
use crate::handoff::shard::{self, ID, PLANNED_COLUMNS};
use crate::handoff::{Manifest, RunDir};
use crate::pipeline::verify::Report;
use crate::progress::peak_rss_mib;
use crate::source::values::{formatter, json_value};
use crate::store::{Condition, VectorStore};

/// Ids deleted per request.
const DELETE_BATCH: usize = 1000;

#[derive(Debug, Clone, Serialize)]
pub struct SyncResult {
    pub scope: Vec<String>,
    /// Distinct scope values in this run.
    pub scopes: u64,
    pub deleted_points: u64,
    pub seconds: f64,
}

/// Delete the points of this run's scopes that this run does not have (see the module docs).
pub fn sync(run: &RunDir, store: &dyn VectorStore, collection: &str, scope: &[String]) -> Result<SyncResult> {
    let started = Instant::now();
    if scope.is_empty() {
        return Err(VdbError::new(ErrorKind::InvalidConfig, "sync needs at least one scope column"));
    }
    let m = Manifest::read(run)?;
    if let Some(r) = &m.rebuild {
        return Err(VdbError::new(
            ErrorKind::InvalidConfig,
            format!(
                "run {} is a rebuild: collection '{}' holds exactly this input, there is nothing to sync",
                run.path.display(),
                r.collection
            ),
        ));
    }
    if !m.verified {
        return Err(VdbError::new(
            ErrorKind::Handoff,
            format!(
                "run {} is not verified (every row in the collection): nothing is deleted before the verify step passes",
                run.path.display()
            ),
        ));
    }
    if let Some(bad) =
        scope.iter().find(|c| PLANNED_COLUMNS.contains(&c.as_str()) || !m.mapping.payload_columns.contains(c))
    {
        return Err(VdbError::new(
            ErrorKind::InvalidConfig,
            format!(
                "sync scope column {bad:?} is not a payload column of this run (payload columns: {})",
                m.mapping.payload_columns.join(", ")
            ),
        )
        .with_column(bad.clone()));
    }

    // This run's ids, and its scope values (JSON, as stored in the payload), keyed by their text.
    let mut ids: HashSet<Uuid> = HashSet::new();
    let mut scopes: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for s in &m.shards {
        let batch = shard::read_shard(&run.shard_path(s.index), Some(&s.checksum))?;
        let id_col = shard::string_column(&batch, ID)?;
        let cols: Vec<_> = scope
            .iter()
            .map(|c| batch.column_by_name(c).ok_or_else(|| VdbError::internal(format!("scope column {c} vanished"))))
            .collect::<Result<_>>()?;
        let fmts = cols.iter().map(|c| formatter(c.as_ref())).collect::<Result<Vec<_>>>()?;
        for r in 0..batch.num_rows() {
            if let Ok(id) = Uuid::parse_str(id_col.value(r)) {
                ids.insert(id);
            }
            // A row with a null scope value belongs to no scope: nothing is deleted for it.
            let values: Option<Vec<Value>> =
                cols.iter().zip(&fmts).map(|(c, f)| json_value(c.as_ref(), r, f)).collect();
            if let Some(values) = values {
                let key = Value::Array(values.clone()).to_string();
                scopes.entry(key).or_insert(values);
            }
        }
    }

    let mut deleted = 0u64;
    for values in scopes.values() {
        let filter: Vec<Condition> = scope
            .iter()
            .zip(values)
            .map(|(field, value)| Condition::Equals { field: field.clone(), value: value.clone() })
            .collect();
        let stale: Vec<Uuid> =
            store.scroll_ids(collection, &filter)?.into_iter().filter(|id| !ids.contains(id)).collect();
        for chunk in stale.chunks(DELETE_BATCH) {
            deleted += store.delete(collection, chunk)?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    log::info!(
        "sync of '{collection}' by {}: {} scopes, {deleted} points deleted, {seconds:.1}s",
        scope.join(", "),
        scopes.len()
    );
    let (m, ()) = Manifest::update(run, |m| {
        m.synced = Some((scope.to_vec(), deleted));
        m.add_step("sync", seconds, deleted, peak_rss_mib());
        Ok(())
    })?;
    // The run report says what the sync did.
    Report::update(run, |report| {
        report.record_sync(scope, deleted, store.count(collection)?);
        if let Some(st) = m.steps.get("sync") {
            report.steps.insert("sync".into(), st.clone());
        }
        Ok(())
    })?;
    Ok(SyncResult { scope: scope.to_vec(), scopes: scopes.len() as u64, deleted_points: deleted, seconds })
}
