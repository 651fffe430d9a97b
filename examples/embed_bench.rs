//! Embedding throughput: stock candle-transformers BERT vs the fused forward, same sentences, same
//! threads, alternating rounds in one process (the machine is shared; compare only within a run).
//!
//! ```text
//! cargo run --example embed_bench -- [--n 2000] [--threads 2] [--batch-size 32] [--rounds 2]
//!                                    [--model DIR] [--write-sentences FILE] [--only fused|stock]
//!                                    [--precisions int8,bf16]
//! ```
//!
//! Prints the CPU model and the kernel each engine's GEMMs use first. `--precisions` adds fused
//! engines in those precisions (ratios to fused float32 are printed).
//!
//! The sentences are generated (deterministic SEC 10-K-style prose, about 45 tokens on average);
//! `--write-sentences` saves them one per line for `bench/embed_bench_st.py`.

use std::path::PathBuf;
use std::time::Instant;

use vdb_core::embed::model::locate;
use vdb_core::embed::{cpu, CandleEmbedder, Embedder, EmbedderOptions, EncodeOptions, Forward, Precision};

const CLAUSES: &[&str] = &[
    "net revenues increased {p}% to ${m} million compared to the prior fiscal year",
    "primarily due to higher volumes in our {s} segment and favorable pricing",
    "we are subject to risks associated with our international operations",
    "including fluctuations in foreign currency exchange rates and changes in trade policy",
    "as of December 31, {y}, we had {n} full-time employees",
    "the effective tax rate was {p}% for the year ended {y}",
    "cash and cash equivalents totaled ${m} million at the end of the period",
    "which we believe will be sufficient to fund operations for at least the next twelve months",
    "our revolving credit facility bears interest at SOFR plus {p}% per annum",
    "goodwill is tested for impairment annually or more frequently if indicators exist",
    "the Board of Directors declared a quarterly dividend of ${d} per share",
    "any failure to protect our intellectual property could harm our business",
    "cybersecurity incidents could disrupt our operations and damage our reputation",
    "see Note {k} to the consolidated financial statements for further information",
    "operating expenses as a percentage of net sales decreased to {p}%",
    "we repurchased {n} shares of common stock for an aggregate of ${m} million",
    "inventories are stated at the lower of cost or net realizable value",
    "changes in laws and regulations relating to data privacy could increase our costs",
    "diluted earnings per share were ${d} compared with ${d} in {y}",
    "the decrease was partially offset by higher research and development spending",
    "we lease approximately {n} square feet of office space in {c}",
    "management concluded that internal control over financial reporting was effective",
    "competition in the {s} market remains intense and may reduce our margins",
    "supply chain disruptions and inflationary pressures affected gross margin by {p} basis points",
];
const SEGMENTS: &[&str] = &["Americas", "Europe", "Services", "Industrial", "Healthcare", "Cloud"];
const CITIES: &[&str] = &["New York", "Zürich", "São Paulo", "Singapore", "Austin", "Dublin"];

/// Deterministic SEC-like sentences (a small LCG; no randomness crate needed).
fn sentences(n: usize) -> Vec<String> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |m: usize| {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((state >> 33) as usize) % m
    };
    (0..n)
        .map(|_| {
            let parts = 1 + next(4);
            let mut s = String::new();
            for i in 0..parts {
                let clause = CLAUSES[next(CLAUSES.len())]
                    .replace("{p}", &format!("{}.{}", next(40), next(10)))
                    .replace("{m}", &format!("{},{:03}", 1 + next(9), next(1000)))
                    .replace("{d}", &format!("{}.{:02}", next(9), next(100)))
                    .replace("{n}", &(100 + next(90_000)).to_string())
                    .replace("{y}", &(2015 + next(10)).to_string())
                    .replace("{k}", &(1 + next(20)).to_string())
                    .replace("{s}", SEGMENTS[next(SEGMENTS.len())])
                    .replace("{c}", CITIES[next(CITIES.len())]);
                if i > 0 {
                    s.push_str(if next(2) == 0 { ", and " } else { "; " });
                }
                s.push_str(&clause);
            }
            let mut c = s.chars();
            let first = c.next().map(|f| f.to_uppercase().collect::<String>()).unwrap_or_default();
            format!("{first}{}.", c.as_str())
        })
        .collect()
}

