//! Time of the changes report over a large collection (not a test).
//!
//! ```text
//! cargo run --example changes_bench -- [--companies 20] [--years 10] [--sentences 1000] [--rounds 3]
//! ```
//!
//! Writes companies x years x sentences points (200,000 by default; 384-d random vectors, payload
//! `ticker`, `fiscal_year` and the text fingerprint; each year keeps 70% of the company's previous
//! sentences) into the embedded store and into the qdrant-edge test gRPC server (in-process,
//! through the server store), then times `pipeline::changes` (one scan of ids, three payload fields
//! and vectors, and the set arithmetic) `--rounds` times on each and prints the medians. Prints the
//! CPU first. The test server has no network hop and no background optimiser: a real Qdrant adds
//! its transfer time.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use serde_json::json;
use uuid::Uuid;
use vdb_core::pipeline::changes;
use vdb_core::store::embedded::EmbeddedStore;
use vdb_core::store::server::ServerStore;
use vdb_core::store::{CollectionSpec, Distance, IndexKind, LoadOptions, PointRecord, VectorStore, TEXT_KEY};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} needs a number")))
        .unwrap_or(default)
}

fn cpu() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn points(companies: usize, years: usize, sentences: usize) -> Vec<PointRecord> {
    let mut s: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::with_capacity(companies * years * sentences);
    let mut fresh = 0usize;
    for c in 0..companies {
        let mut texts: Vec<usize> = Vec::new();
        for y in 0..years {
            texts.retain(|_| next() % 10 < 7);
            while texts.len() < sentences {
                fresh += 1;
                texts.push(fresh);
            }
            for (i, t) in texts.iter().enumerate() {
                let vector: Vec<f32> = (0..384).map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5).collect();
                let payload =
                    json!({"ticker": format!("T{c:03}"), "fiscal_year": 2015 + y, TEXT_KEY: format!("{t:032x}")});
                let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{c}-{y}-{i}").as_bytes());
                out.push(PointRecord { id, vector, sparse: None, payload: payload.as_object().unwrap().clone() });
            }
        }
    }
    out
}

fn time(name: &str, store: &dyn VectorStore, rounds: usize) -> f64 {
    let mut secs = Vec::new();
    let mut pairs = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        pairs = changes(store, "c", &["ticker".into()], "fiscal_year", &[]).unwrap().len();
        secs.push(t.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    let median = secs[secs.len() / 2];
    println!("{name:<40} {pairs} pairs, rounds {secs:.2?} s, median {median:.2} s");
    median
}

fn main() {
    let (companies, years, sentences, rounds) =
        (arg("--companies", 20), arg("--years", 10), arg("--sentences", 1000), arg("--rounds", 3));
    let pts = points(companies, years, sentences);
    println!("CPU: {}", cpu());
    println!("{} points ({companies} companies x {years} years x {sentences} sentences), 384-d", pts.len());
    let spec = CollectionSpec {
        name: "c".into(),
        dim: 384,
        distance: Distance::Cosine,
        payload_indexes: vec![("ticker".into(), IndexKind::Keyword), (TEXT_KEY.into(), IndexKind::Keyword)],
        model: None,
        options: Default::default(),
    };
    let opts = LoadOptions { batch_size: 512, ..Default::default() };
    let tmp = tempfile::tempdir().unwrap();
    let embedded = EmbeddedStore::open(&tmp.path().join("e")).unwrap();
    embedded.ensure_collection(&spec, false).unwrap();
    embedded.set_bulk_mode("c", true).unwrap();
    embedded.upsert("c", pts.clone(), &opts).unwrap();
    embedded.set_bulk_mode("c", false).unwrap();
    time("embedded store", &embedded, rounds);
    let server =
        qdrant_test_server::TestServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &tmp.path().join("s"))
            .unwrap();
    let store = ServerStore::connect(&server.url(), None).unwrap();
    store.ensure_collection(&spec, false).unwrap();
    store.upsert("c", pts, &opts).unwrap();
    time("server store -> edge test server (gRPC)", &store, rounds);
}
