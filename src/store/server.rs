//! Qdrant server over gRPC (qdrant-client).
//!
//! The store owns a small tokio runtime and exposes synchronous methods. Every request goes through
//! one retry loop: transient failures (the server is unreachable, restarting, overloaded or slow:
//! gRPC `Unavailable`, `DeadlineExceeded`, `ResourceExhausted`, and connection errors) are retried
//! with exponential backoff; when the attempts run out the error is `StoreUnavailable`, naming the
//! URL and the collection. Any other error is the server's answer (`Store`), not retried.
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

/// Qdrant's default HNSW `m`; what bulk mode restores when it cannot know the original value (see
/// [`ServerStore::set_bulk_mode`]).
pub const DEFAULT_HNSW_M: u64 = 16;

/// Collection metadata key that holds the HNSW `m` to restore after a bulk load. It is written in
/// the same request that sets `m=0` and cleared by the restore, so any process (another Airflow
/// task, another worker) can end a bulk load that one process began.
pub const BULK_M_KEY: &str = "vdb_core_bulk_original_m";

/// Per-request timeout. Generous: an upsert of a large batch with `wait=true` on a busy server may
/// take a while; a dead connection is detected by the connect timeout and transport errors instead.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Upper bound for one backoff pause.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Retry settings for requests other than upsert (upsert takes them from [`LoadOptions`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// First backoff delay; doubles per retry (capped at 30 s).
    pub base_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        let d = LoadOptions::default();
        RetryPolicy { max_retries: d.max_retries, base_ms: d.retry_base_ms }
    }
}

impl From<&LoadOptions> for RetryPolicy {
    fn from(o: &LoadOptions) -> Self {
        RetryPolicy { max_retries: o.max_retries, base_ms: o.retry_base_ms }
    }
}

pub struct ServerStore {
    url: String,
    client: Qdrant,
    retry: RetryPolicy,
    /// HNSW `m` of each collection before `set_bulk_mode(true)`, restored by `set_bulk_mode(false)`.
    saved_m: Mutex<HashMap<String, u64>>,
    /// Vector size per collection, learnt once, so upsert can check sizes before sending.
    /// (vector size, shard count) per collection, learnt once: upsert checks sizes before sending
    /// and keeps at least one request in flight per shard.
    dims: Mutex<HashMap<String, (usize, usize)>>,
    // Last, so in-flight work is dropped with the client first.
    rt: tokio::runtime::Runtime,
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

