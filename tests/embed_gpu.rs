//! The GPU embedder's forward pass (`vdb_core::embed::gpu`): on candle's CPU device here, in the
//! three GPU precisions, against sentence-transformers' vectors (`tests/fixtures/golden_minilm.json`);
//! and the device settings' errors. The same code runs on candle's CUDA device in a `cuda` build
//! (`make cuda`; `bench/gpu_check.sh` checks it on a GPU).

use std::sync::atomic::{AtomicUsize, Ordering};

use vdb_core::embed::device::CUDA_BUILT;
use vdb_core::embed::{self, Device, Embedder, EncodeOptions, GpuEmbedder, GpuOptions, ModelFolder, Precision};
use vdb_core::ErrorKind;

fn golden() -> (Vec<String>, Vec<Vec<f32>>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden_minilm.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let items = json["items"].as_array().unwrap();
    let texts = items.iter().map(|i| i["text"].as_str().unwrap().to_string()).collect();
    let vectors = items
        .iter()
        .map(|i| i["vector"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect();
    (texts, vectors)
}

fn folder() -> ModelFolder {
    ModelFolder::load(None)
        .unwrap_or_else(|e| panic!("{e}. These tests need the model: set VDB_MODEL_DIR or VDB_PYTHON."))
}

/// The GPU embedder on candle's CPU device; small batches and chunks so that a few dozen texts
/// take several of each.
fn on_cpu(precision: Precision, chunk_texts: usize) -> GpuEmbedder {
    let opts = GpuOptions { precision, max_batch_tokens: 600, chunk_texts, threads: Some(2), ..GpuOptions::default() };
    GpuEmbedder::load_on(folder(), candle_core::Device::Cpu, &opts).unwrap()
}

fn cosines(got: &[f32], want: &[Vec<f32>]) -> Vec<f32> {
    want.iter()
        .zip(got.chunks_exact(384))
        .map(|(w, g)| {
            let dot: f32 = w.iter().zip(g).map(|(a, b)| a * b).sum();
            let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
            dot / norm(w) / norm(g)
        })
        .collect()
}

fn min(v: &[f32]) -> f32 {
    v.iter().copied().fold(f32::INFINITY, f32::min)
}

#[test]
fn float32_matches_sentence_transformers() {
    let (texts, want) = golden();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let e = on_cpu(Precision::Float32, 40);
    assert_eq!(e.device(), Device::Cpu);
    assert_eq!(e.precision(), Precision::Float32);
    assert!(!e.model_id().contains('+'), "{}", e.model_id());
    let got = e.embed(&refs, &EncodeOptions { batch_size: 16, normalize: true }, None).unwrap();
    let cos = cosines(&got, &want);
    eprintln!("Float32 on candle's CPU device: min cosine {} to sentence-transformers", min(&cos));
    assert!(min(&cos) >= 0.9999, "min cosine {}", min(&cos));
    let worst = got.iter().zip(want.iter().flatten()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-4, "max abs difference {worst}");
}

/// Half precision with padding in every batch: candle-transformers' `BertModel` fills the padded
/// positions with `f32::MIN` cast to the dtype, which is -inf in float16 and bf16, and `0 * -inf`
/// is NaN everywhere; the embedder builds its mask with the dtype's finite minimum instead.
#[test]
fn float16_and_bf16_are_finite_close_and_named() {
    let (texts, want) = golden();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let opts = EncodeOptions { batch_size: 32, normalize: true };
    let full = on_cpu(Precision::Float32, 1000).embed(&refs, &opts, None).unwrap();
    for (precision, suffix) in [(Precision::Float16, "+float16-cuda"), (Precision::Bf16, "+bf16-cuda")] {
        let e = on_cpu(precision, 1000);
        assert!(e.model_id().ends_with(suffix), "{}", e.model_id());
        let got = e.embed(&refs, &opts, None).unwrap();
        assert!(got.iter().all(|x| x.is_finite()), "{precision:?}: non-finite values");
        let cos = cosines(&got, &want);
        eprintln!("{precision:?} on candle's CPU device: min cosine {} to sentence-transformers", min(&cos));
        assert!(min(&cos) >= 0.999, "{precision:?}: min cosine {}", min(&cos));
        let moved = full.iter().zip(&got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(moved > 1e-5, "{precision:?}: within {moved} of float32, so not computed in half precision");
    }
}

#[test]
fn chunks_and_batches_keep_input_order_and_report_progress() {
    let (texts, _) = golden();
    let refs: Vec<&str> = texts.iter().take(50).map(String::as_str).collect();
    let whole = on_cpu(Precision::Float32, 1000).embed(&refs, &EncodeOptions::default(), None).unwrap();
    let seen = AtomicUsize::new(0);
    let steps = AtomicUsize::new(0);
    let progress = |done: usize| {
        assert!(done >= seen.swap(done, Ordering::SeqCst), "progress went back");
        steps.fetch_add(1, Ordering::SeqCst);
    };
    // 7 texts per chunk: 8 chunks, tokenised on a second thread while the previous one runs.
    let chunked = on_cpu(Precision::Float32, 7)
        .embed(&refs, &EncodeOptions { batch_size: 3, normalize: true }, Some(&progress))
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), refs.len());
    assert!(steps.load(Ordering::SeqCst) >= 50 / 3, "{} progress calls", steps.load(Ordering::SeqCst));
    let worst = whole.iter().zip(&chunked).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-5, "chunked vectors differ by {worst}");
    assert!(on_cpu(Precision::Float32, 7).embed(&[], &EncodeOptions::default(), None).unwrap().is_empty());
}

