//! Embedded Qdrant (qdrant-edge): the engine in-process, persisted in a directory.
use std::path::Path;

use super::*;
use crate::error::{ErrorKind, VdbError};

pub struct EmbeddedStore {}

impl EmbeddedStore {
    pub fn open(path: &Path) -> Result<Self> {
        Err(VdbError::new(ErrorKind::Internal, format!("embedded store not implemented yet ({})", path.display())))
    }
}

fn not_yet() -> VdbError {
    VdbError::new(ErrorKind::Internal, "not implemented yet")
}

impl VectorStore for EmbeddedStore {
    fn describe(&self) -> String { String::new() }
    fn ensure_collection(&self, _spec: &CollectionSpec, _recreate: bool) -> Result<EnsureOutcome> { Err(not_yet()) }
    fn collection_exists(&self, _c: &str) -> Result<bool> { Err(not_yet()) }
    fn upsert(&self, _c: &str, _p: Vec<PointRecord>, _o: &LoadOptions) -> Result<u64> { Err(not_yet()) }
    fn set_bulk_mode(&self, _c: &str, _b: bool) -> Result<()> { Err(not_yet()) }
    fn count(&self, _c: &str) -> Result<u64> { Err(not_yet()) }
    fn search(&self, _c: &str, _v: &[f32], _l: usize, _f: &[Condition]) -> Result<Vec<Hit>> { Err(not_yet()) }
    fn retrieve(&self, _c: &str, _i: &[Uuid]) -> Result<Vec<Hit>> { Err(not_yet()) }
}