    /// The collection's vector size and shard count (cached after the first look-up).
    fn layout(&self, policy: RetryPolicy, collection: &str) -> Result<(usize, usize)> {
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
        self.dims.lock().insert(collection.to_string(), (dim, shards));
        Ok((dim, shards))
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
            metadata: spec
                .model
                .iter()
                .map(|m| (MODEL_KEY.to_string(), to_pb_value(Value::String(m.clone()))))
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

    /// Sets HNSW `m`, and in the same request records (`Some`) or clears (`None`) the `m` to
    /// restore after a bulk load in the collection's metadata.
    fn set_hnsw_m(&self, collection: &str, m: u64, bulk_original: Option<u64>) -> Result<()> {
        let value = to_pb_value(bulk_original.map_or(Value::Null, Value::from));
        let req = pb::UpdateCollection {
            collection_name: collection.to_string(),
            hnsw_config: Some(pb::HnswConfigDiff { m: Some(m), ..Default::default() }),
            metadata: [(BULK_M_KEY.to_string(), value)].into(),
            ..Default::default()
        };
        self.call("update_collection", collection, |c| {
            let req = req.clone();
            async move { c.update_collection(req).await }
        })?;
        Ok(())
    }
}

impl ServerStore {
    /// Sets one key of the collection's metadata.
    fn set_metadata(&self, collection: &str, key: &str, value: Value) -> Result<()> {
        let req = pb::UpdateCollection {
            collection_name: collection.to_string(),
            metadata: [(key.to_string(), to_pb_value(value))].into(),
            ..Default::default()
        };
        self.call("update_collection", collection, |c| {
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
            limit: Some(SCROLL_PAGE),
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

/// Points per page when scrolling for keys.
const SCROLL_PAGE: u32 = 1024;

/// A payload selector returning only `field`.
fn only_field(field: &str) -> pb::WithPayloadSelector {
    pb::WithPayloadSelector {
        selector_options: Some(pb::with_payload_selector::SelectorOptions::Include(pb::PayloadIncludeSelector {
            fields: vec![field.to_string()],
        })),
    }
}

/// The model a collection's metadata records ([`MODEL_KEY`]).
fn recorded_model(info: &pb::CollectionInfo) -> Option<String> {
    let v = info.config.as_ref()?.metadata.get(MODEL_KEY)?.clone();
    from_pb_value(v).as_str().map(str::to_string)
}

fn uuid_of(id: Option<pb::PointId>) -> Option<Uuid> {
    match id?.point_id_options? {
        PointIdOptions::Uuid(s) => Uuid::parse_str(&s).ok(),
        PointIdOptions::Num(_) => None,
    }
}

/// What a request is about, for error messages.
struct Ctx<'a> {
    url: &'a str,
    collection: &'a str,
    what: &'a str,
}

/// Whether an error is worth retrying, and the server's requested pause if it gave one.
fn transient(err: &QdrantError) -> Option<Option<Duration>> {
    match err {
        QdrantError::ResourceExhaustedError { retry_after_seconds, .. } => {
            Some(Some(Duration::from_secs(*retry_after_seconds)))
        }
        QdrantError::ResponseError { status } => {
            let msg = status.message().to_ascii_lowercase();
            let connection_trouble =
                ["failed to connect", "transport error", "connection", "broken pipe", "h2 protocol"]
                    .iter()
                    .any(|s| msg.contains(s));
            match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => Some(None),
                // qdrant-client reports a failed connect as Internal("Failed to connect to ...");
                // a connection dropped mid-request surfaces as Unknown/Cancelled transport errors.
                Code::Internal | Code::Unknown | Code::Cancelled if connection_trouble => Some(None),
                _ => None,
            }
        }
        QdrantError::Io(_) => Some(None),
        _ => None,
    }
}

fn describe_err(err: &QdrantError) -> String {
    match err {
        QdrantError::ResponseError { status } | QdrantError::ResourceExhaustedError { status, .. } => {
            format!("{:?}: {}", status.code(), status.message())
        }
        other => other.to_string(),
    }
}

/// Backoff before retry number `retry` (0-based): base * 2^retry, capped, with up to 25% jitter so
/// parallel requests do not retry in lockstep.
fn backoff(base_ms: u64, retry: u32) -> Duration {
    let exp = base_ms.saturating_mul(1u64 << retry.min(20));
    let capped = Duration::from_millis(exp).min(MAX_BACKOFF);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let jitter = capped.mul_f64((nanos % 1000) as f64 / 4000.0);
    capped + jitter
}

async fn with_retry<T, F, Fut>(ctx: &Ctx<'_>, policy: RetryPolicy, f: F) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, QdrantError>>,
{
    let start = Instant::now();
    let mut retry = 0u32;
    loop {
        let err = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let Some(server_pause) = transient(&err) else {
            let auth = matches!(
                &err,
                QdrantError::ResponseError { status } if matches!(status.code(), Code::Unauthenticated | Code::PermissionDenied)
            );
            let hint = if auth {
                " (authentication: the API key is missing or wrong; set QDRANT_API_KEY, the CLI's --api-key, or the \
                 password of the Airflow connection)"
            } else {
                ""
            };
            return Err(VdbError::new(
                ErrorKind::Store,
                format!(
                    "Qdrant at {} rejected {} on collection '{}': {}{hint}",
                    ctx.url,
                    ctx.what,
                    ctx.collection,
                    describe_err(&err)
                ),
            ));
        };
        if retry >= policy.max_retries {
            return Err(VdbError::new(
                ErrorKind::StoreUnavailable,
                format!(
                    "Qdrant at {} is unavailable for collection '{}': {} failed after {} attempts over {:.1}s; last error: {}",
                    ctx.url,
                    ctx.collection,
                    ctx.what,
                    retry + 1,
                    start.elapsed().as_secs_f64(),
                    describe_err(&err)
                ),
            ));
        }
        let pause = backoff(policy.base_ms, retry).max(server_pause.unwrap_or_default().min(MAX_BACKOFF));
        log::warn!(
            "Qdrant at {}: {} on collection '{}' failed ({}); retry {}/{} in {:.1}s",
            ctx.url,
            ctx.what,
            ctx.collection,
            describe_err(&err),
            retry + 1,
            policy.max_retries,
            pause.as_secs_f64()
        );
        tokio::time::sleep(pause).await;
        retry += 1;
    }
}

fn pb_distance(d: Distance) -> pb::Distance {
    match d {
        Distance::Cosine => pb::Distance::Cosine,
        Distance::Dot => pb::Distance::Dot,
        Distance::Euclid => pb::Distance::Euclid,
    }
}

fn from_pb_distance(d: i32) -> Option<Distance> {
    match pb::Distance::try_from(d).ok()? {
        pb::Distance::Cosine => Some(Distance::Cosine),
        pb::Distance::Dot => Some(Distance::Dot),
        pb::Distance::Euclid => Some(Distance::Euclid),
        _ => None,
    }
}

fn pb_field_type(kind: IndexKind) -> pb::FieldType {
    match kind {
        IndexKind::Keyword => pb::FieldType::Keyword,
        IndexKind::Integer => pb::FieldType::Integer,
        IndexKind::Float => pb::FieldType::Float,
        IndexKind::Datetime => pb::FieldType::Datetime,
    }
}

/// JSON payload value to Qdrant's protobuf value.
pub fn to_pb_value(v: Value) -> pb::Value {
    let kind = match v {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Kind::StringValue(s),
        Value::Array(a) => Kind::ListValue(pb::ListValue { values: a.into_iter().map(to_pb_value).collect() }),
        Value::Object(o) => Kind::StructValue(pb::Struct { fields: to_pb_payload(o) }),
    };
    pb::Value { kind: Some(kind) }
}

pub fn to_pb_payload(m: Map<String, Value>) -> HashMap<String, pb::Value> {
    m.into_iter().map(|(k, v)| (k, to_pb_value(v))).collect()
}

/// Qdrant's protobuf value back to JSON.
pub fn from_pb_value(v: pb::Value) -> Value {
    match v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::IntegerValue(i)) => Value::from(i),
        Some(Kind::DoubleValue(d)) => serde_json::Number::from_f64(d).map(Value::Number).unwrap_or(Value::Null),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.into_iter().map(from_pb_value).collect()),
        Some(Kind::StructValue(s)) => Value::Object(from_pb_payload(s.fields)),
    }
}

/// Payload map back to JSON, keys sorted (protobuf maps have no order).
pub fn from_pb_payload(m: HashMap<String, pb::Value>) -> Map<String, Value> {
    let mut entries: Vec<_> = m.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(k, v)| (k, from_pb_value(v))).collect()
}

