//! Qdrant server over gRPC (qdrant-client).
//!
//! The store owns a small tokio runtime and exposes synchronous methods. Every request goes through
//! one retry loop: transient failures (the server is unreachable, restarting, overloaded or slow:
//! gRPC `Unavailable`, `DeadlineExceeded`, `ResourceExhausted`, and connection errors) are retried
//! with exponential backoff; when the attempts run out the error is `StoreUnavailable`, naming the
//! URL and the collection. Any other error is the server's answer (`Store`), not retried
//! ([`retry`]). Conversions to and from Qdrant's protobuf types are in [`convert`], bulk mode
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
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use qdrant_client::qdrant::{
    self as pb, condition::ConditionOneOf, point_id::PointIdOptions, r#match::MatchValue, value::Kind,
    vectors_config::Config as VectorsConfigKind,
};
use qdrant_client::{Qdrant, QdrantError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tonic::Code;

use super::*;
use crate::error::{ErrorKind, VdbError};

mod bulk;
mod convert;
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

    /// The collection's info, or None if it does not exist.
    fn info(&self, collection: &str) -> Result<Option<pb::CollectionInfo>> {
        self.info_with(self.retry, collection)
    }

    fn info_with(&self, policy: RetryPolicy, collection: &str) -> Result<Option<pb::CollectionInfo>> {
        let name = if self.physical_exists(policy, collection)? {
            collection.to_string()
        } else {
            match self.alias_target(collection)? {
                Some(target) => target,
                None => return Ok(None),
            }
        };
        let info = self.call_with(policy, "collection_info", collection, |c| {
            let name = name.clone();
            async move { c.collection_info(name).await }
        })?;
        Ok(info.result)
    }

    /// Whether a collection (not an alias) of this name exists.
    fn physical_exists(&self, policy: RetryPolicy, collection: &str) -> Result<bool> {
        self.call_with(policy, "collection_exists", collection, |c| {
            let name = collection.to_string();
            async move { c.collection_exists(name).await }
        })
    }

    /// The collection the alias `alias` points to, if it is one.
    fn alias_target(&self, alias: &str) -> Result<Option<String>> {
        Ok(self.aliases()?.into_iter().find(|(a, _)| a == alias).map(|(_, c)| c))
    }

    /// The collection `name` stands for: itself, or the one the alias `name` points to.
    fn resolve(&self, name: &str) -> Result<String> {
        validate_collection_name(name)?;
        if self.physical_exists(self.retry, name)? {
            return Ok(name.to_string());
        }
        Ok(self.alias_target(name)?.unwrap_or_else(|| name.to_string()))
    }

    fn missing(&self, collection: &str) -> VdbError {
        VdbError::new(
            ErrorKind::Store,
            format!("collection '{collection}' does not exist on {} (ensure_collection creates it)", self.url),
        )
    }

    /// The collection's vector size, shard count and BM25 vector (cached after the first look-up).
    fn layout(&self, policy: RetryPolicy, collection: &str) -> Result<Layout> {
        if let Some(d) = self.dims.lock().get(collection) {
            return Ok(*d);
        }
        let info = self.info_with(policy, collection)?.ok_or_else(|| self.missing(collection))?;
        let (dim, _) = vector_params(&info).map_err(|found| {
            VdbError::new(
                ErrorKind::CollectionMismatch,
                format!("collection '{collection}' on {} has {found}", self.url),
            )
        })?;
        let shards = info.config.as_ref().and_then(|c| c.params.as_ref()).map_or(1, |p| p.shard_number.max(1)) as usize;
        let sparse = recorded_sparse(&info).map_err(|found| {
            VdbError::new(
                ErrorKind::CollectionMismatch,
                format!("collection '{collection}' on {} has {found}", self.url),
            )
        })?;
        let layout = Layout { dim, shards, sparse: sparse.is_some() };
        self.dims.lock().insert(collection.to_string(), layout);
        Ok(layout)
    }

    // The `on_disk` / `on_disk_payload` / `always_ram` flags are deprecated in favour of `memory`
    // placements (Qdrant >= 1.18), but every 1.x server reads them: they stay until the oldest
    // supported server knows `memory`.
    #[allow(deprecated)]
    fn create(&self, spec: &CollectionSpec) -> Result<()> {
        let o = &spec.options;
        o.validate()?;
        let req = pb::CreateCollection {
            collection_name: spec.name.clone(),
            vectors_config: Some(pb::VectorsConfig {
                config: Some(VectorsConfigKind::Params(pb::VectorParams {
                    size: spec.dim as u64,
                    distance: pb_distance(spec.distance) as i32,
                    on_disk: o.on_disk.then_some(true),
                    ..Default::default()
                })),
            }),
            shard_number: o.shard_number,
            replication_factor: o.replication_factor,
            write_consistency_factor: o.write_consistency_factor,
            on_disk_payload: o.on_disk_payload.then_some(true),
            quantization_config: o.quantization.map(|q| match q {
                Quantization::Int8 => pb::QuantizationConfig {
                    quantization: Some(pb::quantization_config::Quantization::Scalar(pb::ScalarQuantization {
                        r#type: pb::QuantizationType::Int8 as i32,
                        quantile: Some(0.99),
                        always_ram: Some(true),
                        memory: None,
                    })),
                },
            }),
            // Qdrant's IDF modifier: the engine weighs query tokens by their IDF in the live collection.
            sparse_vectors_config: o.sparse.map(|_| pb::SparseVectorConfig {
                map: [(
                    SPARSE_VECTOR.to_string(),
                    pb::SparseVectorParams {
                        index: o.on_disk.then_some(pb::SparseIndexConfig { on_disk: Some(true), ..Default::default() }),
                        modifier: Some(pb::Modifier::Idf as i32),
                    },
                )]
                .into(),
            }),
            metadata: spec
                .model
                .iter()
                .map(|m| (MODEL_KEY.to_string(), to_pb_value(Value::String(m.clone()))))
                .chain(o.sparse.iter().map(|c| (SPARSE_KEY.to_string(), to_pb_value(c.to_metadata()))))
                .collect(),
            ..Default::default()
        };
        self.call("create_collection", &spec.name, |c| {
            let req = req.clone();
            async move { c.create_collection(req).await }
        })?;
        Ok(())
    }

    /// Create the payload indexes the collection lacks. Done right after create, i.e. before the
    /// bulk load: Qdrant then indexes payloads as points arrive, and the HNSW graph (built later)
    /// can use the payload-aware links for filtered search.
    fn ensure_indexes(&self, spec: &CollectionSpec, existing: &HashMap<String, pb::PayloadSchemaInfo>) -> Result<()> {
        for (field, kind) in &spec.payload_indexes {
            if existing.contains_key(field) {
                continue;
            }
            let req = pb::CreateFieldIndexCollection {
                collection_name: spec.name.clone(),
                wait: Some(true),
                field_name: field.clone(),
                field_type: Some(pb_field_type(*kind) as i32),
                ..Default::default()
            };
            self.call("create_field_index", &spec.name, |c| {
                let req = req.clone();
                async move { c.create_field_index(req).await }
            })?;
        }
        Ok(())
    }
}

