//! Two things at once, and the answers that must not be wrong: two first embeds of one run with
//! two models (precisions), two loads of one shard, a text search of a collection built by another
//! model, a run-directory file that is not there yet, a run report that cannot be read. The real
//! model and the real Qdrant engine (embedded, and behind the gRPC test server).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Barrier;
use std::time::Duration;

use vdb_core::embed::{self, Embedder, EncodeOptions, Precision};
use vdb_core::handoff::{Manifest, RunDir, ShardState};
use vdb_core::pipeline::{self, EnsureMode, PlanOptions};
use vdb_core::progress::Silent;
use vdb_core::store::{self, CollectionSpec, Distance, StoreTarget, VectorStore};
use vdb_core::{ErrorKind, Result};

/// The real embedder, held at a barrier inside `embed` until the other thread's embed is there
/// too: both have then passed every check made before the model runs.
struct AtBarrier<'a> {
    inner: &'a dyn Embedder,
    barrier: &'a Barrier,
}

impl Embedder for AtBarrier<'_> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn max_seq_length(&self) -> usize {
        self.inner.max_seq_length()
    }
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }
    fn precision(&self) -> Precision {
        self.inner.precision()
    }
    fn count_tokens(&self, texts: &[&str]) -> Result<Vec<usize>> {
        self.inner.count_tokens(texts)
    }
    fn embed(
        &self,
        texts: &[&str],
        opts: &EncodeOptions,
        progress: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<Vec<f32>> {
        self.barrier.wait();
        self.inner.embed(texts, opts, progress)
    }
}

fn planned_run(dir: &Path, rows: u64, shard_rows: usize) -> RunDir {
    let input = dir.join("in.parquet");
    vdb_core::sample::write_sample(&input, rows, 11).unwrap();
    let run = RunDir::at(dir.join("run"));
    let opts = PlanOptions { input, mapping: Default::default(), shard_rows, strict: false, reuse: true };
    pipeline::plan(&run, &opts, &Silent).unwrap();
    run
}

/// Two first embeds of one run (two shards, two processes in the DAG), float32 and int8: both
/// pass the model check made before the model runs, and only one may record its model. The other
/// is refused when it records, and its shard stays to be embedded: the run never holds vectors of
/// two models.
#[test]
fn two_first_embeds_with_two_models_never_mix_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = planned_run(dir.path(), 60, 30);
    let float32 = embed::open(None, Some(1), Precision::Float32).unwrap();
    let int8 = embed::open(None, Some(1), Precision::Int8).unwrap();
    assert_ne!(float32.model_id(), int8.model_id());
    let barrier = Barrier::new(2);
    let a = AtBarrier { inner: float32.as_ref(), barrier: &barrier };
    let b = AtBarrier { inner: int8.as_ref(), barrier: &barrier };
    let opts = EncodeOptions::default();
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| pipeline::embed_shard(&run, 0, &a, &opts, None, &Silent));
        let tb = s.spawn(|| pipeline::embed_shard(&run, 1, &b, &opts, None, &Silent));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    let (ok, refused, refused_shard) = match (&ra, &rb) {
        (Ok(_), Err(e)) => (float32.model_id(), e, 1),
        (Err(e), Ok(_)) => (int8.model_id(), e, 0),
        _ => panic!("exactly one of the two first embeds must be refused: {:?} / {:?}", ra.is_ok(), rb.is_ok()),
    };
    assert_eq!(refused.kind, ErrorKind::RunMismatch, "{}", refused.message);
    let m = Manifest::read(&run).unwrap();
    assert_eq!(m.model.as_ref().map(|x| x.model_id.as_str()), Some(ok));
    assert_eq!(m.shards[refused_shard].state, ShardState::Planned, "the refused shard is embedded again later");
}

/// Two loads of the same shard (a retry and a zombie): the one that waited for the other's lock
/// finds the shard loaded and does nothing, so the counts stay those of the first load.
#[test]
fn a_load_that_waited_for_another_load_of_its_shard_does_not_load_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let run = planned_run(dir.path(), 40, 40);
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    pipeline::embed_shard(&run, 0, embedder.as_ref(), &EncodeOptions::default(), None, &Silent).unwrap();
    let s = store::open(&StoreTarget::Embedded { path: dir.path().join("store") }).unwrap();
    pipeline::ensure_collection(&run, s.as_ref(), "c", EnsureMode::Keep, &Default::default()).unwrap();
    let load = || pipeline::load_shard(&run, 0, s.as_ref(), "c", &Default::default(), &Silent).unwrap();
    // Both loads start while the shard's lock is held, so each reaches it before either loads.
    let held = run.lock("shard-00000", Duration::from_secs(5)).unwrap();
    let results = std::thread::scope(|sc| {
        let t1 = sc.spawn(load);
        let t2 = sc.spawn(load);
        std::thread::sleep(Duration::from_millis(500));
        drop(held);
        [t1.join().unwrap(), t2.join().unwrap()]
    });
    let done_now: Vec<bool> = results.iter().map(|r| r.shard.done_now).collect();
    assert_eq!(done_now.iter().filter(|d| **d).count(), 1, "exactly one load writes the shard: {done_now:?}");
    let e = Manifest::read(&run).unwrap().shards[0].clone();
    assert_eq!((e.loaded_points, e.new_points, e.unchanged_points), (Some(40), Some(40), Some(0)));
    assert_eq!(s.count("c").unwrap(), 40);
}