struct Args {
    n: usize,
    threads: Option<usize>,
    batch_size: usize,
    rounds: usize,
    model: Option<PathBuf>,
    write_sentences: Option<PathBuf>,
    only: Option<Forward>,
    precisions: Vec<Precision>,
}

fn args() -> Args {
    let mut a = Args {
        n: 2000,
        threads: None,
        batch_size: 32,
        rounds: 2,
        model: None,
        write_sentences: None,
        only: None,
        precisions: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--n" => a.n = value().parse().unwrap(),
            "--threads" => a.threads = Some(value().parse().unwrap()),
            "--batch-size" => a.batch_size = value().parse().unwrap(),
            "--rounds" => a.rounds = value().parse().unwrap(),
            "--model" => a.model = Some(value().into()),
            "--write-sentences" => a.write_sentences = Some(value().into()),
            "--precisions" => a.precisions = value().split(',').map(|p| p.parse().unwrap()).collect(),
            "--only" => {
                a.only = Some(match value().as_str() {
                    "fused" => Forward::Fused,
                    "stock" => Forward::Stock,
                    other => panic!("--only fused|stock, not {other}"),
                })
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn main() {
    let a = args();
    let texts = sentences(a.n);
    if let Some(path) = &a.write_sentences {
        std::fs::write(path, texts.join("\n") + "\n").unwrap();
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let dir = locate(a.model.as_deref()).unwrap();
    let forwards: Vec<Forward> = match a.only {
        Some(f) => vec![f],
        None => vec![Forward::Stock, Forward::Fused],
    };
    let mut configs: Vec<(Forward, Precision)> = forwards.iter().map(|&f| (f, Precision::Float32)).collect();
    configs.extend(a.precisions.iter().filter(|&&p| p != Precision::Float32).map(|&p| (Forward::Fused, p)));
    let info = cpu::cpu_info();
    println!("CPU: {}; flags: {}", info.cpu, info.features.join(" "));
    let embedders: Vec<(String, CandleEmbedder)> = configs
        .iter()
        .map(|&(forward, precision)| {
            let opts = EmbedderOptions { threads: a.threads, forward, precision, ..EmbedderOptions::default() };
            let e = CandleEmbedder::load_with(&dir, &opts).unwrap_or_else(|e| panic!("{forward:?} {precision:?}: {e}"));
            let label = format!("{forward:?} {}", precision.as_str());
            println!("{label}: kernels {:?}", e.kernels());
            (label, e)
        })
        .collect();
    let opts = EncodeOptions { batch_size: a.batch_size, normalize: true };
    let tokens: usize = {
        let e = &embedders[0].1;
        // Warm-up on a slice (page in the weights, grow buffers) and a token count for the report.
        e.embed(&refs[..refs.len().min(64)], &opts, None).unwrap();
        e.count_tokens(&refs).unwrap().iter().sum()
    };
    for (_, e) in &embedders[1..] {
        e.embed(&refs[..refs.len().min(64)], &opts, None).unwrap();
    }
    println!(
        "{} sentences ({:.1} tokens each on average), batch_size {}, {} threads, {} rounds",
        texts.len(),
        tokens as f64 / texts.len() as f64,
        a.batch_size,
        embedders[0].1.threads(),
        a.rounds
    );
    let mut best = vec![0.0f64; embedders.len()];
    for round in 0..a.rounds {
        for (k, (label, e)) in embedders.iter().enumerate() {
            let start = Instant::now();
            let out = e.embed(&refs, &opts, None).unwrap();
            let secs = start.elapsed().as_secs_f64();
            assert_eq!(out.len(), refs.len() * e.dim());
            let rate = refs.len() as f64 / secs;
            best[k] = best[k].max(rate);
            println!("round {round} {label}: {secs:.2} s, {rate:.1} sentences/s");
        }
    }
    for (k, (label, _)) in embedders.iter().enumerate() {
        println!("best {label}: {:.1} sentences/s", best[k]);
    }
    let find = |l: &str| embedders.iter().position(|(label, _)| label == l);
    if let (Some(s), Some(f)) = (find("Stock float32"), find("Fused float32")) {
        println!("fused / stock: {:.2}x", best[f] / best[s]);
    }
    if let Some(f) = find("Fused float32") {
        for (k, (label, _)) in embedders.iter().enumerate() {
            if label.starts_with("Fused") && k != f {
                println!("{label} / Fused float32: {:.2}x", best[k] / best[f]);
            }
        }
    }
}
