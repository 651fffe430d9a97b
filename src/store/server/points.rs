//! Points: upsert (batches in parallel, at least one request in flight per shard), count, query,
//! read by id, scroll (one paged loop, [`ServerStore::scroll_each`]), set payload and delete.

use std::ops::ControlFlow;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::*;

impl ServerStore {
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

    /// Every point matching `filter`, a page ([`SCROLL_PAGE`] points) at a time in id order, with
    /// the payload `payload` selects and, if `vectors`, its vectors: `f` is called once per page
    /// until the scroll ends, `f` breaks or `f` (or a request) fails.
    fn scroll_each(
        &self,
        collection: &str,
        filter: Option<&pb::Filter>,
        payload: pb::WithPayloadSelector,
        vectors: bool,
        mut f: impl FnMut(Vec<pb::RetrievedPoint>) -> Result<ControlFlow<()>>,
    ) -> Result<()> {
        let mut req = pb::ScrollPoints {
            collection_name: collection.to_string(),
            filter: filter.cloned(),
            offset: None,
            limit: Some(SCROLL_PAGE as u32),
            with_payload: Some(payload),
            with_vectors: Some(pb::WithVectorsSelector {
                selector_options: Some(pb::with_vectors_selector::SelectorOptions::Enable(vectors)),
            }),
            ..Default::default()
        };
        loop {
            let page = self.call("scroll", collection, |c| {
                let req = req.clone();
                async move { c.scroll(req).await }
            })?;
            if f(page.result)?.is_break() || page.next_page_offset.is_none() {
                return Ok(());
            }
            req.offset = page.next_page_offset;
        }
    }
}

