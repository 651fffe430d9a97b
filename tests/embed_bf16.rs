//! The bf16 mode against float32: vectors close (cosine >= 0.9999 on the golden fixture's varied
//! sentences) and retrieval unchanged on the labelled check of `embed_int8.rs` (recall@10 equal
//! within 0.01). On a CPU without AVX512-BF16 the quality tests are skipped, saying so, and the
//! refusal is tested instead.

use std::sync::OnceLock;

use arrow::array::{Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vdb_core::embed::model::locate;
use vdb_core::embed::{cpu, Bf16Kernel, CandleEmbedder, Embedder, EncodeOptions, LoadOptions, Precision};
use vdb_core::error::ErrorKind;

/// (query, phrase that marks a sentence relevant): the labelled check of `embed_int8.rs`.
const LABELLED: &[(&str, &str)] = &[
    ("a worldwide recession hurting the business", "adverse changes in global economic conditions"),
    ("hackers breaking into our systems and stealing data", "cybersecurity incidents and data breaches"),
    ("executives and important employees leaving the company", "the loss of key personnel"),
    ("new tax legislation", "changes in tax laws or their interpretation"),
    ("suppliers failing to deliver parts on time", "disruptions in our supply chain"),
    ("rivals competing aggressively for our customers", "intense competition"),
    ("lawsuits and government investigations", "litigation and regulatory proceedings"),
    ("exchange rate volatility", "fluctuations in foreign currency exchange rates"),
    ("climate change and extreme weather", "climate-related physical and transition risks"),
    ("patent infringement and protecting our inventions", "our ability to protect our intellectual property"),
    ("a COVID-19 outbreak", "pandemics and other public health crises"),
    ("we raised our prices", "higher average selling prices"),
    ("we shipped more units", "increased unit volumes"),
    ("the strong dollar hurt results", "unfavorable foreign currency movements"),
    ("weaker sales overseas", "lower demand in certain international markets"),
    ("combining the companies we bought", "the integration of recently acquired businesses"),
    ("component shortages raised costs", "supply chain constraints and elevated component costs"),
    ("hiring more employees", "continued investment in headcount"),
    ("a non-recurring write-down of assets", "a one-time impairment charge"),
    ("when customers placed their orders", "the timing of customer orders"),
    ("paying depositors more interest", "higher interest rates on deposits"),
    ("better prices and a richer mix of products", "favorable pricing and product mix"),
    ("shipping expenses went up", "increased freight and logistics costs"),
];

const SENTENCES: u64 = 1500;

fn dir() -> std::path::PathBuf {
    locate(None).unwrap_or_else(|e| panic!("{e}. The bf16 tests need the model: set VDB_MODEL_DIR or VDB_PYTHON."))
}

fn has_bf16(test: &str) -> bool {
    let ok = Bf16Kernel::detect().is_some();
    if !ok {
        eprintln!("SKIP {test}: CPU ({}) lacks avx512_bf16 and amx_bf16", cpu::cpu_model());
    }
    ok
}

fn kernel_name() -> Option<&'static str> {
    Bf16Kernel::detect().map(Bf16Kernel::name)
}

fn models() -> &'static (CandleEmbedder, CandleEmbedder) {
    static M: OnceLock<(CandleEmbedder, CandleEmbedder)> = OnceLock::new();
    M.get_or_init(|| {
        let load = |precision| {
            CandleEmbedder::load_with(&dir(), &LoadOptions { precision, ..LoadOptions::default() }).unwrap()
        };
        (load(Precision::Float32), load(Precision::Bf16))
    })
}

fn embed(e: &CandleEmbedder, texts: &[&str]) -> Vec<Vec<f32>> {
    let flat = e.embed(texts, &EncodeOptions::default(), None).unwrap();
    flat.chunks(e.dim()).map(<[f32]>::to_vec).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn golden_texts() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden_minilm.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["items"].as_array().unwrap().iter().map(|i| i["text"].as_str().unwrap().to_string()).collect()
}

fn sample_sentences() -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.parquet");
    vdb_core::sample::write_sample(&path, SENTENCES, 42).unwrap();
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap()).unwrap().build().unwrap();
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let col = batch.column_by_name("sentence").unwrap();
        let col = col.as_any().downcast_ref::<StringArray>().unwrap();
        out.extend((0..col.len()).map(|i| col.value(i).to_string()));
    }
    out
}

#[test]
fn bf16_is_refused_with_a_config_error_where_the_cpu_lacks_avx512_bf16() {
    let opts = LoadOptions { precision: Precision::Bf16, ..LoadOptions::default() };
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
    assert_eq!(LoadOptions::default().precision, Precision::Float32);
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
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let queries: Vec<&str> = LABELLED.iter().map(|(q, _)| *q).collect();
    let mut recalls = Vec::new();
    for model in [f32_model, bf16] {
        let docs = embed(model, &refs);
        let qs = embed(model, &queries);
        let mut total = 0.0;
        for (q, (_, phrase)) in qs.iter().zip(LABELLED) {
            let relevant = corpus.iter().filter(|s| s.contains(phrase)).count();
            assert!(relevant >= 10, "{phrase:?}: only {relevant} sample sentences");
            let mut scored: Vec<(f32, usize)> = docs.iter().map(|d| dot(q, d)).zip(0..).collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            let hits = scored[..10].iter().filter(|(_, i)| corpus[*i].contains(phrase)).count();
            total += hits as f64 / 10.0;
        }
        recalls.push(total / LABELLED.len() as f64);
    }
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
