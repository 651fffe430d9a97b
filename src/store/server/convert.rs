//! Conversions between the store seam's types (JSON payloads, UUIDs, conditions) and Qdrant's
//! protobuf types.

use super::*;

/// A payload selector returning only `field`.
pub(super) fn only_field(field: &str) -> pb::WithPayloadSelector {
    pb::WithPayloadSelector {
        selector_options: Some(pb::with_payload_selector::SelectorOptions::Include(pb::PayloadIncludeSelector {
            fields: vec![field.to_string()],
        })),
    }
}

/// The model a collection's metadata records ([`MODEL_KEY`]).
pub(super) fn recorded_model(info: &pb::CollectionInfo) -> Option<String> {
    let v = info.config.as_ref()?.metadata.get(MODEL_KEY)?.clone();
    from_pb_value(v).as_str().map(str::to_string)
}

/// The BM25 parameters a collection records ([`SPARSE_KEY`]), when it has the sparse vector
/// ([`SPARSE_VECTOR`]); `Err` (a description) for parameters this version does not write.
pub(super) fn recorded_sparse(info: &pb::CollectionInfo) -> std::result::Result<Option<Bm25Config>, String> {
    let Some(config) = info.config.as_ref() else { return Ok(None) };
    let has_vector = config
        .params
        .as_ref()
        .and_then(|p| p.sparse_vectors_config.as_ref())
        .is_some_and(|s| s.map.contains_key(SPARSE_VECTOR));
    match config.metadata.get(SPARSE_KEY) {
        Some(v) if has_vector => Bm25Config::from_metadata(&from_pb_value(v.clone())).map(Some),
        _ => Ok(None),
    }
}

/// The vectors of a point: the dense one alone, or (a collection with BM25) named, with the sparse one.
pub(super) fn pb_vectors(dense: Vec<f32>, sparse: Option<SparseVector>) -> pb::Vectors {
    match sparse {
        None => pb::Vectors::from(dense),
        Some(s) => pb::Vectors::from(
            pb::NamedVectors::default()
                .add_vector("", pb::Vector::new_dense(dense))
                .add_vector(SPARSE_VECTOR, pb::Vector::new_sparse(s.indices, s.values)),
        ),
    }
}

/// The dense (unnamed) vector of a point as the server returns it.
pub(super) fn dense_output(v: pb::VectorsOutput) -> Option<Vec<f32>> {
    let out = match v.vectors_options? {
        pb::vectors_output::VectorsOptions::Vector(v) => v,
        pb::vectors_output::VectorsOptions::Vectors(mut named) => named.vectors.remove("")?,
    };
    match out.into_vector() {
        pb::vector_output::Vector::Dense(d) => Some(d.data),
        _ => None,
    }
}

pub(super) fn uuid_of(id: Option<pb::PointId>) -> Option<Uuid> {
    match id?.point_id_options? {
        PointIdOptions::Uuid(s) => Uuid::parse_str(&s).ok(),
        PointIdOptions::Num(_) => None,
    }
}

pub(super) fn pb_distance(d: Distance) -> pb::Distance {
    match d {
        Distance::Cosine => pb::Distance::Cosine,
        Distance::Dot => pb::Distance::Dot,
        Distance::Euclid => pb::Distance::Euclid,
    }
}

pub(super) fn from_pb_distance(d: i32) -> Option<Distance> {
    match pb::Distance::try_from(d).ok()? {
        pb::Distance::Cosine => Some(Distance::Cosine),
        pb::Distance::Dot => Some(Distance::Dot),
        pb::Distance::Euclid => Some(Distance::Euclid),
        _ => None,
    }
}

pub(super) fn pb_field_type(kind: IndexKind) -> pb::FieldType {
    match kind {
        IndexKind::Keyword => pb::FieldType::Keyword,
        IndexKind::Integer => pb::FieldType::Integer,
        IndexKind::Float => pb::FieldType::Float,
        IndexKind::Datetime => pb::FieldType::Datetime,
    }
}

/// The index kind of a payload schema type of a collection's info (`None`: a type vdb_core does
/// not create, e.g. geo or text).
pub(super) fn index_kind_of(data_type: i32) -> Option<IndexKind> {
    match pb::PayloadSchemaType::try_from(data_type).ok()? {
        pb::PayloadSchemaType::Keyword | pb::PayloadSchemaType::Uuid => Some(IndexKind::Keyword),
        pb::PayloadSchemaType::Integer => Some(IndexKind::Integer),
        pb::PayloadSchemaType::Float => Some(IndexKind::Float),
        pb::PayloadSchemaType::Datetime => Some(IndexKind::Datetime),
        _ => None,
    }
}

/// JSON payload value to Qdrant's protobuf value.
pub(super) fn to_pb_value(v: Value) -> pb::Value {
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

pub(super) fn to_pb_payload(m: Map<String, Value>) -> HashMap<String, pb::Value> {
    m.into_iter().map(|(k, v)| (k, to_pb_value(v))).collect()
}

/// Qdrant's protobuf value back to JSON.
pub(super) fn from_pb_value(v: pb::Value) -> Value {
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
pub(super) fn from_pb_payload(m: HashMap<String, pb::Value>) -> Map<String, Value> {
    let mut entries: Vec<_> = m.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().map(|(k, v)| (k, from_pb_value(v))).collect()
}

pub(super) fn pb_id(id: &Uuid) -> pb::PointId {
    pb::PointId { point_id_options: Some(PointIdOptions::Uuid(id.hyphenated().to_string())) }
}

pub(super) fn id_string(id: Option<pb::PointId>) -> String {
    match id.and_then(|i| i.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => s,
        Some(PointIdOptions::Num(n)) => n.to_string(),
        None => String::new(),
    }
}

pub(super) fn pb_filter(filter: &[Condition]) -> Result<Option<pb::Filter>> {
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

pub(super) fn with_payload() -> pb::WithPayloadSelector {
    pb::WithPayloadSelector { selector_options: Some(pb::with_payload_selector::SelectorOptions::Enable(true)) }
}

pub(super) fn no_payload() -> pb::WithPayloadSelector {
    pb::WithPayloadSelector { selector_options: Some(pb::with_payload_selector::SelectorOptions::Enable(false)) }
}

/// A selector of the points `ids`.
pub(super) fn points_by_id(ids: &[Uuid]) -> pb::PointsSelector {
    pb::PointsSelector {
        points_selector_one_of: Some(pb::points_selector::PointsSelectorOneOf::Points(pb::PointsIdsList {
            ids: ids.iter().map(pb_id).collect(),
        })),
    }
}

/// (size, distance) of an unnamed-vector collection, or a description of what it has instead.
pub(super) fn vector_params(info: &pb::CollectionInfo) -> std::result::Result<(usize, Distance), String> {
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
}
