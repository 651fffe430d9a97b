//! The quality checks the int8 and bf16 tests share: the model, the golden sentences, and a
//! labelled retrieval check built from the sample data.
//!
//! The labelled check: the sample generator writes SEC-style sentences from templates that name
//! one of a fixed list of risks or business drivers. Each query paraphrases one of those phrases
//! without repeating it; a sentence is relevant to the query when it contains the phrase.

#![allow(dead_code)]

use arrow::array::{Array, StringArray};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use vdb_core::embed::model::locate;
use vdb_core::embed::{CandleEmbedder, Embedder, EmbedderOptions, EncodeOptions, Precision};

/// (query, phrase that marks a sentence relevant).
pub const LABELLED: &[(&str, &str)] = &[
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

pub const SENTENCES: u64 = 1500;

/// The model folder (from `VDB_MODEL_DIR` or the installed package).
pub fn dir() -> std::path::PathBuf {
    locate(None).unwrap_or_else(|e| panic!("{e}. The quality tests need the model: set VDB_MODEL_DIR or VDB_PYTHON."))
}

/// The model in `precision`.
pub fn load(precision: Precision) -> CandleEmbedder {
    CandleEmbedder::load_with(&dir(), &EmbedderOptions { precision, ..EmbedderOptions::default() }).unwrap()
}

pub fn embed(e: &CandleEmbedder, texts: &[&str]) -> Vec<Vec<f32>> {
    let flat = e.embed(texts, &EncodeOptions::default(), None).unwrap();
    flat.chunks(e.dim()).map(<[f32]>::to_vec).collect()
}

pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub fn sample_sentences() -> Vec<String> {
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

pub fn golden_texts() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden_minilm.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json["items"].as_array().unwrap().iter().map(|i| i["text"].as_str().unwrap().to_string()).collect()
}

/// Mean over the labelled queries of the share of relevant sentences among the 10 nearest.
pub fn recall_at_10(model: &CandleEmbedder, corpus: &[String]) -> f64 {
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    let queries: Vec<&str> = LABELLED.iter().map(|(q, _)| *q).collect();
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
    total / LABELLED.len() as f64
}
