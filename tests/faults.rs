//! Faults, on the real model and the real Qdrant engine: the Qdrant server going away in the middle
//! of a load (and coming back, or not), and damaged hand-off files (a shard, an embedded shard, the
//! manifest). Each ends with exactly the valid rows in the collection, never a damaged file loaded,
//! never a partial load counted as done. (Killed processes: tests/test_pipeline.py; a full disk:
//! tests/test_faults.py.)

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arrow::array::{Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use qdrant_test_server::TestServer;
use vdb_core::embed::{self, EncodeOptions};
use vdb_core::handoff::{Manifest, RunDir, ShardState};
use vdb_core::pipeline::{self, EnsureMode, IngestOptions, PlanOptions};
use vdb_core::progress::{Progress, Silent};
use vdb_core::store::server::ServerStore;
use vdb_core::store::{self, LoadOptions, StoreTarget, VectorStore};
use vdb_core::ErrorKind;

fn options(input: &Path, shard_rows: usize, load: LoadOptions) -> IngestOptions {
    IngestOptions {
        plan: PlanOptions {
            input: input.to_path_buf(),
            mapping: Default::default(),
            shard_rows,
            strict: false,
            reuse: true,
        },
        collection: "faults".into(),
        mode: EnsureMode::Keep,
        collection_options: Default::default(),
        encode: EncodeOptions::default(),
        load,
        sync_scope: Vec::new(),
        changes: None,
    }
}

/// `rows` rows of one filing whose texts repeat every `distinct` rows: many points (more than one
/// 4096-point load chunk) for little embedding.
fn repetitive(path: &Path, rows: usize, distinct: usize) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("filing_id", DataType::Utf8, false),
        Field::new("sentence_index", DataType::Int32, false),
        Field::new("sentence", DataType::Utf8, false),
    ]));
    let texts: Vec<String> = (0..rows).map(|i| format!("Risk factor {}: demand may fall.", i % distinct)).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["f1"; rows])),
            Arc::new(Int32Array::from((0..rows as i32).collect::<Vec<_>>())),
            Arc::new(StringArray::from(texts)),
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn free_addr() -> SocketAddr {
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Progress of a load that stops the Qdrant server after the first chunk of points went in, and
/// (optionally) starts it again on the same storage from another thread.
struct StopServerMidLoad {
    server: Mutex<Option<TestServer>>,
    addr: SocketAddr,
    storage: PathBuf,
    restart: bool,
    restarted: Mutex<Option<std::thread::JoinHandle<TestServer>>>,
}

impl Progress for StopServerMidLoad {
    fn start(&self, _step: &str, _total: u64) {}
    fn advance(&self, _n: u64) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.stop();
            if self.restart {
                let (addr, storage) = (self.addr, self.storage.clone());
                *self.restarted.lock().unwrap() = Some(std::thread::spawn(move || {
                    // Down for a while (the loader retries meanwhile), then up on the same storage.
                    std::thread::sleep(std::time::Duration::from_millis(800));
                    TestServer::start(addr, &storage).unwrap()
                }));
            }
        }
    }
    fn finish(&self) {}
}

