//! The embedded store's segment policy on real vectors (not a test).
//!
//! ```text
//! cargo run --example segment_bench -- RUN_DIR [--segments 20000,32768,all] [--queries 200]
//! ```
//!
//! RUN_DIR is a run directory whose shards are embedded (e.g. `vdb ingest` ran on it, or
//! `vdb_core.plan` + `embed_shard`). For each segment size (`all` = one segment indexed once when
//! the bulk load ends, the behaviour before the policy and the baseline of the ratios), a child
//! process loads every embedded shard into a fresh embedded store in bulk mode, as `load_shard`
//! does, ends bulk mode, and prints load + index time and its peak RSS; it then compares the
//! store's top 10 with the exact top 10 by cosine for `queries` probe vectors (a stored vector plus
//! noise, re-normalised): unfiltered, filtered on `company` and on `fiscal_year`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde_json::{json, Value};
use vdb_core::handoff::{Manifest, RunDir};
use vdb_core::pipeline::load::{collection_spec, shard_points};
use vdb_core::progress::peak_rss_mib;
use vdb_core::store::embedded::EmbeddedStore;
use vdb_core::store::{Condition, LoadOptions, PointRecord, VectorStore};

const COLLECTION: &str = "segment_bench";

fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() {
    let run = PathBuf::from(std::env::args().nth(1).filter(|a| !a.starts_with("--")).unwrap_or_else(|| {
        eprintln!("usage: segment_bench RUN_DIR [--segments 20000,32768,all] [--queries 200]");
        std::process::exit(2);
    }));
    let queries: usize = flag("--queries").map_or(200, |q| q.parse().expect("--queries needs a number"));
    if let Some(seg) = flag("--child") {
        let points = if seg == "all" { usize::MAX } else { seg.parse().expect("segment size") };
        child(&run, points, queries);
        return;
    }
    let sizes = flag("--segments").unwrap_or_else(|| "all,20000,32768".into());
    let exe = std::env::current_exe().unwrap();
    let mut rows: Vec<Value> = Vec::new();
    for seg in sizes.split(',') {
        let out = Command::new(&exe)
            .arg(&run)
            .args(["--child", seg, "--queries", &queries.to_string()])
            .output()
            .expect("child");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let line = String::from_utf8_lossy(&out.stdout);
        let v: Value = serde_json::from_str(line.trim()).expect("child prints one JSON line");
        println!("{v}");
        rows.push(v);
    }
    let base = rows.iter().find(|r| r["segment_points"] == "all").cloned();
    println!(
        "\n{:>9} {:>9} {:>10} {:>9} {:>6} {:>8} {:>8} {:>8}",
        "segment", "segments", "load+idx s", "vs all", "MiB", "recall", "company", "year"
    );
    for r in &rows {
        let t = r["load_s"].as_f64().unwrap() + r["index_s"].as_f64().unwrap();
        let ratio = base
            .as_ref()
            .map(|b| b["load_s"].as_f64().unwrap() + b["index_s"].as_f64().unwrap())
            .map_or("-".to_string(), |bt| format!("{:.2}x", bt / t));
        println!(
            "{:>9} {:>9} {:>10.1} {:>9} {:>6.0} {:>8.4} {:>8.4} {:>8.4}",
            r["segment_points"].as_str().unwrap(),
            r["segments"],
            t,
            ratio,
            r["peak_rss_mib"].as_f64().unwrap(),
            r["recall"]["unfiltered"].as_f64().unwrap(),
            r["recall"]["company"].as_f64().unwrap(),
            r["recall"]["fiscal_year"].as_f64().unwrap(),
        );
    }
}

fn child(run: &Path, segment_points: usize, queries: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap().with_segment_points(segment_points);
    let rd = RunDir::at(run);
    let spec = collection_spec(&rd, &Manifest::read(&rd).unwrap(), COLLECTION, &Default::default()).unwrap();
    store.ensure_collection(&spec, true).unwrap();
    store.set_bulk_mode(COLLECTION, true).unwrap();
    // As load_shard: one shard in memory at a time, upserted in chunks of 4,096.
    let t = Instant::now();
    let opts = LoadOptions::default();
    let m = Manifest::read(&rd).unwrap();
    for s in &m.shards {
        let points = shard_points(&rd, &m, s.index).unwrap();
        for chunk in points.chunks(4096) {
            store.upsert(COLLECTION, chunk.to_vec(), &opts).unwrap();
        }
    }
    let load_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    store.set_bulk_mode(COLLECTION, false).unwrap();
    let index_s = t.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    let info = store.index_info(COLLECTION).unwrap();
    // Search as `vdb search` does: from a freshly opened store.
    drop(store);
    let store = EmbeddedStore::open(dir.path()).unwrap().with_segment_points(segment_points);

    // All points at once for the exact search, read only now so they do not count in the peak above.
    let mut points: Vec<PointRecord> = Vec::new();
    for s in &m.shards {
        points.extend(shard_points(&rd, &m, s.index).unwrap());
    }
    let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let kinds = ["unfiltered", "company", "fiscal_year"];
    let mut hits = [0usize; 3];
    let mut seconds = [0f64; 3];
    for _ in 0..queries {
        let probe = &points[(next() % points.len() as u64) as usize];
        let mut q: Vec<f32> =
            probe.vector.iter().map(|x| x + ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1).collect();
        let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        q.iter_mut().for_each(|x| *x /= norm);
        for (k, kind) in kinds.iter().enumerate() {
            let wanted: Option<&Value> = (k > 0).then(|| &probe.payload[*kind]);
            let mut exact: Vec<(f32, String)> = points
                .iter()
                .filter(|p| wanted.is_none_or(|w| &p.payload[*kind] == w))
                .map(|p| (p.vector.iter().zip(&q).map(|(a, b)| a * b).sum::<f32>(), p.id.to_string()))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            exact.truncate(10);
            let filter: Vec<Condition> = wanted
                .map(|w| vec![Condition::Equals { field: kind.to_string(), value: w.clone() }])
                .unwrap_or_default();
            let t = Instant::now();
            let got = store.search(COLLECTION, &q, 10, &filter).unwrap();
            seconds[k] += t.elapsed().as_secs_f64();
            hits[k] += got.iter().filter(|h| exact.iter().any(|(_, id)| id == &h.id)).count();
        }
    }
    let recall = |k: usize| hits[k] as f64 / (10 * queries) as f64;
    let ms = |k: usize| 1e3 * seconds[k] / queries as f64;
    println!(
        "{}",
        json!({
            "segment_points": if segment_points == usize::MAX { "all".to_string() } else { segment_points.to_string() },
            "points": info.points,
            "segments": info.segments,
            "indexed_points": info.indexed_points,
            "load_s": load_s,
            "index_s": index_s,
            "peak_rss_mib": peak,
            "recall": { "unfiltered": recall(0), "company": recall(1), "fiscal_year": recall(2) },
            "search_ms": { "unfiltered": ms(0), "company": ms(1), "fiscal_year": ms(2) },
        })
    );
}
