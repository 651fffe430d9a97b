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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use qdrant_edge as qe;

use super::*;
use crate::error::{ErrorKind, VdbError};
use crate::handoff::atomic::write_bytes_atomic;
use crate::handoff::rundir::FileLock;

/// How long an opener waits for another holder of a collection's lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(600);

/// Points per indexed segment in a bulk load (see the module docs): one default shard (20,000 rows)
/// per segment, so each load task indexes what it loaded. Measured on 200,000 sample sentences
/// against indexing everything at the end (`examples/segment_bench.rs`): 2.98x less load + index
/// time, peak RSS 695 vs 1,794 MiB, search recall@10 within the spread between two builds (README,
/// Benchmarks). Small segments build fewer of Qdrant's
/// per-payload-value graph links: a filter value with only a few thousand points in a segment is
/// searched exactly there instead.
pub const DEFAULT_SEGMENT_POINTS: usize = 20_000;

/// Qdrant's default: segments with fewer vector bytes are searched exactly, without HNSW.
const QDRANT_INDEXING_THRESHOLD_KB: usize = 10_000;

const LOCK_FILE: &str = "vdb.lock";
const META_FILE: &str = "collection.json";
const SHARD_DIR: &str = "shard";
const META_FORMAT: u32 = 1;
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

struct OpenShard {
    shard: qe::EdgeShard,
    meta: CollectionMeta,
}

