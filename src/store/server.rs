//! Qdrant server over gRPC (qdrant-client).
use super::*;
use crate::error::{ErrorKind, VdbError};

pub struct ServerStore {}

impl ServerStore {
    pub fn connect(url: &str, _api_key: Option<&str>) -> Result<Self> {
        Err(VdbError::new(ErrorKind::Internal, format!("server store not implemented yet ({url})")))
    }
}

fn not_yet() -> VdbError {
    VdbError::new(ErrorKind::Internal, "not implemented yet")
}

impl VectorStore for ServerStore {
    fn describe(&self) -> String { String::new() }
    fn ensure_collection(&self, _spec: &CollectionSpec, _recreate: bool) -> Result<EnsureOutcome> { Err(not_yet()) }
    fn collection_exists(&self, _c: &str) -> Result<bool> { Err(not_yet()) }
    fn upsert(&self, _c: &str, _p: Vec<PointRecord>, _o: &LoadOptions) -> Result<u64> { Err(not_yet()) }
    fn set_bulk_mode(&self, _c: &str, _b: bool) -> Result<()> { Err(not_yet()) }
    fn count(&self, _c: &str) -> Result<u64> { Err(not_yet()) }
    fn search(&self, _c: &str, _v: &[f32], _l: usize, _f: &[Condition]) -> Result<Vec<Hit>> { Err(not_yet()) }
    fn retrieve(&self, _c: &str, _i: &[Uuid]) -> Result<Vec<Hit>> { Err(not_yet()) }
}
