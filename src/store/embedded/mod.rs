//! Embedded Qdrant (qdrant-edge): the engine in-process, persisted in a directory.
//!
//! Layout, one directory per collection:
//!
//! ```text
//! <root>/<collection>/vdb.lock          OS lock file, held while this process has the collection open
//! <root>/<collection>/collection.json   what ensure_collection was asked for (dim, distance, indexes)
//! <root>/<collection>/shard/            the qdrant-edge shard (WAL + segments)
//! <root>/.aliases.json                  aliases: {"alias": "collection"}, replaced atomically
//! ```
//!
//! The collection files and the segment policy are in [`collection`], conversions to qdrant-edge's
//! types in [`convert`].
//!
//! `collection.json` is written last when a collection is created, so its presence means "the
//! collection exists and is complete"; a `shard/` without it is debris from an interrupted create and
//! is replaced by the next `ensure_collection`.
//!
//! **Locking.** qdrant-edge guards a shard with in-process mutexes only, and even opening a shard
//! writes to it (WAL, appendable segment, config). Airflow runs mapped tasks as separate processes,
//! so every collection is guarded by an exclusive OS file lock (`flock` on `vdb.lock`) taken when
//! this store first touches the collection and held until the store is dropped (or
//! [`EmbeddedStore::close`]). A second opener, in this or another process, waits up to the lock
//! timeout, then fails with a `Locked` error naming the directory.
//!
//! **Aliases** work as on a Qdrant server: every operation accepts an alias for the collection it
//! names (resolved on each call, so other processes see a switch at once); switching one is a single
//! atomic file replace under `.aliases.lock`.
//!
//! **Indexing.** qdrant-edge has no background optimiser. Outside bulk mode every `upsert` ends with
//! an optimisation pass (cheap when nothing is planned). In bulk mode the points go into the
//! appendable segment unindexed, and each time it holds a full segment's worth
//! ([`DEFAULT_SEGMENT_POINTS`]) it is indexed on its own as one immutable segment; switching bulk
//! mode off indexes the remainder. The collection's `max_segment_size` is that segment size, so
//! Qdrant's optimisers never merge full segments (which would rebuild their HNSW graphs): the index
//! is built once per point, in bounded memory, spread over the load instead of one pass over the
//! whole collection at the end.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use qdrant_edge as qe;

use super::*;
use crate::error::{ErrorKind, VdbError};
use crate::files::{write_bytes_atomic, FileLock};

mod collection;
mod convert;

pub use collection::DEFAULT_SEGMENT_POINTS;
use collection::*;
use convert::*;

/// How long an opener waits for another holder of a collection's lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(600);

const LOCK_FILE: &str = "vdb.lock";
const ALIASES_FILE: &str = ".aliases.json";
const ALIASES_LOCK: &str = ".aliases.lock";
/// How long deleting a collection waits for a process that has it open (a reader keeps it open
/// until it closes its store): the caller decides what a `Locked` error means.
const DELETE_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// Segments of a collection and how many of its points an HNSW index covers (the others are in
/// segments too small to index, searched exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IndexInfo {
    pub segments: usize,
    pub points: usize,
    pub indexed_points: usize,
}

pub struct EmbeddedStore {
    root: PathBuf,
    lock_timeout: Duration,
    segment_points: usize,
    /// Collections this store has opened (and therefore holds the OS lock of).
    handles: Mutex<HashMap<String, Arc<Handle>>>,
}

/// One locked collection directory. Field order matters: `state` (and the shard in it, whose drop
/// flushes) is dropped before `lock` releases the OS lock.
struct Handle {
    state: RwLock<State>,
    dir: PathBuf,
    _lock: FileLock,
}

struct State {
    open: Option<OpenShard>,
    bulk: bool,
}

