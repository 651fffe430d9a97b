//! Search quality of a loaded collection against exact search (not a test).
//!
//! ```text
//! cargo run --example search_recall -- RUN_DIR STORE_DIR [--collection sec_filings] [--queries 200]
//! ```
//!
//! Reads the embedded shards of a run directory (the vectors that were loaded), opens the embedded
//! store, and for `queries` probe vectors (a stored vector plus a little noise, re-normalised)
//! compares the store's top 10 with the exact top 10 by cosine: unfiltered, filtered on `company`
//! (a few thousand points per value in the sample data) and on `fiscal_year`. Prints recall@10 and
//! the mean search time of each kind.

use std::path::PathBuf;
use std::time::Instant;

use serde_json::Value;
use vdb_core::handoff::shard::read_shard;
use vdb_core::pipeline::load::points_of;
use vdb_core::store::embedded::EmbeddedStore;
use vdb_core::store::{Condition, VectorStore};

fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let (Some(run), Some(store_dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: search_recall RUN_DIR STORE_DIR [--collection NAME] [--queries N]");
        std::process::exit(2);
    };
    let collection = flag("--collection").unwrap_or_else(|| "sec_filings".into());
    let queries: usize = flag("--queries").map_or(200, |q| q.parse().expect("--queries needs a number"));

    let mut files: Vec<PathBuf> = std::fs::read_dir(PathBuf::from(run).join("embedded"))
        .expect("RUN_DIR/embedded")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "arrow"))
        .collect();
    files.sort();
    let mut points = Vec::new();
    for f in &files {
        points.extend(points_of(&read_shard(f, None).unwrap()).unwrap());
    }
    let dim = points[0].vector.len();
    eprintln!("{} points of {dim} dims from {} shards", points.len(), files.len());

    let store = EmbeddedStore::open(std::path::Path::new(store_dir)).unwrap();
    let t = Instant::now();
    assert_eq!(store.count(&collection).unwrap(), points.len() as u64, "the store holds other points");
    eprintln!("store opened in {:.1} s: {:?}", t.elapsed().as_secs_f64(), store.index_info(&collection).unwrap());

    let mut rng: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    // (kind, hits, searches, seconds)
    let mut stats: Vec<(&str, usize, usize, f64)> =
        vec![("unfiltered", 0, 0, 0.0), ("company", 0, 0, 0.0), ("fiscal_year", 0, 0, 0.0)];
    for _ in 0..queries {
        let probe = &points[(next() % points.len() as u64) as usize];
        let mut q: Vec<f32> = probe
            .vector
            .iter()
            .map(|x| x + ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1)
            .collect();
        let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        q.iter_mut().for_each(|x| *x /= norm);
        for (kind, hits, searches, seconds) in stats.iter_mut() {
            let wanted: Option<&Value> = (*kind != "unfiltered").then(|| &probe.payload[*kind]);
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
            let got = store.search(&collection, &q, 10, &filter).unwrap();
            *seconds += t.elapsed().as_secs_f64();
            *hits += got.iter().filter(|h| exact.iter().any(|(_, id)| id == &h.id)).count();
            *searches += 1;
        }
    }
    for (kind, hits, searches, seconds) in stats {
        println!(
            "{kind:<12} recall@10 {:.4}  mean search {:.2} ms",
            hits as f64 / (10 * searches) as f64,
            1e3 * seconds / searches as f64
        );
    }
}
