//! Qdrant server over gRPC (qdrant-client).
//!
//! The store owns a small tokio runtime and exposes synchronous methods. Every request goes through
//! one retry loop: transient failures (the server is unreachable, restarting, overloaded or slow:
//! gRPC `Unavailable`, `DeadlineExceeded`, `ResourceExhausted`, and connection errors) are retried
//! with exponential backoff; when the attempts run out the error is `StoreUnavailable`, naming the
//! URL and the collection. Any other error is the server's answer (`Store`), not retried
//! ([`retry`]).
//!
//! This file holds the client, the request plumbing and the [`VectorStore`] implementation, which
//! hands each operation to the file of its concern: [`collections`] (create and check collections,
//! their layout, metadata, payload indexes and aliases) and [`points`] (write, read, search and
//! scroll points). Conversions to and from Qdrant's protobuf types are in [`convert`], bulk mode
//! (deferred HNSW indexing during a load) in [`bulk`].
//!
//! Only documented client calls are used (create/get/update/delete collection, create field index,
//! aliases, upsert, count, query, get), so the store works against any Qdrant 1.x server.
//!
//! Aliases: Qdrant resolves an alias in point operations (upsert, query, count, get, scroll,
//! delete) itself; collection management (info, update, field indexes) is sent to the collection
//! the alias names, resolved here, so nothing depends on how a server version treats aliases there.

use std::collections::HashMap;
use std::future::Future;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use qdrant_client::qdrant::{
    self as pb, condition::ConditionOneOf, point_id::PointIdOptions, r#match::MatchValue, value::Kind,
    vectors_config::Config as VectorsConfigKind,
};
use qdrant_client::{Qdrant, QdrantError};
use tonic::Code;

use super::*;
use crate::error::{ErrorKind, VdbError};

mod bulk;
mod collections;
mod convert;
mod points;
mod retry;

pub use bulk::{BULK_M_KEY, DEFAULT_HNSW_M};
use convert::*;
pub use retry::RetryPolicy;
use retry::*;

/// Per-request timeout. Generous: an upsert of a large batch with `wait=true` on a busy server may
/// take a while; a dead connection is detected by the connect timeout and transport errors instead.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct ServerStore {
    url: String,
    client: Qdrant,
    retry: RetryPolicy,
    /// HNSW `m` of each collection before `set_bulk_mode(true)`, restored by `set_bulk_mode(false)`.
    saved_m: Mutex<HashMap<String, u64>>,
    /// Each collection's [`Layout`], learnt once: upsert checks sizes before sending and keeps at
    /// least one request in flight per shard.
    dims: Mutex<HashMap<String, Layout>>,
    // Last, so in-flight work is dropped with the client first.
    rt: tokio::runtime::Runtime,
}

/// What the store needs to know of a collection to write and query it.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Dense vector size.
    dim: usize,
    shards: usize,
    /// Whether it has the BM25 vector ([`SPARSE_VECTOR`], parameters recorded).
    sparse: bool,
}

impl ServerStore {
    /// A client for the Qdrant gRPC endpoint `url` (`http://host:6334`, `https://...` for TLS).
    /// Does not contact the server: connection problems surface (after retries) on the first call.
    pub fn connect(url: &str, api_key: Option<&str>) -> Result<Self> {
        let parsed: tonic::transport::Uri = url
            .parse()
            .map_err(|e| VdbError::new(ErrorKind::InvalidConfig, format!("invalid Qdrant URL {url:?}: {e}")))?;
        match parsed.scheme_str() {
            Some("http") | Some("https") if parsed.host().is_some() => {}
            _ => {
                return Err(VdbError::new(
                    ErrorKind::InvalidConfig,
                    format!(
                        "invalid Qdrant URL {url:?}: expected http://host:port or https://host:port (the gRPC port, 6334 by default)"
                    ),
                ))
            }
        }
        let mut builder =
            Qdrant::from_url(url).timeout(REQUEST_TIMEOUT).connect_timeout(CONNECT_TIMEOUT).skip_compatibility_check();
        if let Some(key) = api_key.filter(|k| !k.is_empty()) {
            builder = builder.api_key(key.to_string());
        }
        let client = builder.build().map_err(|e| {
            VdbError::new(ErrorKind::InvalidConfig, format!("cannot set up a Qdrant client for {url}: {e}"))
        })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vdb-qdrant")
            .enable_all()
            .build()
            .map_err(|e| VdbError::new(ErrorKind::Io, format!("cannot start the Qdrant client runtime: {e}")))?;
        Ok(ServerStore {
            url: url.to_string(),
            client,
            retry: RetryPolicy::default(),
            saved_m: Mutex::new(HashMap::new()),
            dims: Mutex::new(HashMap::new()),
            rt,
        })
    }

