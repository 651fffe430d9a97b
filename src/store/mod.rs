//! Vector stores: the narrow seam between the pipeline and Qdrant.
//!
//! Two implementations speak the same operations with the same point ids and payloads:
//! - [`server::ServerStore`]: a Qdrant server over gRPC (`qdrant-client`), for production;
//! - [`embedded::EmbeddedStore`]: the Qdrant engine in-process (`qdrant-edge`), persisted in a
//!   directory, the default when no URL is configured.
//!
//! The pipeline only knows [`VectorStore`]; [`open`] picks the implementation from a [`StoreTarget`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::error::{ErrorKind, Result, VdbError};
pub use crate::sparse::{Bm25Config, SparseVector};

#[cfg(feature = "embedded")]
pub mod embedded;
pub mod filter;
pub mod server;

/// Where vectors go. One setting switches between the two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
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

/// Points per page when a store scrolls through a collection.
pub(crate) const SCROLL_PAGE: usize = 1024;

/// Reserved payload key: the fingerprint of the text and model a point's vector was computed from
/// (hex; `handoff::ids::vector_key`, used by the plan, embed and load steps). Points with equal keys hold bit-identical vectors, so a run can
/// take a vector from the collection instead of computing it again. Keyword-indexed.
pub const TEXT_KEY: &str = "_vdb_text";

/// Collection metadata key recording the model (id including precision) whose vectors the
/// collection holds: vectors of two models are never mixed in one collection.
pub const MODEL_KEY: &str = "vdb_core_model";

/// The name of the collection's BM25 sparse vector (the dense vector is the unnamed default one).
pub const SPARSE_VECTOR: &str = "bm25";

/// Collection metadata key recording the BM25 parameters of the sparse vector
/// ([`Bm25Config::to_metadata`]): a run with other parameters is refused.
pub const SPARSE_KEY: &str = "vdb_core_bm25";

/// Payload field index types (created before the bulk load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexKind {
    Keyword,
    Integer,
    Float,
    Datetime,
}

impl IndexKind {
    /// Qdrant's name of the index type.
    pub fn name(self) -> &'static str {
        match self {
            IndexKind::Keyword => "keyword",
            IndexKind::Integer => "integer",
            IndexKind::Float => "float",
            IndexKind::Datetime => "datetime",
        }
    }
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
    /// The model whose vectors go in (recorded under [`MODEL_KEY`]); `None`: not recorded/checked.
    #[serde(default)]
    pub model: Option<String>,
    /// How the collection is laid out (applied when it is created).
    #[serde(default)]
    pub options: CollectionOptions,
}

/// How a collection is laid out: its BM25 vector, and settings for large collections and Qdrant
/// clusters named as in Qdrant's collection API; applied when a collection is created (or
/// recreated). Unset: Qdrant's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionOptions {
    /// A BM25 sparse vector ([`SPARSE_VECTOR`], Qdrant's IDF modifier) next to the dense one, with
    /// these parameters (recorded under [`SPARSE_KEY`]); `None`: dense only. Default: BM25 with
    /// Qdrant's parameters. An existing dense-only collection stays dense-only (a rebuild adds it);
    /// an existing one with other parameters is a mismatch.
    #[serde(default = "default_sparse")]
    pub sparse: Option<Bm25Config>,
    /// Shards the collection is split into (spread over a cluster's nodes). Server only.
    #[serde(default)]
    pub shard_number: Option<u32>,
    /// Copies of each shard (a cluster). Server only.
    #[serde(default)]
    pub replication_factor: Option<u32>,
    /// Replicas that must confirm a write. Server only.
    #[serde(default)]
    pub write_consistency_factor: Option<u32>,
    /// Vectors on disk (memory-mapped) instead of RAM.
    #[serde(default)]
    pub on_disk: bool,
    /// Payloads on disk instead of RAM.
    #[serde(default)]
    pub on_disk_payload: bool,
    /// Quantization of the stored vectors, searched in RAM and rescored with the originals.
    #[serde(default)]
    pub quantization: Option<Quantization>,
}

