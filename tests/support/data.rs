//! Test data shared by the store tests: deterministic vectors and payloads, brute-force truth.

#![allow(dead_code)]

use serde_json::{json, Map, Value};
use uuid::Uuid;
use vdb_core::store::{CollectionSpec, Distance, IndexKind, PointRecord};

pub const COMPANIES: [&str; 3] = ["acme", "globex", "initech corp"];

pub fn spec(name: &str, dim: usize) -> CollectionSpec {
    CollectionSpec {
        name: name.to_string(),
        dim,
        distance: Distance::Cosine,
        payload_indexes: vec![
            ("company".to_string(), IndexKind::Keyword),
            ("year".to_string(), IndexKind::Integer),
            ("date".to_string(), IndexKind::Datetime),
        ],
        model: None,
        options: Default::default(),
    }
}

pub fn id(i: usize) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("point-{i}").as_bytes())
}

/// A deterministic pseudo-random vector (xorshift), components in [-1, 1).
pub fn vector(i: usize, dim: usize) -> Vec<f32> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15 ^ (i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    (0..dim)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn payload(i: usize) -> Map<String, Value> {
    let Value::Object(m) = json!({
        "company": COMPANIES[i % 3],
        "year": 2000 + (i % 10) as i64,
        // A date-only value, as the pipeline stores Date32 columns (YYYY-MM-DD).
        "date": format!("{}-{:02}-15", 2000 + i % 10, 1 + i % 12),
        "flag": i.is_multiple_of(4),
        "text": format!("sentence number {i}"),
        "row": i,
    }) else {
        unreachable!()
    };
    m
}

pub fn point(i: usize, dim: usize) -> PointRecord {
    PointRecord { id: id(i), vector: vector(i, dim), sparse: None, payload: payload(i) }
}

pub fn points(range: std::ops::Range<usize>, dim: usize) -> Vec<PointRecord> {
    range.map(|i| point(i, dim)).collect()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// Ids (as strings) of points `0..n` for which `keep` holds.
pub fn ids_where(n: usize, keep: impl Fn(usize) -> bool) -> Vec<String> {
    let mut v: Vec<String> = (0..n).filter(|&i| keep(i)).map(|i| id(i).to_string()).collect();
    v.sort();
    v
}