#[test]
fn a_gpu_rejects_int8_and_the_cpu_rejects_float16() {
    let err = GpuEmbedder::load_on(
        folder(),
        candle_core::Device::Cpu,
        &GpuOptions { precision: Precision::Int8, ..GpuOptions::default() },
    )
    .err()
    .expect("int8 on a GPU must fail");
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(err.message.contains("int8 is a CPU mode"), "{}", err.message);
    let err = embed::open(None, Some(1), Precision::Float16).err().expect("float16 on the CPU must fail");
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(err.message.contains("float16 is a GPU mode"), "{}", err.message);
}

/// Without the cuda feature a GPU device is a configuration error that says how to build one,
/// raised before anything is loaded (here: before the missing model folder is noticed).
#[cfg(not(feature = "cuda"))]
#[test]
fn a_gpu_device_in_a_cpu_build_says_how_to_build_one() {
    const { assert!(!CUDA_BUILT) };
    let missing = std::path::Path::new("/nonexistent/model");
    for precision in [Precision::Float32, Precision::Float16] {
        let err = embed::open_on(Some(missing), None, precision, Device::Cuda(0), None)
            .err()
            .expect("a GPU device must fail in a CPU build");
        assert_eq!(err.kind, ErrorKind::InvalidConfig, "{err}");
        assert!(err.message.contains("built without the cuda feature"), "{}", err.message);
        assert!(err.message.contains("make cuda") && err.message.contains("cuda:0"), "{}", err.message);
    }
    let err = GpuEmbedder::load(missing, &GpuOptions::default()).err().expect("must fail");
    assert!(err.message.contains("built without the cuda feature"), "{}", err.message);
}

/// A `cuda` build opens GPU 0 where `VDB_TEST_GPU=1` says there is one; elsewhere (e.g. with the
/// build machine's stand-in libcuda, `docker/cuda-toolkit.sh`) it says no GPU was found, as a
/// configuration error.
#[cfg(feature = "cuda")]
#[test]
fn a_cuda_build_opens_the_gpu_or_says_none_was_found() {
    const { assert!(CUDA_BUILT) };
    let opened = GpuEmbedder::load(&folder().dir, &GpuOptions::default());
    if std::env::var_os("VDB_TEST_GPU").is_some() {
        assert_eq!(opened.unwrap().device(), Device::Cuda(0));
    } else {
        let err = opened.err().expect("no GPU here");
        assert_eq!(err.kind, ErrorKind::InvalidConfig, "{err}");
        assert!(err.message.contains("no usable NVIDIA GPU"), "{}", err.message);
    }
}
