//! The bf16 mode against float32: vectors close (cosine >= 0.9999 on the golden fixture's varied
//! sentences) and retrieval unchanged on the labelled check of `support/quality.rs` (recall@10 equal
//! within 0.01). On a CPU without AVX512-BF16 the quality tests are skipped, saying so, and the
//! refusal is tested instead.

#[path = "support/kernels.rs"]
mod kernels;
#[path = "support/quality.rs"]
mod quality;

use std::sync::OnceLock;

use quality::*;
use vdb_core::embed::{cpu, Bf16Kernel, CandleEmbedder, Embedder, EmbedderOptions, Precision};
use vdb_core::error::ErrorKind;

/// The CPU has a bf16 kernel (AVX512-BF16 or AMX); else the test is skipped, saying so, or fails
/// where VDB_REQUIRE_KERNELS requires bf16.
fn has_bf16(test: &str) -> bool {
    !kernels::skip_unless(Bf16Kernel::detect().is_some(), "bf16", test)
}

fn kernel_name() -> Option<&'static str> {
    Bf16Kernel::detect().map(Bf16Kernel::name)
}

fn models() -> &'static (CandleEmbedder, CandleEmbedder) {
    static M: OnceLock<(CandleEmbedder, CandleEmbedder)> = OnceLock::new();
    M.get_or_init(|| (load(Precision::Float32), load(Precision::Bf16)))
}

#[test]
fn bf16_is_refused_with_a_config_error_where_the_cpu_lacks_avx512_bf16() {
    let opts = EmbedderOptions { precision: Precision::Bf16, ..EmbedderOptions::default() };
    match CandleEmbedder::load_with(&dir(), &opts) {
        Ok(e) => {
            assert!(kernel_name().is_some(), "bf16 loaded on a CPU without bf16 instructions");
            assert_eq!(e.bf16_kernel(), kernel_name());
            eprintln!(
                "SKIP bf16_is_refused_..._lacks_avx512_bf16: this CPU ({}) has {} (loaded instead)",
                cpu::cpu_model(),
                e.bf16_kernel().unwrap()
            );
        }
        Err(err) => {
            assert!(kernel_name().is_none(), "{err}");
            assert_eq!(err.kind, ErrorKind::InvalidConfig);
            assert!(err.message.contains("bf16 needs AVX512-BF16 or AMX"), "{}", err.message);
            assert!(err.message.contains("use float32 or int8"), "{}", err.message);
        }
    }
}

#[test]
fn bf16_is_opt_in_and_recorded_in_the_model_id_or_skip_without_avx512_bf16() {
    assert_eq!(EmbedderOptions::default().precision, Precision::Float32);
    assert_eq!("bfloat16".parse::<Precision>().unwrap(), Precision::Bf16);
    assert_eq!(" BF16 ".parse::<Precision>().unwrap(), Precision::Bf16);
    if !has_bf16("bf16_is_opt_in_and_recorded_in_the_model_id_or_skip_without_avx512_bf16") {
        return;
    }
    let (f32_model, bf16) = models();
    assert_eq!(f32_model.precision(), Precision::Float32);
    assert_eq!(bf16.precision(), Precision::Bf16);
    assert_eq!(bf16.model_id(), format!("{}+bf16", f32_model.model_id()));
    let k = bf16.kernels();
    assert_eq!((k.int8, k.bf16), (None, kernel_name()));
    assert_eq!(f32_model.kernels().bf16, None);
}

#[test]
fn bf16_vectors_are_close_to_float32_or_skip_without_avx512_bf16() {
    if !has_bf16("bf16_vectors_are_close_to_float32_or_skip_without_avx512_bf16") {
        return;
    }
    let (f32_model, bf16) = models();
    let texts = golden_texts();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let (a, b) = (embed(f32_model, &refs), embed(bf16, &refs));
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
        "bf16 ({}) vs float32 on {} sentences: mean cosine {:.6}, worst {:.6} ({:?})",
        bf16.bf16_kernel().unwrap(),
        texts.len(),
        sum / texts.len() as f32,
        worst.0,
        texts[worst.1].chars().take(60).collect::<String>()
    );
    assert!(worst.0 >= 0.9999, "worst cosine {} for {:?}", worst.0, texts[worst.1]);
    assert!(worst.0 < 1.0, "bf16 gave the float32 vectors exactly: the bf16 path did not run");
    // A vector does not depend on its batch (rounding is per value).
    let one = embed(bf16, &refs[..5]);
    for (x, y) in one.iter().zip(&b) {
        assert!(dot(x, y) > 0.999999);
    }
}

#[test]
fn bf16_retrieval_matches_float32_on_the_labelled_check_or_skip_without_avx512_bf16() {
    if !has_bf16("bf16_retrieval_matches_float32_on_the_labelled_check_or_skip_without_avx512_bf16") {
        return;
    }
    let (f32_model, bf16) = models();
    let corpus = sample_sentences();
    let recalls: Vec<f64> = [f32_model, bf16].iter().map(|m| recall_at_10(m, &corpus)).collect();
    eprintln!(
        "labelled check, {} queries over {} sample sentences: recall@10 float32 {:.4}, bf16 {:.4}",
        LABELLED.len(),
        corpus.len(),
        recalls[0],
        recalls[1]
    );
    assert!(recalls[0] > 0.3, "float32 recall@10 {}", recalls[0]);
    assert!((recalls[0] - recalls[1]).abs() <= 0.01, "recall@10 float32 {} vs bf16 {}", recalls[0], recalls[1]);
}