    /// Retry settings for all requests except upsert (which uses its [`LoadOptions`]).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Run one request with the store's retry policy.
    fn call<T, F, Fut>(&self, what: &str, collection: &str, f: F) -> Result<T>
    where
        F: Fn(Qdrant) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        self.call_with(self.retry, what, collection, f)
    }

    fn call_with<T, F, Fut>(&self, policy: RetryPolicy, what: &str, collection: &str, f: F) -> Result<T>
    where
        F: Fn(Qdrant) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        let ctx = Ctx { url: &self.url, collection, what };
        self.rt.block_on(with_retry(&ctx, policy, || f(self.client.clone())))
    }
}

impl VectorStore for ServerStore {
    fn describe(&self) -> String {
        StoreTarget::Server { url: self.url.clone(), api_key: None }.describe()
    }

    fn ensure_collection(&self, spec: &CollectionSpec, recreate: bool) -> Result<EnsureOutcome> {
        collections::ensure(self, spec, recreate)
    }

    fn collections(&self) -> Result<Vec<String>> {
        collections::list(self)
    }

    fn collection_exists(&self, collection: &str) -> Result<bool> {
        collections::exists(self, collection)
    }

    fn aliases(&self) -> Result<Vec<(String, String)>> {
        collections::aliases(self)
    }

    fn switch_alias(&self, alias: &str, collection: &str) -> Result<Option<String>> {
        collections::switch_alias(self, alias, collection)
    }

    fn delete_collection(&self, collection: &str) -> Result<bool> {
        collections::delete(self, collection)
    }

    fn upsert(&self, collection: &str, points: Vec<PointRecord>, opts: &LoadOptions) -> Result<u64> {
        points::upsert(self, collection, points, opts)
    }

    fn set_bulk_mode(&self, collection: &str, bulk: bool) -> Result<()> {
        self.bulk_mode(collection, bulk)
    }

    fn count(&self, collection: &str) -> Result<u64> {
        points::count(self, collection)
    }

    fn query(
        &self,
        collection: &str,
        query: &QueryVectors<'_>,
        limit: usize,
        filter: &[Condition],
        params: &SearchParams,
    ) -> Result<Vec<Hit>> {
        points::query(self, collection, query, limit, filter, params)
    }

    fn retrieve(&self, collection: &str, ids: &[Uuid]) -> Result<Vec<Hit>> {
        points::retrieve(self, collection, ids)
    }

    fn collection_model(&self, collection: &str) -> Result<Option<String>> {
        collections::model(self, collection)
    }

    fn collection_sparse(&self, collection: &str) -> Result<Option<Bm25Config>> {
        collections::sparse(self, collection)
    }

    fn sparse_vectors(&self, collection: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, SparseVector>> {
        points::sparse_vectors(self, collection, ids)
    }

    fn payload_indexes(&self, collection: &str) -> Result<Vec<(String, IndexKind)>> {
        collections::payload_indexes(self, collection)
    }

    fn find_keys(&self, collection: &str, field: &str, keys: &[String]) -> Result<HashMap<String, Uuid>> {
        points::find_keys(self, collection, field, keys)
    }

    fn vectors(&self, collection: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<f32>>> {
        points::vectors(self, collection, ids)
    }

    fn scroll_ids(&self, collection: &str, filter: &[Condition]) -> Result<Vec<Uuid>> {
        points::scroll_ids(self, collection, filter)
    }

    fn scan(
        &self,
        collection: &str,
        filter: &[Condition],
        fields: &[String],
        vectors: bool,
        page: &mut dyn FnMut(Vec<ScannedPoint>) -> Result<()>,
    ) -> Result<()> {
        points::scan(self, collection, filter, fields, vectors, page)
    }

    fn set_payload(&self, collection: &str, ids: &[Uuid], payload: &Map<String, Value>) -> Result<()> {
        points::set_payload(self, collection, ids, payload)
    }

    fn create_payload_index(&self, collection: &str, field: &str, kind: IndexKind) -> Result<()> {
        collections::create_payload_index(self, collection, field, kind)
    }

    fn delete(&self, collection: &str, ids: &[Uuid]) -> Result<u64> {
        points::delete(self, collection, ids)
    }

    fn existing(&self, collection: &str, ids: &[Uuid], field: &str) -> Result<HashMap<Uuid, Option<String>>> {
        points::existing(self, collection, ids, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_urls_are_config_errors() {
        for url in ["localhost:6334", "ftp://x:1", "not a url"] {
            let err = ServerStore::connect(url, None).err().expect(url);
            assert_eq!(err.kind, ErrorKind::InvalidConfig, "{url}");
        }
        assert!(ServerStore::connect("http://127.0.0.1:6334", Some("key")).is_ok());
    }
}