impl EmbeddedStore {
    /// Open (creating if needed) a store directory. Collections are opened and locked lazily, on
    /// first use.
    pub fn open(path: &Path) -> Result<Self> {
        fs::create_dir_all(path).map_err(|e| VdbError::io(path, "cannot create the embedded store directory", e))?;
        Ok(EmbeddedStore {
            root: path.to_path_buf(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            segment_points: DEFAULT_SEGMENT_POINTS,
            handles: Mutex::new(HashMap::new()),
        })
    }

    /// How long to wait for a collection another process (or store) holds before failing with
    /// `Locked`.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Segments and HNSW coverage of a collection (what the segment policy produced).
    pub fn index_info(&self, collection: &str) -> Result<IndexInfo> {
        self.read(collection, |open, _| {
            let info = open.shard.info();
            Ok(IndexInfo {
                segments: info.segments_count,
                points: info.points_count,
                indexed_points: info.indexed_vectors_count,
            })
        })
    }

    /// Run `f` on an existing collection's open shard (and its directory, for errors), under the
    /// collection's read lock.
    fn read<T>(&self, collection: &str, f: impl FnOnce(&OpenShard, &Path) -> Result<T>) -> Result<T> {
        let h = self.existing(collection)?;
        let st = h.state.read();
        let Some(open) = st.open.as_ref() else {
            return Err(missing(collection, &h.dir));
        };
        f(open, &h.dir)
    }

    /// Every point of an existing collection matching `filter`, a page ([`SCROLL_PAGE`] points) at
    /// a time in id order, with the payload `with_payload` selects and the vectors `with_vector`
    /// does: `f` is called once per page, under the collection's read lock, until the scroll ends,
    /// `f` breaks or `f` (or the scroll) fails.
    fn scroll_each(
        &self,
        collection: &str,
        filter: Option<qe::Filter>,
        with_payload: qe::WithPayloadInterface,
        with_vector: qe::WithVector,
        mut f: impl FnMut(Vec<qe::Record>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        self.read(collection, |open, dir| {
            let mut req = qe::ScrollRequest {
                offset: None,
                limit: Some(SCROLL_PAGE),
                filter,
                with_payload: Some(with_payload),
                with_vector,
                order_by: None,
            };
            loop {
                let (records, next) = open.shard.scroll(req.clone()).map_err(|e| edge_err(dir, "scroll", e))?;
                if f(records)?.is_break() || next.is_none() {
                    return Ok(());
                }
                req.offset = next;
            }
        })
    }

    /// Points per indexed segment in bulk mode (at least 1,000).
    pub fn with_segment_points(mut self, points: usize) -> Self {
        self.segment_points = points.max(1_000);
        self
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Flush and close a collection (or the one an alias names) and release its lock (no-op if
    /// this store has not opened it).
    pub fn close(&self, collection: &str) {
        let name = self.resolve(collection).unwrap_or_else(|_| collection.to_string());
        let handle = self.handles.lock().remove(&name);
        drop(handle);
    }

    fn read_aliases(&self) -> Result<BTreeMap<String, String>> {
        let p = self.root.join(ALIASES_FILE);
        match fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                VdbError::new(ErrorKind::Store, format!("alias file {} is damaged: {e}", p.display())).with_file(&p)
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(VdbError::io(&p, "cannot read", e)),
        }
    }

    /// Read-modify-write of the alias file under its lock.
    fn update_aliases<T>(&self, f: impl FnOnce(&mut BTreeMap<String, String>) -> Result<T>) -> Result<T> {
        let _lock = FileLock::acquire(&self.root.join(ALIASES_LOCK), self.lock_timeout)?;
        let mut aliases = self.read_aliases()?;
        let before = aliases.clone();
        let out = f(&mut aliases)?;
        if aliases != before {
            let bytes = serde_json::to_vec_pretty(&aliases)
                .map_err(|e| VdbError::internal(format!("cannot serialise aliases: {e}")))?;
            write_bytes_atomic(&self.root.join(ALIASES_FILE), &bytes)?;
        }
        Ok(out)
    }

    /// Whether `name` is a complete collection (not an alias).
    fn is_collection(&self, name: &str) -> bool {
        let handle = self.handles.lock().get(name).cloned();
        if let Some(h) = handle {
            return h.state.read().open.is_some();
        }
        // Not opened by us: the metadata file, written last on create, says whether it is complete.
        self.collection_dir(name).join(META_FILE).is_file()
    }

    /// The collection `name` stands for: itself, or the one the alias `name` points to.
    fn resolve(&self, name: &str) -> Result<String> {
        validate_collection_name(name)?;
        if self.is_collection(name) {
            return Ok(name.to_string());
        }
        Ok(self.read_aliases()?.remove(name).unwrap_or_else(|| name.to_string()))
    }

    fn collection_dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The locked handle for a collection, opening (and locking) it on first use. The map lock is
    /// held while waiting for the OS lock, so threads of this store queue behind each other too.
    fn handle(&self, name: &str) -> Result<Arc<Handle>> {
        let resolved = self.resolve(name)?;
        let name = resolved.as_str();
        let mut handles = self.handles.lock();
        if let Some(h) = handles.get(name) {
            return Ok(h.clone());
        }
        let dir = self.collection_dir(name);
        fs::create_dir_all(&dir).map_err(|e| VdbError::io(&dir, "cannot create the collection directory", e))?;
        let lock = FileLock::acquire(&dir.join(LOCK_FILE), self.lock_timeout).map_err(|e| match e.kind {
            ErrorKind::Locked => VdbError::new(
                ErrorKind::Locked,
                format!(
                    "embedded qdrant collection {} is locked by another process or store: {}",
                    dir.display(),
                    e.message
                ),
            )
            .with_file(&dir),
            _ => e,
        })?;
        let started = std::time::Instant::now();
        let open = load_existing(&dir, name, self.segment_points)?;
        log::debug!("embedded collection {} opened in {:.2}s", dir.display(), started.elapsed().as_secs_f64());
        let bulk = open.as_ref().is_some_and(|o| o.meta.bulk);
        let handle = Arc::new(Handle { state: RwLock::new(State { open, bulk }), dir, _lock: lock });
        handles.insert(name.to_string(), handle.clone());
        Ok(handle)
    }

    /// The handle of an existing collection, or a `Store` error saying it does not exist.
    fn existing(&self, name: &str) -> Result<Arc<Handle>> {
        let resolved = self.resolve(name)?;
        if !self.is_collection(&resolved) {
            return Err(missing(name, &self.collection_dir(&resolved)));
        }
        self.handle(&resolved)
    }
}

fn missing(name: &str, dir: &Path) -> VdbError {
    VdbError::new(
        ErrorKind::Store,
        format!(
            "collection '{name}' does not exist in the embedded store at {} (ensure_collection creates it)",
            dir.display()
        ),
    )
    .with_file(dir)
}

fn edge_err(path: &Path, what: &str, e: qe::OperationError) -> VdbError {
    VdbError::new(ErrorKind::Store, format!("embedded qdrant at {}: {what} failed: {e}", path.display()))
        .with_file(path)
}

impl VectorStore for EmbeddedStore {
    fn describe(&self) -> String {
        StoreTarget::Embedded { path: self.root.clone() }.describe()
    }

    fn ensure_collection(&self, spec: &CollectionSpec, recreate: bool) -> Result<EnsureOutcome> {
        // Through an alias: the collection it names.
        let spec = &CollectionSpec { name: self.resolve(&spec.name)?, ..spec.clone() };
        spec.options.validate()?;
        let server_only = spec.options.server_only();
        if !server_only.is_empty() {
            return Err(VdbError::new(
                ErrorKind::InvalidConfig,
                format!(
                    "{} need a Qdrant server (cluster); the embedded store at {} is one local shard: set QDRANT_URL or leave them unset",
                    server_only.join(", "),
                    self.root.display()
                ),
            ));
        }
        if spec.dim == 0 {
            return Err(VdbError::new(
                ErrorKind::InvalidConfig,
                format!("collection '{}': vector size must be at least 1", spec.name),
            ));
        }
        let h = self.handle(&spec.name)?;
        let mut st = h.state.write();
        let outcome = match st.open.as_mut() {
            Some(open) => {
                let found = if open.meta.dim != spec.dim || open.meta.distance != spec.distance {
                    Some(format!(
                        "vectors of {}, but {} is needed",
                        describe_vectors(open.meta.dim, open.meta.distance),
                        describe_vectors(spec.dim, spec.distance)
                    ))
                } else {
                    model_mismatch(open.meta.model.as_deref(), spec)
                        .and_then(|()| sparse_mismatch(open.meta.sparse.as_ref(), spec))
                        .err()
                };
                match found {
                    None if !recreate => {
                        let shard_dir = h.dir.join(SHARD_DIR);
                        let mut changed = false;
                        for (field, kind) in &spec.payload_indexes {
                            if !open.meta.payload_indexes.contains(&(field.clone(), *kind)) {
                                create_index(&open.shard, &shard_dir, field, *kind)?;
                                open.meta.payload_indexes.push((field.clone(), *kind));
                                changed = true;
                            }
                        }
                        if open.meta.model.is_none() && spec.model.is_some() {
                            open.meta.model = spec.model.clone();
                            changed = true;
                        }
                        if changed {
                            open.shard.flush();
                            save_meta(&h.dir, &open.meta)?;
                        }
                        return Ok(EnsureOutcome::Existed);
                    }
                    Some(found) if !recreate => {
                        let place = format!("in {}", h.dir.display());
                        return Err(mismatch_error(&spec.name, &place, &found).with_file(&h.dir));
                    }
                    _ => EnsureOutcome::Recreated,
                }
            }
            None => EnsureOutcome::Created,
        };
        // Close the old shard (flushes) before deleting its files.
        st.open = None;
        st.open = Some(create_collection(&h.dir, spec, self.segment_points)?);
        Ok(outcome)
    }

    fn collections(&self) -> Result<Vec<String>> {
        let entries = fs::read_dir(&self.root).map_err(|e| VdbError::io(&self.root, "cannot list", e))?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| validate_collection_name(n).is_ok() && self.is_collection(n))
            .collect();
        names.sort();
        Ok(names)
    }

    fn collection_exists(&self, collection: &str) -> Result<bool> {
        let name = self.resolve(collection)?;
        Ok(self.is_collection(&name))
    }

    fn aliases(&self) -> Result<Vec<(String, String)>> {
        Ok(self.read_aliases()?.into_iter().collect())
    }

    fn switch_alias(&self, alias: &str, collection: &str) -> Result<Option<String>> {
        validate_collection_name(alias)?;
        validate_collection_name(collection)?;
        self.update_aliases(|aliases| {
            if !self.is_collection(collection) {
                return Err(missing(collection, &self.collection_dir(collection)));
            }
            if self.is_collection(alias) {
                return Err(VdbError::new(
                    ErrorKind::Store,
                    format!(
                        "cannot name an alias '{alias}': a collection of that name exists in the embedded store at {}",
                        self.root.display()
                    ),
                ));
            }
            Ok(aliases.insert(alias.to_string(), collection.to_string()))
        })
    }

    fn delete_collection(&self, collection: &str) -> Result<bool> {
        validate_collection_name(collection)?;
        if !self.is_collection(collection) {
            return Ok(false);
        }
        // No alias may lead to a collection being deleted.
        self.update_aliases(|aliases| {
            aliases.retain(|_, c| c != collection);
            Ok(())
        })?;
        self.close(collection);
        let dir = self.collection_dir(collection);
        let _lock =
            FileLock::acquire(&dir.join(LOCK_FILE), DELETE_LOCK_TIMEOUT.min(self.lock_timeout)).map_err(|e| match e
                .kind
            {
                ErrorKind::Locked => VdbError::new(
                    ErrorKind::Locked,
                    format!("cannot delete collection {}: another process has it open ({})", dir.display(), e.message),
                )
                .with_file(&dir),
                _ => e,
            })?;
        // The metadata file goes first: from then on the collection does not exist.
        let meta = dir.join(META_FILE);
        fs::remove_file(&meta).map_err(|e| VdbError::io(&meta, "cannot remove", e))?;
        fs::remove_dir_all(&dir).map_err(|e| VdbError::io(&dir, "cannot remove", e))?;
        Ok(true)
    }

    fn upsert(&self, collection: &str, points: Vec<PointRecord>, opts: &LoadOptions) -> Result<u64> {
        let h = self.existing(collection)?;
        let st = h.state.write();
        let Some(open) = st.open.as_ref() else {
            return Err(missing(collection, &h.dir));
        };
        check_dims(collection, open.meta.dim, &points)?;
        let shard_dir = h.dir.join(SHARD_DIR);
        let total = points.len() as u64;
        opts.validate()?;
        let batch = opts.batch_size;
        let mut iter = points.into_iter().peekable();
        while iter.peek().is_some() {
            let chunk: Vec<qe::PointStructPersisted> = iter
                .by_ref()
                .take(batch)
                .map(|p| {
                    // A collection without BM25 takes the dense vector only.
                    let sparse = p.sparse.filter(|_| open.meta.sparse.is_some());
                    let vectors = point_vectors(p.vector, sparse)?;
                    Ok(qe::PointStruct::new(edge_id(&p.id), vectors, Value::Object(p.payload)).into())
                })
                .collect::<Result<_>>()?;
            let op = qe::UpdateOperation::PointOperation(qe::PointOperations::UpsertPoints(
                qe::PointInsertOperations::PointsList(chunk),
            ));
            open.shard.update(op).map_err(|e| edge_err(&shard_dir, "upsert", e))?;
            if st.bulk && open.unindexed_points() >= self.segment_points {
                // A full segment: index it now, on its own (see the module docs).
                open.shard.optimize().map_err(|e| edge_err(&shard_dir, "optimize", e))?;
            }
        }
        if !st.bulk {
            open.shard.optimize().map_err(|e| edge_err(&shard_dir, "optimize", e))?;
        }
        // WAL and segments to disk: the points are durable when upsert returns.
        open.shard.flush();
        Ok(total)
    }

    fn set_bulk_mode(&self, collection: &str, bulk: bool) -> Result<()> {
        if !bulk && !self.collection_exists(collection)? {
            // Called from the pipeline's clean-up path, possibly after ensure_collection failed.
            return Ok(());
        }
        let h = self.existing(collection)?;
        let mut st = h.state.write();
        let was_bulk = std::mem::replace(&mut st.bulk, bulk);
        if let Some(open) = st.open.as_mut() {
            if was_bulk && !bulk {
                let shard_dir = h.dir.join(SHARD_DIR);
                open.shard.optimize().map_err(|e| edge_err(&shard_dir, "optimize", e))?;
                open.shard.flush();
            }
            if open.meta.bulk != bulk {
                open.meta.bulk = bulk;
                save_meta(&h.dir, &open.meta)?;
            }
        }
        Ok(())
    }

    fn count(&self, collection: &str) -> Result<u64> {
        self.read(collection, |open, dir| {
            let n = open
                .shard
                .count(qe::CountRequest { filter: None, exact: true })
                .map_err(|e| edge_err(dir, "count", e))?;
            Ok(n as u64)
        })
    }

    fn query(
        &self,
        collection: &str,
        query: &QueryVectors<'_>,
        limit: usize,
        filter: &[Condition],
        params: &SearchParams,
    ) -> Result<Vec<Hit>> {
        let filter = edge_filter(filter)?;
        self.read(collection, |open, dir| {
            if let QueryVectors::Dense(v) | QueryVectors::Hybrid { dense: v, .. } = query {
                check_query_dim(collection, open.meta.dim, v)?;
            }
            if query.mode() != SearchMode::Dense && open.meta.sparse.is_none() {
                return Err(no_sparse_error(collection, &format!("in {}", dir.display()), query.mode()));
            }
            if limit == 0 {
                return Ok(Vec::new());
            }
            let (prefetches, scoring, params) = match *query {
                QueryVectors::Dense(v) => (Vec::new(), nearest_dense(v), search_params(params)),
                QueryVectors::Sparse(s) => (Vec::new(), nearest_sparse(s)?, None),
                QueryVectors::Hybrid { dense, sparse, fusion: f } => {
                    let prefetch = |query, params| qe::Prefetch {
                        prefetches: Vec::new(),
                        query: Some(query),
                        limit: prefetch_limit(limit),
                        params,
                        filter: None,
                        score_threshold: None,
                    };
                    let both = vec![
                        prefetch(nearest_dense(dense), search_params(params)),
                        prefetch(nearest_sparse(sparse)?, None),
                    ];
                    (both, fusion(f), None)
                }
            };
            // The request's filter applies to every prefetch too (Qdrant propagates it).
            let request = qe::QueryRequest {
                prefetches,
                query: Some(scoring),
                filter,
                score_threshold: None,
                limit,
                offset: 0,
                params,
                with_vector: qe::WithVector::Bool(false),
                with_payload: qe::WithPayloadInterface::Bool(true),
            };
            let points = open.shard.query(request).map_err(|e| edge_err(dir, "query", e))?;
            Ok(points
                .into_iter()
                .map(|p| Hit { id: id_string(&p.id), score: p.score, payload: payload_map(p.payload) })
                .collect())
        })
    }

    fn retrieve(&self, collection: &str, ids: &[Uuid]) -> Result<Vec<Hit>> {
        self.read(collection, |open, dir| {
            let ids: Vec<qe::PointId> = ids.iter().map(edge_id).collect();
            let records = open
                .shard
                .retrieve(&ids, Some(qe::WithPayloadInterface::Bool(true)), None)
                .map_err(|e| edge_err(dir, "retrieve", e))?;
            Ok(records
                .into_iter()
                .map(|r| Hit { id: id_string(&r.id), score: 0.0, payload: payload_map(r.payload) })
                .collect())
        })
    }

    fn scroll_ids(&self, collection: &str, filter: &[Condition]) -> Result<Vec<Uuid>> {
        let filter = edge_filter(filter)?;
        let mut ids = Vec::new();
        let (no_payload, no_vector) = (qe::WithPayloadInterface::Bool(false), qe::WithVector::Bool(false));
        self.scroll_each(collection, filter, no_payload, no_vector, |records| {
            ids.extend(records.into_iter().filter_map(|r| match r.id {
                qe::PointId::Uuid(u) => Some(u),
                qe::PointId::NumId(_) => None,
            }));
            Ok(ControlFlow::Continue(()))
        })?;
        Ok(ids)
    }

    fn scan(
        &self,
        collection: &str,
        filter: &[Condition],
        fields: &[String],
        vectors: bool,
        page: &mut dyn FnMut(Vec<ScannedPoint>) -> Result<()>,
    ) -> Result<()> {
        let filter = edge_filter(filter)?;
        let paths = fields
            .iter()
            .map(|f| {
                f.parse::<qe::JsonPath>().map_err(|()| {
                    VdbError::new(ErrorKind::InvalidConfig, format!("{f:?} is not a valid payload key")).with_column(f)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let with_vector = if vectors {
            qe::WithVector::Selector(vec![qe::DEFAULT_VECTOR_NAME.to_string()])
        } else {
            qe::WithVector::Bool(false)
        };
        self.scroll_each(collection, filter, qe::WithPayloadInterface::Fields(paths), with_vector, |records| {
            page(
                records
                    .into_iter()
                    .filter_map(|r| match r.id {
                        qe::PointId::Uuid(id) => {
                            Some(ScannedPoint { id, payload: payload_map(r.payload), vector: dense(r.vector) })
                        }
                        qe::PointId::NumId(_) => None,
                    })
                    .collect(),
            )?;
            Ok(ControlFlow::Continue(()))
        })
    }

    fn set_payload(&self, collection: &str, ids: &[Uuid], payload: &Map<String, Value>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let h = self.existing(collection)?;
        let st = h.state.write();
        let Some(open) = st.open.as_ref() else {
            return Err(missing(collection, &h.dir));
        };
        let shard_dir = h.dir.join(SHARD_DIR);
        let op = qe::UpdateOperation::PayloadOperation(qe::PayloadOps::SetPayload(qe::SetPayloadOp {
            payload: qe::Payload(payload.clone().into_iter().collect()),
            points: Some(ids.iter().map(edge_id).collect()),
            filter: None,
            key: None,
        }));
        open.shard.update(op).map_err(|e| edge_err(&shard_dir, "set payload", e))?;
        // Changing the payload of a point in an indexed (immutable) segment moves it to the
        // appendable one: index what moved, as upsert does outside bulk mode.
        if !st.bulk {
            open.shard.optimize().map_err(|e| edge_err(&shard_dir, "optimize", e))?;
        }
        open.shard.flush();
        Ok(())
    }

    fn create_payload_index(&self, collection: &str, field: &str, kind: IndexKind) -> Result<()> {
        let h = self.existing(collection)?;
        let mut st = h.state.write();
        let Some(open) = st.open.as_mut() else {
            return Err(missing(collection, &h.dir));
        };
        if open.meta.payload_indexes.iter().any(|(f, _)| f == field) {
            return Ok(());
        }
        create_index(&open.shard, &h.dir.join(SHARD_DIR), field, kind)?;
        open.meta.payload_indexes.push((field.to_string(), kind));
        open.shard.flush();
        save_meta(&h.dir, &open.meta)
    }

    fn delete(&self, collection: &str, ids: &[Uuid]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let h = self.existing(collection)?;
        let st = h.state.write();
        let Some(open) = st.open.as_ref() else {
            return Err(missing(collection, &h.dir));
        };
        let shard_dir = h.dir.join(SHARD_DIR);
        let op = qe::UpdateOperation::PointOperation(qe::PointOperations::DeletePoints {
            ids: ids.iter().map(edge_id).collect(),
        });
        open.shard.update(op).map_err(|e| edge_err(&shard_dir, "delete", e))?;
        open.shard.flush();
        Ok(ids.len() as u64)
    }

    fn release(&self, collection: &str) {
        self.close(collection);
    }

    fn collection_model(&self, collection: &str) -> Result<Option<String>> {
        if !self.collection_exists(collection)? {
            return Ok(None);
        }
        self.read(collection, |open, _| Ok(open.meta.model.clone()))
    }

    fn collection_sparse(&self, collection: &str) -> Result<Option<Bm25Config>> {
        self.read(collection, |open, _| Ok(open.meta.sparse))
    }

    fn sparse_vectors(&self, collection: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, SparseVector>> {
        self.read(collection, |open, dir| {
            if open.meta.sparse.is_none() {
                return Ok(HashMap::new());
            }
            let ids: Vec<qe::PointId> = ids.iter().map(edge_id).collect();
            let only_sparse = qe::WithVector::Selector(vec![SPARSE_VECTOR.into()]);
            let records = open
                .shard
                .retrieve(&ids, Some(qe::WithPayloadInterface::Bool(false)), Some(only_sparse))
                .map_err(|e| edge_err(dir, "retrieve", e))?;
            Ok(records
                .into_iter()
                .filter_map(|r| match (r.id, sparse_of(r.vector)) {
                    (qe::PointId::Uuid(id), Some(v)) => Some((id, v)),
                    _ => None,
                })
                .collect())
        })
    }

    fn payload_indexes(&self, collection: &str) -> Result<Vec<(String, IndexKind)>> {
        self.read(collection, |open, _| {
            let mut out = open.meta.payload_indexes.clone();
            out.sort();
            Ok(out)
        })
    }

    fn find_keys(&self, collection: &str, field: &str, keys: &[String]) -> Result<HashMap<String, Uuid>> {
        let mut found = HashMap::new();
        if keys.is_empty() {
            return Ok(found);
        }
        let filter: qe::Filter = serde_json::from_value(serde_json::json!({
            "must": [{ "key": field, "match": { "any": keys } }]
        }))
        .map_err(|e| VdbError::internal(format!("cannot build the key filter: {e}")))?;
        let only_field = payload_fields(field)?;
        self.scroll_each(collection, Some(filter), only_field, qe::WithVector::Bool(false), |records| {
            for r in records {
                let key = payload_map(r.payload).get(field).and_then(Value::as_str).map(str::to_string);
                if let (Some(key), qe::PointId::Uuid(id)) = (key, r.id) {
                    found.entry(key).or_insert(id);
                }
            }
            Ok(if found.len() < keys.len() { ControlFlow::Continue(()) } else { ControlFlow::Break(()) })
        })?;
        Ok(found)
    }

    fn vectors(&self, collection: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<f32>>> {
        self.read(collection, |open, dir| {
            let ids: Vec<qe::PointId> = ids.iter().map(edge_id).collect();
            let records = open
                .shard
                .retrieve(&ids, Some(qe::WithPayloadInterface::Bool(false)), Some(qe::WithVector::Bool(true)))
                .map_err(|e| edge_err(dir, "retrieve", e))?;
            Ok(records
                .into_iter()
                .filter_map(|r| match (r.id, dense(r.vector)) {
                    (qe::PointId::Uuid(id), Some(v)) => Some((id, v)),
                    _ => None,
                })
                .collect())
        })
    }

    fn existing(&self, collection: &str, ids: &[Uuid], field: &str) -> Result<HashMap<Uuid, Option<String>>> {
        let only_field = payload_fields(field)?;
        self.read(collection, |open, dir| {
            let ids: Vec<qe::PointId> = ids.iter().map(edge_id).collect();
            let records =
                open.shard.retrieve(&ids, Some(only_field), None).map_err(|e| edge_err(dir, "retrieve", e))?;
            Ok(records
                .into_iter()
                .filter_map(|r| match r.id {
                    qe::PointId::Uuid(id) => {
                        Some((id, payload_map(r.payload).get(field).and_then(Value::as_str).map(str::to_string)))
                    }
                    qe::PointId::NumId(_) => None,
                })
                .collect())
        })
    }
}