impl OpenShard {
    /// Points in the shard that no HNSW index covers yet (the appendable segment and small
    /// segments below Qdrant's indexing threshold).
    fn unindexed_points(&self) -> usize {
        let info = self.shard.info();
        info.points_count.saturating_sub(info.indexed_vectors_count)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CollectionMeta {
    format: u32,
    name: String,
    dim: usize,
    distance: Distance,
    payload_indexes: Vec<(String, IndexKind)>,
    /// Bulk mode (optimisation deferred), persisted so that the load tasks of a DAG run, each in
    /// its own process, all see the mode the ensure step set, and the index is built once at the end.
    #[serde(default)]
    bulk: bool,
    /// The model whose vectors the collection holds ([`MODEL_KEY`]); absent in collections made
    /// before models were recorded (the first ensure with a model records it).
    #[serde(default)]
    model: Option<String>,
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

/// Open the shard of a complete collection, if there is one.
fn load_existing(dir: &Path, name: &str, segment_points: usize) -> Result<Option<OpenShard>> {
    let meta_path = dir.join(META_FILE);
    let meta: CollectionMeta = match fs::read(&meta_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            VdbError::new(ErrorKind::Store, format!("collection metadata {} is damaged: {e}", meta_path.display()))
                .with_file(&meta_path)
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(VdbError::io(&meta_path, "cannot read", e)),
    };
    if meta.name != name || meta.format != META_FORMAT {
        return Err(VdbError::new(
            ErrorKind::Store,
            format!(
                "collection metadata {} describes '{}' (format {}), expected '{name}' (format {META_FORMAT})",
                meta_path.display(),
                meta.name,
                meta.format
            ),
        )
        .with_file(&meta_path));
    }
    let shard_dir = dir.join(SHARD_DIR);
    let shard = qe::EdgeShard::load(&shard_dir, None).map_err(|e| edge_err(&shard_dir, "open", e))?;
    // Collections created before the segment policy (or with another segment size) get it now.
    let optimizers = optimizers_config(meta.dim, segment_points);
    if shard.config().optimizers != optimizers {
        shard.set_optimizers_config(optimizers).map_err(|e| edge_err(&shard_dir, "configure", e))?;
    }
    Ok(Some(OpenShard { shard, meta }))
}

/// Optimiser settings of the segment policy. A full segment (at least `segment_points` vectors)
/// is at least `max_segment_size`, so Qdrant's merge and indexing optimisers never combine it with
/// another segment (which would rebuild its graph), and it is always past the indexing threshold.
fn optimizers_config(dim: usize, segment_points: usize) -> qe::EdgeOptimizersConfig {
    let segment_kb = (segment_points.saturating_mul(dim).saturating_mul(std::mem::size_of::<f32>()) / 1024).max(1);
    qe::EdgeOptimizersConfig {
        max_segment_size: Some(segment_kb),
        indexing_threshold: Some(segment_kb.min(QDRANT_INDEXING_THRESHOLD_KB)),
        ..Default::default()
    }
}

fn edge_err(path: &Path, what: &str, e: qe::OperationError) -> VdbError {
    VdbError::new(ErrorKind::Store, format!("embedded qdrant at {}: {what} failed: {e}", path.display()))
        .with_file(path)
}

fn edge_distance(d: Distance) -> qe::Distance {
    match d {
        Distance::Cosine => qe::Distance::Cosine,
        Distance::Dot => qe::Distance::Dot,
        Distance::Euclid => qe::Distance::Euclid,
    }
}

fn schema_type(kind: IndexKind) -> qe::PayloadSchemaType {
    match kind {
        IndexKind::Keyword => qe::PayloadSchemaType::Keyword,
        IndexKind::Integer => qe::PayloadSchemaType::Integer,
        IndexKind::Float => qe::PayloadSchemaType::Float,
        IndexKind::Datetime => qe::PayloadSchemaType::Datetime,
    }
}

fn index_name(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::Keyword => "keyword",
        IndexKind::Integer => "integer",
        IndexKind::Float => "float",
        IndexKind::Datetime => "datetime",
    }
}

fn describe_vectors(dim: usize, distance: Distance) -> String {
    format!("size {dim} / {}", distance.name())
}

fn save_meta(dir: &Path, meta: &CollectionMeta) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(meta)
        .map_err(|e| VdbError::internal(format!("cannot serialise collection metadata: {e}")))?;
    write_bytes_atomic(&dir.join(META_FILE), &bytes)
}

fn create_index(shard: &qe::EdgeShard, dir: &Path, field: &str, kind: IndexKind) -> Result<()> {
    let field_name: qe::JsonPath = field.parse().map_err(|()| {
        VdbError::new(ErrorKind::InvalidConfig, format!("payload index field {field:?} is not a valid payload key"))
            .with_column(field)
    })?;
    let op = qe::UpdateOperation::FieldIndexOperation(qe::FieldIndexOperations::CreateIndex(qe::CreateIndex {
        field_name,
        field_schema: Some(qe::PayloadFieldSchema::FieldType(schema_type(kind))),
    }));
    shard.update(op).map_err(|e| edge_err(dir, &format!("creating the payload index on '{field}'"), e))
}

/// Create a fresh collection in `dir` (whose lock the caller holds).
fn create_collection(dir: &Path, spec: &CollectionSpec, segment_points: usize) -> Result<OpenShard> {
    let shard_dir = dir.join(SHARD_DIR);
    let meta_path = dir.join(META_FILE);
    match fs::remove_file(&meta_path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(VdbError::io(&meta_path, "cannot remove", e)),
    }
    if shard_dir.exists() {
        fs::remove_dir_all(&shard_dir).map_err(|e| VdbError::io(&shard_dir, "cannot remove the old shard", e))?;
    }
    fs::create_dir_all(&shard_dir).map_err(|e| VdbError::io(&shard_dir, "cannot create", e))?;

    // qdrant-edge gives every new appendable segment the indexes listed in payload_index.json, so
    // segments created after an optimisation pass keep the payload indexes too.
    let schema: serde_json::Map<String, Value> =
        spec.payload_indexes.iter().map(|(f, k)| (f.clone(), Value::String(index_name(*k).to_string()))).collect();
    let schema_file = serde_json::json!({ "schema": schema });
    write_bytes_atomic(&shard_dir.join("payload_index.json"), schema_file.to_string().as_bytes())?;

    let o = &spec.options;
    let mut config = qe::EdgeConfig::builder()
        .vector(qe::DEFAULT_VECTOR_NAME, qe::EdgeVectorParams::builder(spec.dim, edge_distance(spec.distance)).build())
        .optimizers(optimizers_config(spec.dim, segment_points))
        .build();
    config.on_disk_payload = o.on_disk_payload;
    if let Some(v) = config.vectors.get_mut(qe::DEFAULT_VECTOR_NAME) {
        v.on_disk = Some(o.on_disk);
    }
    config.quantization_config = o.quantization.map(|q| match q {
        Quantization::Int8 => serde_json::from_value(serde_json::json!({
            "scalar": { "type": "int8", "quantile": 0.99, "always_ram": true }
        }))
        .expect("a valid scalar quantization config"),
    });
    let shard = qe::EdgeShard::new(&shard_dir, config).map_err(|e| edge_err(&shard_dir, "create", e))?;
    for (field, kind) in &spec.payload_indexes {
        create_index(&shard, &shard_dir, field, *kind)?;
    }
    shard.flush();
    let meta = CollectionMeta {
        format: META_FORMAT,
        name: spec.name.clone(),
        dim: spec.dim,
        distance: spec.distance,
        payload_indexes: spec.payload_indexes.clone(),
        bulk: false,
        model: spec.model.clone(),
    };
    save_meta(dir, &meta)?;
    Ok(OpenShard { shard, meta })
}

/// The edge filter for our conditions, built as Qdrant's REST filter JSON (which qdrant-edge's
/// `Filter` deserialises), so the mapping reads like the Qdrant documentation.
fn edge_filter(filter: &[Condition]) -> Result<Option<qe::Filter>> {
    if filter.is_empty() {
        return Ok(None);
    }
    validate_conditions(filter)?;
    let must: Vec<Value> = filter
        .iter()
        .map(|c| match c {
            Condition::Equals { field, value } => {
                serde_json::json!({ "key": field, "match": { "value": value } })
            }
            Condition::Qdrant { filter } => filter.clone(),
            Condition::Range { field, gte, lte } => {
                let mut range = serde_json::Map::new();
                if let Some(v) = gte {
                    range.insert("gte".into(), serde_json::json!(v));
                }
                if let Some(v) = lte {
                    range.insert("lte".into(), serde_json::json!(v));
                }
                serde_json::json!({ "key": field, "range": range })
            }
        })
        .collect();
    let f: qe::Filter = serde_json::from_value(serde_json::json!({ "must": must }))
        .map_err(|e| VdbError::new(ErrorKind::InvalidConfig, format!("Qdrant filter: {e}")))?;
    Ok(Some(f))
}

fn search_params(p: &SearchParams) -> Option<qe::SearchParams> {
    (*p != SearchParams::default()).then(|| qe::SearchParams {
        hnsw_ef: p.hnsw_ef.map(|e| e as usize),
        exact: p.exact,
        ..Default::default()
    })
}

fn edge_id(id: &Uuid) -> qe::PointId {
    qe::PointId::Uuid(*id)
}

pub(crate) fn id_string(id: &qe::PointId) -> String {
    match id {
        qe::PointId::NumId(n) => n.to_string(),
        qe::PointId::Uuid(u) => u.hyphenated().to_string(),
    }
}

fn payload_map(p: Option<qe::Payload>) -> Map<String, Value> {
    p.map(|p| p.0).unwrap_or_default()
}

impl VectorStore for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded qdrant at {}", self.root.display())
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
                    model_mismatch(open.meta.model.as_deref(), spec).err()
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
                .map(|p| qe::PointStruct::new(edge_id(&p.id), p.vector, Value::Object(p.payload)).into())
                .collect();
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