/// [`VectorStore::upsert`].
pub(super) fn upsert(
    store: &ServerStore,
    collection: &str,
    points: Vec<PointRecord>,
    opts: &LoadOptions,
) -> Result<u64> {
    validate_collection_name(collection)?;
    if points.is_empty() {
        return Ok(0);
    }
    let policy = RetryPolicy::from(opts);
    let Layout { dim, shards, sparse } = store.layout(policy, collection)?;
    check_dims(collection, dim, &points)?;
    opts.validate()?;
    let batch = opts.batch_size;
    // At least one request in flight per shard, so every shard (node) of a cluster works.
    let permits = Arc::new(Semaphore::new(opts.parallel.max(shards).max(1)));
    let url: Arc<str> = Arc::from(store.url.as_str());
    let name: Arc<str> = Arc::from(collection);
    let client = store.client.clone();

    store.rt.block_on(async move {
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
                    Err(j) => first_err = first_err.or(Some(VdbError::internal(format!("upsert task failed: {j}")))),
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

/// [`VectorStore::count`].
pub(super) fn count(store: &ServerStore, collection: &str) -> Result<u64> {
    validate_collection_name(collection)?;
    let req = pb::CountPoints { collection_name: collection.to_string(), exact: Some(true), ..Default::default() };
    let resp = store.call("count", collection, |c| {
        let req = req.clone();
        async move { c.count(req).await }
    })?;
    Ok(resp.result.map(|r| r.count).unwrap_or(0))
}

/// [`VectorStore::query`].
pub(super) fn query(
    store: &ServerStore,
    collection: &str,
    query: &QueryVectors<'_>,
    limit: usize,
    filter: &[Condition],
    params: &SearchParams,
) -> Result<Vec<Hit>> {
    validate_collection_name(collection)?;
    let filter = pb_filter(filter)?;
    let layout = store.layout(store.retry, collection)?;
    if let QueryVectors::Dense(v) | QueryVectors::Hybrid { dense: v, .. } = query {
        check_query_dim(collection, layout.dim, v)?;
    }
    if query.mode() != SearchMode::Dense && !layout.sparse {
        return Err(no_sparse_error(collection, &format!("on {}", store.url), query.mode()));
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
    let resp = store.call("query", collection, |c| {
        let req = req.clone();
        async move { c.query(req).await }
    })?;
    Ok(resp
        .result
        .into_iter()
        .map(|p| Hit { id: id_string(p.id), score: p.score, payload: from_pb_payload(p.payload) })
        .collect())
}

/// [`VectorStore::retrieve`].
pub(super) fn retrieve(store: &ServerStore, collection: &str, ids: &[Uuid]) -> Result<Vec<Hit>> {
    Ok(store
        .get_points(collection, ids, with_payload(), false)?
        .into_iter()
        .map(|p| Hit { id: id_string(p.id), score: 0.0, payload: from_pb_payload(p.payload) })
        .collect())
}

/// [`VectorStore::vectors`].
pub(super) fn vectors(store: &ServerStore, collection: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Vec<f32>>> {
    Ok(store
        .get_points(collection, ids, no_payload(), true)?
        .into_iter()
        .filter_map(|p| Some((uuid_of(p.id)?, dense_output(p.vectors?)?)))
        .collect())
}

/// [`VectorStore::sparse_vectors`].
pub(super) fn sparse_vectors(
    store: &ServerStore,
    collection: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, SparseVector>> {
    validate_collection_name(collection)?;
    if ids.is_empty() || !store.layout(store.retry, collection)?.sparse {
        return Ok(HashMap::new());
    }
    let req = pb::GetPoints {
        collection_name: collection.to_string(),
        ids: ids.iter().map(pb_id).collect(),
        with_payload: Some(no_payload()),
        with_vectors: Some(pb::WithVectorsSelector {
            selector_options: Some(pb::with_vectors_selector::SelectorOptions::Include(pb::VectorsSelector {
                names: vec![SPARSE_VECTOR.to_string()],
            })),
        }),
        ..Default::default()
    };
    let resp = store.call("get_points", collection, |c| {
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

/// [`VectorStore::existing`].
pub(super) fn existing(
    store: &ServerStore,
    collection: &str,
    ids: &[Uuid],
    field: &str,
) -> Result<HashMap<Uuid, Option<String>>> {
    Ok(store
        .get_points(collection, ids, only_field(field), false)?
        .into_iter()
        .filter_map(|mut p| {
            let key = p.payload.remove(field).map(from_pb_value).and_then(|v| v.as_str().map(str::to_string));
            Some((uuid_of(p.id)?, key))
        })
        .collect())
}

/// [`VectorStore::find_keys`]: scrolls the points holding one of `keys` until each key has one.
pub(super) fn find_keys(
    store: &ServerStore,
    collection: &str,
    field: &str,
    keys: &[String],
) -> Result<HashMap<String, Uuid>> {
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
    store.scroll_each(collection, Some(&filter), only_field(field), false, |page| {
        for p in page {
            let key = p.payload.get(field).cloned().map(from_pb_value);
            if let (Some(Value::String(key)), Some(id)) = (key, uuid_of(p.id)) {
                found.entry(key).or_insert(id);
            }
        }
        Ok(if found.len() < keys.len() { ControlFlow::Continue(()) } else { ControlFlow::Break(()) })
    })?;
    Ok(found)
}

/// [`VectorStore::scroll_ids`].
pub(super) fn scroll_ids(store: &ServerStore, collection: &str, filter: &[Condition]) -> Result<Vec<Uuid>> {
    validate_collection_name(collection)?;
    let filter = pb_filter(filter)?;
    let mut ids = Vec::new();
    store.scroll_each(collection, filter.as_ref(), no_payload(), false, |page| {
        ids.extend(page.into_iter().filter_map(|p| uuid_of(p.id)));
        Ok(ControlFlow::Continue(()))
    })?;
    Ok(ids)
}

/// [`VectorStore::scan`].
pub(super) fn scan(
    store: &ServerStore,
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
    store.scroll_each(collection, filter.as_ref(), payload, vectors, |points| {
        page(
            points
                .into_iter()
                .filter_map(|p| {
                    let id = uuid_of(p.id)?;
                    let vector = p.vectors.and_then(dense_output);
                    Some(ScannedPoint { id, payload: from_pb_payload(p.payload), vector })
                })
                .collect(),
        )?;
        Ok(ControlFlow::Continue(()))
    })
}

/// [`VectorStore::set_payload`].
pub(super) fn set_payload(
    store: &ServerStore,
    collection: &str,
    ids: &[Uuid],
    payload: &Map<String, Value>,
) -> Result<()> {
    validate_collection_name(collection)?;
    if ids.is_empty() {
        return Ok(());
    }
    let req = pb::SetPayloadPoints {
        collection_name: collection.to_string(),
        wait: Some(true),
        payload: to_pb_payload(payload.clone()),
        points_selector: Some(points_by_id(ids)),
        ..Default::default()
    };
    store.call("set_payload", collection, |c| {
        let req = req.clone();
        async move { c.set_payload(req).await }
    })?;
    Ok(())
}

/// [`VectorStore::delete`].
pub(super) fn delete(store: &ServerStore, collection: &str, ids: &[Uuid]) -> Result<u64> {
    validate_collection_name(collection)?;
    if ids.is_empty() {
        return Ok(0);
    }
    let req = pb::DeletePoints {
        collection_name: collection.to_string(),
        wait: Some(true),
        points: Some(points_by_id(ids)),
        ..Default::default()
    };
    store.call("delete_points", collection, |c| {
        let req = req.clone();
        async move { c.delete_points(req).await }
    })?;
    Ok(ids.len() as u64)
}
