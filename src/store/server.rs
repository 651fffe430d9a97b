//! Qdrant server over gRPC (qdrant-client).
use super::*;
use crate::error::{ErrorKind, VdbError};

pub struct ServerStore {}

impl ServerStore {
    pub fn connect(url: &str, _api_key: Option<&str>) -> Result<Self> {
        Err(VdbError::new(ErrorKind::Internal, format!("server store not implemented yet ({url})")))
    }
}