/// Vector quantization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantization {
    /// Scalar int8 (4x less memory for the search copy; quantile 0.99, kept in RAM).
    Int8,
}

fn default_sparse() -> Option<Bm25Config> {
    Some(Bm25Config::default())
}

impl Default for CollectionOptions {
    fn default() -> Self {
        CollectionOptions {
            sparse: default_sparse(),
            shard_number: None,
            replication_factor: None,
            write_consistency_factor: None,
            on_disk: false,
            on_disk_payload: false,
            quantization: None,
        }
    }
}

impl CollectionOptions {
    /// Options only a Qdrant server (cluster) has: the embedded store refuses them.
    pub fn server_only(&self) -> Vec<&'static str> {
        [
            ("shard_number", self.shard_number.is_some()),
            ("replication_factor", self.replication_factor.is_some()),
            ("write_consistency_factor", self.write_consistency_factor.is_some()),
        ]
        .into_iter()
        .filter_map(|(n, set)| set.then_some(n))
        .collect()
    }

    pub fn validate(&self) -> Result<()> {
        if let Some(c) = &self.sparse {
            c.validate()?;
        }
        for (name, v) in [
            ("shard_number", self.shard_number),
            ("replication_factor", self.replication_factor),
            ("write_consistency_factor", self.write_consistency_factor),
        ] {
            if v == Some(0) {
                return Err(VdbError::new(ErrorKind::InvalidConfig, format!("{name} must be at least 1")));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Distance {
    Cosine,
    Dot,
    Euclid,
}

impl Distance {
    pub fn name(self) -> &'static str {
        match self {
            Distance::Cosine => "cosine",
            Distance::Dot => "dot",
            Distance::Euclid => "euclid",
        }
    }
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
    /// The BM25 vector (collections with [`SPARSE_VECTOR`] only). An empty one (a text of stop
    /// words only) is written as empty.
    pub sparse: Option<SparseVector>,
    pub payload: Map<String, Value>,
}

/// One search or retrieve result. `score` is 0 for retrieve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: String,
    pub score: f32,
    pub payload: Map<String, Value>,
}

/// A point as [`VectorStore::scan`] reads it: the payload fields asked for, and the dense vector if asked.
#[derive(Debug, Clone, PartialEq)]
pub struct ScannedPoint {
    pub id: Uuid,
    pub payload: Map<String, Value>,
    pub vector: Option<Vec<f32>>,
}

/// A simple payload condition; a search's conditions are ANDed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// `field == value` (string, integer or bool).
    Equals { field: String, value: Value },
    /// `gte <= field <= lte` on a numeric field (either bound optional).
    Range { field: String, gte: Option<f64>, lte: Option<f64> },
    /// A filter in Qdrant's own JSON form (the `Filter` of its REST API: `must` / `should` /
    /// `must_not`, match, range, datetime range, ...; see [`filter`]).
    Qdrant { filter: Value },
}

/// Which vectors a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Dense and BM25, fused by the engine (Qdrant's Query API: two prefetches and a fusion).
    Hybrid,
    /// The dense (MiniLM) vector only.
    Dense,
    /// The BM25 sparse vector only (scores with the collection's IDF).
    Sparse,
}

impl SearchMode {
    pub const ALL: [SearchMode; 3] = [SearchMode::Hybrid, SearchMode::Dense, SearchMode::Sparse];

    pub fn name(self) -> &'static str {
        match self {
            SearchMode::Hybrid => "hybrid",
            SearchMode::Dense => "dense",
            SearchMode::Sparse => "sparse",
        }
    }
}

impl std::str::FromStr for SearchMode {
    type Err = VdbError;
    fn from_str(s: &str) -> Result<SearchMode> {
        SearchMode::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            VdbError::new(ErrorKind::InvalidConfig, format!("search mode {s:?}: expected hybrid, dense or sparse"))
        })
    }
}

