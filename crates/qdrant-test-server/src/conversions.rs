//! Conversions between Qdrant's protobuf types and qdrant-edge's (ids, vectors, payloads,
//! filters, collection info).

use std::collections::HashMap;

use qdrant_client::qdrant as pb;
use qdrant_edge as qe;
use serde_json::{json, Map, Value};
use tonic::Status;

pub(crate) fn edge_id(id: &pb::PointId) -> Result<qe::PointId, Status> {
    use pb::point_id::PointIdOptions;
    match &id.point_id_options {
        Some(PointIdOptions::Num(n)) => Ok(qe::PointId::NumId(*n)),
        Some(PointIdOptions::Uuid(s)) => qe::external::uuid::Uuid::parse_str(s)
            .map(qe::PointId::Uuid)
            .map_err(|e| Status::invalid_argument(format!("Wrong input: bad point id {s:?}: {e}"))),
        None => Err(Status::invalid_argument("Wrong input: point id is missing")),
    }
}

pub(crate) fn pb_id(id: &qe::PointId) -> pb::PointId {
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

/// One vector of an upserted point: dense or sparse (the current `vector` field or the pre-1.16
/// `data` / `indices` fields).
#[allow(deprecated)]
fn edge_vector(v: pb::Vector) -> Result<qe::Vector, Status> {
    match (v.vector, v.indices) {
        (Some(pb::vector::Vector::Dense(d)), _) => Ok(qe::Vector::new_dense(d.data)),
        (Some(pb::vector::Vector::Sparse(s)), _) => sparse(s.indices, s.values),
        (Some(_), _) => Err(Status::invalid_argument("Wrong input: only dense and sparse vectors are supported")),
        (None, Some(i)) => sparse(i.data, v.data),
        (None, None) => Ok(qe::Vector::new_dense(v.data)),
    }
}

fn sparse(indices: Vec<u32>, values: Vec<f32>) -> Result<qe::Vector, Status> {
    qe::Vector::new_sparse(indices, values).map_err(|e| Status::invalid_argument(format!("Wrong input: {e}")))
}

/// The vectors of an upserted point: the unnamed one, or named ones ("" is the unnamed dense one).
pub(crate) fn point_vectors(v: Option<pb::Vectors>) -> Result<qe::Vectors, Status> {
    use pb::vectors::VectorsOptions;
    match v.and_then(|v| v.vectors_options) {
        Some(VectorsOptions::Vector(v)) => match edge_vector(v)?.0 {
            qe::VectorInternal::Dense(d) => Ok(qe::Vectors::from(d)),
            _ => Err(Status::invalid_argument("Wrong input: the unnamed vector must be dense")),
        },
        Some(VectorsOptions::Vectors(named)) => {
            let named: std::collections::HashMap<String, qe::Vector> =
                named.vectors.into_iter().map(|(k, v)| Ok((k, edge_vector(v)?))).collect::<Result<_, Status>>()?;
            Ok(qe::Vectors::from(named))
        }
        None => Err(Status::invalid_argument("Wrong input: point has no vector")),
    }
}

#[allow(deprecated)]
fn vector_output(v: qe::VectorInternal) -> Option<pb::VectorOutput> {
    match v {
        // Both the current field and the pre-1.16 one, so older clients read it too.
        qe::VectorInternal::Dense(d) => Some(pb::VectorOutput {
            data: d.clone(),
            vector: Some(pb::vector_output::Vector::Dense(pb::DenseVector { data: d })),
            ..Default::default()
        }),
        qe::VectorInternal::Sparse(s) => Some(pb::VectorOutput {
            vector: Some(pb::vector_output::Vector::Sparse(pb::SparseVector { indices: s.indices, values: s.values })),
            ..Default::default()
        }),
        qe::VectorInternal::MultiDense(_) => None,
    }
}

/// A point's vectors as Qdrant returns them: the unnamed vector alone, or named vectors.
pub(crate) fn pb_vectors(v: Option<qe::VectorStructInternal>) -> Option<pb::VectorsOutput> {
    use pb::vectors_output::VectorsOptions;
    use qe::{VectorInternal, VectorStructInternal};
    let options = match v? {
        VectorStructInternal::Single(d) => VectorsOptions::Vector(vector_output(VectorInternal::Dense(d))?),
        VectorStructInternal::Named(mut m) if m.len() == 1 && m.contains_key("") => {
            VectorsOptions::Vector(vector_output(m.remove("")?)?)
        }
        VectorStructInternal::Named(m) => VectorsOptions::Vectors(pb::NamedVectorsOutput {
            vectors: m.into_iter().filter_map(|(k, v)| Some((k.to_string(), vector_output(v)?))).collect(),
        }),
        _ => return None,
    };
    Some(pb::VectorsOutput { vectors_options: Some(options) })
}

pub(crate) fn with_payload(sel: Option<&pb::WithPayloadSelector>) -> Result<qe::WithPayloadInterface, Status> {
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

pub(crate) fn op_err(e: qe::OperationError) -> Status {
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

// The test server's own JSON <-> protobuf value conversions: written apart from the product's
// (src/store/server/convert.rs), so a bug in one cannot cancel out in the tests.

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

pub(crate) fn to_pb_payload(m: Map<String, Value>) -> HashMap<String, pb::Value> {
    to_payload(&m)
}

/// JSON from a protobuf payload value.
pub(crate) fn from_pb_value(v: pb::Value) -> Value {
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

pub(crate) fn with_vectors(sel: Option<&pb::WithVectorsSelector>) -> Result<qe::WithVector, Status> {
    use pb::with_vectors_selector::SelectorOptions;
    match sel.and_then(|s| s.selector_options.as_ref()) {
        None => Ok(qe::WithVector::Bool(false)),
        Some(SelectorOptions::Enable(b)) => Ok(qe::WithVector::Bool(*b)),
        Some(SelectorOptions::Include(s)) => Ok(qe::WithVector::Selector(s.names.iter().map(|n| n.into()).collect())),
    }
}

/// A query (of the Query API) as qdrant-edge's scoring query: nearest to a dense or sparse vector
/// (`using` names the vector), or a fusion of the prefetches (RRF with Qdrant's default k = 2, or DBSF).
pub(crate) fn scoring_query(q: Option<pb::Query>, using: Option<String>) -> Result<Option<qe::ScoringQuery>, Status> {
    use pb::query::Variant as Q;
    use pb::vector_input::Variant as V;
    let using = using.filter(|u| !u.is_empty());
    let nearest = |query| Ok(Some(qe::ScoringQuery::Vector(qe::QueryEnum::Nearest(qe::NamedQuery { query, using }))));
    match q.and_then(|q| q.variant) {
        None => Ok(None),
        Some(Q::Nearest(pb::VectorInput { variant: Some(V::Dense(d)) })) => nearest(qe::VectorInternal::Dense(d.data)),
        Some(Q::Nearest(pb::VectorInput { variant: Some(V::Sparse(s)) })) => {
            let v = qe::SparseVector::new(s.indices, s.values)
                .map_err(|e| Status::invalid_argument(format!("Wrong input: {e}")))?;
            nearest(qe::VectorInternal::Sparse(v))
        }
        Some(Q::Nearest(_)) => Err(Status::unimplemented("this test server: nearest by id, multi or inference input")),
        Some(Q::Fusion(f)) if f == pb::Fusion::Rrf as i32 => {
            Ok(Some(qe::ScoringQuery::Fusion(qe::Fusion::Rrf { k: 2, weights: None })))
        }
        Some(Q::Fusion(f)) if f == pb::Fusion::Dbsf as i32 => Ok(Some(qe::ScoringQuery::Fusion(qe::Fusion::Dbsf))),
        Some(Q::Rrf(r)) if r.weights.is_empty() => {
            Ok(Some(qe::ScoringQuery::Fusion(qe::Fusion::Rrf { k: r.k.unwrap_or(2) as usize, weights: None })))
        }
        Some(_) => Err(Status::unimplemented("this test server: this query type")),
    }
}

pub(crate) fn search_params(p: Option<pb::SearchParams>) -> Option<qe::SearchParams> {
    p.map(|p| qe::SearchParams {
        hnsw_ef: p.hnsw_ef.map(|e| e as usize),
        exact: p.exact.unwrap_or(false),
        ..Default::default()
    })
}

/// A prefetch of the Query API (recursively) as qdrant-edge's.
pub(crate) fn prefetch(p: pb::PrefetchQuery) -> Result<qe::Prefetch, Status> {
    if p.lookup_from.is_some() {
        return Err(Status::unimplemented("this test server: lookup_from"));
    }
    Ok(qe::Prefetch {
        prefetches: p.prefetch.into_iter().map(prefetch).collect::<Result<_, _>>()?,
        query: scoring_query(p.query, p.using)?,
        limit: p.limit.unwrap_or(10) as usize,
        params: search_params(p.params),
        filter: edge_filter(p.filter.as_ref())?,
        score_threshold: p.score_threshold.map(qe::external::ordered_float::OrderedFloat),
    })
}

pub(crate) fn check_using(using: Option<&String>) -> Result<(), Status> {
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

pub(crate) fn edge_filter(f: Option<&pb::Filter>) -> Result<Option<qe::Filter>, Status> {
    let Some(f) = f else { return Ok(None) };
    let j = filter_json(f)?;
    serde_json::from_value(j).map(Some).map_err(|e| Status::invalid_argument(format!("Wrong input: bad filter: {e}")))
}

pub(crate) fn json_path(field: &str) -> Result<qe::JsonPath, Status> {
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

pub(crate) fn edge_distance(d: i32) -> Result<qe::Distance, Status> {
    match pb::Distance::try_from(d) {
        Ok(pb::Distance::Cosine) => Ok(qe::Distance::Cosine),
        Ok(pb::Distance::Euclid) => Ok(qe::Distance::Euclid),
        Ok(pb::Distance::Dot) => Ok(qe::Distance::Dot),
        Ok(pb::Distance::Manhattan) => Ok(qe::Distance::Manhattan),
        _ => Err(Status::invalid_argument(format!("Wrong input: unknown distance {d}"))),
    }
}

pub(crate) fn schema_type(t: i32) -> Result<qe::PayloadSchemaType, Status> {
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

pub(crate) fn apply_hnsw_diff(h: &mut qe::HnswIndexConfig, d: &pb::HnswConfigDiff) {
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

pub(crate) fn apply_optimizers_diff(o: &mut qe::EdgeOptimizersConfig, d: &pb::OptimizersConfigDiff) {
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
pub(crate) fn collection_info(shard: &qe::EdgeShard) -> Result<pb::CollectionInfo, Status> {
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
                sparse_vectors_config: (!cfg.sparse_vectors.is_empty()).then(|| pb::SparseVectorConfig {
                    map: cfg
                        .sparse_vectors
                        .iter()
                        .map(|(k, p)| {
                            let modifier = match p.modifier {
                                Some(qe::Modifier::Idf) => pb::Modifier::Idf,
                                _ => pb::Modifier::None,
                            };
                            (k.to_string(), pb::SparseVectorParams { index: None, modifier: Some(modifier as i32) })
                        })
                        .collect(),
                }),
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

pub(crate) fn retrieved(r: qe::Record) -> pb::RetrievedPoint {
    pb::RetrievedPoint {
        id: Some(pb_id(&r.id)),
        payload: r.payload.map(|p| to_pb_payload(p.0)).unwrap_or_default(),
        vectors: pb_vectors(r.vector),
        ..Default::default()
    }
}
