//! Collections: create and check them (vector size and distance, model, BM25 parameters), their
//! layout, metadata and payload indexes, list and delete them, and aliases.

use super::*;

impl ServerStore {
    /// The collection's info, or None if it does not exist.
    pub(super) fn info(&self, collection: &str) -> Result<Option<pb::CollectionInfo>> {
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
        Ok(aliases(self)?.into_iter().find(|(a, _)| a == alias).map(|(_, c)| c))
    }

    /// The collection `name` stands for: itself, or the one the alias `name` points to.
    pub(super) fn resolve(&self, name: &str) -> Result<String> {
        validate_collection_name(name)?;
        if self.physical_exists(self.retry, name)? {
            return Ok(name.to_string());
        }
        Ok(self.alias_target(name)?.unwrap_or_else(|| name.to_string()))
    }

    pub(super) fn missing(&self, collection: &str) -> VdbError {
        VdbError::new(
            ErrorKind::Store,
            format!("collection '{collection}' does not exist on {} (ensure_collection creates it)", self.url),
        )
    }

    /// The collection's vector size, shard count and BM25 vector (cached after the first look-up).
    pub(super) fn layout(&self, policy: RetryPolicy, collection: &str) -> Result<Layout> {
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

    /// Sets one key of the collection's metadata.
    fn set_metadata(&self, collection: &str, key: &str, value: Value) -> Result<()> {
        self.update_collection(pb::UpdateCollection {
            collection_name: collection.to_string(),
            metadata: [(key.to_string(), to_pb_value(value))].into(),
            ..Default::default()
        })
    }

    /// One `update_collection` request (settings and/or metadata), with the store's retries.
    pub(super) fn update_collection(&self, req: pb::UpdateCollection) -> Result<()> {
        let collection = req.collection_name.clone();
        self.call("update_collection", &collection, |c| {
            let req = req.clone();
            async move { c.update_collection(req).await }
        })?;
        Ok(())
    }
}

/// [`VectorStore::ensure_collection`].
pub(super) fn ensure(store: &ServerStore, spec: &CollectionSpec, recreate: bool) -> Result<EnsureOutcome> {
    validate_collection_name(&spec.name)?;
    if spec.dim == 0 {
        return Err(VdbError::new(
            ErrorKind::InvalidConfig,
            format!("collection '{}': vector size must be at least 1", spec.name),
        ));
    }
    // Through an alias: the collection it names.
    let spec = &CollectionSpec { name: store.resolve(&spec.name)?, ..spec.clone() };
    let wanted = format!("size {} / {}", spec.dim, spec.distance.name());
    store.dims.lock().remove(&spec.name);
    let outcome = match store.info(&spec.name)? {
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
                    store.ensure_indexes(spec, &info.payload_schema)?;
                    if let (None, Some(model)) = (recorded_model(&info), &spec.model) {
                        store.set_metadata(&spec.name, MODEL_KEY, Value::String(model.clone()))?;
                    }
                    return Ok(EnsureOutcome::Existed);
                }
                Some(found) if !recreate => {
                    return Err(mismatch_error(&spec.name, &format!("on {}", store.url), &found));
                }
                _ => {
                    store.call("delete_collection", &spec.name, |c| {
                        let name = spec.name.clone();
                        async move { c.delete_collection(name).await }
                    })?;
                    EnsureOutcome::Recreated
                }
            }
        }
        None => EnsureOutcome::Created,
    };
    if let Err(e) = store.create(spec) {
        // Another process (a parallel mapped task) may have created it in the meantime.
        // (Decided by asking the server again, not by the error's wording.)
        if e.kind == ErrorKind::Store && exists(store, &spec.name)? {
            return ensure(store, spec, false);
        }
        return Err(e);
    }
    store.ensure_indexes(spec, &HashMap::new())?;
    Ok(outcome)
}

/// [`VectorStore::collections`].
pub(super) fn list(store: &ServerStore) -> Result<Vec<String>> {
    let resp = store.call("list_collections", "*", |c| async move { c.list_collections().await })?;
    let mut names: Vec<String> = resp.collections.into_iter().map(|c| c.name).collect();
    names.sort();
    Ok(names)
}