impl ServerStore {
    /// Sets one key of the collection's metadata.
    fn set_metadata(&self, collection: &str, key: &str, value: Value) -> Result<()> {
        self.update_collection(pb::UpdateCollection {
            collection_name: collection.to_string(),
            metadata: [(key.to_string(), to_pb_value(value))].into(),
            ..Default::default()
        })
    }

    /// One `update_collection` request (settings and/or metadata), with the store's retries.
    fn update_collection(&self, req: pb::UpdateCollection) -> Result<()> {
        let collection = req.collection_name.clone();
        self.call("update_collection", &collection, |c| {
            let req = req.clone();
            async move { c.update_collection(req).await }
        })?;
        Ok(())
    }

    /// Points by id with the payload `payload` selects and, if `vectors`, their vectors.
    fn get_points(
        &self,
        collection: &str,
        ids: &[Uuid],
        payload: pb::WithPayloadSelector,
        vectors: bool,
    ) -> Result<Vec<pb::RetrievedPoint>> {
        validate_collection_name(collection)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let req = pb::GetPoints {
            collection_name: collection.to_string(),
            ids: ids.iter().map(pb_id).collect(),
            with_payload: Some(payload),
            with_vectors: Some(pb::WithVectorsSelector {
                selector_options: Some(pb::with_vectors_selector::SelectorOptions::Enable(vectors)),
            }),
            ..Default::default()
        };
        let resp = self.call("get_points", collection, |c| {
            let req = req.clone();
            async move { c.get_points(req).await }
        })?;
        Ok(resp.result)
    }

