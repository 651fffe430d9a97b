//! The gRPC services (qdrant-client's generated server traits) on the [`Engine`].

use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use qdrant_client::qdrant as pb;
use qdrant_client::qdrant::collections_server::Collections;
use qdrant_client::qdrant::points_server::Points;
use qdrant_client::qdrant::qdrant_server::Qdrant as QdrantService;
use qdrant_edge as qe;
use serde_json::{json, Map, Value};
use tonic::{Request, Response, Status};

use crate::conversions::*;
use crate::engine::*;
use crate::SERVER_VERSION;

fn done<T>(v: T) -> Result<Response<T>, Status> {
    Ok(Response::new(v))
}

fn elapsed(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

fn update_ok(start: Instant) -> pb::PointsOperationResponse {
    pb::PointsOperationResponse {
        result: Some(pb::UpdateResult { operation_id: Some(0), status: pb::UpdateStatus::Completed as i32 }),
        time: elapsed(start),
        usage: None,
    }
}

#[derive(Clone)]
pub(crate) struct Service {
    pub(crate) engine: Arc<Engine>,
}

type R<T> = Result<Response<T>, Status>;

pub(crate) fn unimplemented<T>(what: &str) -> R<T> {
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
            .optimizers(optimizers);
        for (vector_name, p) in req.sparse_vectors_config.take().map(|c| c.map).unwrap_or_default() {
            let mut params = qe::EdgeSparseVectorParams::builder();
            if p.modifier == Some(pb::Modifier::Idf as i32) {
                params = params.modifier(qe::Modifier::Idf);
            }
            #[allow(deprecated)] // `on_disk` as the oldest supported clients send it
            if let Some(on_disk) = p.index.and_then(|i| i.on_disk) {
                params = params.on_disk(on_disk);
            }
            config = config.sparse_vector(vector_name, params.build());
        }
        let mut config = config.build();
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
                let vector = point_vectors(p.vectors)?;
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
                let records = shard.retrieve(&ids, Some(payload), Some(vectors)).map_err(op_err)?;
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

    async fn set_payload(&self, r: Request<pb::SetPayloadPoints>) -> R<pb::PointsOperationResponse> {
        use pb::points_selector::PointsSelectorOneOf as P;
        let start = Instant::now();
        let req = r.into_inner();
        if req.key.is_some() {
            return unimplemented("set_payload with a key");
        }
        let name = req.collection_name;
        let c = self.engine.get(&name)?;
        let (points, filter) = match req.points_selector.and_then(|p| p.points_selector_one_of) {
            Some(P::Points(list)) => (Some(list.ids.iter().map(edge_id).collect::<Result<Vec<_>, _>>()?), None),
            Some(P::Filter(f)) => (None, edge_filter(Some(&f))?),
            None => return Err(Status::invalid_argument("Wrong input: points selector is required")),
        };
        let payload = qe::Payload(req.payload.into_iter().map(|(k, v)| (k, from_pb_value(v))).collect());
        let op = qe::PayloadOps::SetPayload(qe::SetPayloadOp { payload, points, filter, key: None });
        c.with(&name, move |shard| shard.update(qe::UpdateOperation::PayloadOperation(op)).map_err(op_err)).await?;
        done(update_ok(start))
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
        let mut req = r.into_inner();
        if req.lookup_from.is_some() {
            return unimplemented("lookup_from");
        }
        let name = req.collection_name.clone();
        let c = self.engine.get(&name)?;
        let sparse_query = matches!(
            req.query.as_ref().and_then(|q| q.variant.as_ref()),
            Some(Q::Nearest(pb::VectorInput { variant: Some(V::Sparse(_)) }))
        );
        if !req.prefetch.is_empty() || sparse_query || req.using.as_ref().is_some_and(|u| !u.is_empty()) {
            // The Query API proper (prefetches, fusion, named and sparse vectors): qdrant-edge plans
            // and runs it as Qdrant's shards do; the request's filter applies to every prefetch.
            let request = qe::QueryRequest {
                prefetches: std::mem::take(&mut req.prefetch).into_iter().map(prefetch).collect::<Result<_, _>>()?,
                query: scoring_query(req.query.take(), req.using.take())?,
                filter: edge_filter(req.filter.as_ref())?,
                score_threshold: req.score_threshold.map(qe::external::ordered_float::OrderedFloat),
                limit: req.limit.unwrap_or(10) as usize,
                offset: req.offset.unwrap_or(0) as usize,
                params: search_params(req.params.take()),
                with_vector: with_vectors(req.with_vectors.as_ref())?,
                with_payload: with_payload(req.with_payload.as_ref())?,
            };
            let result = c.with(&name, move |shard| query_edge(shard, request)).await?;
            return done(pb::QueryResponse { result, time: elapsed(start), usage: None });
        }
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
