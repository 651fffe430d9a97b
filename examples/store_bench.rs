//! Bulk-load throughput of the two stores (not a test).
//!
//! ```text
//! cargo run --example store_bench -- [--points 20000] [--dim 384] [--batch 256] [--parallel 4]
//! ```
//!
//! Loads the same random points (with a sentence-sized payload) into
//! 1. the embedded store (qdrant-edge in-process), bulk mode on, then off (which builds the index);
//! 2. the qdrant-edge test gRPC server, in-process on 127.0.0.1, through the server store
//!    (qdrant-client, `batch` points per request, `parallel` requests in flight, wait=true).
//!
//! and prints points/s. The test server applies updates synchronously and has no background
//! optimiser, so its numbers measure the client path + gRPC + engine writes, not a real Qdrant.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use serde_json::{json, Value};
use uuid::Uuid;
use vdb_core::store::embedded::EmbeddedStore;
use vdb_core::store::server::ServerStore;
use vdb_core::store::{CollectionSpec, Distance, IndexKind, LoadOptions, PointRecord, VectorStore};

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name} needs a number")))
        .unwrap_or(default)
}

fn make_points(n: usize, dim: usize) -> Vec<PointRecord> {
    let mut s: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    (0..n)
        .map(|i| {
            let vector: Vec<f32> = (0..dim).map(|_| next()).collect();
            let Value::Object(payload) = json!({
                "cik": format!("{:010}", 320193 + i % 500),
                "company": format!("Company {}", i % 500),
                "year": 2001 + (i % 20) as i64,
                "section": "Item 7",
                "text": format!("Sentence {i}: the company's revenue increased compared to the prior fiscal year, driven by higher net sales of products and services."),
            }) else {
                unreachable!()
            };
            PointRecord { id: Uuid::new_v5(&Uuid::NAMESPACE_OID, &i.to_le_bytes()), vector, sparse: None, payload }
        })
        .collect()
}

fn spec(dim: usize) -> CollectionSpec {
    CollectionSpec {
        name: "bench".into(),
        dim,
        distance: Distance::Cosine,
        payload_indexes: vec![("cik".into(), IndexKind::Keyword), ("year".into(), IndexKind::Integer)],
        model: None,
        options: Default::default(),
    }
}

struct Row {
    target: String,
    load_s: f64,
    index_s: f64,
}

fn run(target: &str, store: &dyn VectorStore, points: Vec<PointRecord>, opts: &LoadOptions) -> Row {
    let n = points.len() as u64;
    let dim = points[0].vector.len();
    store.ensure_collection(&spec(dim), true).unwrap();
    store.set_bulk_mode("bench", true).unwrap();
    let t = Instant::now();
    assert_eq!(store.upsert("bench", points, opts).unwrap(), n);
    let load_s = t.elapsed().as_secs_f64();
    eprintln!("{target}: peak RSS after load {:.0} MiB", vdb_core::progress::peak_rss_mib());
    let t = Instant::now();
    store.set_bulk_mode("bench", false).unwrap();
    let index_s = t.elapsed().as_secs_f64();
    eprintln!("{target}: peak RSS after the index build {:.0} MiB", vdb_core::progress::peak_rss_mib());
    assert_eq!(store.count("bench").unwrap(), n);
    Row { target: target.to_string(), load_s, index_s }
}

fn main() {
    let n = arg("--points", 20_000);
    let dim = arg("--dim", 384);
    let batch = arg("--batch", 256);
    let parallel = arg("--parallel", 4);
    let opts = LoadOptions { batch_size: batch, parallel, ..LoadOptions::default() };
    let points = make_points(n, dim);
    eprintln!("peak RSS with the points in memory {:.0} MiB", vdb_core::progress::peak_rss_mib());
    println!("{n} points x {dim} dims, batch {batch}, parallel {parallel} (server store)");

    let mut rows = Vec::new();
    {
        let tmp = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(tmp.path()).unwrap();
        rows.push(run("embedded (qdrant-edge)", &store, points.clone(), &opts));
    }
    {
        let tmp = tempfile::tempdir().unwrap();
        let server =
            qdrant_test_server::TestServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), tmp.path()).unwrap();
        let store = ServerStore::connect(&server.url(), None).unwrap();
        rows.push(run("server store -> edge test server (gRPC)", &store, points, &opts));
    }

    println!();
    println!("| target | load s | points/s (load) | bulk off s | points/s (load + bulk off) |");
    println!("|---|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.2} | {:.0} | {:.2} | {:.0} |",
            r.target,
            r.load_s,
            n as f64 / r.load_s,
            r.index_s,
            n as f64 / (r.load_s + r.index_s)
        );
    }
}