#[test]
fn qdrant_server_stopped_mid_load_then_back_or_gone() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    repetitive(&input, 5_000, 40);
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    let (addr, storage) = (free_addr(), dir.path().join("qdrant"));
    let url = format!("http://{addr}");
    let server = TestServer::start(addr, &storage).unwrap();
    let store = ServerStore::connect(&url, None).unwrap();

    let run = RunDir::at(dir.path().join("run"));
    let patient = LoadOptions { batch_size: 500, parallel: 2, max_retries: 10, retry_base_ms: 100 };
    let opts = options(&input, 5_000, patient.clone());
    pipeline::plan(&run, &opts.plan, &Silent).unwrap();
    pipeline::embed_shard(&run, 0, embedder.as_ref(), &opts.encode, None, &Silent).unwrap();
    pipeline::ensure_collection(&run, &store, "faults", EnsureMode::Keep, &Default::default()).unwrap();

    // 1. The server goes away after the first 4096 points and stays away: a clear StoreUnavailable
    //    naming the server and the collection, and the shard is not counted as loaded.
    let gone = StopServerMidLoad {
        server: Mutex::new(Some(server)),
        addr,
        storage: storage.clone(),
        restart: false,
        restarted: Mutex::new(None),
    };
    let impatient = LoadOptions { max_retries: 2, retry_base_ms: 20, ..patient.clone() };
    let err = pipeline::load_shard(&run, 0, &store, "faults", &impatient, &gone).unwrap_err();
    assert_eq!(err.kind, ErrorKind::StoreUnavailable, "{}", err.message);
    assert!(err.message.contains(&url) && err.message.contains("faults"), "{}", err.message);
    let m = Manifest::read(&run).unwrap();
    assert_eq!(m.shards[0].state, ShardState::Embedded);
    assert_eq!(m.shards[0].loaded_points, None);

    // 2. Up again on the same storage: the first chunk is there, the run is not done yet.
    let server = TestServer::start(addr, &storage).unwrap();
    assert_eq!(store.count("faults").unwrap(), 4_096);
    assert_eq!(pipeline::verify(&run, &store, "faults").unwrap_err().kind, ErrorKind::Handoff);

    // 3. It goes away in the middle of the load again and comes back while the loader retries: the
    //    load completes, every point once.
    let back = StopServerMidLoad {
        server: Mutex::new(Some(server)),
        addr,
        storage: storage.clone(),
        restart: true,
        restarted: Mutex::new(None),
    };
    let loaded = pipeline::load_shard(&run, 0, &store, "faults", &patient, &back).unwrap();
    let server = back.restarted.lock().unwrap().take().expect("the server was stopped mid-load").join().unwrap();
    assert_eq!(loaded.points, 5_000);
    assert_eq!(
        (loaded.new_points, loaded.unchanged_points),
        (904, 4_096),
        "the points of the failed try are there once"
    );
    pipeline::restore_indexing(Some(&run), &store, "faults").unwrap();
    let report = pipeline::verify(&run, &store, "faults").unwrap();
    assert_eq!((report.points_verified, report.points_loaded, report.collection_count), (5_000, 5_000, 5_000));
    server.stop();
}

fn flip(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = at.min(bytes.len() - 1);
    bytes[i] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_shards_are_redone_never_loaded_and_a_damaged_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    vdb_core::sample::write_sample(&input, 300, 9).unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    let target = StoreTarget::Embedded { path: dir.path().join("store") };
    let s = store::open(&target).unwrap();
    let run = RunDir::at(dir.path().join("run"));
    let opts = options(&input, 100, LoadOptions::default());
    pipeline::plan(&run, &opts.plan, &Silent).unwrap();
    for i in 0..3 {
        pipeline::embed_shard(&run, i, embedder.as_ref(), &opts.encode, None, &Silent).unwrap();
    }
    pipeline::ensure_collection(&run, s.as_ref(), "faults", EnsureMode::Keep, &Default::default()).unwrap();
    pipeline::load_shard(&run, 0, s.as_ref(), "faults", &opts.load, &Silent).unwrap();

    // A flipped byte in a planned shard and in an embedded one: detected by checksum, not loaded.
    flip(&run.shard_path(1), 700);
    let e = pipeline::load_shard(&run, 1, s.as_ref(), "faults", &opts.load, &Silent).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Handoff);
    assert!(e.message.contains("shard-00001.arrow") && e.message.contains("checksum"), "{}", e.message);
    flip(&run.embedded_path(2), 900);
    let e = pipeline::load_shard(&run, 2, s.as_ref(), "faults", &opts.load, &Silent).unwrap_err();
    assert!(e.message.contains("embedded/shard-00002.arrow") && e.message.contains("checksum"), "{}", e.message);
    assert_eq!(s.count("faults").unwrap(), 100, "nothing of a damaged shard was loaded");

    // The run again: the planned shard is split again, the embedded one embedded again.
    let r = pipeline::ingest(&run, &opts, embedder.as_ref(), s.as_ref(), &Silent).unwrap();
    assert_eq!((r.report.points_verified, r.report.collection_count), (300, 300));
    assert_eq!(r.report.texts_embedded, r.report.distinct_texts, "shard 2 embedded again, once");

    // A manifest damaged into other valid JSON (a digit of rows_valid): refused, naming the file.
    let text = std::fs::read_to_string(run.manifest_path()).unwrap();
    let damaged = text.replacen("\"rows_valid\": 300", "\"rows_valid\": 200", 1);
    assert_ne!(damaged, text);
    std::fs::write(run.manifest_path(), damaged).unwrap();
    let e = pipeline::ingest(&run, &opts, embedder.as_ref(), s.as_ref(), &Silent).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Handoff);
    assert_eq!(e.file.as_deref(), Some(run.manifest_path().as_path()));
    assert!(e.message.contains("manifest.json") && e.message.contains("checksum"), "{}", e.message);
    // Its advice (a new run directory) works, and adds nothing twice.
    let fresh = RunDir::at(dir.path().join("run2"));
    let r = pipeline::ingest(&fresh, &opts, embedder.as_ref(), s.as_ref(), &Silent).unwrap();
    assert_eq!((r.report.new_points, r.report.collection_count), (0, 300));
}
