//! A Qdrant gRPC server for tests, on top of qdrant-edge (the real Qdrant engine, in-process).
//!
//! Test code only: vdb_core's Rust tests and benchmarks use this library (a dev-dependency), and
//! the binary `qdrant_test_server` (`src/main.rs`) serves it to the Python end-to-end tests. It is
//! never part of vdb_core's library or wheel.
//!
//! It speaks the same protocol as a Qdrant server (qdrant-client's generated server traits), for the
//! subset a loader and its tests use: health check; collections create / get / list / delete /
//! update (HNSW and optimiser settings) / exists; aliases (create, move, rename, delete, list,
//! resolved by every collection and point operation except `exists`, as in Qdrant); points upsert / delete / get / count / search /
//! query (nearest or scroll-like) / scroll / create and delete field index. Filters support
//! must / should / must_not, match (keyword, integer, bool, any, except, text), range, is_empty,
//! is_null, has_id and nested filters. Everything else answers `Unimplemented`.
//!
//! Differences from a real server, deliberately kept: a single local shard per collection; updates
//! are applied synchronously (every upsert behaves like `wait=true`); no background optimiser (search
//! is exact over plain segments). Collections persist under the storage directory
//! (`<storage>/collections/<name>/`, aliases in `<storage>/aliases.json`), so a server restarted on
//! the same directory finds them again.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use qdrant_client::qdrant as pb;
use qdrant_client::qdrant::collections_server::{Collections, CollectionsServer};
use qdrant_client::qdrant::points_server::{Points, PointsServer};
use qdrant_client::qdrant::qdrant_server::{Qdrant as QdrantService, QdrantServer};
use qdrant_edge as qe;
use serde_json::{json, Map, Value};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

pub const SERVER_VERSION: &str = "1.16.0";

// ---------------------------------------------------------------------------------------------
// Running the server

/// A server running on its own thread and tokio runtime. Dropping it (or [`TestServer::stop`])
/// shuts it down gracefully and closes every shard (flushing it) before returning.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Bind `addr` (port 0 picks a free port) and serve collections stored under `storage`.
    /// Returns once the socket is listening.
    pub fn start(addr: SocketAddr, storage: &Path) -> std::io::Result<TestServer> {
        Self::start_with_key(addr, storage, None)
    }

    /// [`TestServer::start`], answering only requests that carry `api_key` (Qdrant's `api-key`
    /// header) when one is given, as a Qdrant server with `service.api_key` set does.
    pub fn start_with_key(addr: SocketAddr, storage: &Path, api_key: Option<String>) -> std::io::Result<TestServer> {
        let engine = Arc::new(Engine::open(storage)?);
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name(format!("qdrant-test-{}", addr.port())).spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("test server runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let _ = serve(listener, engine, api_key, async {
                    let _ = rx.await;
                })
                .await;
            });
        })?;
        Ok(TestServer { addr, shutdown: Some(tx), thread: Some(thread) })
    }

    /// `http://127.0.0.1:PORT`, the URL a client connects to.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// Serve the Qdrant services on `listener` until `shutdown` completes. The engine (and its shards)
/// is dropped when this returns, unless the caller keeps another reference.
pub async fn serve(
    listener: tokio::net::TcpListener,
    engine: Arc<Engine>,
    api_key: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let svc = Service { engine };
    // Qdrant's API key check: the `api-key` header (or `authorization: Bearer KEY`) must match.
    let check = move |req: Request<()>| -> Result<Request<()>, Status> {
        let Some(key) = api_key.as_deref() else { return Ok(req) };
        let md = req.metadata();
        let given = md.get("api-key").and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| {
            md.get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_string)
        });
        match given {
            Some(g) if g == key => Ok(req),
            Some(_) => Err(Status::permission_denied("Invalid API key or JWT")),
            None => Err(Status::unauthenticated("Must provide an API key or an Authorization bearer token")),
        }
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    // Graceful shutdown waits for clients to close their connections, which a client that stays
    // alive (a store object in a test) never does: give in-flight requests a moment, then stop.
    let stopping = Arc::new(tokio::sync::Notify::new());
    let signal = {
        let stopping = stopping.clone();
        async move {
            shutdown.await;
            stopping.notify_one();
        }
    };
    let server = tonic::transport::Server::builder()
        .add_service(InterceptedService::new(QdrantServer::new(svc.clone()), check.clone()))
        .add_service(InterceptedService::new(
            CollectionsServer::new(svc.clone()).max_decoding_message_size(usize::MAX),
            check.clone(),
        ))
        .add_service(InterceptedService::new(
            PointsServer::new(svc).max_decoding_message_size(usize::MAX).max_encoding_message_size(usize::MAX),
            check,
        ))
        .serve_with_incoming_shutdown(incoming, signal);
    tokio::select! {
        r = server => r,
        _ = async {
            stopping.notified().await;
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        } => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// Engine: collections of qdrant-edge shards

pub struct Engine {
    dir: PathBuf,
    collections: RwLock<HashMap<String, Arc<Coll>>>,
    /// alias -> collection, persisted in `<storage>/aliases.json`.
    aliases: RwLock<BTreeMap<String, String>>,
    aliases_file: PathBuf,
}

struct Coll {
    dir: PathBuf,
    /// Read lock for every operation (qdrant-edge synchronises updates internally); write lock to
    /// close the shard on delete. `None` once deleted.
    shard: RwLock<Option<qe::EdgeShard>>,
    /// Serialises read-merge-write of the collection's metadata (`<dir>/metadata.json`).
    metadata: Mutex<()>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Close shards (their drop flushes) deterministically.
        let colls: Vec<Arc<Coll>> = self.collections.write().unwrap().drain().map(|(_, c)| c).collect();
        for c in colls {
            c.shard.write().unwrap().take();
        }
    }
}

impl Engine {
    /// Open `storage`, loading the collections found in `<storage>/collections/`.
    pub fn open(storage: &Path) -> std::io::Result<Engine> {
        let dir = storage.join("collections");
        std::fs::create_dir_all(&dir)?;
        let mut collections = HashMap::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if !path.join("edge_config.json").is_file() {
                continue;
            }
            let shard = qe::EdgeShard::load(&path, None)
                .map_err(|e| std::io::Error::other(format!("cannot load collection {}: {e}", path.display())))?;
            collections
                .insert(name, Arc::new(Coll { dir: path, shard: RwLock::new(Some(shard)), metadata: Mutex::new(()) }));
        }
        let aliases_file = storage.join("aliases.json");
        let aliases = match std::fs::read(&aliases_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Engine { dir, collections: RwLock::new(collections), aliases: RwLock::new(aliases), aliases_file })
    }

    /// A collection by its name or by an alias of it.
    fn get(&self, name: &str) -> Result<Arc<Coll>, Status> {
        let colls = self.collections.read().unwrap();
        if let Some(c) = colls.get(name) {
            return Ok(c.clone());
        }
        let target = self.aliases.read().unwrap().get(name).cloned();
        target.and_then(|t| colls.get(&t).cloned()).ok_or_else(|| not_found(name))
    }

    fn save_aliases(&self, aliases: &BTreeMap<String, String>) -> Result<(), Status> {
        let tmp = self.aliases_file.with_extension("json.tmp");
        let bytes = serde_json::to_vec(aliases).map_err(|e| Status::internal(e.to_string()))?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.aliases_file))
            .map_err(|e| Status::internal(e.to_string()))
    }
}

