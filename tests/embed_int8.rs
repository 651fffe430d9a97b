//! The int8 fast mode against float32: vectors close (cosine >= 0.99 on the golden fixture's
//! varied sentences) and retrieval unchanged on a labelled check built from the sample data
//! (recall@10 within 0.01).
//!
//! The labelled check: the sample generator writes SEC-style sentences from templates that name
//! one of a fixed list of risks or business drivers. Each query below paraphrases one of those
//! phrases without repeating it; a sentence is relevant to the query when it contains the phrase.
//! recall@10 = relevant sentences among the 10 nearest / min(10, relevant sentences).

use std::sync::OnceLock;

use arrow::array::{Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vdb_core::embed::model::locate;
use vdb_core::embed::{CandleEmbedder, Embedder, EncodeOptions, Int8Kernel, LoadOptions, Precision};

/// (query, phrase that marks a sentence relevant).
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

fn model(precision: Precision) -> CandleEmbedder {
    let dir =
        locate(None).unwrap_or_else(|e| panic!("{e}. The int8 tests need the model: set VDB_MODEL_DIR or VDB_PYTHON."));
    CandleEmbedder::load_with(&dir, &LoadOptions { precision, ..LoadOptions::default() }).unwrap()
}

fn models() -> &'static (CandleEmbedder, CandleEmbedder) {
    static M: OnceLock<(CandleEmbedder, CandleEmbedder)> = OnceLock::new();
    M.get_or_init(|| (model(Precision::Float32), model(Precision::Int8)))
}

fn embed(e: &CandleEmbedder, texts: &[&str]) -> Vec<Vec<f32>> {
    let flat = e.embed(texts, &EncodeOptions::default(), None).unwrap();
    flat.chunks(e.dim()).map(<[f32]>::to_vec).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
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

fn golden_texts() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden_minilm.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["items"].as_array().unwrap().iter().map(|i| i["text"].as_str().unwrap().to_string()).collect()
}

#[test]
fn int8_is_opt_in_and_recorded_in_the_model_id() {
    let (f32_model, int8) = models();
    assert_eq!(f32_model.precision(), Precision::Float32);
    assert_eq!(int8.precision(), Precision::Int8);
    assert!(int8.int8_kernel().is_some());
    assert_eq!(int8.model_id(), format!("{}+int8", f32_model.model_id()));
    assert_eq!(LoadOptions::default().precision, Precision::Float32);
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
    let dir = locate(None).unwrap();
    // (The portable kernel gives the AVX2 kernel's numbers exactly: unit-tested in `quant`.)
    for kernel in [Int8Kernel::Amx, Int8Kernel::Vnni, Int8Kernel::Avx2] {
        if !kernel.supported() {
            eprintln!("SKIP every_int8_kernel_is_close_to_float32 for {}: the CPU lacks it", kernel.name());
            continue;
        }
        let opts = LoadOptions { precision: Precision::Int8, int8_kernel: Some(kernel), ..LoadOptions::default() };
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
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let queries: Vec<&str> = LABELLED.iter().map(|(q, _)| *q).collect();
    let mut recalls = Vec::new();
    for model in [f32_model, int8] {
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