/// A text search embeds the query with the search's model: a collection built by another model
/// (another recorded model, or vectors of another size) is a clear `collection_mismatch`, never
/// the neighbours of a meaningless vector. Another precision of the same weights is fine.
fn search_refuses_another_model(s: &dyn VectorStore) {
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    let spec = |name: &str, dim: usize, model: &str| CollectionSpec {
        name: name.into(),
        dim,
        distance: Distance::Cosine,
        payload_indexes: Vec::new(),
        model: Some(model.into()),
        options: Default::default(),
    };
    let opts = pipeline::TextSearchOptions { limit: 3, ..Default::default() };
    let search = |c: &str| pipeline::search_text(embedder.as_ref(), s, c, "tax", &opts).map(|found| found.hits);
    s.ensure_collection(&spec("other_model", 384, "e5-small-v2-0123456789ab"), false).unwrap();
    let err = search("other_model").unwrap_err();
    assert_eq!(err.kind, ErrorKind::CollectionMismatch, "{}", err.message);
    assert!(err.message.contains("e5-small-v2") && err.message.contains(embedder.model_id()), "{}", err.message);
    s.ensure_collection(&spec("other_size", 8, "tiny"), false).unwrap();
    assert_eq!(search("other_size").unwrap_err().kind, ErrorKind::CollectionMismatch);
    let err = s.search("other_size", &vec![0.1; 384], 3, &[]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CollectionMismatch, "{}", err.message);
    assert!(err.message.contains("size 384") && err.message.contains("size 8"), "{}", err.message);
    let int8_id = format!("{}+int8", embedder.model_id());
    s.ensure_collection(&spec("same_weights_int8", 384, &int8_id), false).unwrap();
    assert!(search("same_weights_int8").unwrap().is_empty());
}

#[test]
fn embedded_store_search_refuses_another_model() {
    let dir = tempfile::tempdir().unwrap();
    search_refuses_another_model(store::open(&StoreTarget::Embedded { path: dir.path().join("s") }).unwrap().as_ref());
}

#[test]
fn server_store_search_refuses_another_model() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        qdrant_test_server::TestServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &dir.path().join("srv"))
            .unwrap();
    let s = store::open(&StoreTarget::Server { url: server.url(), api_key: None }).unwrap();
    search_refuses_another_model(s.as_ref());
    server.stop();
}

/// A run-directory file that is not there (yet) is a hand-off error a retry may fix, not the
/// input's `file_not_found` (which a DAG fails at once); a run report that cannot be read stops
/// the step after verify with the file's name instead of leaving the step out of the report.
#[test]
fn missing_and_unreadable_run_files_are_handoff_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = planned_run(dir.path(), 20, 20);
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    std::fs::remove_file(run.shard_path(0)).unwrap();
    let err = pipeline::embed_shard(&run, 0, embedder.as_ref(), &EncodeOptions::default(), None, &Silent).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Handoff, "{}", err.message);
    assert_eq!(err.file.as_deref(), Some(run.shard_path(0).as_path()));

    let run = RunDir::at(dir.path().join("run2"));
    let input = dir.path().join("in.parquet");
    let opts = pipeline::IngestOptions {
        plan: PlanOptions { input, mapping: Default::default(), shard_rows: 20, strict: false, reuse: true },
        collection: "c".into(),
        mode: EnsureMode::Keep,
        collection_options: Default::default(),
        encode: EncodeOptions::default(),
        load: Default::default(),
        sync_scope: Vec::new(),
        changes: None,
    };
    let s = store::open(&StoreTarget::Embedded { path: dir.path().join("store") }).unwrap();
    pipeline::ingest(&run, &opts, embedder.as_ref(), s.as_ref(), &Silent).unwrap();
    std::fs::write(run.report_path(), b"{\"truncated").unwrap();
    let err = pipeline::sync(&run, s.as_ref(), "c", &["filing_id".to_string()]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Handoff, "{}", err.message);
    assert!(err.message.contains("report.json") && err.message.contains("verify"), "{}", err.message);
}