/// [`VectorStore::collection_exists`].
pub(super) fn exists(store: &ServerStore, collection: &str) -> Result<bool> {
    validate_collection_name(collection)?;
    if store.physical_exists(store.retry, collection)? {
        return Ok(true);
    }
    match store.alias_target(collection)? {
        Some(target) => store.physical_exists(store.retry, &target),
        None => Ok(false),
    }
}

/// [`VectorStore::aliases`].
pub(super) fn aliases(store: &ServerStore) -> Result<Vec<(String, String)>> {
    let resp = store.call("list_aliases", "*", |c| async move { c.list_aliases().await })?;
    let mut aliases: Vec<(String, String)> =
        resp.aliases.into_iter().map(|a| (a.alias_name, a.collection_name)).collect();
    aliases.sort();
    Ok(aliases)
}

/// [`VectorStore::switch_alias`].
pub(super) fn switch_alias(store: &ServerStore, alias: &str, collection: &str) -> Result<Option<String>> {
    validate_collection_name(alias)?;
    validate_collection_name(collection)?;
    let previous = store.alias_target(alias)?;
    // One `create_alias` action both creates and moves an alias, atomically: Qdrant applies a
    // change of aliases under its collections lock (storage `update_aliases`, Qdrant 1.x).
    store.call("create_alias", collection, |c| {
        let req = pb::CreateAliasBuilder::new(collection, alias);
        async move { c.create_alias(req).await }
    })?;
    Ok(previous)
}

/// [`VectorStore::delete_collection`].
pub(super) fn delete(store: &ServerStore, collection: &str) -> Result<bool> {
    validate_collection_name(collection)?;
    if !store.physical_exists(store.retry, collection)? {
        return Ok(false);
    }
    store.dims.lock().remove(collection);
    let resp = store.call("delete_collection", collection, |c| {
        let name = collection.to_string();
        async move { c.delete_collection(name).await }
    })?;
    Ok(resp.result)
}

/// [`VectorStore::collection_model`].
pub(super) fn model(store: &ServerStore, collection: &str) -> Result<Option<String>> {
    validate_collection_name(collection)?;
    Ok(store.info(collection)?.as_ref().and_then(recorded_model))
}

/// [`VectorStore::collection_sparse`].
pub(super) fn sparse(store: &ServerStore, collection: &str) -> Result<Option<Bm25Config>> {
    validate_collection_name(collection)?;
    let info = store.info(collection)?.ok_or_else(|| store.missing(collection))?;
    recorded_sparse(&info).map_err(|found| {
        VdbError::new(ErrorKind::CollectionMismatch, format!("collection '{collection}' on {} has {found}", store.url))
    })
}

/// [`VectorStore::payload_indexes`].
pub(super) fn payload_indexes(store: &ServerStore, collection: &str) -> Result<Vec<(String, IndexKind)>> {
    validate_collection_name(collection)?;
    let info = store.info(collection)?.ok_or_else(|| store.missing(collection))?;
    let mut out: Vec<(String, IndexKind)> = info
        .payload_schema
        .iter()
        .filter_map(|(field, schema)| index_kind_of(schema.data_type).map(|k| (field.clone(), k)))
        .collect();
    out.sort();
    Ok(out)
}

/// [`VectorStore::create_payload_index`].
pub(super) fn create_payload_index(store: &ServerStore, collection: &str, field: &str, kind: IndexKind) -> Result<()> {
    validate_collection_name(collection)?;
    let info = store.info(collection)?.ok_or_else(|| store.missing(collection))?;
    let spec = CollectionSpec {
        name: collection.to_string(),
        dim: 0,
        distance: Distance::Cosine,
        payload_indexes: vec![(field.to_string(), kind)],
        model: None,
        options: CollectionOptions::default(),
    };
    store.ensure_indexes(&spec, &info.payload_schema)
}
