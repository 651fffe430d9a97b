//! Conversions between the store seam's types (conditions, search options, UUIDs, payloads) and
//! qdrant-edge's.

use super::*;

/// The edge filter for our conditions, built as Qdrant's REST filter JSON (which qdrant-edge's
/// `Filter` deserialises), so the mapping reads like the Qdrant documentation.
pub(super) fn edge_filter(filter: &[Condition]) -> Result<Option<qe::Filter>> {
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

pub(super) fn search_params(p: &SearchParams) -> Option<qe::SearchParams> {
    (*p != SearchParams::default()).then(|| qe::SearchParams {
        hnsw_ef: p.hnsw_ef.map(|e| e as usize),
        exact: p.exact,
        ..Default::default()
    })
}

pub(super) fn edge_id(id: &Uuid) -> qe::PointId {
    qe::PointId::Uuid(*id)
}

pub(super) fn id_string(id: &qe::PointId) -> String {
    match id {
        qe::PointId::NumId(n) => n.to_string(),
        qe::PointId::Uuid(u) => u.hyphenated().to_string(),
    }
}

pub(super) fn payload_map(p: Option<qe::Payload>) -> Map<String, Value> {
    p.map(|p| p.0).unwrap_or_default()
}

/// A payload selector returning only `field`.
pub(super) fn payload_fields(field: &str) -> Result<qe::WithPayloadInterface> {
    let path: qe::JsonPath = field.parse().map_err(|()| {
        VdbError::new(ErrorKind::InvalidConfig, format!("{field:?} is not a valid payload key")).with_column(field)
    })?;
    Ok(qe::WithPayloadInterface::Fields(vec![path]))
}

/// The vectors of a point: the dense one alone, or (a collection with BM25) named, with the sparse one.
pub(super) fn point_vectors(dense: Vec<f32>, sparse: Option<SparseVector>) -> Result<qe::Vectors> {
    let Some(sparse) = sparse else {
        return Ok(qe::Vectors::from(dense));
    };
    let sparse = qe::Vector::new_sparse(sparse.indices, sparse.values)
        .map_err(|e| VdbError::internal(format!("invalid BM25 vector: {e}")))?;
    Ok(qe::Vectors::from(HashMap::from([
        (qe::DEFAULT_VECTOR_NAME.to_string(), qe::Vector::new_dense(dense)),
        (SPARSE_VECTOR.to_string(), sparse),
    ])))
}

/// A scoring query for the dense (unnamed) or the sparse vector.
pub(super) fn nearest_dense(v: &[f32]) -> qe::ScoringQuery {
    qe::ScoringQuery::Vector(qe::QueryEnum::Nearest(qe::NamedQuery {
        query: qe::VectorInternal::Dense(v.to_vec()),
        using: None,
    }))
}

pub(super) fn nearest_sparse(v: &SparseVector) -> Result<qe::ScoringQuery> {
    let sparse = qe::SparseVector::new(v.indices.clone(), v.values.clone())
        .map_err(|e| VdbError::internal(format!("invalid BM25 query vector: {e}")))?;
    Ok(qe::ScoringQuery::Vector(qe::QueryEnum::Nearest(qe::NamedQuery {
        query: qe::VectorInternal::Sparse(sparse),
        using: Some(SPARSE_VECTOR.into()),
    })))
}

/// Qdrant's fusion; RRF with Qdrant's default k (2, `DEFAULT_RRF_K`, what a server's `Fusion::Rrf`
/// without parameters uses).
pub(super) fn fusion(f: Fusion) -> qe::ScoringQuery {
    qe::ScoringQuery::Fusion(match f {
        Fusion::Rrf => qe::Fusion::Rrf { k: 2, weights: None },
        Fusion::Dbsf => qe::Fusion::Dbsf,
    })
}

/// The BM25 vector of a record.
pub(super) fn sparse_of(v: Option<qe::VectorStructInternal>) -> Option<SparseVector> {
    match v? {
        qe::VectorStructInternal::Named(mut m) => match m.remove(SPARSE_VECTOR)? {
            qe::VectorInternal::Sparse(s) => Some(SparseVector { indices: s.indices, values: s.values }),
            _ => None,
        },
        _ => None,
    }
}

/// The unnamed dense vector of a record.
pub(super) fn dense(v: Option<qe::VectorStructInternal>) -> Option<Vec<f32>> {
    match v? {
        qe::VectorStructInternal::Single(d) => Some(d),
        qe::VectorStructInternal::Named(mut m) => match m.remove(qe::DEFAULT_VECTOR_NAME)? {
            qe::VectorInternal::Dense(d) => Some(d),
            _ => None,
        },
        _ => None,
    }
}