/// How a hybrid search fuses its dense and sparse results (Qdrant's `Fusion`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// Reciprocal rank fusion: sum of 1/(k + rank) over the lists a point is in.
    #[default]
    Rrf,
    /// Distribution-based score fusion: each list's scores normalised by their mean ± 3 standard
    /// deviations, then summed.
    Dbsf,
}

impl Fusion {
    pub fn name(self) -> &'static str {
        match self {
            Fusion::Rrf => "rrf",
            Fusion::Dbsf => "dbsf",
        }
    }
}

impl std::str::FromStr for Fusion {
    type Err = VdbError;
    fn from_str(s: &str) -> Result<Fusion> {
        [Fusion::Rrf, Fusion::Dbsf]
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| VdbError::new(ErrorKind::InvalidConfig, format!("fusion {s:?}: expected rrf or dbsf")))
    }
}

/// The query vectors of a search.
#[derive(Debug, Clone, Copy)]
pub enum QueryVectors<'a> {
    Dense(&'a [f32]),
    Sparse(&'a SparseVector),
    /// Each vector finds [`prefetch_limit`] candidates (the filter applies to both), fused.
    Hybrid {
        dense: &'a [f32],
        sparse: &'a SparseVector,
        fusion: Fusion,
    },
}

impl QueryVectors<'_> {
    pub fn mode(&self) -> SearchMode {
        match self {
            QueryVectors::Dense(_) => SearchMode::Dense,
            QueryVectors::Sparse(_) => SearchMode::Sparse,
            QueryVectors::Hybrid { .. } => SearchMode::Hybrid,
        }
    }
}

/// Candidates each vector of a hybrid search contributes to the fusion: 4x the results asked for,
/// at least 40 (a point ranked low by one vector and high by the other still meets in the fusion).
pub fn prefetch_limit(limit: usize) -> usize {
    limit.saturating_mul(4).max(40)
}

/// Search options, as Qdrant names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// HNSW search breadth (`hnsw_ef`): higher is slower and more accurate. `None`: Qdrant's default.
    #[serde(default)]
    pub hnsw_ef: Option<u64>,
    /// Exact (brute-force) search instead of the HNSW index.
    #[serde(default)]
    pub exact: bool,
}

/// How a bulk load is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

impl LoadOptions {
    /// A batch size or parallelism of 0 is an error, never silently raised to 1.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("upsert batch_size", self.batch_size), ("upsert parallel", self.parallel)] {
            if v == 0 {
                return Err(VdbError::new(ErrorKind::InvalidConfig, format!("{name} must be at least 1, not 0")));
            }
        }
        Ok(())
    }
}

/// The operations the pipeline needs from Qdrant. Implementations are synchronous to callers (the
/// server store drives its own tokio runtime) and safe to share across threads.
pub trait VectorStore: Send + Sync {
    /// Human description (URL or path) for logs and error messages.
    fn describe(&self) -> String;

    /// Create the collection if missing (cosine, `spec.dim`) with its payload indexes. If it exists
    /// with another size or distance: `CollectionMismatch` error. `recreate` drops and recreates
    /// it whatever its configuration (an empty collection to start from).
    fn ensure_collection(&self, spec: &CollectionSpec, recreate: bool) -> Result<EnsureOutcome>;

    /// Whether the collection exists.
    fn collection_exists(&self, collection: &str) -> Result<bool>;

    /// Names of the collections, sorted.
    fn collections(&self) -> Result<Vec<String>>;

    /// Upsert points (idempotent: same id overwrites). Splits into `opts.batch_size` requests,
    /// retries transient failures, and returns the number of points written.
    fn upsert(&self, collection: &str, points: Vec<PointRecord>, opts: &LoadOptions) -> Result<u64>;

    /// Defer HNSW indexing for a bulk load (`true`), or restore the collection's normal indexing
    /// (`false`). The embedded store may treat this as a no-op.
    fn set_bulk_mode(&self, collection: &str, bulk: bool) -> Result<()>;

    /// Exact number of points.
    fn count(&self, collection: &str) -> Result<u64>;