    /// One page of a scroll: ids (and the payload `payload` selects), no vectors.
    fn scroll_page(
        &self,
        collection: &str,
        filter: Option<&pb::Filter>,
        payload: pb::WithPayloadSelector,
        offset: Option<pb::PointId>,
    ) -> Result<pb::ScrollResponse> {
        let req = pb::ScrollPoints {
            collection_name: collection.to_string(),
            filter: filter.cloned(),
            offset,
            limit: Some(SCROLL_PAGE as u32),
            with_payload: Some(payload),
            with_vectors: Some(pb::WithVectorsSelector {
                selector_options: Some(pb::with_vectors_selector::SelectorOptions::Enable(false)),
            }),
            ..Default::default()
        };
        self.call("scroll", collection, |c| {
            let req = req.clone();
            async move { c.scroll(req).await }
        })
    }
}

impl VectorStore for ServerStore {
    fn describe(&self) -> String {
        StoreTarget::Server { url: self.url.clone(), api_key: None }.describe()
    }

    fn ensure_collection(&self, spec: &CollectionSpec, recreate: bool) -> Result<EnsureOutcome> {
        validate_collection_name(&spec.name)?;
        if spec.dim == 0 {
            return Err(VdbError::new(
                ErrorKind::InvalidConfig,
                format!("collection '{}': vector size must be at least 1", spec.name),
            ));
        }
        // Through an alias: the collection it names.
        let spec = &CollectionSpec { name: self.resolve(&spec.name)?, ..spec.clone() };
        let wanted = format!("size {} / {}", spec.dim, spec.distance.name());
        self.dims.lock().remove(&spec.name);
        let outcome = match self.info(&spec.name)? {
            Some(info) => {
                let found = match vector_params(&info) {
                    Ok((dim, dist)) if dim == spec.dim && dist == spec.distance => {
                        model_mismatch(recorded_model(&info).as_deref(), spec)
                            .and_then(|()| recorded_sparse(&info))
                            .and_then(|sparse| sparse_mismatch(sparse.as_ref(), spec))
                            .err()
                    }
                    Ok((dim, dist)) => Some(format!("vectors of size {dim} / {}, but {wanted} is needed", dist.name())),
                    Err(s) => Some(format!("vectors of {s}, but {wanted} is needed")),
                };
                match found {
                    None if !recreate => {
                        self.ensure_indexes(spec, &info.payload_schema)?;
                        if let (None, Some(model)) = (recorded_model(&info), &spec.model) {
                            self.set_metadata(&spec.name, MODEL_KEY, Value::String(model.clone()))?;
                        }
                        return Ok(EnsureOutcome::Existed);
                    }
                    Some(found) if !recreate => {
                        return Err(mismatch_error(&spec.name, &format!("on {}", self.url), &found));
                    }
                    _ => {
                        self.call("delete_collection", &spec.name, |c| {
                            let name = spec.name.clone();
                            async move { c.delete_collection(name).await }
                        })?;
                        EnsureOutcome::Recreated
                    }
                }
            }
            None => EnsureOutcome::Created,
        };
        if let Err(e) = self.create(spec) {
            // Another process (a parallel mapped task) may have created it in the meantime.
            // (Decided by asking the server again, not by the error's wording.)
            if e.kind == ErrorKind::Store && self.collection_exists(&spec.name)? {
                return self.ensure_collection(spec, false);
            }
            return Err(e);
        }
        self.ensure_indexes(spec, &HashMap::new())?;
        Ok(outcome)
    }

    fn collections(&self) -> Result<Vec<String>> {
        let resp = self.call("list_collections", "*", |c| async move { c.list_collections().await })?;
        let mut names: Vec<String> = resp.collections.into_iter().map(|c| c.name).collect();
        names.sort();
        Ok(names)
    }

    fn collection_exists(&self, collection: &str) -> Result<bool> {
        validate_collection_name(collection)?;
        if self.physical_exists(self.retry, collection)? {
            return Ok(true);
        }
        match self.alias_target(collection)? {
            Some(target) => self.physical_exists(self.retry, &target),
            None => Ok(false),
        }
    }

