//! Bulk mode on a server: HNSW `m=0` during a load (no graph is built while points arrive), the
//! original `m` restored afterwards. The value to restore is kept in the collection's metadata, so
//! any process can end a bulk load another one began.

use super::*;

/// Qdrant's default HNSW `m`; what bulk mode restores when it cannot know the original value (see
/// [`ServerStore::bulk_mode`]).
pub const DEFAULT_HNSW_M: u64 = 16;

/// Collection metadata key that holds the HNSW `m` to restore after a bulk load. It is written in
/// the same request that sets `m=0` and cleared by the restore, so any process (another Airflow
/// task, another worker) can end a bulk load that one process began.
pub const BULK_M_KEY: &str = "vdb_core_bulk_original_m";

impl ServerStore {
    /// Sets HNSW `m`, and in the same request records (`Some`) or clears (`None`) the `m` to
    /// restore after a bulk load in the collection's metadata.
    fn set_hnsw_m(&self, collection: &str, m: u64, bulk_original: Option<u64>) -> Result<()> {
        let value = to_pb_value(bulk_original.map_or(Value::Null, Value::from));
        self.update_collection(pb::UpdateCollection {
            collection_name: collection.to_string(),
            hnsw_config: Some(pb::HnswConfigDiff { m: Some(m), ..Default::default() }),
            metadata: [(BULK_M_KEY.to_string(), value)].into(),
            ..Default::default()
        })
    }

    /// Bulk mode follows Qdrant's bulk-upload advice: HNSW `m=0` while loading (no graph is built
    /// while points stream in; payload indexes still are), then the original `m` back, after which
    /// the server builds the graph once over all points.
    ///
    /// The original `m` is recorded in the collection's metadata ([`BULK_M_KEY`], same request
    /// as `m=0`), so a restore from another process gets it back; this store also keeps it in
    /// memory. If it cannot be known (a server without collection metadata, older than Qdrant
    /// 1.16, and a crashed run left `m=0`), Qdrant's default 16 is restored: collections made by
    /// `ensure_collection` use the default.
    pub(super) fn bulk_mode(&self, collection: &str, bulk: bool) -> Result<()> {
        let collection = &self.resolve(collection)?;
        let Some(info) = self.info(collection)? else {
            if bulk {
                return Err(self.missing(collection));
            }
            // Clean-up path after a failed ensure_collection: nothing to restore.
            return Ok(());
        };
        let m = current_m(&info);
        let recorded = recorded_m(&info);
        let mut saved = self.saved_m.lock();
        if bulk {
            let original = *saved.entry(collection.to_string()).or_insert(match (recorded, m) {
                (Some(r), _) => r,
                (None, Some(0) | None) => DEFAULT_HNSW_M,
                (None, Some(m)) => m,
            });
            drop(saved);
            if m != Some(0) || recorded != Some(original) {
                self.set_hnsw_m(collection, 0, Some(original))?;
            }
        } else {
            let restore = saved.remove(collection).or(recorded);
            drop(saved);
            let target = match (restore, m) {
                (Some(orig), _) => orig,
                (None, Some(0)) => DEFAULT_HNSW_M,
                (None, _) => return Ok(()),
            };
            if m != Some(target) || recorded.is_some() {
                if let Err(e) = self.set_hnsw_m(collection, target, None) {
                    // Keep the value so a second attempt can still restore it.
                    if let Some(orig) = restore {
                        self.saved_m.lock().insert(collection.to_string(), orig);
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

pub(super) fn current_m(info: &pb::CollectionInfo) -> Option<u64> {
    info.config.as_ref()?.hnsw_config.as_ref()?.m
}

/// The `m` a bulk load recorded in the collection's metadata (absent or null: none).
pub(super) fn recorded_m(info: &pb::CollectionInfo) -> Option<u64> {
    let v = info.config.as_ref()?.metadata.get(BULK_M_KEY)?.clone();
    from_pb_value(v).as_f64().filter(|m| *m >= 1.0).map(|m| m as u64)
}