    /// Nearest neighbours of `vector` with payloads, best first.
    fn search(&self, collection: &str, vector: &[f32], limit: usize, filter: &[Condition]) -> Result<Vec<Hit>> {
        self.search_with(collection, vector, limit, filter, &SearchParams::default())
    }

    /// [`VectorStore::search`] with search options (`hnsw_ef`, exact search).
    fn search_with(
        &self,
        collection: &str,
        vector: &[f32],
        limit: usize,
        filter: &[Condition],
        params: &SearchParams,
    ) -> Result<Vec<Hit>> {
        self.query(collection, &QueryVectors::Dense(vector), limit, filter, params)
    }

    /// The best `limit` points for the query vectors, with payloads: dense, sparse (BM25, the
    /// collection's IDF) or both fused in the engine (Qdrant's Query API), the filter applied to
    /// every vector's search. A sparse or hybrid query of a collection without [`SPARSE_VECTOR`] is
    /// a `CollectionMismatch` error. `params` apply to the dense search.
    fn query(
        &self,
        collection: &str,
        query: &QueryVectors<'_>,
        limit: usize,
        filter: &[Condition],
        params: &SearchParams,
    ) -> Result<Vec<Hit>>;

    /// The BM25 parameters of the collection's sparse vector ([`SPARSE_KEY`]); `None` when it has
    /// no [`SPARSE_VECTOR`] (dense only, or made by another tool without recording them).
    fn collection_sparse(&self, collection: &str) -> Result<Option<Bm25Config>>;