    fn aliases(&self) -> Result<Vec<(String, String)>> {
        let resp = self.call("list_aliases", "*", |c| async move { c.list_aliases().await })?;
        let mut aliases: Vec<(String, String)> =
            resp.aliases.into_iter().map(|a| (a.alias_name, a.collection_name)).collect();
        aliases.sort();
        Ok(aliases)
    }

    fn switch_alias(&self, alias: &str, collection: &str) -> Result<Option<String>> {
        validate_collection_name(alias)?;
        validate_collection_name(collection)?;
        let previous = self.alias_target(alias)?;
        // One `create_alias` action both creates and moves an alias, atomically: Qdrant applies a
        // change of aliases under its collections lock (storage `update_aliases`, Qdrant 1.x).
        self.call("create_alias", collection, |c| {
            let req = pb::CreateAliasBuilder::new(collection, alias);
            async move { c.create_alias(req).await }
        })?;
        Ok(previous)
    }

    fn delete_collection(&self, collection: &str) -> Result<bool> {
        validate_collection_name(collection)?;
        if !self.physical_exists(self.retry, collection)? {
            return Ok(false);
        }
        self.dims.lock().remove(collection);
        let resp = self.call("delete_collection", collection, |c| {
            let name = collection.to_string();
            async move { c.delete_collection(name).await }
        })?;
        Ok(resp.result)
    }

    fn upsert(&self, collection: &str, points: Vec<PointRecord>, opts: &LoadOptions) -> Result<u64> {
        validate_collection_name(collection)?;
        if points.is_empty() {
            return Ok(0);
        }
        let policy = RetryPolicy::from(opts);
        let Layout { dim, shards, sparse } = self.layout(policy, collection)?;
        check_dims(collection, dim, &points)?;
        opts.validate()?;
        let batch = opts.batch_size;
        // At least one request in flight per shard, so every shard (node) of a cluster works.
        let permits = Arc::new(Semaphore::new(opts.parallel.max(shards).max(1)));
        let url: Arc<str> = Arc::from(self.url.as_str());
        let name: Arc<str> = Arc::from(collection);
        let client = self.client.clone();

        self.rt.block_on(async move {
            let mut tasks: JoinSet<Result<u64>> = JoinSet::new();
            let mut written = 0u64;
            let mut first_err: Option<VdbError> = None;
            let mut iter = points.into_iter().peekable();
            while iter.peek().is_some() {
                // Stop feeding new batches after a failure; in-flight ones finish below.
                while let Some(done) = tasks.try_join_next() {
                    match done {
                        Ok(Ok(n)) => written += n,
                        Ok(Err(e)) => first_err = first_err.or(Some(e)),
                        Err(j) => {
                            first_err = first_err.or(Some(VdbError::internal(format!("upsert task failed: {j}"))))
                        }
                    }
                }
                if first_err.is_some() {
                    break;
                }
                let permit = permits.clone().acquire_owned().await.expect("semaphore is never closed");
                let chunk: Vec<pb::PointStruct> = iter
                    .by_ref()
                    .take(batch)
                    .map(|p| pb::PointStruct {
                        id: Some(pb_id(&p.id)),
                        payload: to_pb_payload(p.payload),
                        // A collection without BM25 takes the dense vector only.
                        vectors: Some(pb_vectors(p.vector, p.sparse.filter(|_| sparse))),
                    })
                    .collect();
                let n = chunk.len() as u64;
                // wait=true: the server answers only once the points are written to its WAL and
                // applied. That makes a successful answer mean "stored" (so a retry after an
                // ambiguous failure is safe and the count right after the load is exact), and it
                // gives natural backpressure: with wait=false the client can outrun the server,
                // whose update queue then grows without bound and whose errors would be lost.
                let req = pb::UpsertPoints {
                    collection_name: name.to_string(),
                    wait: Some(true),
                    points: chunk,
                    ..Default::default()
                };
                let client = client.clone();
                let (url, name) = (url.clone(), name.clone());
                tasks.spawn(async move {
                    let _permit = permit;
                    let ctx = Ctx { url: &url, collection: &name, what: "upsert" };
                    with_retry(&ctx, policy, || {
                        let req = req.clone();
                        let client = client.clone();
                        async move { client.upsert_points(req).await }
                    })
                    .await?;
                    Ok(n)
                });
            }
            while let Some(done) = tasks.join_next().await {
                match done {
                    Ok(Ok(n)) => written += n,
                    Ok(Err(e)) => first_err = first_err.or(Some(e)),
                    Err(j) => first_err = first_err.or(Some(VdbError::internal(format!("upsert task failed: {j}")))),
                }
            }
            match first_err {
                Some(e) => Err(e),
                None => Ok(written),
            }
        })
    }

