//! The engine: collections of qdrant-edge shards (persisted under the storage directory), their
//! aliases and metadata, and the shard queries the services share.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use qdrant_client::qdrant as pb;
use qdrant_edge as qe;
use serde_json::{Map, Value};
use tonic::Status;

use crate::conversions::{from_pb_value, op_err, pb_id, pb_vectors, retrieved, to_pb_payload};

pub struct Engine {
    pub(crate) dir: PathBuf,
    pub(crate) collections: RwLock<HashMap<String, Arc<Coll>>>,
    /// alias -> collection, persisted in `<storage>/aliases.json`.
    pub(crate) aliases: RwLock<BTreeMap<String, String>>,
    pub(crate) aliases_file: PathBuf,
}

pub(crate) struct Coll {
    pub(crate) dir: PathBuf,
    /// Read lock for every operation (qdrant-edge synchronises updates internally); write lock to
    /// close the shard on delete. `None` once deleted.
    pub(crate) shard: RwLock<Option<qe::EdgeShard>>,
    /// Serialises read-merge-write of the collection's metadata (`<dir>/metadata.json`).
    pub(crate) metadata: Mutex<()>,
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
    pub(crate) fn get(&self, name: &str) -> Result<Arc<Coll>, Status> {
        let colls = self.collections.read().unwrap();
        if let Some(c) = colls.get(name) {
            return Ok(c.clone());
        }
        let target = self.aliases.read().unwrap().get(name).cloned();
        target.and_then(|t| colls.get(&t).cloned()).ok_or_else(|| not_found(name))
    }

    pub(crate) fn save_aliases(&self, aliases: &BTreeMap<String, String>) -> Result<(), Status> {
        let tmp = self.aliases_file.with_extension("json.tmp");
        let bytes = serde_json::to_vec(aliases).map_err(|e| Status::internal(e.to_string()))?;
        std::fs::write(&tmp, bytes)
            .and_then(|()| std::fs::rename(&tmp, &self.aliases_file))
            .map_err(|e| Status::internal(e.to_string()))
    }
}

pub(crate) fn not_found(name: &str) -> Status {
    Status::not_found(format!("Not found: Collection `{name}` doesn't exist!"))
}

pub(crate) fn check_name(name: &str) -> Result<(), Status> {
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
    pub(crate) fn metadata(&self) -> HashMap<String, pb::Value> {
        let _g = self.metadata.lock().unwrap();
        to_pb_payload(self.read_metadata())
    }

    /// Merges `new` into the stored metadata, as Qdrant does.
    pub(crate) fn merge_metadata(&self, new: HashMap<String, pb::Value>) -> Result<(), Status> {
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
    pub(crate) fn cluster(&self) -> Map<String, Value> {
        std::fs::read(self.dir.join("cluster.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Run `f` on the shard on a blocking thread.
    pub(crate) async fn with<T: Send + 'static>(
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

#[allow(clippy::too_many_arguments)] // the search request's fields, as the handlers have them
pub(crate) fn search_edge(
    shard: &qe::EdgeShard,
    vector: Vec<f32>,
    filter: Option<qe::Filter>,
    limit: usize,
    offset: usize,
    score_threshold: Option<f32>,
    payload: qe::WithPayloadInterface,
    vectors: qe::WithVector,
) -> Result<Vec<pb::ScoredPoint>, Status> {
    let req = qe::SearchRequest {
        query: qe::QueryEnum::Nearest(qe::NamedQuery { query: qe::VectorInternal::Dense(vector), using: None }),
        filter,
        params: None,
        limit,
        offset,
        with_payload: Some(payload),
        with_vector: Some(vectors),
        score_threshold,
    };
    let points = shard.search(req).map_err(op_err)?;
    Ok(points.into_iter().map(scored).collect())
}

/// An engine result as Qdrant's gRPC answer gives it.
fn scored(p: qe::ScoredPoint) -> pb::ScoredPoint {
    pb::ScoredPoint {
        id: Some(pb_id(&p.id)),
        payload: p.payload.map(|p| to_pb_payload(p.0)).unwrap_or_default(),
        score: p.score,
        version: p.version,
        vectors: pb_vectors(p.vector),
        ..Default::default()
    }
}

/// A Query API request with prefetches or a sparse query, run by qdrant-edge's query planner.
pub(crate) fn query_edge(shard: &qe::EdgeShard, request: qe::QueryRequest) -> Result<Vec<pb::ScoredPoint>, Status> {
    let points = shard.query(request).map_err(op_err)?;
    Ok(points.into_iter().map(scored).collect())
}

pub(crate) fn scroll_edge(
    shard: &qe::EdgeShard,
    filter: Option<qe::Filter>,
    offset: Option<qe::PointId>,
    limit: usize,
    payload: qe::WithPayloadInterface,
    vectors: qe::WithVector,
) -> Result<(Vec<pb::RetrievedPoint>, Option<pb::PointId>), Status> {
    let req = qe::ScrollRequest {
        offset,
        limit: Some(limit),
        filter,
        with_payload: Some(payload),
        with_vector: vectors,
        order_by: None,
    };
    let (records, next) = shard.scroll(req).map_err(op_err)?;
    Ok((records.into_iter().map(retrieved).collect(), next.as_ref().map(pb_id)))
}