    /// The stored BM25 vectors of points by id (missing ids, and points without one, are absent).
    fn sparse_vectors(&self, collection: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, SparseVector>>;

    /// Points by id (missing ids are absent from the result).
    fn retrieve(&self, collection: &str, ids: &[Uuid]) -> Result<Vec<Hit>>;

    /// The model recorded in the collection's metadata ([`MODEL_KEY`]); `None` when the collection
    /// does not exist or was made before models were recorded.
    fn collection_model(&self, collection: &str) -> Result<Option<String>>;
    /// The collection's payload indexes (field and type), sorted by field: the types its payload
    /// fields are filtered by. A missing collection is an error.
    fn payload_indexes(&self, collection: &str) -> Result<Vec<(String, IndexKind)>>;

    /// For each of `keys` held by some point in the keyword payload field `field`: one such point.
    /// Reads ids and that field only (no vectors, no other payload).
    fn find_keys(&self, collection: &str, field: &str, keys: &[String]) -> Result<HashMap<String, Uuid>>;

    /// The stored vectors of points by id (missing ids are absent).
    fn vectors(&self, collection: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<f32>>>;

    /// Which of `ids` exist, each with its string value of payload `field` (`None` if absent).
    /// Reads ids and that field only.
    fn existing(&self, collection: &str, ids: &[Uuid], field: &str) -> Result<HashMap<Uuid, Option<String>>>;

    /// Ids of every point matching `filter` (all pages; ids only).
    fn scroll_ids(&self, collection: &str, filter: &[Condition]) -> Result<Vec<Uuid>>;

    /// Every point matching `filter`, a page ([`SCROLL_PAGE`] points) at a time, in id order: its id,
    /// the payload `fields` (only those; absent ones are left out) and, with `vectors`, its dense
    /// vector. `page` is called once per page; an error it returns stops the scan.
    fn scan(
        &self,
        collection: &str,
        filter: &[Condition],
        fields: &[String],
        vectors: bool,
        page: &mut dyn FnMut(Vec<ScannedPoint>) -> Result<()>,
    ) -> Result<()>;

    /// Set the payload keys of `payload` on the points `ids` (other keys stay; ids not in the
    /// collection are no error): Qdrant's `set_payload`.
    fn set_payload(&self, collection: &str, ids: &[Uuid], payload: &Map<String, Value>) -> Result<()>;

    /// Create a payload index on `field` if the collection has none there (recorded like those
    /// of [`CollectionSpec::payload_indexes`]).
    fn create_payload_index(&self, collection: &str, field: &str, kind: IndexKind) -> Result<()>;

    /// Delete points by id (ids not in the collection are no error); returns the number of ids.
    fn delete(&self, collection: &str, ids: &[Uuid]) -> Result<u64>;

    /// Aliases (alias, collection it names), sorted by alias. Every operation that takes a
    /// collection name accepts an alias in its place.
    fn aliases(&self) -> Result<Vec<(String, String)>>;

    /// Point `alias` at `collection` in one atomic step (creating the alias, or moving it: readers
    /// see the old collection or the new one, never neither); returns the collection it named
    /// before. As in Qdrant, an alias cannot have the name of a collection, and `collection` must
    /// exist.
    fn switch_alias(&self, alias: &str, collection: &str) -> Result<Option<String>>;

    /// Delete a collection (by its own name, not an alias) with its points, and the aliases that
    /// name it. Returns whether it existed.
    fn delete_collection(&self, collection: &str) -> Result<bool>;

    /// Give back what this store holds for `collection` between operations (the embedded store's
    /// file lock, so other processes can use the collection); the next operation takes it again.
    fn release(&self, _collection: &str) {}
}

/// Open the store a target names.
pub fn open(target: &StoreTarget) -> Result<Box<dyn VectorStore>> {
    match target {
        StoreTarget::Server { url, api_key } => Ok(Box::new(server::ServerStore::connect(url, api_key.as_deref())?)),
        #[cfg(feature = "embedded")]
        StoreTarget::Embedded { path } => Ok(Box::new(embedded::EmbeddedStore::open(path)?)),
        #[cfg(not(feature = "embedded"))]
        StoreTarget::Embedded { path } => Err(VdbError::new(
            ErrorKind::InvalidConfig,
            format!(
                "the embedded store ({}) is not in this build of vdb_core (built without the `embedded` feature, as \
                 the Docker image is): set QDRANT_URL to a Qdrant server, or install vdb_core with default features",
                path.display()
            ),
        )),
    }
}

/// Whether this build has the embedded store (the cargo feature `embedded`, on by default).
pub const EMBEDDED_BUILT: bool = cfg!(feature = "embedded");

/// Collection names become directory names (embedded) and URL path segments (server): keep them to
/// a portable, unsurprising alphabet.
pub(crate) fn validate_collection_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(VdbError::new(
            ErrorKind::InvalidConfig,
            format!(
                "invalid collection name {name:?}: use 1-200 ASCII letters, digits, '_', '-' or '.', not starting with '.'"
            ),
        ))
    }
}

/// Checks a filter before it reaches either store, so both reject the same inputs the same way.
pub(crate) fn validate_conditions(filter: &[Condition]) -> Result<()> {
    for cond in filter {
        match cond {
            Condition::Equals { field, value } => {
                let scalar = matches!(value, Value::String(_) | Value::Bool(_)) || value.as_i64().is_some();
                if field.is_empty() || !scalar {
                    return Err(VdbError::new(
                        ErrorKind::InvalidConfig,
                        format!("filter on {field:?}: Equals needs a string, integer or bool value, got {value}"),
                    )
                    .with_column(field.clone()));
                }
            }
            // The same supported subset for both stores (the server's conversion checks it).
            Condition::Qdrant { filter } => filter::to_pb(filter).map(drop)?,
            Condition::Range { field, gte, lte } => {
                let finite = gte.is_none_or(f64::is_finite) && lte.is_none_or(f64::is_finite);
                if field.is_empty() || !finite {
                    return Err(VdbError::new(
                        ErrorKind::InvalidConfig,
                        format!("filter on {field:?}: Range bounds must be finite numbers"),
                    )
                    .with_column(field.clone()));
                }
            }
        }
    }
    Ok(())
}

/// The model check both stores run in `ensure_collection`: `Err(description)` when the collection
/// records another model than the spec's.
pub(crate) fn model_mismatch(recorded: Option<&str>, spec: &CollectionSpec) -> std::result::Result<(), String> {
    match (recorded, spec.model.as_deref()) {
        (Some(have), Some(want)) if have != want => Err(format!("vectors of model {have}, but this run uses {want}")),
        _ => Ok(()),
    }
}

