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