    fn search_with(
        &self,
        collection: &str,
        vector: &[f32],
        limit: usize,
        filter: &[Condition],
        params: &SearchParams,
    ) -> Result<Vec<Hit>> {
        let filter = edge_filter(filter)?;
        self.read(collection, |open, dir| {
            if vector.len() != open.meta.dim {
                return Err(VdbError::new(
                    ErrorKind::Store,
                    format!(
                        "query vector has size {}, but collection '{collection}' stores vectors of size {}",
                        vector.len(),
                        open.meta.dim
                    ),
                ));
            }
            if limit == 0 {
                return Ok(Vec::new());
            }
            let request = qe::SearchRequest {
                query: qe::QueryEnum::Nearest(qe::NamedQuery {
                    query: qe::VectorInternal::Dense(vector.to_vec()),
                    using: None,
                }),
                filter,
                params: search_params(params),
                limit,
                offset: 0,
                with_payload: Some(qe::WithPayloadInterface::Bool(true)),
                with_vector: None,
                score_threshold: None,
            };
            let points = open.shard.search(request).map_err(|e| edge_err(dir, "search", e))?;
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
        self.read(collection, |open, dir| {
            let (mut ids, mut offset) = (Vec::new(), None);
            loop {
                let req = qe::ScrollRequest {
                    offset,
                    limit: Some(SCROLL_PAGE),
                    filter: filter.clone(),
                    with_payload: Some(qe::WithPayloadInterface::Bool(false)),
                    with_vector: qe::WithVector::Bool(false),
                    order_by: None,
                };
                let (records, next) = open.shard.scroll(req).map_err(|e| edge_err(dir, "scroll", e))?;
                ids.extend(records.into_iter().filter_map(|r| match r.id {
                    qe::PointId::Uuid(u) => Some(u),
                    qe::PointId::NumId(_) => None,
                }));
                match next {
                    Some(n) => offset = Some(n),
                    None => return Ok(ids),
                }
            }
        })
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
        self.read(collection, |open, dir| {
            let mut offset = None;
            loop {
                let req = qe::ScrollRequest {
                    offset,
                    limit: Some(SCROLL_PAGE),
                    filter: Some(filter.clone()),
                    with_payload: Some(only_field.clone()),
                    with_vector: qe::WithVector::Bool(false),
                    order_by: None,
                };
                let (records, next) = open.shard.scroll(req).map_err(|e| edge_err(dir, "scroll", e))?;
                for r in records {
                    let key = payload_map(r.payload).get(field).and_then(Value::as_str).map(str::to_string);
                    if let (Some(key), qe::PointId::Uuid(id)) = (key, r.id) {
                        found.entry(key).or_insert(id);
                    }
                }
                match next {
                    Some(n) if found.len() < keys.len() => offset = Some(n),
                    _ => return Ok(found),
                }
            }
        })
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

/// Points per page when scrolling for keys.
const SCROLL_PAGE: usize = 1024;

/// A payload selector returning only `field`.
fn payload_fields(field: &str) -> Result<qe::WithPayloadInterface> {
    let path: qe::JsonPath = field.parse().map_err(|()| {
        VdbError::new(ErrorKind::InvalidConfig, format!("{field:?} is not a valid payload key")).with_column(field)
    })?;
    Ok(qe::WithPayloadInterface::Fields(vec![path]))
}

/// The unnamed dense vector of a record.
fn dense(v: Option<qe::VectorStructInternal>) -> Option<Vec<f32>> {
    match v? {
        qe::VectorStructInternal::Single(d) => Some(d),
        qe::VectorStructInternal::Named(mut m) => match m.remove(qe::DEFAULT_VECTOR_NAME)? {
            qe::VectorInternal::Dense(d) => Some(d),
            _ => None,
        },
        _ => None,
    }
}
