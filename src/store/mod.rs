//! Vector stores: the narrow seam between the pipeline and Qdrant.
//!
//! Two implementations speak the same operations with the same point ids and payloads:
//! - [`server::ServerStore`]: a Qdrant server over gRPC (`qdrant-client`), for production;
//! - [`embedded::EmbeddedStore`]: the Qdrant engine in-process (`qdrant-edge`), persisted in a
//!   directory, the default when no URL is configured.
//!
//! The pipeline only knows [`VectorStore`]; [`open`] picks the implementation from a [`StoreTarget`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::Result;

pub mod embedded;
pub mod server;

/// Where vectors go. One setting switches between the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StoreTarget {
    /// A Qdrant server; `url` is its gRPC endpoint (`http://host:6334`, `https://...` for TLS).
    Server { url: String, api_key: Option<String> },
    /// The embedded engine, persisted under `path` (one sub-directory per collection).
    Embedded { path: std::path::PathBuf },
}

impl StoreTarget {
    /// A short description for logs and reports; never contains the API key.
    pub fn describe(&self) -> String {
        match self {
            StoreTarget::Server { url, .. } => format!("qdrant server {url}"),
            StoreTarget::Embedded { path } => format!("embedded qdrant at {}", path.display()),
        }
    }
}

/// Payload field index types (created before the bulk load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    Keyword,
    Integer,
    Float,
    Datetime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSpec {
    pub name: String,
    /// Vector size (the model's dimension).
    pub dim: usize,
    /// Always cosine for sentence-transformers models; kept explicit for the mismatch check.
    pub distance: Distance,
    /// Payload indexes to create (field name, type).
    pub payload_indexes: Vec<(String, IndexKind)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    Cosine,
    Dot,
    Euclid,
}

/// What `ensure_collection` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnsureOutcome {
    Created,
    Existed,
    Recreated,
}

/// One point to write.
#[derive(Debug, Clone, PartialEq)]
pub struct PointRecord {
    pub id: Uuid,
    pub vector: Vec<f32>,
    pub payload: Map<String, Value>,
}

/// One search or retrieve result. `score` is 0 for retrieve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub payload: Map<String, Value>,
}

/// A simple payload condition; a search's conditions are ANDed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Condition {
    /// `field == value` (string, integer or bool).
    Equals { field: String, value: Value },
    /// `gte <= field <= lte` on a numeric field (either bound optional).
    Range { field: String, gte: Option<f64>, lte: Option<f64> },
}

/// How a bulk load is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadOptions {
    /// Points per upsert request.
    pub batch_size: usize,
    /// Upsert requests in flight at once (server store).
    pub parallel: usize,
    /// Attempts per request on transient errors (unavailable, deadline, resource exhausted).
    pub max_retries: u32,
    /// First backoff delay; doubles per attempt.
    pub retry_base_ms: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { batch_size: 128, parallel: 4, max_retries: 6, retry_base_ms: 200 }
    }
}

/// The operations the pipeline needs from Qdrant. Implementations are synchronous to callers (the
/// server store drives its own tokio runtime) and safe to share across threads.
pub trait VectorStore: Send + Sync {
    /// Human description (URL or path) for logs and error messages.
    fn describe(&self) -> String;

    /// Create the collection if missing (cosine, `spec.dim`) with its payload indexes. If it exists
    /// with another size or distance: `CollectionMismatch` error, unless `recreate`, which drops
    /// and recreates it.
    fn ensure_collection(&self, spec: &CollectionSpec, recreate: bool) -> Result<EnsureOutcome>;

    /// Whether the collection exists.
    fn collection_exists(&self, collection: &str) -> Result<bool>;

    /// Upsert points (idempotent: same id overwrites). Splits into `opts.batch_size` requests,
    /// retries transient failures, and returns the number of points written.
    fn upsert(&self, collection: &str, points: Vec<PointRecord>, opts: &LoadOptions) -> Result<u64>;

    /// Defer HNSW indexing for a bulk load (`true`), or restore the collection's normal indexing
    /// (`false`). The embedded store may treat this as a no-op.
    fn set_bulk_mode(&self, collection: &str, bulk: bool) -> Result<()>;

    /// Exact number of points.
    fn count(&self, collection: &str) -> Result<u64>;

    /// Nearest neighbours of `vector` with payloads, best first.
    fn search(
        &self,
        collection: &str,
        vector: &[f32],
        limit: usize,
        filter: &[Condition],
    ) -> Result<Vec<Hit>>;

    /// Points by id (missing ids are absent from the result).
    fn retrieve(&self, collection: &str, ids: &[Uuid]) -> Result<Vec<Hit>>;
}

/// Open the store a target names.
pub fn open(target: &StoreTarget) -> Result<Box<dyn VectorStore>> {
    match target {
        StoreTarget::Server { url, api_key } => {
            Ok(Box::new(server::ServerStore::connect(url, api_key.as_deref())?))
        }
        StoreTarget::Embedded { path } => Ok(Box::new(embedded::EmbeddedStore::open(path)?)),
    }
}
