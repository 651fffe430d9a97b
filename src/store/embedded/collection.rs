//! One collection on disk: its metadata file, its qdrant-edge shard, and the segment policy
//! (segment size and indexing threshold) it is created and opened with.

use super::*;

/// Points per indexed segment in a bulk load (see the module docs): one default shard (20,000 rows)
/// per segment, so each load task indexes what it loaded. Measured on 200,000 sample sentences
/// against indexing everything at the end (`examples/segment_bench.rs`): 2.98x less load + index
/// time, peak RSS 695 vs 1,794 MiB, search recall@10 within the spread between two builds (README,
/// Benchmarks). Small segments build fewer of Qdrant's
/// per-payload-value graph links: a filter value with only a few thousand points in a segment is
/// searched exactly there instead.
pub const DEFAULT_SEGMENT_POINTS: usize = 20_000;

/// Qdrant's default: segments with fewer vector bytes are searched exactly, without HNSW.
pub(super) const QDRANT_INDEXING_THRESHOLD_KB: usize = 10_000;

pub(super) const META_FILE: &str = "collection.json";

pub(super) const SHARD_DIR: &str = "shard";

pub(super) const META_FORMAT: u32 = 1;

pub(super) struct OpenShard {
    pub(super) shard: qe::EdgeShard,
    pub(super) meta: CollectionMeta,
}

impl OpenShard {
    /// Points in the shard that no HNSW index covers yet (the appendable segment and small
    /// segments below Qdrant's indexing threshold).
    pub(super) fn unindexed_points(&self) -> usize {
        let info = self.shard.info();
        info.points_count.saturating_sub(info.indexed_vectors_count)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct CollectionMeta {
    pub(super) format: u32,
    pub(super) name: String,
    pub(super) dim: usize,
    pub(super) distance: Distance,
    pub(super) payload_indexes: Vec<(String, IndexKind)>,
    /// Bulk mode (optimisation deferred), persisted so that the load tasks of a DAG run, each in
    /// its own process, all see the mode the ensure step set, and the index is built once at the end.
    #[serde(default)]
    pub(super) bulk: bool,
    /// The model whose vectors the collection holds ([`MODEL_KEY`]); absent in collections made
    /// before models were recorded (the first ensure with a model records it).
    #[serde(default)]
    pub(super) model: Option<String>,
    /// The BM25 parameters of the sparse vector ([`SPARSE_VECTOR`]); `None`: dense only.
    #[serde(default)]
    pub(super) sparse: Option<Bm25Config>,
}

/// Open the shard of a complete collection, if there is one.
pub(super) fn load_existing(dir: &Path, name: &str, segment_points: usize) -> Result<Option<OpenShard>> {
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
pub(super) fn optimizers_config(dim: usize, segment_points: usize) -> qe::EdgeOptimizersConfig {
    let segment_kb = (segment_points.saturating_mul(dim).saturating_mul(std::mem::size_of::<f32>()) / 1024).max(1);
    qe::EdgeOptimizersConfig {
        max_segment_size: Some(segment_kb),
        indexing_threshold: Some(segment_kb.min(QDRANT_INDEXING_THRESHOLD_KB)),
        ..Default::default()
    }
}

pub(super) fn edge_distance(d: Distance) -> qe::Distance {
    match d {
        Distance::Cosine => qe::Distance::Cosine,
        Distance::Dot => qe::Distance::Dot,
        Distance::Euclid => qe::Distance::Euclid,
    }
}

pub(super) fn schema_type(kind: IndexKind) -> qe::PayloadSchemaType {
    match kind {
        IndexKind::Keyword => qe::PayloadSchemaType::Keyword,
        IndexKind::Integer => qe::PayloadSchemaType::Integer,
        IndexKind::Float => qe::PayloadSchemaType::Float,
        IndexKind::Datetime => qe::PayloadSchemaType::Datetime,
    }
}

pub(super) fn describe_vectors(dim: usize, distance: Distance) -> String {
    format!("size {dim} / {}", distance.name())
}

pub(super) fn save_meta(dir: &Path, meta: &CollectionMeta) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(meta)
        .map_err(|e| VdbError::internal(format!("cannot serialise collection metadata: {e}")))?;
    write_bytes_atomic(&dir.join(META_FILE), &bytes)
}

pub(super) fn create_index(shard: &qe::EdgeShard, dir: &Path, field: &str, kind: IndexKind) -> Result<()> {
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
pub(super) fn create_collection(dir: &Path, spec: &CollectionSpec, segment_points: usize) -> Result<OpenShard> {
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
        spec.payload_indexes.iter().map(|(f, k)| (f.clone(), Value::String(k.name().to_string()))).collect();
    let schema_file = serde_json::json!({ "schema": schema });
    write_bytes_atomic(&shard_dir.join("payload_index.json"), schema_file.to_string().as_bytes())?;

    let o = &spec.options;
    let mut config = qe::EdgeConfig::builder()
        .vector(qe::DEFAULT_VECTOR_NAME, qe::EdgeVectorParams::builder(spec.dim, edge_distance(spec.distance)).build())
        .optimizers(optimizers_config(spec.dim, segment_points));
    if spec.options.sparse.is_some() {
        // Qdrant's IDF modifier: the engine weighs query tokens by their IDF in the live collection.
        let params = qe::EdgeSparseVectorParams::builder().modifier(qe::Modifier::Idf).on_disk(o.on_disk).build();
        config = config.sparse_vector(SPARSE_VECTOR, params);
    }
    let mut config = config.build();
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
        sparse: spec.options.sparse,
    };
    save_meta(dir, &meta)?;
    Ok(OpenShard { shard, meta })
}