fn pb_id(id: &Uuid) -> pb::PointId {
    pb::PointId { point_id_options: Some(PointIdOptions::Uuid(id.hyphenated().to_string())) }
}

fn id_string(id: Option<pb::PointId>) -> String {
    match id.and_then(|i| i.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => s,
        Some(PointIdOptions::Num(n)) => n.to_string(),
        None => String::new(),
    }
}

fn pb_filter(filter: &[Condition]) -> Result<Option<pb::Filter>> {
    if filter.is_empty() {
        return Ok(None);
    }
    validate_conditions(filter)?;
    let must = filter
        .iter()
        .map(|c| {
            let field = match c {
                Condition::Equals { field, value } => {
                    // Built explicitly: the client's From<String> would turn a value with spaces
                    // into a full-text match.
                    let mv = match value {
                        Value::String(s) => MatchValue::Keyword(s.clone()),
                        Value::Bool(b) => MatchValue::Boolean(*b),
                        other => MatchValue::Integer(other.as_i64().unwrap_or_default()),
                    };
                    pb::FieldCondition {
                        key: field.clone(),
                        r#match: Some(pb::Match { match_value: Some(mv) }),
                        ..Default::default()
                    }
                }
                Condition::Range { field, gte, lte } => pb::FieldCondition {
                    key: field.clone(),
                    range: Some(pb::Range { gte: *gte, lte: *lte, ..Default::default() }),
                    ..Default::default()
                },
                Condition::Qdrant { filter } => {
                    return Ok(pb::Condition {
                        condition_one_of: Some(ConditionOneOf::Filter(super::filter::to_pb(filter)?)),
                    })
                }
            };
            Ok(pb::Condition { condition_one_of: Some(ConditionOneOf::Field(field)) })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some(pb::Filter { must, ..Default::default() }))
}

fn with_payload() -> pb::WithPayloadSelector {
    pb::WithPayloadSelector { selector_options: Some(pb::with_payload_selector::SelectorOptions::Enable(true)) }
}

/// (size, distance) of an unnamed-vector collection, or a description of what it has instead.
fn vector_params(info: &pb::CollectionInfo) -> std::result::Result<(usize, Distance), String> {
    let cfg = info
        .config
        .as_ref()
        .and_then(|c| c.params.as_ref())
        .and_then(|p| p.vectors_config.as_ref())
        .and_then(|v| v.config.as_ref());
    match cfg {
        Some(VectorsConfigKind::Params(p)) => match from_pb_distance(p.distance) {
            Some(d) => Ok((p.size as usize, d)),
            None => Err(format!("size {} / distance #{}", p.size, p.distance)),
        },
        Some(VectorsConfigKind::ParamsMap(m)) => {
            let mut names: Vec<&String> = m.map.keys().collect();
            names.sort();
            Err(format!("named vectors {names:?} instead of one unnamed vector"))
        }
        None => Err("no vector configuration".to_string()),
    }
}

fn current_m(info: &pb::CollectionInfo) -> Option<u64> {
    info.config.as_ref()?.hnsw_config.as_ref()?.m
}

/// The `m` a bulk load recorded in the collection's metadata (absent or null: none).
fn recorded_m(info: &pb::CollectionInfo) -> Option<u64> {
    let v = info.config.as_ref()?.metadata.get(BULK_M_KEY)?.clone();
    from_pb_value(v).as_f64().filter(|m| *m >= 1.0).map(|m| m as u64)
}

impl VectorStore for ServerStore {
    fn describe(&self) -> String {
        format!("qdrant server {}", self.url)
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
                        model_mismatch(recorded_model(&info).as_deref(), spec).err()
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
        let name = self.resolve(collection)?;
        self.physical_exists(self.retry, &name)
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
        let (dim, shards) = self.layout(policy, collection)?;
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
                        vectors: Some(pb::Vectors::from(p.vector)),
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

    /// Bulk mode follows Qdrant's bulk-upload advice: HNSW `m=0` while loading (no graph is built
    /// while points stream in; payload indexes still are), then the original `m` back, after which
    /// the server builds the graph once over all points.
    ///
    /// The original `m` is recorded in the collection's metadata ([`BULK_M_KEY`], same request
    /// as `m=0`), so a restore from another process gets it back; this store also keeps it in
    /// memory. If it cannot be known (a server without collection metadata, older than Qdrant
    /// 1.16, and a crashed run left `m=0`), Qdrant's default 16 is restored: collections made by
    /// `ensure_collection` use the default.
    fn set_bulk_mode(&self, collection: &str, bulk: bool) -> Result<()> {
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

    fn count(&self, collection: &str) -> Result<u64> {
        validate_collection_name(collection)?;
        let req = pb::CountPoints { collection_name: collection.to_string(), exact: Some(true), ..Default::default() };
        let resp = self.call("count", collection, |c| {
            let req = req.clone();
            async move { c.count(req).await }
        })?;
        Ok(resp.result.map(|r| r.count).unwrap_or(0))
    }

    fn search_with(
        &self,
        collection: &str,
        vector: &[f32],
        limit: usize,
        filter: &[Condition],
        params: &SearchParams,
    ) -> Result<Vec<Hit>> {
        validate_collection_name(collection)?;
        let filter = pb_filter(filter)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let req = pb::QueryPoints {
            collection_name: collection.to_string(),
            query: Some(pb::Query::new_nearest(vector.to_vec())),
            filter,
            limit: Some(limit as u64),
            with_payload: Some(with_payload()),
            params: (*params != SearchParams::default()).then(|| pb::SearchParams {
                hnsw_ef: params.hnsw_ef,
                exact: Some(params.exact),
                ..Default::default()
            }),
            ..Default::default()
        };
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
            .filter_map(|p| {
                let id = uuid_of(p.id)?;
                let out = match p.vectors?.vectors_options? {
                    pb::vectors_output::VectorsOptions::Vector(v) => v,
                    pb::vectors_output::VectorsOptions::Vectors(mut named) => named.vectors.remove("")?,
                };
                match out.into_vector() {
                    pb::vector_output::Vector::Dense(d) => Some((id, d.data)),
                    _ => None,
                }
            })
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
    use serde_json::json;

    #[test]
    fn payload_round_trip() {
        let v = json!({"a": 1, "b": -2.5, "c": "x y", "d": [true, null], "e": {"f": 9007199254740993u64}});
        let Value::Object(m) = v.clone() else { unreachable!() };
        let back = from_pb_payload(to_pb_payload(m));
        assert_eq!(back["a"], json!(1));
        assert_eq!(back["b"], json!(-2.5));
        assert_eq!(back["c"], json!("x y"));
        assert_eq!(back["d"], json!([true, null]));
        assert!(back["e"]["f"].is_number());
    }

    #[test]
    fn transient_classification() {
        let t = |s: tonic::Status| transient(&QdrantError::ResponseError { status: s }).is_some();
        assert!(t(tonic::Status::unavailable("down")));
        assert!(t(tonic::Status::deadline_exceeded("slow")));
        assert!(t(tonic::Status::resource_exhausted("busy")));
        assert!(t(tonic::Status::internal("Failed to connect to http://127.0.0.1:1/: ...")));
        assert!(!t(tonic::Status::internal("segment corrupted")));
        assert!(!t(tonic::Status::invalid_argument("Wrong input: vector dimension")));
        assert!(!t(tonic::Status::not_found("Collection `x` doesn't exist!")));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let a = backoff(100, 0);
        let b = backoff(100, 3);
        assert!(a >= Duration::from_millis(100) && a <= Duration::from_millis(125));
        assert!(b >= Duration::from_millis(800) && b <= Duration::from_millis(1000));
        assert!(backoff(100, 30) <= MAX_BACKOFF + MAX_BACKOFF / 4);
    }

    #[test]
    fn bad_urls_are_config_errors() {
        for url in ["localhost:6334", "ftp://x:1", "not a url"] {
            let err = ServerStore::connect(url, None).err().expect(url);
            assert_eq!(err.kind, ErrorKind::InvalidConfig, "{url}");
        }
        assert!(ServerStore::connect("http://127.0.0.1:6334", Some("key")).is_ok());
    }
}
