//! The embedded store (qdrant-edge in-process): the shared store contract, persistence, payload
//! indexes, and the inter-process lock.

#[path = "support/contract.rs"]
mod contract;
#[path = "support/data.rs"]
mod data;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use contract::{DIM, N};
use data::*;
use vdb_core::store::embedded::EmbeddedStore;
use vdb_core::store::{open, EnsureOutcome, StoreTarget, VectorStore};
use vdb_core::ErrorKind;

fn store(dir: &std::path::Path) -> EmbeddedStore {
    EmbeddedStore::open(dir).unwrap().with_lock_timeout(Duration::from_secs(10))
}

#[test]
fn ensure_mismatch_and_recreate() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    contract::ensure_and_mismatch(&s, "c1");
    contract::aliases(&s, "al");
    let err = s.ensure_collection(&spec("c1", DIM), false).unwrap_err();
    // The error names the directory, for a person to find it.
    assert!(err.to_string().contains(&tmp.path().join("c1").display().to_string()), "{err}");
    drop(s);
    // Size and distance are persisted: a fresh store still detects the mismatch.
    let s = store(tmp.path());
    assert_eq!(s.ensure_collection(&spec("c1", DIM * 2), false).unwrap(), EnsureOutcome::Existed);
    assert_eq!(s.ensure_collection(&spec("c1", DIM), false).unwrap_err().kind, ErrorKind::CollectionMismatch);
}

#[test]
fn hybrid_search() {
    let tmp = tempfile::tempdir().unwrap();
    contract::hybrid(&store(tmp.path()), "h");
}

#[test]
fn load_search_filter_retrieve() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    contract::load_count_idempotent(&s, "c");
    contract::search_nearest(&s, "c");
    contract::filters(&s, "c");
    contract::retrieve(&s, "c");
}

#[test]
fn paged_scroll() {
    let tmp = tempfile::tempdir().unwrap();
    contract::paged_scroll(&store(tmp.path()), "paged");
}

#[test]
fn data_is_durable_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let s = open(&StoreTarget::Embedded { path: tmp.path().to_path_buf() }).unwrap();
        assert!(s.describe().contains(&tmp.path().display().to_string()));
        s.ensure_collection(&spec("c", DIM), false).unwrap();
        s.upsert("c", points(0..N, DIM), &contract::opts()).unwrap();
    }
    let s = store(tmp.path());
    assert!(s.collection_exists("c").unwrap());
    assert_eq!(s.count("c").unwrap(), N as u64);
    assert_eq!(s.retrieve("c", &[id(17)]).unwrap()[0].payload, payload(17));
    assert_eq!(s.search("c", &vector(17, DIM), 1, &[]).unwrap()[0].id, id(17).to_string());
}

#[test]
fn errors() {
    let tmp = tempfile::tempdir().unwrap();
    contract::errors(&store(tmp.path()), "c");
}

#[test]
fn bulk_mode_defers_then_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    // 8,000 x 384-d vectors is past qdrant's indexing threshold (10 MB), so switching bulk mode off
    // really builds an HNSW segment; search must still find every probe.
    let s = store(tmp.path());
    contract::bulk_mode(&s, "bulk", 8_000, 384);
    drop(s);
    let shard = qdrant_edge::EdgeShard::load(&tmp.path().join("bulk/shard"), None).unwrap();
    let info = shard.info();
    assert!(info.indexed_vectors_count > 0, "no HNSW index was built: {info:?}");
}

#[test]
fn bulk_load_indexes_each_full_segment_once() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path()).with_segment_points(1_000);
    s.ensure_collection(&spec("seg", DIM), false).unwrap();
    s.set_bulk_mode("seg", true).unwrap();
    // Two upserts, as two load tasks would: 1,500 then 1,100 points, in batches of 64.
    s.upsert("seg", points(0..1_500, DIM), &contract::opts()).unwrap();
    let first = s.index_info("seg").unwrap();
    assert!(
        (1_000..=1_064).contains(&first.indexed_points),
        "the first full segment is indexed during the load: {first:?}"
    );
    s.upsert("seg", points(1_500..2_600, DIM), &contract::opts()).unwrap();
    let loaded = s.index_info("seg").unwrap();
    assert_eq!(loaded.points, 2_600);
    assert!(
        loaded.indexed_points >= 2_000 && loaded.points - loaded.indexed_points < 1_000,
        "every full segment is indexed before bulk mode ends: {loaded:?}"
    );
    s.set_bulk_mode("seg", false).unwrap();
    let done = s.index_info("seg").unwrap();
    // Full segments were never merged (a merge would rebuild their graphs): two indexed segments,
    // the remainder's segment(s) and the appendable one.
    assert!(done.segments >= 3, "{done:?}");
    assert!(done.indexed_points >= loaded.indexed_points, "{done:?}");
    assert_eq!(s.count("seg").unwrap(), 2_600);
    // Every segment answers: the exact nearest neighbour of stored vectors is the point itself.
    for i in [0, 999, 1_000, 1_499, 1_500, 2_599] {
        let hits = s.search("seg", &vector(i, DIM), 1, &[]).unwrap();
        assert_eq!(hits[0].id, id(i).to_string(), "probe {i}");
    }
    drop(s);
    // A store with another segment size re-configures the collection when it opens it (small
    // segments may merge then); nothing is lost or duplicated.
    let s = store(tmp.path());
    s.set_bulk_mode("seg", true).unwrap();
    s.upsert("seg", points(2_600..3_000, DIM), &contract::opts()).unwrap();
    s.set_bulk_mode("seg", false).unwrap();
    assert_eq!(s.count("seg").unwrap(), 3_000);
}