fn not_found(name: &str) -> Status {
    Status::not_found(format!("Not found: Collection `{name}` doesn't exist!"))
}

fn check_name(name: &str) -> Result<(), Status> {
    let ok = !name.is_empty() && name.len() <= 255 && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!("Wrong input: invalid collection name {name:?}")))
    }
}

impl Coll {
    fn read_metadata(&self) -> Map<String, Value> {
        std::fs::read(self.dir.join("metadata.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The collection's metadata (Qdrant >= 1.16), kept beside the shard so it survives restarts.
    fn metadata(&self) -> HashMap<String, pb::Value> {
        let _g = self.metadata.lock().unwrap();
        to_pb_payload(self.read_metadata())
    }

    /// Merges `new` into the stored metadata, as Qdrant does.
    fn merge_metadata(&self, new: HashMap<String, pb::Value>) -> Result<(), Status> {
        if new.is_empty() {
            return Ok(());
        }
        let _g = self.metadata.lock().unwrap();
        let mut m = self.read_metadata();
        for (k, v) in new {
            m.insert(k, from_pb_value(v));
        }
        std::fs::write(self.dir.join("metadata.json"), serde_json::to_vec(&m).unwrap())
            .map_err(|e| Status::internal(format!("cannot write collection metadata: {e}")))
    }

    /// Shard number, replication and write consistency factors given at creation
    /// (`<dir>/cluster.json`).
    fn cluster(&self) -> Map<String, Value> {
        std::fs::read(self.dir.join("cluster.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Run `f` on the shard on a blocking thread.
    async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        name: &str,
        f: impl FnOnce(&qe::EdgeShard) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let this = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let guard = this.shard.read().unwrap();
            match guard.as_ref() {
                Some(shard) => f(shard),
                None => Err(not_found(&name)),
            }
        })
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
    }
}

fn op_err(e: qe::OperationError) -> Status {
    use qe::OperationError as E;
    match e {
        E::WrongVectorDimension { .. }
        | E::VectorNameNotExists { .. }
        | E::PointIdError { .. }
        | E::TypeError { .. }
        | E::TypeInferenceError { .. }
        | E::ValidationError { .. }
        | E::WrongSparse
        | E::WrongMulti => Status::invalid_argument(format!("Wrong input: {e}")),
        other => Status::internal(format!("Service internal error: {other}")),
    }
}

fn done<T>(v: T) -> Result<Response<T>, Status> {
    Ok(Response::new(v))
}

fn elapsed(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// Conversions

fn edge_id(id: &pb::PointId) -> Result<qe::PointId, Status> {
    use pb::point_id::PointIdOptions;
    match &id.point_id_options {
        Some(PointIdOptions::Num(n)) => Ok(qe::PointId::NumId(*n)),
        Some(PointIdOptions::Uuid(s)) => qe::external::uuid::Uuid::parse_str(s)
            .map(qe::PointId::Uuid)
            .map_err(|e| Status::invalid_argument(format!("Wrong input: bad point id {s:?}: {e}"))),
        None => Err(Status::invalid_argument("Wrong input: point id is missing")),
    }
}

fn pb_id(id: &qe::PointId) -> pb::PointId {
    use pb::point_id::PointIdOptions;
    let opt = match id {
        qe::PointId::NumId(n) => PointIdOptions::Num(*n),
        qe::PointId::Uuid(u) => PointIdOptions::Uuid(u.hyphenated().to_string()),
    };
    pb::PointId { point_id_options: Some(opt) }
}

fn id_json(id: &pb::PointId) -> Result<Value, Status> {
    Ok(match edge_id(id)? {
        qe::PointId::NumId(n) => json!(n),
        qe::PointId::Uuid(u) => json!(u.hyphenated().to_string()),
    })
}

/// The dense vector of an upserted point (unnamed vector, or the "" entry of named vectors).
#[allow(deprecated)]
fn dense_vector(v: Option<pb::Vectors>) -> Result<Vec<f32>, Status> {
    use pb::vectors::VectorsOptions;
    let vector = match v.and_then(|v| v.vectors_options) {
        Some(VectorsOptions::Vector(v)) => v,
        Some(VectorsOptions::Vectors(mut named)) => named.vectors.remove("").ok_or_else(|| {
            Status::invalid_argument("Wrong input: this test server supports only the unnamed vector")
        })?,
        None => return Err(Status::invalid_argument("Wrong input: point has no vector")),
    };
    match vector.vector {
        Some(pb::vector::Vector::Dense(d)) => Ok(d.data),
        Some(_) => Err(Status::invalid_argument("Wrong input: only dense vectors are supported")),
        None => Ok(vector.data),
    }
}

#[allow(deprecated)]
fn pb_vectors(v: Option<qe::VectorStructInternal>) -> Option<pb::VectorsOutput> {
    use qe::{VectorInternal, VectorStructInternal};
    let dense = match v? {
        VectorStructInternal::Single(d) => d,
        VectorStructInternal::Named(mut m) => match m.remove("")? {
            VectorInternal::Dense(d) => d,
            _ => return None,
        },
        _ => return None,
    };
    Some(pb::VectorsOutput {
        vectors_options: Some(pb::vectors_output::VectorsOptions::Vector(pb::VectorOutput {
            // Both the current field and the pre-1.16 one, so older clients read it too.
            data: dense.clone(),
            vector: Some(pb::vector_output::Vector::Dense(pb::DenseVector { data: dense })),
            ..Default::default()
        })),
    })
}

fn with_payload(sel: Option<&pb::WithPayloadSelector>) -> Result<qe::WithPayloadInterface, Status> {
    use pb::with_payload_selector::SelectorOptions;
    match sel.and_then(|s| s.selector_options.as_ref()) {
        None => Ok(qe::WithPayloadInterface::Bool(false)),
        Some(SelectorOptions::Enable(b)) => Ok(qe::WithPayloadInterface::Bool(*b)),
        Some(SelectorOptions::Include(inc)) => {
            let paths = inc.fields.iter().map(|f| json_path(f)).collect::<Result<Vec<_>, _>>()?;
            Ok(qe::WithPayloadInterface::Fields(paths))
        }
        Some(SelectorOptions::Exclude(_)) => Err(Status::unimplemented("payload exclude selectors")),
    }
}

// The test server's own JSON <-> protobuf value conversions: written apart from the product's
// (src/store/server.rs), so a bug in one cannot cancel out in the tests.

/// A protobuf payload value from JSON.
fn to_value(v: &Value) -> pb::Value {
    use pb::value::Kind as K;
    let kind = if v.is_null() {
        K::NullValue(0)
    } else if let Some(b) = v.as_bool() {
        K::BoolValue(b)
    } else if let Some(i) = v.as_i64() {
        K::IntegerValue(i)
    } else if let Some(f) = v.as_f64() {
        K::DoubleValue(f)
    } else if let Some(s) = v.as_str() {
        K::StringValue(s.to_owned())
    } else if let Some(items) = v.as_array() {
        K::ListValue(pb::ListValue { values: items.iter().map(to_value).collect() })
    } else {
        let fields = v.as_object().map(to_payload).unwrap_or_default();
        K::StructValue(pb::Struct { fields })
    };
    pb::Value { kind: Some(kind) }
}

fn to_payload(m: &Map<String, Value>) -> HashMap<String, pb::Value> {
    m.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()
}

fn to_pb_payload(m: Map<String, Value>) -> HashMap<String, pb::Value> {
    to_payload(&m)
}

/// JSON from a protobuf payload value.
fn from_pb_value(v: pb::Value) -> Value {
    use pb::value::Kind as K;
    let Some(kind) = v.kind else { return Value::Null };
    match kind {
        K::NullValue(_) => Value::Null,
        K::BoolValue(b) => json!(b),
        K::IntegerValue(i) => json!(i),
        K::DoubleValue(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        K::StringValue(s) => json!(s),
        K::ListValue(l) => Value::Array(l.values.into_iter().map(from_pb_value).collect()),
        K::StructValue(st) => Value::Object(st.fields.into_iter().map(|(k, v)| (k, from_pb_value(v))).collect()),
    }
}

fn with_vectors(sel: Option<&pb::WithVectorsSelector>) -> Result<bool, Status> {
    use pb::with_vectors_selector::SelectorOptions;
    match sel.and_then(|s| s.selector_options.as_ref()) {
        None => Ok(false),
        Some(SelectorOptions::Enable(b)) => Ok(*b),
        Some(SelectorOptions::Include(s)) => Ok(s.names.iter().any(|n| n.is_empty())),
    }
}

fn check_using(using: Option<&String>) -> Result<(), Status> {
    match using.map(String::as_str) {
        None | Some("") => Ok(()),
        Some(other) => Err(Status::invalid_argument(format!("Wrong input: Not existing vector name error: {other}"))),
    }
}

/// Qdrant's protobuf filter as Qdrant's REST filter JSON, which qdrant-edge's `Filter` reads.
fn filter_json(f: &pb::Filter) -> Result<Value, Status> {
    let list = |conds: &[pb::Condition]| -> Result<Value, Status> {
        Ok(Value::Array(conds.iter().map(condition_json).collect::<Result<_, _>>()?))
    };
    let mut out = Map::new();
    if !f.must.is_empty() {
        out.insert("must".into(), list(&f.must)?);
    }
    if !f.should.is_empty() {
        out.insert("should".into(), list(&f.should)?);
    }
    if !f.must_not.is_empty() {
        out.insert("must_not".into(), list(&f.must_not)?);
    }
    if let Some(ms) = &f.min_should {
        out.insert("min_should".into(), json!({ "conditions": list(&ms.conditions)?, "min_count": ms.min_count }));
    }
    Ok(Value::Object(out))
}

fn condition_json(c: &pb::Condition) -> Result<Value, Status> {
    use pb::condition::ConditionOneOf as C;
    use pb::r#match::MatchValue as M;
    match c.condition_one_of.as_ref() {
        Some(C::Field(fc)) => {
            let mut out = Map::new();
            out.insert("key".into(), json!(fc.key));
            if let Some(m) = fc.r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
                let m = match m {
                    M::Keyword(s) => json!({ "value": s }),
                    M::Integer(i) => json!({ "value": i }),
                    M::Boolean(b) => json!({ "value": b }),
                    M::Text(s) => json!({ "text": s }),
                    M::Keywords(r) => json!({ "any": r.strings }),
                    M::Integers(r) => json!({ "any": r.integers }),
                    M::ExceptKeywords(r) => json!({ "except": r.strings }),
                    M::ExceptIntegers(r) => json!({ "except": r.integers }),
                    _ => return Err(Status::unimplemented("this match type")),
                };
                out.insert("match".into(), m);
            }
            if let Some(r) = &fc.range {
                out.insert("range".into(), json!({ "lt": r.lt, "gt": r.gt, "gte": r.gte, "lte": r.lte }));
            }
            if let Some(b) = fc.is_empty {
                if b {
                    return Ok(json!({ "is_empty": { "key": fc.key } }));
                }
            }
            if let Some(b) = fc.is_null {
                if b {
                    return Ok(json!({ "is_null": { "key": fc.key } }));
                }
            }
            if let Some(r) = &fc.datetime_range {
                let mut range = Map::new();
                for (k, t) in [("lt", &r.lt), ("gt", &r.gt), ("gte", &r.gte), ("lte", &r.lte)] {
                    if let Some(t) = t {
                        range.insert(k.into(), json!(rfc3339(t.seconds, t.nanos)));
                    }
                }
                out.insert("range".into(), Value::Object(range));
            }
            if fc.geo_bounding_box.is_some()
                || fc.geo_radius.is_some()
                || fc.geo_polygon.is_some()
                || fc.values_count.is_some()
            {
                return Err(Status::unimplemented("geo and values_count conditions"));
            }
            Ok(Value::Object(out))
        }
        Some(C::Filter(f)) => filter_json(f),
        Some(C::IsEmpty(c)) => Ok(json!({ "is_empty": { "key": c.key } })),
        Some(C::IsNull(c)) => Ok(json!({ "is_null": { "key": c.key } })),
        Some(C::HasId(h)) => Ok(json!({ "has_id": h.has_id.iter().map(id_json).collect::<Result<Vec<_>, _>>()? })),
        Some(_) => Err(Status::unimplemented("this condition type")),
        None => Err(Status::invalid_argument("Wrong input: empty condition")),
    }
}

/// A protobuf timestamp as RFC 3339 UTC text (what Qdrant's JSON filters carry).
fn rfc3339(seconds: i64, nanos: i32) -> String {
    let days = seconds.div_euclid(86_400);
    let rem = seconds.rem_euclid(86_400);
    // Civil from days (Howard Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let frac = if nanos > 0 { format!(".{nanos:09}") } else { String::new() };
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{frac}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn edge_filter(f: Option<&pb::Filter>) -> Result<Option<qe::Filter>, Status> {
    let Some(f) = f else { return Ok(None) };
    let j = filter_json(f)?;
    serde_json::from_value(j).map(Some).map_err(|e| Status::invalid_argument(format!("Wrong input: bad filter: {e}")))
}

fn json_path(field: &str) -> Result<qe::JsonPath, Status> {
    field.parse().map_err(|()| Status::invalid_argument(format!("Wrong input: bad field name {field:?}")))
}

fn pb_distance(d: qe::Distance) -> pb::Distance {
    match d {
        qe::Distance::Cosine => pb::Distance::Cosine,
        qe::Distance::Euclid => pb::Distance::Euclid,
        qe::Distance::Dot => pb::Distance::Dot,
        qe::Distance::Manhattan => pb::Distance::Manhattan,
    }
}

fn edge_distance(d: i32) -> Result<qe::Distance, Status> {
    match pb::Distance::try_from(d) {
        Ok(pb::Distance::Cosine) => Ok(qe::Distance::Cosine),
        Ok(pb::Distance::Euclid) => Ok(qe::Distance::Euclid),
        Ok(pb::Distance::Dot) => Ok(qe::Distance::Dot),
        Ok(pb::Distance::Manhattan) => Ok(qe::Distance::Manhattan),
        _ => Err(Status::invalid_argument(format!("Wrong input: unknown distance {d}"))),
    }
}

fn schema_type(t: i32) -> Result<qe::PayloadSchemaType, Status> {
    use qe::PayloadSchemaType as S;
    Ok(match pb::FieldType::try_from(t) {
        Ok(pb::FieldType::Keyword) => S::Keyword,
        Ok(pb::FieldType::Integer) => S::Integer,
        Ok(pb::FieldType::Float) => S::Float,
        Ok(pb::FieldType::Geo) => S::Geo,
        Ok(pb::FieldType::Text) => S::Text,
        Ok(pb::FieldType::Bool) => S::Bool,
        Ok(pb::FieldType::Datetime) => S::Datetime,
        Ok(pb::FieldType::Uuid) => S::Uuid,
        Err(_) => return Err(Status::invalid_argument(format!("Wrong input: field type {t}"))),
    })
}

fn pb_schema_type(t: qe::PayloadSchemaType) -> pb::PayloadSchemaType {
    use qe::PayloadSchemaType as S;
    match t {
        S::Keyword => pb::PayloadSchemaType::Keyword,
        S::Integer => pb::PayloadSchemaType::Integer,
        S::Float => pb::PayloadSchemaType::Float,
        S::Geo => pb::PayloadSchemaType::Geo,
        S::Text => pb::PayloadSchemaType::Text,
        S::Bool => pb::PayloadSchemaType::Bool,
        S::Datetime => pb::PayloadSchemaType::Datetime,
        S::Uuid => pb::PayloadSchemaType::Uuid,
    }
}

fn apply_hnsw_diff(h: &mut qe::HnswIndexConfig, d: &pb::HnswConfigDiff) {
    if let Some(v) = d.m {
        h.m = v as usize;
    }
    if let Some(v) = d.ef_construct {
        h.ef_construct = v as usize;
    }
    if let Some(v) = d.full_scan_threshold {
        h.full_scan_threshold = v as usize;
    }
    if let Some(v) = d.max_indexing_threads {
        h.max_indexing_threads = v as usize;
    }
    if let Some(v) = d.payload_m {
        h.payload_m = Some(v as usize);
    }
    if let Some(v) = d.inline_storage {
        h.inline_storage = Some(v);
    }
}

fn apply_optimizers_diff(o: &mut qe::EdgeOptimizersConfig, d: &pb::OptimizersConfigDiff) {
    if let Some(v) = d.deleted_threshold {
        o.deleted_threshold = Some(v);
    }
    if let Some(v) = d.vacuum_min_vector_number {
        o.vacuum_min_vector_number = Some(v as usize);
    }
    if let Some(v) = d.default_segment_number {
        o.default_segment_number = Some(v as usize);
    }
    if let Some(v) = d.max_segment_size {
        o.max_segment_size = Some(v as usize);
    }
    if let Some(v) = d.indexing_threshold {
        o.indexing_threshold = Some(v as usize);
    }
    if let Some(v) = d.prevent_unoptimized {
        o.prevent_unoptimized = Some(v);
    }
}

#[allow(deprecated)] // on_disk / on_disk_payload: what every 1.x client reads
fn collection_info(shard: &qe::EdgeShard) -> Result<pb::CollectionInfo, Status> {
    let cfg = shard.config().clone();
    let info = shard.info();
    let count = shard.count(qe::CountRequest { filter: None, exact: true }).map_err(op_err)?;
    let vectors_config = match cfg.vectors.get(qe::DEFAULT_VECTOR_NAME) {
        Some(p) if cfg.vectors.len() == 1 => pb::vectors_config::Config::Params(pb::VectorParams {
            size: p.size as u64,
            distance: pb_distance(p.distance) as i32,
            on_disk: p.on_disk,
            ..Default::default()
        }),
        _ => pb::vectors_config::Config::ParamsMap(pb::VectorParamsMap {
            map: cfg
                .vectors
                .iter()
                .map(|(k, p)| {
                    (
                        k.clone(),
                        pb::VectorParams {
                            size: p.size as u64,
                            distance: pb_distance(p.distance) as i32,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        }),
    };
    let h = cfg.hnsw_config;
    let o = &cfg.optimizers;
    let payload_schema = info
        .payload_schema
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                pb::PayloadSchemaInfo {
                    data_type: pb_schema_type(v.data_type) as i32,
                    params: None,
                    points: Some(v.points as u64),
                },
            )
        })
        .collect();
    Ok(pb::CollectionInfo {
        status: pb::CollectionStatus::Green as i32,
        optimizer_status: Some(pb::OptimizerStatus { ok: true, error: String::new() }),
        segments_count: info.segments_count as u64,
        config: Some(pb::CollectionConfig {
            quantization_config: cfg.quantization_config.as_ref().map(|_| pb::QuantizationConfig {
                quantization: Some(pb::quantization_config::Quantization::Scalar(pb::ScalarQuantization {
                    r#type: pb::QuantizationType::Int8 as i32,
                    ..Default::default()
                })),
            }),
            params: Some(pb::CollectionParams {
                shard_number: 1,
                on_disk_payload: cfg.on_disk_payload,
                vectors_config: Some(pb::VectorsConfig { config: Some(vectors_config) }),
                replication_factor: Some(1),
                write_consistency_factor: Some(1),
                ..Default::default()
            }),
            hnsw_config: Some(pb::HnswConfigDiff {
                m: Some(h.m as u64),
                ef_construct: Some(h.ef_construct as u64),
                full_scan_threshold: Some(h.full_scan_threshold as u64),
                max_indexing_threads: Some(h.max_indexing_threads as u64),
                payload_m: h.payload_m.map(|v| v as u64),
                inline_storage: h.inline_storage,
                ..Default::default()
            }),
            optimizer_config: Some(pb::OptimizersConfigDiff {
                deleted_threshold: o.deleted_threshold,
                vacuum_min_vector_number: o.vacuum_min_vector_number.map(|v| v as u64),
                default_segment_number: Some(o.default_segment_number.unwrap_or(0) as u64),
                max_segment_size: o.max_segment_size.map(|v| v as u64),
                indexing_threshold: Some(o.indexing_threshold.unwrap_or(10_000) as u64),
                flush_interval_sec: Some(5),
                ..Default::default()
            }),
            ..Default::default()
        }),
        payload_schema,
        points_count: Some(count as u64),
        indexed_vectors_count: Some(info.indexed_vectors_count as u64),
        ..Default::default()
    })
}

fn update_ok(start: Instant) -> pb::PointsOperationResponse {
    pb::PointsOperationResponse {
        result: Some(pb::UpdateResult { operation_id: Some(0), status: pb::UpdateStatus::Completed as i32 }),
        time: elapsed(start),
        usage: None,
    }
}

#[allow(clippy::too_many_arguments)] // the search request's fields, as the handlers have them
fn search_edge(
    shard: &qe::EdgeShard,
    vector: Vec<f32>,
    filter: Option<qe::Filter>,
    limit: usize,
    offset: usize,
    score_threshold: Option<f32>,
    payload: qe::WithPayloadInterface,
    vectors: bool,
) -> Result<Vec<pb::ScoredPoint>, Status> {
    let req = qe::SearchRequest {
        query: qe::QueryEnum::Nearest(qe::NamedQuery { query: qe::VectorInternal::Dense(vector), using: None }),
        filter,
        params: None,
        limit,
        offset,
        with_payload: Some(payload),
        with_vector: Some(qe::WithVector::Bool(vectors)),
        score_threshold,
    };
    let points = shard.search(req).map_err(op_err)?;
    Ok(points
        .into_iter()
        .map(|p| pb::ScoredPoint {
            id: Some(pb_id(&p.id)),
            payload: p.payload.map(|p| to_pb_payload(p.0)).unwrap_or_default(),
            score: p.score,
            version: p.version,
            vectors: pb_vectors(p.vector),
            ..Default::default()
        })
        .collect())
}

fn scroll_edge(
    shard: &qe::EdgeShard,
    filter: Option<qe::Filter>,
    offset: Option<qe::PointId>,
    limit: usize,
    payload: qe::WithPayloadInterface,
    vectors: bool,
) -> Result<(Vec<pb::RetrievedPoint>, Option<pb::PointId>), Status> {
    let req = qe::ScrollRequest {
        offset,
        limit: Some(limit),
        filter,
        with_payload: Some(payload),
        with_vector: qe::WithVector::Bool(vectors),
        order_by: None,
    };
    let (records, next) = shard.scroll(req).map_err(op_err)?;
    Ok((records.into_iter().map(retrieved).collect(), next.as_ref().map(pb_id)))
}

fn retrieved(r: qe::Record) -> pb::RetrievedPoint {
    pb::RetrievedPoint {
        id: Some(pb_id(&r.id)),
        payload: r.payload.map(|p| to_pb_payload(p.0)).unwrap_or_default(),
        vectors: pb_vectors(r.vector),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// gRPC services

#[derive(Clone)]
struct Service {
    engine: Arc<Engine>,
}

type R<T> = Result<Response<T>, Status>;

fn unimplemented<T>(what: &str) -> R<T> {
    Err(Status::unimplemented(format!("{what} is not implemented by the qdrant-edge test server")))
}

#[tonic::async_trait]
impl QdrantService for Service {
    async fn health_check(&self, _r: Request<pb::HealthCheckRequest>) -> R<pb::HealthCheckReply> {
        done(pb::HealthCheckReply {
            title: "qdrant - vector search engine (qdrant-edge test server)".into(),
            version: SERVER_VERSION.into(),
            commit: None,
        })
    }
}

#[tonic::async_trait]
impl Collections for Service {
    async fn get(&self, r: Request<pb::GetCollectionInfoRequest>) -> R<pb::GetCollectionInfoResponse> {
        let start = Instant::now();
        let name = r.into_inner().collection_name;
        let c = self.engine.get(&name)?;
        let mut info = c.with(&name, collection_info).await?;
        if let Some(config) = info.config.as_mut() {
            config.metadata = c.metadata();
            // Cluster settings as given at creation (one local shard stands in for all of them).
            let cluster = c.cluster();
            if let Some(p) = config.params.as_mut() {
                p.shard_number = cluster.get("shard_number").and_then(Value::as_u64).unwrap_or(1) as u32;
                p.replication_factor =
                    Some(cluster.get("replication_factor").and_then(Value::as_u64).unwrap_or(1) as u32);
                p.write_consistency_factor =
                    Some(cluster.get("write_consistency_factor").and_then(Value::as_u64).unwrap_or(1) as u32);
            }
        }
        done(pb::GetCollectionInfoResponse { result: Some(info), time: elapsed(start) })
    }

    async fn list(&self, _r: Request<pb::ListCollectionsRequest>) -> R<pb::ListCollectionsResponse> {
        let start = Instant::now();
        let mut names: Vec<String> = self.engine.collections.read().unwrap().keys().cloned().collect();
        names.sort();
        done(pb::ListCollectionsResponse {
            collections: names.into_iter().map(|name| pb::CollectionDescription { name }).collect(),
            time: elapsed(start),
        })
    }

    async fn create(&self, r: Request<pb::CreateCollection>) -> R<pb::CollectionOperationResponse> {
        let start = Instant::now();
        let mut req = r.into_inner();
        let name = req.collection_name.clone();
        check_name(&name)?;
        let metadata = std::mem::take(&mut req.metadata);
        let params = match req.vectors_config.and_then(|v| v.config) {
            Some(pb::vectors_config::Config::Params(p)) => p,
            Some(pb::vectors_config::Config::ParamsMap(_)) => return Err(Status::unimplemented("named vectors")),
            None => return Err(Status::invalid_argument("Wrong input: vectors_config is required")),
        };
        if params.size == 0 {
            return Err(Status::invalid_argument("Wrong input: vector size must be > 0"));
        }
        let mut hnsw = qe::HnswIndexConfig::default();
        for d in [req.hnsw_config.as_ref(), params.hnsw_config.as_ref()].into_iter().flatten() {
            apply_hnsw_diff(&mut hnsw, d);
        }
        let mut optimizers = qe::EdgeOptimizersConfig::default();
        if let Some(d) = &req.optimizers_config {
            apply_optimizers_diff(&mut optimizers, d);
        }
        #[allow(deprecated)]
        let (on_disk, on_disk_payload) = (params.on_disk.unwrap_or(false), req.on_disk_payload.unwrap_or(false));
        let mut config = qe::EdgeConfig::builder()
            .vector(
                qe::DEFAULT_VECTOR_NAME,
                qe::EdgeVectorParams::builder(params.size as usize, edge_distance(params.distance)?).build(),
            )
            .hnsw_config(hnsw)
            .optimizers(optimizers)
            .build();
        config.on_disk_payload = on_disk_payload;
        if let Some(v) = config.vectors.get_mut(qe::DEFAULT_VECTOR_NAME) {
            v.on_disk = Some(on_disk);
        }
        if let Some(q) = req.quantization_config.and_then(|q| q.quantization) {
            let pb::quantization_config::Quantization::Scalar(sq) = q else {
                return unimplemented("product, binary and turbo quantization");
            };
            if sq.r#type != pb::QuantizationType::Int8 as i32 {
                return unimplemented("scalar quantization types other than int8");
            }
            config.quantization_config = Some(
                serde_json::from_value(
                    json!({ "scalar": { "type": "int8", "quantile": sq.quantile, "always_ram": true } }),
                )
                .map_err(|e| Status::invalid_argument(format!("Wrong input: quantization: {e}")))?,
            );
        }
        let cluster = json!({
            "shard_number": req.shard_number.unwrap_or(1),
            "replication_factor": req.replication_factor.unwrap_or(1),
            "write_consistency_factor": req.write_consistency_factor.unwrap_or(1),
        });

        let engine = self.engine.clone();
        let created_name = name.clone();
        let created = tokio::task::spawn_blocking(move || -> Result<(), Status> {
            let name = created_name;
            let mut colls = engine.collections.write().unwrap();
            if colls.contains_key(&name) {
                return Err(Status::invalid_argument(format!("Wrong input: Collection `{name}` already exists!")));
            }
            if engine.aliases.read().unwrap().contains_key(&name) {
                return Err(Status::invalid_argument(format!("Wrong input: Alias with name `{name}` already exists!")));
            }
            let dir = engine.dir.join(&name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| Status::internal(e.to_string()))?;
            }
            std::fs::create_dir_all(&dir).map_err(|e| Status::internal(e.to_string()))?;
            let shard = qe::EdgeShard::new(&dir, config).map_err(op_err)?;
            std::fs::write(dir.join("cluster.json"), cluster.to_string())
                .map_err(|e| Status::internal(e.to_string()))?;
            colls.insert(name, Arc::new(Coll { dir, shard: RwLock::new(Some(shard)), metadata: Mutex::new(()) }));
            Ok(())
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        created?;
        self.engine.get(&name)?.merge_metadata(metadata)?;
        done(pb::CollectionOperationResponse { result: true, time: elapsed(start) })
    }

    async fn update(&self, r: Request<pb::UpdateCollection>) -> R<pb::CollectionOperationResponse> {
        let start = Instant::now();
        let mut req = r.into_inner();
        let name = req.collection_name.clone();
        let c = self.engine.get(&name)?;
        if req.params.is_some()
            || req.vectors_config.is_some()
            || req.quantization_config.is_some()
            || req.sparse_vectors_config.is_some()
        {
            return unimplemented("updating params, vectors or quantization");
        }
        c.merge_metadata(std::mem::take(&mut req.metadata))?;
        c.with(&name, move |shard| {
            if let Some(d) = &req.hnsw_config {
                let mut h = shard.config().hnsw_config;
                apply_hnsw_diff(&mut h, d);
                shard.set_hnsw_config(h).map_err(op_err)?;
            }
            if let Some(d) = &req.optimizers_config {
                let mut o = shard.config().optimizers.clone();
                apply_optimizers_diff(&mut o, d);
                shard.set_optimizers_config(o).map_err(op_err)?;
            }
            Ok(())
        })
        .await?;
        done(pb::CollectionOperationResponse { result: true, time: elapsed(start) })
    }

    async fn delete(&self, r: Request<pb::DeleteCollection>) -> R<pb::CollectionOperationResponse> {
        let start = Instant::now();
        let name = r.into_inner().collection_name;
        let engine = self.engine.clone();
        let existed = tokio::task::spawn_blocking(move || -> Result<bool, Status> {
            let removed = engine.collections.write().unwrap().remove(&name);
            let Some(c) = removed else { return Ok(false) };
            // As in Qdrant: the collection's aliases go with it.
            let mut aliases = engine.aliases.write().unwrap();
            let before = aliases.len();
            aliases.retain(|_, target| *target != name);
            if aliases.len() != before {
                engine.save_aliases(&aliases)?;
            }
            drop(aliases);
            // Wait for in-flight operations, close (flush) the shard, then delete its files.
            c.shard.write().unwrap().take();
            std::fs::remove_dir_all(&c.dir).map_err(|e| Status::internal(e.to_string()))?;
            Ok(true)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        done(pb::CollectionOperationResponse { result: existed, time: elapsed(start) })
    }

    /// All actions of one request are applied together or not at all, under the collections lock
    /// (Qdrant's storage `update_aliases`): a reader sees the aliases before or after, never between.
    async fn update_aliases(&self, r: Request<pb::ChangeAliases>) -> R<pb::CollectionOperationResponse> {
        use pb::alias_operations::Action;
        let start = Instant::now();
        let colls = self.engine.collections.read().unwrap();
        let mut aliases = self.engine.aliases.write().unwrap();
        let mut next = aliases.clone();
        for action in r.into_inner().actions.into_iter().filter_map(|a| a.action) {
            match action {
                Action::CreateAlias(a) => {
                    check_name(&a.alias_name)?;
                    if !colls.contains_key(&a.collection_name) {
                        return Err(not_found(&a.collection_name));
                    }
                    if colls.contains_key(&a.alias_name) {
                        return Err(Status::invalid_argument(format!(
                            "Wrong input: Collection `{}` already exists!",
                            a.alias_name
                        )));
                    }
                    next.insert(a.alias_name, a.collection_name);
                }
                Action::DeleteAlias(a) => {
                    if next.remove(&a.alias_name).is_none() {
                        return Err(Status::not_found(format!("Not found: Alias {} does not exists!", a.alias_name)));
                    }
                }
                Action::RenameAlias(a) => {
                    let Some(target) = next.remove(&a.old_alias_name) else {
                        return Err(Status::not_found(format!(
                            "Not found: Alias {} does not exists!",
                            a.old_alias_name
                        )));
                    };
                    next.insert(a.new_alias_name, target);
                }
            }
        }
        self.engine.save_aliases(&next)?;
        *aliases = next;
        done(pb::CollectionOperationResponse { result: true, time: elapsed(start) })
    }

    async fn list_collection_aliases(
        &self,
        r: Request<pb::ListCollectionAliasesRequest>,
    ) -> R<pb::ListAliasesResponse> {
        let start = Instant::now();
        let name = r.into_inner().collection_name;
        let aliases = self.engine.aliases.read().unwrap();
        let aliases = aliases
            .iter()
            .filter(|(_, c)| **c == name)
            .map(|(a, c)| pb::AliasDescription { alias_name: a.clone(), collection_name: c.clone() })
            .collect();
        done(pb::ListAliasesResponse { aliases, time: elapsed(start) })
    }

    async fn list_aliases(&self, _r: Request<pb::ListAliasesRequest>) -> R<pb::ListAliasesResponse> {
        let start = Instant::now();
        let aliases = self.engine.aliases.read().unwrap();
        let aliases = aliases
            .iter()
            .map(|(a, c)| pb::AliasDescription { alias_name: a.clone(), collection_name: c.clone() })
            .collect();
        done(pb::ListAliasesResponse { aliases, time: elapsed(start) })
    }

    async fn collection_cluster_info(
        &self,
        _r: Request<pb::CollectionClusterInfoRequest>,
    ) -> R<pb::CollectionClusterInfoResponse> {
        unimplemented("cluster info")
    }

    async fn collection_exists(&self, r: Request<pb::CollectionExistsRequest>) -> R<pb::CollectionExistsResponse> {
        let start = Instant::now();
        let name = r.into_inner().collection_name;
        let exists = self.engine.collections.read().unwrap().contains_key(&name);
        done(pb::CollectionExistsResponse { result: Some(pb::CollectionExists { exists }), time: elapsed(start) })
    }

    async fn update_collection_cluster_setup(
        &self,
        _r: Request<pb::UpdateCollectionClusterSetupRequest>,
    ) -> R<pb::UpdateCollectionClusterSetupResponse> {
        unimplemented("cluster setup")
    }

    async fn create_shard_key(&self, _r: Request<pb::CreateShardKeyRequest>) -> R<pb::CreateShardKeyResponse> {
        unimplemented("shard keys")
    }

    async fn delete_shard_key(&self, _r: Request<pb::DeleteShardKeyRequest>) -> R<pb::DeleteShardKeyResponse> {
        unimplemented("shard keys")
    }

    async fn list_shard_keys(&self, _r: Request<pb::ListShardKeysRequest>) -> R<pb::ListShardKeysResponse> {
        unimplemented("shard keys")
    }
}

#[tonic::async_trait]
impl Points for Service {
    async fn upsert(&self, r: Request<pb::UpsertPoints>) -> R<pb::PointsOperationResponse> {
        let start = Instant::now();
        let req = r.into_inner();
        if req.update_filter.is_some() {
            return unimplemented("conditional upsert");
        }
        let name = req.collection_name;
        let c = self.engine.get(&name)?;
        let points = req
            .points
            .into_iter()
            .map(|p| {
                let id = edge_id(
                    p.id.as_ref().ok_or_else(|| Status::invalid_argument("Wrong input: point id is missing"))?,
                )?;
                let vector = dense_vector(p.vectors)?;
                let payload: Map<String, Value> = p.payload.into_iter().map(|(k, v)| (k, from_pb_value(v))).collect();
                Ok(qe::PointStruct::new(id, vector, Value::Object(payload)).into())
            })
            .collect::<Result<Vec<qe::PointStructPersisted>, Status>>()?;
        c.with(&name, move |shard| {
            shard
                .update(qe::UpdateOperation::PointOperation(qe::PointOperations::UpsertPoints(
                    qe::PointInsertOperations::PointsList(points),
                )))
                .map_err(op_err)
        })
        .await?;
        done(update_ok(start))
    }

    async fn delete(&self, r: Request<pb::DeletePoints>) -> R<pb::PointsOperationResponse> {
        use pb::points_selector::PointsSelectorOneOf as P;
        let start = Instant::now();
        let req = r.into_inner();
        let name = req.collection_name;
        let c = self.engine.get(&name)?;
        let op = match req.points.and_then(|p| p.points_selector_one_of) {
            Some(P::Points(list)) => {
                qe::PointOperations::DeletePoints { ids: list.ids.iter().map(edge_id).collect::<Result<_, _>>()? }
            }
            Some(P::Filter(f)) => {
                qe::PointOperations::DeletePointsByFilter(edge_filter(Some(&f))?.expect("filter given"))
            }
            None => return Err(Status::invalid_argument("Wrong input: points selector is required")),
        };
        c.with(&name, move |shard| shard.update(qe::UpdateOperation::PointOperation(op)).map_err(op_err)).await?;
        done(update_ok(start))
    }

    async fn get(&self, r: Request<pb::GetPoints>) -> R<pb::GetResponse> {
        let start = Instant::now();
        let req = r.into_inner();
        let name = req.collection_name.clone();
        let c = self.engine.get(&name)?;
        let ids: Vec<qe::PointId> = req.ids.iter().map(edge_id).collect::<Result<_, _>>()?;
        let payload = with_payload(req.with_payload.as_ref())?;
        let vectors = with_vectors(req.with_vectors.as_ref())?;
        let result = c
            .with(&name, move |shard| {
                let records =
                    shard.retrieve(&ids, Some(payload), Some(qe::WithVector::Bool(vectors))).map_err(op_err)?;
                Ok(records.into_iter().map(retrieved).collect())
            })
            .await?;
        done(pb::GetResponse { result, time: elapsed(start), usage: None })
    }

    async fn update_vectors(&self, _r: Request<pb::UpdatePointVectors>) -> R<pb::PointsOperationResponse> {
        unimplemented("update_vectors")
    }

    async fn delete_vectors(&self, _r: Request<pb::DeletePointVectors>) -> R<pb::PointsOperationResponse> {
        unimplemented("delete_vectors")
    }

    async fn set_payload(&self, _r: Request<pb::SetPayloadPoints>) -> R<pb::PointsOperationResponse> {
        unimplemented("set_payload")
    }

    async fn overwrite_payload(&self, _r: Request<pb::SetPayloadPoints>) -> R<pb::PointsOperationResponse> {
        unimplemented("overwrite_payload")
    }

    async fn delete_payload(&self, _r: Request<pb::DeletePayloadPoints>) -> R<pb::PointsOperationResponse> {
        unimplemented("delete_payload")
    }

    async fn clear_payload(&self, _r: Request<pb::ClearPayloadPoints>) -> R<pb::PointsOperationResponse> {
        unimplemented("clear_payload")
    }

    async fn create_field_index(&self, r: Request<pb::CreateFieldIndexCollection>) -> R<pb::PointsOperationResponse> {
        let start = Instant::now();
        let req = r.into_inner();
        let name = req.collection_name;
        let c = self.engine.get(&name)?;
        let schema = match req.field_type {
            Some(t) => Some(qe::PayloadFieldSchema::FieldType(schema_type(t)?)),
            None => None,
        };
        let field = req.field_name;
        c.with(&name, move |shard| {
            shard
                .update(qe::UpdateOperation::FieldIndexOperation(qe::FieldIndexOperations::CreateIndex(
                    qe::CreateIndex { field_name: json_path(&field)?, field_schema: schema },
                )))
                .map_err(op_err)
        })
        .await?;
        done(update_ok(start))
    }

    async fn delete_field_index(&self, r: Request<pb::DeleteFieldIndexCollection>) -> R<pb::PointsOperationResponse> {
        let start = Instant::now();
        let req = r.into_inner();
        let name = req.collection_name;
        let c = self.engine.get(&name)?;
        let field = req.field_name;
        c.with(&name, move |shard| {
            shard
                .update(qe::UpdateOperation::FieldIndexOperation(qe::FieldIndexOperations::DeleteIndex(json_path(
                    &field,
                )?)))
                .map_err(op_err)
        })
        .await?;
        done(update_ok(start))
    }

    async fn create_vector_name(&self, _r: Request<pb::CreateVectorNameRequest>) -> R<pb::PointsOperationResponse> {
        unimplemented("create_vector_name")
    }

    async fn delete_vector_name(&self, _r: Request<pb::DeleteVectorNameRequest>) -> R<pb::PointsOperationResponse> {
        unimplemented("delete_vector_name")
    }

    async fn search(&self, r: Request<pb::SearchPoints>) -> R<pb::SearchResponse> {
        let start = Instant::now();
        let req = r.into_inner();
        check_using(req.vector_name.as_ref())?;
        if req.sparse_indices.is_some() {
            return unimplemented("sparse search");
        }
        let name = req.collection_name.clone();
        let c = self.engine.get(&name)?;
        let filter = edge_filter(req.filter.as_ref())?;
        let payload = with_payload(req.with_payload.as_ref())?;
        let vectors = with_vectors(req.with_vectors.as_ref())?;
        let (limit, offset, threshold) = (req.limit as usize, req.offset.unwrap_or(0) as usize, req.score_threshold);
        let vector = req.vector;
        let result = c
            .with(&name, move |shard| search_edge(shard, vector, filter, limit, offset, threshold, payload, vectors))
            .await?;
        done(pb::SearchResponse { result, time: elapsed(start), usage: None })
    }

    async fn search_batch(&self, _r: Request<pb::SearchBatchPoints>) -> R<pb::SearchBatchResponse> {
        unimplemented("search_batch")
    }

    async fn search_groups(&self, _r: Request<pb::SearchPointGroups>) -> R<pb::SearchGroupsResponse> {
        unimplemented("search_groups")
    }

    async fn scroll(&self, r: Request<pb::ScrollPoints>) -> R<pb::ScrollResponse> {
        let start = Instant::now();
        let req = r.into_inner();
        if req.order_by.is_some() {
            return unimplemented("scroll order_by");
        }
        let name = req.collection_name.clone();
        let c = self.engine.get(&name)?;
        let filter = edge_filter(req.filter.as_ref())?;
        let offset = req.offset.as_ref().map(edge_id).transpose()?;
        let limit = req.limit.unwrap_or(10) as usize;
        // Scroll returns payloads unless told otherwise.
        let payload = match req.with_payload.as_ref() {
            None => qe::WithPayloadInterface::Bool(true),
            Some(s) => with_payload(Some(s))?,
        };
        let vectors = with_vectors(req.with_vectors.as_ref())?;
        let (result, next_page_offset) =
            c.with(&name, move |shard| scroll_edge(shard, filter, offset, limit, payload, vectors)).await?;
        done(pb::ScrollResponse { next_page_offset, result, time: elapsed(start), usage: None })
    }

    async fn recommend(&self, _r: Request<pb::RecommendPoints>) -> R<pb::RecommendResponse> {
        unimplemented("recommend")
    }

    async fn recommend_batch(&self, _r: Request<pb::RecommendBatchPoints>) -> R<pb::RecommendBatchResponse> {
        unimplemented("recommend_batch")
    }

    async fn recommend_groups(&self, _r: Request<pb::RecommendPointGroups>) -> R<pb::RecommendGroupsResponse> {
        unimplemented("recommend_groups")
    }

    async fn discover(&self, _r: Request<pb::DiscoverPoints>) -> R<pb::DiscoverResponse> {
        unimplemented("discover")
    }

    async fn discover_batch(&self, _r: Request<pb::DiscoverBatchPoints>) -> R<pb::DiscoverBatchResponse> {
        unimplemented("discover_batch")
    }

    async fn count(&self, r: Request<pb::CountPoints>) -> R<pb::CountResponse> {
        let start = Instant::now();
        let req = r.into_inner();
        let name = req.collection_name.clone();
        let c = self.engine.get(&name)?;
        let filter = edge_filter(req.filter.as_ref())?;
        let exact = req.exact.unwrap_or(true);
        let count = c.with(&name, move |shard| shard.count(qe::CountRequest { filter, exact }).map_err(op_err)).await?;
        done(pb::CountResponse {
            result: Some(pb::CountResult { count: count as u64 }),
            time: elapsed(start),
            usage: None,
        })
    }

    async fn update_batch(&self, _r: Request<pb::UpdateBatchPoints>) -> R<pb::UpdateBatchResponse> {
        unimplemented("update_batch")
    }

    async fn query(&self, r: Request<pb::QueryPoints>) -> R<pb::QueryResponse> {
        use pb::query::Variant as Q;
        use pb::vector_input::Variant as V;
        let start = Instant::now();
        let req = r.into_inner();
        check_using(req.using.as_ref())?;
        if !req.prefetch.is_empty() || req.lookup_from.is_some() {
            return unimplemented("prefetch and lookup_from");
        }
        let name = req.collection_name.clone();
        let c = self.engine.get(&name)?;
        let filter = edge_filter(req.filter.as_ref())?;
        let payload = with_payload(req.with_payload.as_ref())?;
        let vectors = with_vectors(req.with_vectors.as_ref())?;
        let limit = req.limit.unwrap_or(10) as usize;
        let offset = req.offset.unwrap_or(0) as usize;
        let threshold = req.score_threshold;
        let query = match req.query.and_then(|q| q.variant) {
            None => None,
            Some(Q::Nearest(pb::VectorInput { variant: Some(V::Dense(d)) })) => Some(d.data),
            Some(Q::Nearest(_)) => return unimplemented("nearest by id, sparse, multi or inference input"),
            Some(_) => return unimplemented("this query type"),
        };
        let result = c
            .with(&name, move |shard| match query {
                Some(v) => search_edge(shard, v, filter, limit, offset, threshold, payload, vectors),
                None => {
                    // No query: points in id order, like a scroll (score 0).
                    let (points, _) = scroll_edge(shard, filter, None, limit + offset, payload, vectors)?;
                    Ok(points
                        .into_iter()
                        .skip(offset)
                        .map(|p| pb::ScoredPoint {
                            id: p.id,
                            payload: p.payload,
                            vectors: p.vectors,
                            ..Default::default()
                        })
                        .collect())
                }
            })
            .await?;
        done(pb::QueryResponse { result, time: elapsed(start), usage: None })
    }

    async fn query_batch(&self, _r: Request<pb::QueryBatchPoints>) -> R<pb::QueryBatchResponse> {
        unimplemented("query_batch")
    }

    async fn query_groups(&self, _r: Request<pb::QueryPointGroups>) -> R<pb::QueryGroupsResponse> {
        unimplemented("query_groups")
    }

    async fn facet(&self, _r: Request<pb::FacetCounts>) -> R<pb::FacetResponse> {
        unimplemented("facet")
    }

    async fn search_matrix_pairs(&self, _r: Request<pb::SearchMatrixPoints>) -> R<pb::SearchMatrixPairsResponse> {
        unimplemented("search_matrix_pairs")
    }

    async fn search_matrix_offsets(&self, _r: Request<pb::SearchMatrixPoints>) -> R<pb::SearchMatrixOffsetsResponse> {
        unimplemented("search_matrix_offsets")
    }
}