    fn set_bulk_mode(&self, collection: &str, bulk: bool) -> Result<()> {
        self.bulk_mode(collection, bulk)
    }

    fn count(&self, collection: &str) -> Result<u64> {
        validate_collection_name(collection)?;
        let req = pb::CountPoints { collection_name: collection.to_string(), exact: Some(true), ..Default::default() };
        let resp = self.call("count", collection, |c| {
            let req = req.clone();
            async move { c.count(req).await }
        })?;
        Ok(resp.result.map(|r| r.count).unwrap_or(0))
    }

    fn query(
        &self,
        collection: &str,
        query: &QueryVectors<'_>,
        limit: usize,
        filter: &[Condition],
        params: &SearchParams,
    ) -> Result<Vec<Hit>> {
        validate_collection_name(collection)?;
        let filter = pb_filter(filter)?;
        let layout = self.layout(self.retry, collection)?;
        if let QueryVectors::Dense(v) | QueryVectors::Hybrid { dense: v, .. } = query {
            check_query_dim(collection, layout.dim, v)?;
        }
        if query.mode() != SearchMode::Dense && !layout.sparse {
            return Err(no_sparse_error(collection, &format!("on {}", self.url), query.mode()));
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        let params = (*params != SearchParams::default()).then(|| pb::SearchParams {
            hnsw_ef: params.hnsw_ef,
            exact: Some(params.exact),
            ..Default::default()
        });
        let dense = |v: &[f32]| pb::Query::new_nearest(v.to_vec());
        let sparse =
            |s: &SparseVector| pb::Query::new_nearest(pb::VectorInput::new_sparse(s.indices.clone(), s.values.clone()));
        let mut req = pb::QueryPoints {
            collection_name: collection.to_string(),
            filter,
            limit: Some(limit as u64),
            with_payload: Some(with_payload()),
            ..Default::default()
        };
        match *query {
            QueryVectors::Dense(v) => {
                req.query = Some(dense(v));
                req.params = params;
            }
            QueryVectors::Sparse(s) => {
                req.query = Some(sparse(s));
                req.using = Some(SPARSE_VECTOR.to_string());
            }
            QueryVectors::Hybrid { dense: d, sparse: s, fusion } => {
                // Two prefetches fused by the engine; Qdrant applies the request's filter to both.
                let n = Some(prefetch_limit(limit) as u64);
                req.prefetch = vec![
                    pb::PrefetchQuery { query: Some(dense(d)), limit: n, params, ..Default::default() },
                    pb::PrefetchQuery {
                        query: Some(sparse(s)),
                        using: Some(SPARSE_VECTOR.to_string()),
                        limit: n,
                        ..Default::default()
                    },
                ];
                req.query = Some(pb::Query::new_fusion(match fusion {
                    Fusion::Rrf => pb::Fusion::Rrf,
                    Fusion::Dbsf => pb::Fusion::Dbsf,
                }));
            }
        }
        let resp = self.call("query", collection, |c| {
            let req = req.clone();
            async move { c.query(req).await }
        })?;
        Ok(resp
            .result
            .into_iter()
            .map(|p| Hit { id: id_string(p.id), score: p.score, payload: from_pb_payload(p.payload) })
            .collect())
    }

    fn retrieve(&self, collection: &str, ids: &[Uuid]) -> Result<Vec<Hit>> {
        Ok(self
            .get_points(collection, ids, with_payload(), false)?
            .into_iter()
            .map(|p| Hit { id: id_string(p.id), score: 0.0, payload: from_pb_payload(p.payload) })
            .collect())
    }

    fn collection_model(&self, collection: &str) -> Result<Option<String>> {
        validate_collection_name(collection)?;
        Ok(self.info(collection)?.as_ref().and_then(recorded_model))
    }

    fn collection_sparse(&self, collection: &str) -> Result<Option<Bm25Config>> {
        validate_collection_name(collection)?;
        let info = self.info(collection)?.ok_or_else(|| self.missing(collection))?;
        recorded_sparse(&info).map_err(|found| {
            VdbError::new(
                ErrorKind::CollectionMismatch,
                format!("collection '{collection}' on {} has {found}", self.url),
            )
        })
    }

    fn sparse_vectors(&self, collection: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, SparseVector>> {
        validate_collection_name(collection)?;
        if ids.is_empty() || !self.layout(self.retry, collection)?.sparse {
            return Ok(HashMap::new());
        }
        let req = pb::GetPoints {
            collection_name: collection.to_string(),
            ids: ids.iter().map(pb_id).collect(),
            with_payload: Some(pb::WithPayloadSelector {
                selector_options: Some(pb::with_payload_selector::SelectorOptions::Enable(false)),
            }),
            with_vectors: Some(pb::WithVectorsSelector {
                selector_options: Some(pb::with_vectors_selector::SelectorOptions::Include(pb::VectorsSelector {
                    names: vec![SPARSE_VECTOR.to_string()],
                })),
            }),
            ..Default::default()
        };
        let resp = self.call("get_points", collection, |c| {
            let req = req.clone();
            async move { c.get_points(req).await }
        })?;
        Ok(resp
            .result
            .into_iter()
            .filter_map(|p| {
                let id = uuid_of(p.id)?;
                let pb::vectors_output::VectorsOptions::Vectors(mut named) = p.vectors?.vectors_options? else {
                    return None;
                };
                match named.vectors.remove(SPARSE_VECTOR)?.into_vector() {
                    pb::vector_output::Vector::Sparse(s) => {
                        Some((id, SparseVector { indices: s.indices, values: s.values }))
                    }
                    _ => None,
                }
            })
            .collect())
    }

    fn payload_indexes(&self, collection: &str) -> Result<Vec<(String, IndexKind)>> {
        validate_collection_name(collection)?;
        let info = self.info(collection)?.ok_or_else(|| self.missing(collection))?;
        let mut out: Vec<(String, IndexKind)> = info
            .payload_schema
            .iter()
            .filter_map(|(field, schema)| index_kind_of(schema.data_type).map(|k| (field.clone(), k)))
            .collect();
        out.sort();
        Ok(out)
    }

    fn find_keys(&self, collection: &str, field: &str, keys: &[String]) -> Result<HashMap<String, Uuid>> {
        validate_collection_name(collection)?;
        let mut found = HashMap::new();
        if keys.is_empty() {
            return Ok(found);
        }
        let filter = pb::Filter {
            must: vec![pb::Condition {
                condition_one_of: Some(ConditionOneOf::Field(pb::FieldCondition {
                    key: field.to_string(),
                    r#match: Some(pb::Match {
                        match_value: Some(MatchValue::Keywords(pb::RepeatedStrings { strings: keys.to_vec() })),
                    }),
                    ..Default::default()
                })),
            }],
            ..Default::default()
        };
        let mut offset = None;
        loop {
            let page = self.scroll_page(collection, Some(&filter), only_field(field), offset)?;
            for p in page.result {
                let key = p.payload.get(field).cloned().map(from_pb_value);
                if let (Some(Value::String(key)), Some(id)) = (key, uuid_of(p.id)) {
                    found.entry(key).or_insert(id);
                }
            }
            match page.next_page_offset {
                Some(next) if found.len() < keys.len() => offset = Some(next),
                _ => return Ok(found),
            }
        }
    }