/// The BM25 check both stores run in `ensure_collection`: `Err(description)` when the collection
/// records other BM25 parameters than the spec's (a dense-only collection is no mismatch: it stays
/// dense-only, see [`CollectionSpec::sparse`]).
pub(crate) fn sparse_mismatch(recorded: Option<&Bm25Config>, spec: &CollectionSpec) -> std::result::Result<(), String> {
    match (recorded, spec.options.sparse.as_ref()) {
        (Some(have), Some(want)) if have != want => {
            Err(format!("a sparse vector of {}, but this run uses {}", have.describe(), want.describe()))
        }
        _ => Ok(()),
    }
}

/// The error for a sparse or hybrid query of a collection without the BM25 vector.
pub(crate) fn no_sparse_error(collection: &str, place: &str, mode: SearchMode) -> VdbError {
    VdbError::new(
        ErrorKind::CollectionMismatch,
        format!(
            "collection '{collection}' {place} has no BM25 sparse vector, so it cannot be searched in {} mode: search              it with mode dense, or rebuild it (ingest --rebuild) to add BM25",
            mode.name()
        ),
    )
}

/// The error for a collection that exists with other vectors or another model.
pub(crate) fn mismatch_error(collection: &str, place: &str, found: &str) -> VdbError {
    VdbError::new(
        ErrorKind::CollectionMismatch,
        format!(
            "collection '{collection}' {place} holds {found}; recreate it (recreate=true drops its points) or use another collection name"
        ),
    )
}

/// The query-size check both stores run before searching: a query vector of another size was
/// made by another model, and its neighbours would mean nothing.
pub(crate) fn check_query_dim(collection: &str, dim: usize, query: &[f32]) -> Result<()> {
    if query.len() != dim {
        return Err(VdbError::new(
            ErrorKind::CollectionMismatch,
            format!(
                "the query vector has size {}, but collection '{collection}' stores vectors of size {dim} (made by \
                 another model): search it with the model that built it",
                query.len()
            ),
        ));
    }
    Ok(())
}

/// The vector-size check both stores run before writing, with a sentence naming the point.
pub(crate) fn check_dims(collection: &str, dim: usize, points: &[PointRecord]) -> Result<()> {
    if let Some(p) = points.iter().find(|p| p.sparse.as_ref().is_some_and(|s| s.indices.len() != s.values.len())) {
        return Err(VdbError::internal(format!("point {} has a sparse vector with unequal indices and values", p.id)));
    }
    if let Some(p) = points.iter().find(|p| p.vector.len() != dim) {
        return Err(VdbError::new(
            ErrorKind::Store,
            format!(
                "point {} has a vector of size {}, but collection '{collection}' stores vectors of size {dim}",
                p.id,
                p.vector.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn collection_names() {
        for ok in ["sec_sentences", "a", "v1.2-x"] {
            assert!(validate_collection_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "../x", "sp ace", "ü"] {
            let err = validate_collection_name(bad).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidConfig, "{bad}");
        }
    }

    #[test]
    fn conditions_are_checked() {
        let good = [
            Condition::Equals { field: "cik".into(), value: json!("0000320193") },
            Condition::Equals { field: "year".into(), value: json!(2020) },
            Condition::Equals { field: "flag".into(), value: json!(true) },
            Condition::Range { field: "year".into(), gte: Some(2000.0), lte: None },
        ];
        assert!(validate_conditions(&good).is_ok());
        let bad = Condition::Equals { field: "x".into(), value: json!(1.5) };
        let err = validate_conditions(&[bad]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig);
        assert_eq!(err.column.as_deref(), Some("x"));
        let bad = Condition::Range { field: "x".into(), gte: Some(f64::NAN), lte: None };
        assert!(validate_conditions(&[bad]).is_err());
    }
}
