//! The int8 fast mode against float32: vectors close (cosine >= 0.99 on the golden fixture's
//! varied sentences) and retrieval unchanged on a labelled check built from the sample data
//! (recall@10 within 0.01).
//! (The labelled check: `tests/support/quality.rs`.)

#[path = "support/kernels.rs"]
mod kernels;
#[path = "support/quality.rs"]
mod quality;

use std::sync::OnceLock;

use quality::*;
use vdb_core::embed::{CandleEmbedder, Embedder, EmbedderOptions, Int8Kernel, Precision};

fn models() -> &'static (CandleEmbedder, CandleEmbedder) {
    static M: OnceLock<(CandleEmbedder, CandleEmbedder)> = OnceLock::new();
    M.get_or_init(|| (load(Precision::Float32), load(Precision::Int8)))
}

#[test]
fn int8_is_opt_in_and_recorded_in_the_model_id() {
    let (f32_model, int8) = models();
    assert_eq!(f32_model.precision(), Precision::Float32);
    assert_eq!(int8.precision(), Precision::Int8);
    assert!(int8.int8_kernel().is_some());
    assert_eq!(int8.model_id(), format!("{}+int8", f32_model.model_id()));
    assert_eq!(EmbedderOptions::default().precision, Precision::Float32);
}

#[test]
fn int8_vectors_are_close_to_float32() {
    let (f32_model, int8) = models();
    let texts = golden_texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (a, b) = (embed(f32_model, &refs), embed(int8, &refs));
    let mut worst = (1.0f32, 0);
    let mut sum = 0.0;
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let cos = dot(x, y);
        sum += cos;
        if cos < worst.0 {
            worst = (cos, i);
        }
    }
    eprintln!(
        "int8 ({}) vs float32 on {} sentences: mean cosine {:.5}, worst {:.5} ({:?})",
        int8.int8_kernel().unwrap(),
        texts.len(),
        sum / texts.len() as f32,
        worst.0,
        texts[worst.1].chars().take(60).collect::<String>()
    );
    assert!(worst.0 >= 0.99, "worst cosine {} for {:?}", worst.0, texts[worst.1]);
    // Batching does not change an int8 vector either (quantisation is per token).
    let one = embed(int8, &refs[..5]);
    for (x, y) in one.iter().zip(&b) {
        assert!(dot(x, y) > 0.99999);
    }
}

/// Every int8 kernel this CPU runs (AVX2 uses 7-bit weights, VNNI and AMX 8-bit) stays close.
#[test]
fn every_int8_kernel_is_close_to_float32() {
    let (f32_model, _) = models();
    let texts = golden_texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = embed(f32_model, &refs);
    let dir = dir();
    // (The portable kernel gives the AVX2 kernel's numbers exactly: unit-tested in `quant`.)
    for (kernel, required_as) in [(Int8Kernel::Amx, "amx"), (Int8Kernel::Vnni, "vnni"), (Int8Kernel::Avx2, "avx2")] {
        if kernels::skip_unless(kernel.supported(), required_as, "every_int8_kernel_is_close_to_float32") {
            continue;
        }
        let opts =
            EmbedderOptions { precision: Precision::Int8, int8_kernel: Some(kernel), ..EmbedderOptions::default() };
        let e = CandleEmbedder::load_with(&dir, &opts).unwrap();
        assert_eq!(e.int8_kernel(), Some(kernel.name()));
        let got = embed(&e, &refs);
        let worst = want.iter().zip(&got).map(|(a, b)| dot(a, b)).fold(1.0f32, f32::min);
        eprintln!("{}: worst cosine to float32 {worst:.5}", kernel.name());
        assert!(worst >= 0.99, "{}: worst cosine {worst}", kernel.name());
    }
}

#[test]
fn int8_retrieval_matches_float32_on_the_labelled_check() {
    let (f32_model, int8) = models();
    let corpus = sample_sentences();
    let recalls: Vec<f64> = [f32_model, int8].iter().map(|m| recall_at_10(m, &corpus)).collect();
    eprintln!(
        "labelled check, {} queries over {} sample sentences: recall@10 float32 {:.4}, int8 {:.4}",
        LABELLED.len(),
        corpus.len(),
        recalls[0],
        recalls[1]
    );
    // The check must be able to tell a model from noise.
    // (Chance is the share of relevant sentences, ~0.05.)
    assert!(recalls[0] > 0.3, "float32 recall@10 {}", recalls[0]);
    assert!((recalls[0] - recalls[1]).abs() <= 0.01, "recall@10 float32 {} vs int8 {}", recalls[0], recalls[1]);
}