    fn vectors(&self, collection: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<f32>>> {
        let no_payload = pb::WithPayloadSelector {
            selector_options: Some(pb::with_payload_selector::SelectorOptions::Enable(false)),
        };
        Ok(self
            .get_points(collection, ids, no_payload, true)?
            .into_iter()
            .filter_map(|p| Some((uuid_of(p.id)?, dense_output(p.vectors?)?)))
            .collect())
    }

    fn scroll_ids(&self, collection: &str, filter: &[Condition]) -> Result<Vec<Uuid>> {
        validate_collection_name(collection)?;
        let filter = pb_filter(filter)?;
        let no_payload = pb::WithPayloadSelector {
            selector_options: Some(pb::with_payload_selector::SelectorOptions::Enable(false)),
        };
        let (mut ids, mut offset) = (Vec::new(), None);
        loop {
            let page = self.scroll_page(collection, filter.as_ref(), no_payload.clone(), offset)?;
            ids.extend(page.result.into_iter().filter_map(|p| uuid_of(p.id)));
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(ids),
            }
        }
    }

    fn scan(
        &self,
        collection: &str,
        filter: &[Condition],
        fields: &[String],
        vectors: bool,
        page: &mut dyn FnMut(Vec<ScannedPoint>) -> Result<()>,
    ) -> Result<()> {
        validate_collection_name(collection)?;
        let filter = pb_filter(filter)?;
        let payload = pb::WithPayloadSelector {
            selector_options: Some(pb::with_payload_selector::SelectorOptions::Include(pb::PayloadIncludeSelector {
                fields: fields.to_vec(),
            })),
        };
        let mut offset = None;
        loop {
            let req = pb::ScrollPoints {
                collection_name: collection.to_string(),
                filter: filter.clone(),
                offset,
                limit: Some(SCROLL_PAGE as u32),
                with_payload: Some(payload.clone()),
                with_vectors: Some(pb::WithVectorsSelector {
                    selector_options: Some(pb::with_vectors_selector::SelectorOptions::Enable(vectors)),
                }),
                ..Default::default()
            };
            let resp = self.call("scroll", collection, |c| {
                let req = req.clone();
                async move { c.scroll(req).await }
            })?;
            page(
                resp.result
                    .into_iter()
                    .filter_map(|p| {
                        let id = uuid_of(p.id)?;
                        let vector = p.vectors.and_then(dense_output);
                        Some(ScannedPoint { id, payload: from_pb_payload(p.payload), vector })
                    })
                    .collect(),
            )?;
            match resp.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(()),
            }
        }
    }

    fn set_payload(&self, collection: &str, ids: &[Uuid], payload: &Map<String, Value>) -> Result<()> {
        validate_collection_name(collection)?;
        if ids.is_empty() {
            return Ok(());
        }
        let req = pb::SetPayloadPoints {
            collection_name: collection.to_string(),
            wait: Some(true),
            payload: to_pb_payload(payload.clone()),
            points_selector: Some(pb::PointsSelector {
                points_selector_one_of: Some(pb::points_selector::PointsSelectorOneOf::Points(pb::PointsIdsList {
                    ids: ids.iter().map(pb_id).collect(),
                })),
            }),
            ..Default::default()
        };
        self.call("set_payload", collection, |c| {
            let req = req.clone();
            async move { c.set_payload(req).await }
        })?;
        Ok(())
    }

    fn create_payload_index(&self, collection: &str, field: &str, kind: IndexKind) -> Result<()> {
        validate_collection_name(collection)?;
        let info = self.info(collection)?.ok_or_else(|| self.missing(collection))?;
        let spec = CollectionSpec {
            name: collection.to_string(),
            dim: 0,
            distance: Distance::Cosine,
            payload_indexes: vec![(field.to_string(), kind)],
            model: None,
            options: CollectionOptions::default(),
        };
        self.ensure_indexes(&spec, &info.payload_schema)
    }

    fn delete(&self, collection: &str, ids: &[Uuid]) -> Result<u64> {
        validate_collection_name(collection)?;
        if ids.is_empty() {
            return Ok(0);
        }
        let req = pb::DeletePoints {
            collection_name: collection.to_string(),
            wait: Some(true),
            points: Some(pb::PointsSelector {
                points_selector_one_of: Some(pb::points_selector::PointsSelectorOneOf::Points(pb::PointsIdsList {
                    ids: ids.iter().map(pb_id).collect(),
                })),
            }),
            ..Default::default()
        };
        self.call("delete_points", collection, |c| {
            let req = req.clone();
            async move { c.delete_points(req).await }
        })?;
        Ok(ids.len() as u64)
    }

    fn existing(&self, collection: &str, ids: &[Uuid], field: &str) -> Result<HashMap<Uuid, Option<String>>> {
        Ok(self
            .get_points(collection, ids, only_field(field), false)?
            .into_iter()
            .filter_map(|mut p| {
                let key = p.payload.remove(field).map(from_pb_value).and_then(|v| v.as_str().map(str::to_string));
                Some((uuid_of(p.id)?, key))
            })
            .collect())
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