#[test]
fn payload_indexes_exist() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    s.ensure_collection(&spec("c", DIM), false).unwrap();
    s.upsert("c", points(0..20, DIM), &contract::opts()).unwrap();
    // A later ensure with one more index adds it.
    let mut more = spec("c", DIM);
    more.payload_indexes.push(("flag_num".into(), vdb_core::store::IndexKind::Float));
    assert_eq!(s.ensure_collection(&more, false).unwrap(), EnsureOutcome::Existed);
    drop(s);
    let shard = qdrant_edge::EdgeShard::load(&tmp.path().join("c/shard"), None).unwrap();
    let mut fields: Vec<String> = shard.info().payload_schema.keys().map(|k| k.to_string()).collect();
    fields.sort();
    assert_eq!(fields, ["company", "date", "flag_num", "year"]);
}

#[test]
fn second_opener_waits_then_gets_a_clear_locked_error() {
    let tmp = tempfile::tempdir().unwrap();
    let a = store(tmp.path());
    a.ensure_collection(&spec("c", DIM), false).unwrap();
    a.upsert("c", points(0..5, DIM), &contract::opts()).unwrap();

    let b = EmbeddedStore::open(tmp.path()).unwrap().with_lock_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let err = b.count("c").unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert_eq!(err.kind, ErrorKind::Locked, "{err}");
    let dir = tmp.path().join("c");
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
    assert_eq!(err.file.as_deref(), Some(dir.as_path()));
    // Other collections are not blocked.
    b.ensure_collection(&spec("other", DIM), false).unwrap();

    // The first store lets go (close, or drop): the second gets in and sees the data.
    a.close("c");
    assert_eq!(b.count("c").unwrap(), 5);
    // And now the first one waits for the second.
    let a = a.with_lock_timeout(Duration::from_millis(100));
    assert_eq!(a.count("c").unwrap_err().kind, ErrorKind::Locked);
    drop(b);
    assert_eq!(a.count("c").unwrap(), 5);
}

#[test]
fn parallel_writers_in_one_store() {
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    s.ensure_collection(&spec("c", DIM), false).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let s = &s;
            scope.spawn(move || {
                s.upsert("c", points(t * 100..t * 100 + 100, DIM), &contract::opts()).unwrap();
                s.search("c", &vector(t, DIM), 3, &[]).unwrap();
            });
        }
    });
    assert_eq!(s.count("c").unwrap(), 400);
}

const CHILD_ENV: &str = "VDB_STORE_LOCK_CHILD_DIR";

/// Not a test by itself: the child process of `another_process_holds_the_lock`.
#[test]
#[ignore = "the child process of another_process_holds_the_lock, not a test by itself"]
fn lock_child() {
    let dir = std::env::var(CHILD_ENV).unwrap_or_else(|_| {
        panic!("lock_child runs only as the child of another_process_holds_the_lock ({CHILD_ENV})")
    });
    let s = store(std::path::Path::new(&dir));
    s.ensure_collection(&spec("c", DIM), false).unwrap();
    s.upsert("c", points(0..42, DIM), &contract::opts()).unwrap();
    println!("CHILD HOLDS LOCK");
    std::thread::sleep(Duration::from_millis(1500));
    s.upsert("c", points(42..50, DIM), &contract::opts()).unwrap();
    drop(s);
    println!("CHILD RELEASED");
}

#[test]
fn another_process_holds_the_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["lock_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("child ended before taking the lock").unwrap();
        if line.contains("CHILD HOLDS LOCK") {
            break;
        }
    }
    // While the child holds it: a short wait fails with Locked...
    let quick = EmbeddedStore::open(tmp.path()).unwrap().with_lock_timeout(Duration::from_millis(200));
    let err = quick.count("c").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Locked, "{err}");
    drop(quick);
    // ...and a patient opener waits for the child to finish, then sees everything it wrote.
    let start = Instant::now();
    let patient = store(tmp.path());
    assert_eq!(patient.count("c").unwrap(), 50);
    assert!(start.elapsed() >= Duration::from_millis(300), "did not wait: {:?}", start.elapsed());
    let status = child.wait().unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(|l| l.ok()).collect();
    assert!(rest.iter().any(|l| l.contains("CHILD RELEASED")), "{rest:?}");
}

/// On-disk vectors and payloads and int8 quantization work in the embedded store; cluster settings
/// are refused with a clear error (it is one local shard), never silently ignored.
#[test]
fn collection_options_embedded() {
    use vdb_core::store::{CollectionOptions, Quantization};
    let tmp = tempfile::tempdir().unwrap();
    let s = store(tmp.path());
    let mut sp = spec("disk", DIM);
    sp.options = CollectionOptions {
        on_disk: true,
        on_disk_payload: true,
        quantization: Some(Quantization::Int8),
        ..Default::default()
    };
    s.ensure_collection(&sp, false).unwrap();
    s.upsert("disk", points(0..200, DIM), &contract::opts()).unwrap();
    assert_eq!(s.search("disk", &vector(11, DIM), 1, &[]).unwrap()[0].id, id(11).to_string());
    drop(s);
    let cfg = qdrant_edge::EdgeShard::load(&tmp.path().join("disk/shard"), None).unwrap().config().clone();
    assert!(cfg.on_disk_payload && cfg.quantization_config.is_some());
    assert_eq!(cfg.vectors[qdrant_edge::DEFAULT_VECTOR_NAME].on_disk, Some(true));

    let s = store(tmp.path());
    let mut cluster = spec("cluster", DIM);
    cluster.options.shard_number = Some(4);
    cluster.options.replication_factor = Some(2);
    let err = s.ensure_collection(&cluster, false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    assert!(err.message.contains("shard_number, replication_factor") && err.message.contains("QDRANT_URL"), "{err}");
    assert!(!s.collection_exists("cluster").unwrap());
}
