//! The changes report on points written directly (no model): counts by exact text, Jaccard, the
//! cosine of mean vectors, and the errors that name a column.

#[path = "support/data.rs"]
mod data;

use serde_json::json;
use vdb_core::pipeline::changes;
use vdb_core::store::embedded::EmbeddedStore;
use vdb_core::store::{LoadOptions, PointRecord, VectorStore, TEXT_KEY};
use vdb_core::ErrorKind;

fn point(i: usize, ticker: &str, year: serde_json::Value, text: &str, vector: Vec<f32>) -> PointRecord {
    let mut p = data::point(i, vector.len());
    p.vector = vector;
    p.payload = serde_json::from_value(json!({"ticker": ticker, "year": year, TEXT_KEY: text})).unwrap();
    p
}

#[test]
fn counts_jaccard_and_cosine() {
    let tmp = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(tmp.path()).unwrap();
    s.ensure_collection(&data::spec("c", 2), false).unwrap();
    let pts = vec![
        // AAA 2020: a, b, b (a text twice); 2021: b, c. BBB 2021 only.
        point(0, "AAA", json!(2020), "a", vec![1.0, 0.0]),
        point(1, "AAA", json!(2020), "b", vec![1.0, 0.0]),
        point(2, "AAA", json!(2020), "b", vec![1.0, 0.0]),
        point(3, "AAA", json!(2021), "b", vec![0.0, 1.0]),
        point(4, "AAA", json!(2021), "c", vec![1.0, 1.0]),
        point(5, "BBB", json!(2021), "a", vec![1.0, 0.0]),
    ];
    s.upsert("c", pts, &LoadOptions::default()).unwrap();
    let rows = changes(&s, "c", &["ticker".into()], "year", &[]).unwrap();
    assert_eq!(rows.len(), 1);
    let r = &rows[0];
    assert_eq!((r.scope["ticker"].clone(), r.from.clone(), r.to.clone()), (json!("AAA"), json!(2020), json!(2021)));
    assert_eq!((r.new, r.removed, r.kept), (1, 1, 1));
    assert!((r.jaccard - 1.0 / 3.0).abs() < 1e-12);
    // A cosine collection stores vectors normalised: (1, 1) is (h, h), h = 1/sqrt(2). Means (1, 0)
    // and (h/2, (1 + h)/2): cosine h / sqrt(h^2 + (1 + h)^2).
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let want = h / (h * h + (1.0 + h) * (1.0 + h)).sqrt();
    assert!((r.cosine - want).abs() < 1e-6, "{} vs {want}", r.cosine);
}

#[test]
fn missing_and_mixed_columns_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let s = EmbeddedStore::open(tmp.path()).unwrap();
    s.ensure_collection(&data::spec("c", 2), false).unwrap();
    let pts =
        vec![point(0, "AAA", json!(2020), "a", vec![1.0, 0.0]), point(1, "AAA", json!("2021"), "b", vec![1.0, 0.0])];
    s.upsert("c", pts, &LoadOptions::default()).unwrap();
    let err = changes(&s, "c", &["ticker".into()], "year", &[]).unwrap_err();
    assert_eq!((err.kind, err.column.as_deref()), (ErrorKind::InvalidConfig, Some("year")), "{err}");
    assert!(err.message.contains("mixes numbers and text"), "{err}");
    let err = changes(&s, "c", &["cik".into()], "year", &[]).unwrap_err();
    assert_eq!(err.column.as_deref(), Some("cik"), "{err}");
    let err = changes(&s, "c", &[], "year", &[]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig, "{err}");
}
