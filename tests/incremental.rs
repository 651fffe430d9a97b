//! Incremental ingestion on both stores, with the real model and the real Qdrant engine (embedded,
//! and behind the gRPC test server): each distinct text is embedded once, ever (duplicate rows of a
//! run share one computed vector; a text the collection already holds is taken from it), and a
//! sync deletes exactly what a filing no longer has; a blue/green rebuild switches the name only
//! after verify, keeps the previous collection, and leaves the name alone when it fails.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use uuid::Uuid;
use vdb_core::embed::{self, Embedder, EncodeOptions};
use vdb_core::handoff::RunDir;
use vdb_core::pipeline::{self, EnsureMode, IngestOptions, PlanOptions};
use vdb_core::progress::Silent;
use vdb_core::store::{self, CollectionSpec, Distance, StoreTarget, VectorStore, TEXT_KEY};
use vdb_core::ErrorKind;

const COLLECTION: &str = "filings";

/// A parquet of (filing_id, sentence_index, sentence) rows.
fn write_filing(path: &Path, filing: &str, sentences: &[String]) {
    let rows: Vec<(&str, i32, String)> =
        sentences.iter().enumerate().map(|(i, t)| (filing, i as i32, t.clone())).collect();
    write_rows(path, &rows);
}

fn write_rows(path: &Path, rows: &[(&str, i32, String)]) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("filing_id", DataType::Utf8, false),
        Field::new("sentence_index", DataType::Int32, false),
        Field::new("sentence", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(Int32Array::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn options(input: &Path, reuse: bool) -> IngestOptions {
    IngestOptions {
        plan: PlanOptions {
            input: input.to_path_buf(),
            mapping: Default::default(),
            shard_rows: 40,
            strict: false,
            reuse,
        },
        collection: COLLECTION.into(),
        mode: EnsureMode::Keep,
        collection_options: Default::default(),
        encode: EncodeOptions::default(),
        load: Default::default(),
        sync_scope: Vec::new(),
        changes: None,
    }
}

fn sentence(i: usize) -> String {
    format!(
        "Risk factor {i}: changes in {} could reduce our margins in fiscal {}.",
        ["tariffs", "rates", "demand"][i % 3],
        2015 + i % 7
    )
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    dot / (a.iter().map(|x| x * x).sum::<f32>().sqrt() * b.iter().map(|x| x * x).sum::<f32>().sqrt())
}

/// Every point's id -> (text, vector), read back from the store.
fn points(store: &dyn VectorStore, ids: &[Uuid]) -> HashMap<Uuid, (String, Vec<f32>)> {
    let texts: HashMap<Uuid, String> = store
        .retrieve(COLLECTION, ids)
        .unwrap()
        .into_iter()
        .map(|h| (Uuid::parse_str(&h.id).unwrap(), h.payload["text"].as_str().unwrap().to_string()))
        .collect();
    let mut vectors = store.vectors(COLLECTION, ids).unwrap();
    texts.into_iter().map(|(id, t)| (id, (t, vectors.remove(&id).unwrap()))).collect()
}

fn ids_of(filing: &str, n: usize) -> Vec<Uuid> {
    (0..n).map(|i| vdb_core::handoff::ids::id_from_values(&[filing.to_string(), i.to_string()])).collect()
}

/// The whole scenario on one store: duplicates within a run, a second "yearly" run, the wrong-model guard.
fn scenario(target: &StoreTarget, work: &Path, embedder: &dyn Embedder) {
    // Year 1: 150 rows, 60 distinct texts (each repeated, across shards of 40 rows).
    let year1: Vec<String> = (0..150).map(|i| sentence((i * 7) % 60)).collect();
    let in1 = work.join("year1.parquet");
    write_filing(&in1, "f1", &year1);
    let s = store::open(target).unwrap();
    let r = pipeline::ingest(&RunDir::at(work.join("run1")), &options(&in1, true), embedder, s.as_ref(), &Silent)
        .unwrap()
        .report;
    assert_eq!(r.rows_valid, 150);
    assert_eq!(r.distinct_texts, 60);
    assert_eq!(r.texts_embedded, 60, "each distinct text computed once");
    assert_eq!(r.vectors_reused, 90);
    assert_eq!((r.points_verified, r.new_points), (150, 150));
    assert!(r.sample_search_ok);
    // Every duplicate row's vector is its twin's, bit for bit, and the twins are separate points.
    let p1 = points(s.as_ref(), &ids_of("f1", 150));
    assert_eq!(p1.len(), 150);
    let mut by_text: HashMap<&str, &Vec<f32>> = HashMap::new();
    for (text, v) in p1.values() {
        let twin = by_text.entry(text.as_str()).or_insert(v);
        assert_eq!(*twin, v, "rows with the text {text:?} have different vectors");
    }
    assert_eq!(by_text.len(), 60);
    // A search finds the rows of both twins (same vector, score ~1).
    let (text0, v0) = &p1[&ids_of("f1", 1)[0]];
    let twins = year1.iter().filter(|t| *t == text0).count();
    let hits = s.search(COLLECTION, v0, twins + 2, &[]).unwrap();
    assert_eq!(hits.iter().filter(|h| h.payload["text"].as_str() == Some(text0.as_str())).count(), twins);

    // Year 2: repeats 45 of year 1's texts and adds 30 new ones (some repeated).
    let year2: Vec<String> =
        (0..100).map(|i| if i < 60 { sentence((i * 3) % 45) } else { sentence(1000 + (i % 30)) }).collect();
    let in2 = work.join("year2.parquet");
    write_filing(&in2, "f2", &year2);
    let r2 = pipeline::ingest(&RunDir::at(work.join("run2")), &options(&in2, true), embedder, s.as_ref(), &Silent)
        .unwrap()
        .report;
    let known: HashSet<&String> = year1.iter().collect();
    let new_texts: HashSet<&String> = year2.iter().filter(|t| !known.contains(t)).collect();
    assert_eq!(new_texts.len(), 30);
    assert_eq!(r2.texts_embedded, 30, "only texts the collection did not hold are computed");
    assert_eq!(r2.vectors_reused, 70);
    assert_eq!(r2.collection_count, 250);
    // Reused vectors equal a fresh embedding of their text.
    let p2 = points(s.as_ref(), &ids_of("f2", 100));
    let sample: Vec<&String> = year2.iter().take(5).collect();
    let fresh = embedder
        .embed(&sample.iter().map(|t| t.as_str()).collect::<Vec<_>>(), &EncodeOptions::default(), None)
        .unwrap();
    for (k, text) in sample.iter().enumerate() {
        let (_, v) = p2.values().find(|(t, _)| t == *text).unwrap();
        let c = cosine(v, &fresh[k * 384..(k + 1) * 384]);
        assert!(c >= 0.999_999_9, "reused vector of {text:?}: cosine {c} to a fresh embedding");
    }

    // Reuse off: every row is computed (the comparison baseline), results identical.
    let r3 = pipeline::ingest(&RunDir::at(work.join("run3")), &options(&in2, false), embedder, s.as_ref(), &Silent)
        .unwrap()
        .report;
    assert_eq!(r3.texts_embedded, 100);
    assert_eq!(r3.unchanged_points, 100, "same ids, same texts");

    // Wrong-model guard: a collection recorded for another model refuses this model's run.
    let spec = CollectionSpec {
        name: "other_model".into(),
        dim: 384,
        distance: Distance::Cosine,
        payload_indexes: vec![(TEXT_KEY.into(), store::IndexKind::Keyword)],
        model: Some("some-other-model@0123456789ab".into()),
        options: Default::default(),
    };
    s.ensure_collection(&spec, false).unwrap();
    let mut o = options(&in1, true);
    o.collection = "other_model".into();
    let err = pipeline::ingest(&RunDir::at(work.join("run4")), &o, embedder, s.as_ref(), &Silent).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CollectionMismatch, "{err}");
    assert!(err.message.contains("some-other-model"), "{}", err.message);
    assert_eq!(s.count("other_model").unwrap(), 0, "nothing written");
    // ... and ensure_collection refuses it too (a run whose embed step found nothing to reuse).
    let err = pipeline::ensure_collection(
        &RunDir::at(work.join("run1")),
        s.as_ref(),
        "other_model",
        EnsureMode::Keep,
        &Default::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::CollectionMismatch, "{err}");
    // Recreate replaces it.
    o.mode = EnsureMode::Recreate;
    let r5 = pipeline::ingest(&RunDir::at(work.join("run5")), &o, embedder, s.as_ref(), &Silent).unwrap().report;
    assert_eq!((r5.collection_count, r5.texts_embedded), (150, 60));
}

#[test]
fn embedded_store_embeds_each_distinct_text_once() {
    let dir = tempfile::tempdir().unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    let target = StoreTarget::Embedded { path: dir.path().join("store") };
    scenario(&target, dir.path(), embedder.as_ref());
}

#[test]
fn server_store_embeds_each_distinct_text_once() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        qdrant_test_server::TestServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &dir.path().join("srv"))
            .unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    let target = StoreTarget::Server { url: server.url(), api_key: None };
    scenario(&target, dir.path(), embedder.as_ref());
    server.stop();
}

/// Filing A loses sentences 3, 8, 9 and gains 10, 11; filing B is not in the second input.
fn sync_scenario(target: &StoreTarget, work: &Path, embedder: &dyn Embedder) {
    let s = store::open(target).unwrap();
    let mut first: Vec<(&str, i32, String)> = (0..10).map(|i| ("A", i, sentence(i as usize))).collect();
    first.extend((0..5).map(|i| ("B", i, sentence(100 + i as usize))));
    let in1 = work.join("sync1.parquet");
    write_rows(&in1, &first);
    let mut o = options(&in1, true);
    o.collection = "sync".into();
    o.sync_scope = vec!["filing_id".into()];
    let r = pipeline::ingest(&RunDir::at(work.join("sync-run1")), &o, embedder, s.as_ref(), &Silent).unwrap().report;
    assert_eq!((r.collection_count, r.deleted_points), (15, 0));

    let second: Vec<(&str, i32, String)> =
        [0, 1, 2, 4, 5, 6, 7, 10, 11].into_iter().map(|i| ("A", i, sentence(i as usize))).collect();
    let in2 = work.join("sync2.parquet");
    write_rows(&in2, &second);
    o.plan.input = in2.clone();
    // A run that stops before verify deletes nothing, and the sync step refuses to run for it.
    let stopped = RunDir::at(work.join("sync-stopped"));
    let planned = pipeline::plan(&stopped, &o.plan, &Silent).unwrap();
    for &i in &planned.shards {
        pipeline::embed_shard(&stopped, i, embedder, &o.encode, None, &Silent).unwrap();
    }
    pipeline::ensure_collection(&stopped, s.as_ref(), "sync", EnsureMode::Keep, &Default::default()).unwrap();
    for &i in &planned.shards {
        pipeline::load_shard(&stopped, i, s.as_ref(), "sync", &o.load, &Silent).unwrap();
    }
    let err = pipeline::sync(&stopped, s.as_ref(), "sync", &o.sync_scope).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Handoff, "{err}");
    assert_eq!(s.count("sync").unwrap(), 17, "15 + A's two new sentences, nothing deleted");

    let r = pipeline::ingest(&RunDir::at(work.join("sync-run2")), &o, embedder, s.as_ref(), &Silent).unwrap().report;
    assert_eq!(r.deleted_points, 3, "A's sentences 3, 8 and 9");
    assert_eq!(r.collection_count, 14);
    let a_ids = |idx: &[i32]| -> Vec<Uuid> {
        idx.iter().map(|i| vdb_core::handoff::ids::id_from_values(&["A".to_string(), i.to_string()])).collect()
    };
    assert!(s.retrieve("sync", &a_ids(&[3, 8, 9])).unwrap().is_empty());
    assert_eq!(s.retrieve("sync", &a_ids(&[0, 1, 2, 4, 5, 6, 7, 10, 11])).unwrap().len(), 9);
    assert_eq!(s.retrieve("sync", &ids_of("B", 5)).unwrap().len(), 5, "filing B untouched");
    // A scope column that is not in the payload is refused before anything happens.
    let err = pipeline::sync(&RunDir::at(work.join("sync-run2")), s.as_ref(), "sync", &["nope".into()]).unwrap_err();
    assert_eq!((err.kind, err.column.as_deref()), (ErrorKind::InvalidConfig, Some("nope")));
}

#[test]
fn embedded_store_sync_deletes_exactly_what_a_filing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    sync_scenario(&StoreTarget::Embedded { path: dir.path().join("store") }, dir.path(), embedder.as_ref());
}

#[test]
fn server_store_sync_deletes_exactly_what_a_filing_lost() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        qdrant_test_server::TestServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &dir.path().join("srv"))
            .unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    sync_scenario(&StoreTarget::Server { url: server.url(), api_key: None }, dir.path(), embedder.as_ref());
    server.stop();
}

/// The collection `name` answers from (through its alias), by its points' filing ids.
fn filings_behind(s: &dyn VectorStore, name: &str) -> HashSet<String> {
    s.search(name, &[0.05; 384], 1000, &[])
        .unwrap()
        .into_iter()
        .map(|h| h.payload["filing_id"].as_str().unwrap().to_string())
        .collect()
}

fn generations(s: &dyn VectorStore, name: &str) -> Vec<String> {
    s.collections().unwrap().into_iter().filter(|c| pipeline::rebuild::is_generation_of(c, name)).collect()
}

/// Blue/green: rebuild 1 makes the name an alias; rebuild 2, step by step, is invisible to searches
/// until its switch; rebuild 3 deletes generation 1 and keeps 2; a rebuild whose verify fails
/// leaves the name alone; the first rebuild of a plain collection replaces it.
fn rebuild_scenario(target: &StoreTarget, work: &Path, embedder: &dyn Embedder) {
    let s = store::open(target).unwrap();
    let input = |name: &str, filing: &str, n: usize, offset: usize| {
        let p = work.join(format!("{name}.parquet"));
        write_filing(&p, filing, &(0..n).map(|i| sentence(i + offset)).collect::<Vec<_>>());
        p
    };
    let mut o = options(&input("v1", "v1", 30, 0), true);
    o.collection = "rb".into();
    o.mode = EnsureMode::Rebuild;
    let r1 = pipeline::ingest(&RunDir::at(work.join("rb1")), &o, embedder, s.as_ref(), &Silent).unwrap().report;
    let gen1 = r1.built_collection.clone().expect("a rebuild names the collection it built");
    assert!(pipeline::rebuild::is_generation_of(&gen1, "rb"), "{gen1}");
    assert!(r1.switched && r1.previous_collection.is_none());
    assert_eq!((r1.collection.as_str(), r1.collection_count), ("rb", 30));
    assert_eq!(s.aliases().unwrap(), vec![("rb".to_string(), gen1.clone())]);
    assert_eq!(filings_behind(s.as_ref(), "rb"), HashSet::from(["v1".to_string()]));

    // Rebuild 2, step by step: searches of "rb" answer from generation 1 until the switch.
    let v1_only = HashSet::from(["v1".to_string()]);
    o.plan.input = input("v2", "v2", 40, 20);
    let run2 = RunDir::at(work.join("rb2"));
    let planned = pipeline::plan(&run2, &o.plan, &Silent).unwrap();
    let source = pipeline::VectorSource { store: s.as_ref(), collection: "rb", replaces: true };
    let mut embedded = 0;
    for &i in &planned.shards {
        embedded += pipeline::embed_shard(&run2, i, embedder, &o.encode, Some(source), &Silent).unwrap().texts_embedded;
    }
    assert_eq!(embedded, 30, "the 10 texts generation 1 has are taken from it");
    let ensured =
        pipeline::ensure_collection(&run2, s.as_ref(), "rb", EnsureMode::Rebuild, &Default::default()).unwrap();
    let gen2 = ensured.collection.clone();
    assert!(gen2 != gen1 && pipeline::rebuild::is_generation_of(&gen2, "rb"), "{gen2}");
    assert_eq!(filings_behind(s.as_ref(), "rb"), v1_only);
    for &i in &planned.shards {
        pipeline::load_shard(&run2, i, s.as_ref(), "rb", &o.load, &Silent).unwrap();
        assert_eq!(s.count("rb").unwrap(), 30, "searches see the old collection while the new one loads");
    }
    assert_eq!(s.count(&gen2).unwrap(), 40);
    pipeline::restore_indexing(Some(&run2), s.as_ref(), "rb").unwrap();
    let err = pipeline::switch(&run2, s.as_ref(), "rb").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Handoff, "no switch before verify: {err}");
    let report = pipeline::verify(&run2, s.as_ref(), "rb").unwrap();
    assert_eq!((report.points_verified, report.switched), (40, false));
    assert_eq!(filings_behind(s.as_ref(), "rb"), v1_only);
    let sw = pipeline::switch(&run2, s.as_ref(), "rb").unwrap();
    assert_eq!((sw.collection.as_deref(), sw.previous.as_deref()), (Some(gen2.as_str()), Some(gen1.as_str())));
    assert_eq!(filings_behind(s.as_ref(), "rb"), HashSet::from(["v2".to_string()]));
    assert_eq!(s.count(&gen1).unwrap(), 30, "the previous collection is kept");
    let written: pipeline::Report = serde_json::from_slice(&std::fs::read(run2.report_path()).unwrap()).unwrap();
    assert_eq!((written.switched, written.previous_collection.as_deref()), (true, Some(gen1.as_str())));
    // Switching again changes nothing.
    let again = pipeline::switch(&run2, s.as_ref(), "rb").unwrap();
    assert_eq!((again.previous.as_deref(), again.deleted.len()), (Some(gen1.as_str()), 0));
    assert_eq!(s.count("rb").unwrap(), 40);

    // Rebuild 3: generation 1 goes, generation 2 (now the previous one) stays.
    o.plan.input = input("v3", "v3", 25, 50);
    let r3 = pipeline::ingest(&RunDir::at(work.join("rb3")), &o, embedder, s.as_ref(), &Silent).unwrap().report;
    let gen3 = r3.built_collection.clone().unwrap();
    assert_eq!(r3.previous_collection.as_deref(), Some(gen2.as_str()));
    let mut expected = vec![gen2.clone(), gen3.clone()];
    expected.sort();
    assert_eq!(generations(s.as_ref(), "rb"), expected);
    assert_eq!(s.count("rb").unwrap(), 25);

    // A rebuild whose verify fails (a point went missing) never switches.
    o.plan.input = input("v4", "v4", 35, 70);
    let run4 = RunDir::at(work.join("rb4"));
    let planned = pipeline::plan(&run4, &o.plan, &Silent).unwrap();
    for &i in &planned.shards {
        pipeline::embed_shard(&run4, i, embedder, &o.encode, Some(source), &Silent).unwrap();
    }
    let gen4 = pipeline::ensure_collection(&run4, s.as_ref(), "rb", EnsureMode::Rebuild, &Default::default())
        .unwrap()
        .collection;
    for &i in &planned.shards {
        pipeline::load_shard(&run4, i, s.as_ref(), "rb", &o.load, &Silent).unwrap();
    }
    pipeline::restore_indexing(Some(&run4), s.as_ref(), "rb").unwrap();
    s.delete(&gen4, &ids_of("v4", 1)).unwrap();
    assert_eq!(pipeline::verify(&run4, s.as_ref(), "rb").unwrap_err().kind, ErrorKind::Store);
    assert!(pipeline::switch(&run4, s.as_ref(), "rb").is_err());
    assert_eq!(filings_behind(s.as_ref(), "rb"), HashSet::from(["v3".to_string()]));
    assert_eq!(s.aliases().unwrap(), vec![("rb".to_string(), gen3.clone())]);

    // A plain ingest into the name adds to the collection it names (no collection "rb" appears).
    o.mode = EnsureMode::Keep;
    o.plan.input = input("extra", "extra", 5, 200);
    let r = pipeline::ingest(&RunDir::at(work.join("rb-extra")), &o, embedder, s.as_ref(), &Silent).unwrap().report;
    assert_eq!((r.collection_count, s.count(&gen3).unwrap()), (30, 30));
    assert!(!s.collections().unwrap().contains(&"rb".to_string()));
    // A rebuild run directory refuses a plain ensure, and the flags exclude each other.
    let err = pipeline::ensure_collection(&run4, s.as_ref(), "rb", EnsureMode::Keep, &Default::default()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::RunMismatch, "{err}");
    assert_eq!(EnsureMode::from_flags(true, true).unwrap_err().kind, ErrorKind::InvalidConfig);
    o.mode = EnsureMode::Rebuild;
    o.sync_scope = vec!["filing_id".into()];
    let err = pipeline::ingest(&RunDir::at(work.join("rb-sync")), &o, embedder, s.as_ref(), &Silent).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig, "{err}");
    o.sync_scope.clear();

    // The first rebuild of a collection made by a plain ingest replaces it with an alias.
    o.collection = "plain".into();
    o.mode = EnsureMode::Keep;
    o.plan.input = input("p1", "p1", 10, 0);
    pipeline::ingest(&RunDir::at(work.join("plain1")), &o, embedder, s.as_ref(), &Silent).unwrap();
    assert!(s.collections().unwrap().contains(&"plain".to_string()));
    o.mode = EnsureMode::Rebuild;
    o.plan.input = input("p2", "p2", 12, 5);
    let r = pipeline::ingest(&RunDir::at(work.join("plain2")), &o, embedder, s.as_ref(), &Silent).unwrap().report;
    assert_eq!((r.texts_embedded, r.collection_count), (7, 12), "5 texts reused from the plain collection");
    assert!(!s.collections().unwrap().contains(&"plain".to_string()));
    assert_eq!(filings_behind(s.as_ref(), "plain"), HashSet::from(["p2".to_string()]));
}

#[test]
fn embedded_store_rebuild_switches_only_after_verify() {
    let dir = tempfile::tempdir().unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    rebuild_scenario(&StoreTarget::Embedded { path: dir.path().join("store") }, dir.path(), embedder.as_ref());
}

#[test]
fn server_store_rebuild_switches_only_after_verify() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        qdrant_test_server::TestServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &dir.path().join("srv"))
            .unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    rebuild_scenario(&StoreTarget::Server { url: server.url(), api_key: None }, dir.path(), embedder.as_ref());
    server.stop();
}

/// Two rebuilds of one name at once (a DAG rebuild beside a CLI one, or `max_active_runs` > 1),
/// interleaved step by step: the switch of one never deletes the other's collection while it
/// loads; it deletes only generations older than the previous one, and never one that a run
/// directory still building it names (that run may resume). Once that directory is gone, the next
/// rebuild deletes it.
fn concurrent_rebuilds_scenario(target: &StoreTarget, work: &Path, embedder: &dyn Embedder) {
    let s = store::open(target).unwrap();
    let input = |name: &str, n: usize, offset: usize| {
        let p = work.join(format!("{name}.parquet"));
        write_filing(&p, name, &(0..n).map(|i| sentence(i + offset)).collect::<Vec<_>>());
        p
    };
    let mut o = options(&input("g0", 10, 0), true);
    o.collection = "cr".into();
    o.mode = EnsureMode::Rebuild;
    let full = |name: &str, o: &IngestOptions| {
        let r = pipeline::ingest(&RunDir::at(work.join(name)), o, embedder, s.as_ref(), &Silent).unwrap().report;
        r.built_collection.unwrap()
    };
    let gen0 = full("cr0", &o);

    // A: planned, embedded, its collection created, half loaded.
    o.plan.input = input("a", 20, 100);
    let run_a = RunDir::at(work.join("cr-a"));
    let planned = pipeline::plan(&run_a, &o.plan, &Silent).unwrap();
    assert!(planned.shards.len() == 1);
    pipeline::embed_shard(&run_a, 0, embedder, &o.encode, None, &Silent).unwrap();
    let gen_a = pipeline::ensure_collection(&run_a, s.as_ref(), "cr", EnsureMode::Rebuild, &Default::default())
        .unwrap()
        .collection;
    // B: a whole rebuild meanwhile, switched: A's collection is newer than B's previous one, kept.
    o.plan.input = input("b", 15, 200);
    let gen_b = full("cr-b", &o);
    assert!(generations(s.as_ref(), "cr").contains(&gen_a), "B's switch deleted A's collection while it loads");
    // A goes on, verifies and switches: the name is A's now; gen0 (older than B's) goes.
    pipeline::load_shard(&run_a, 0, s.as_ref(), "cr", &o.load, &Silent).unwrap();
    pipeline::restore_indexing(Some(&run_a), s.as_ref(), "cr").unwrap();
    assert_eq!(pipeline::verify(&run_a, s.as_ref(), "cr").unwrap().points_verified, 20);
    let sw = pipeline::switch(&run_a, s.as_ref(), "cr").unwrap();
    assert_eq!(sw.previous.as_deref(), Some(gen_b.as_str()));
    assert_eq!(sw.deleted, vec![gen0.clone()]);
    let mut expected = vec![gen_a.clone(), gen_b.clone()];
    expected.sort();
    assert_eq!(generations(s.as_ref(), "cr"), expected);
    assert_eq!(filings_behind(s.as_ref(), "cr"), HashSet::from(["a".to_string()]));

    // C stops after ensure (a failed run, kept to be resumed); D and E rebuild after it. E's
    // previous (D) is newer than C's collection, which stays while C's run directory is there.
    o.plan.input = input("c", 12, 300);
    let run_c = RunDir::at(work.join("cr-c"));
    pipeline::plan(&run_c, &o.plan, &Silent).unwrap();
    pipeline::embed_shard(&run_c, 0, embedder, &o.encode, None, &Silent).unwrap();
    let gen_c = pipeline::ensure_collection(&run_c, s.as_ref(), "cr", EnsureMode::Rebuild, &Default::default())
        .unwrap()
        .collection;
    o.plan.input = input("d", 11, 400);
    let gen_d = full("cr-d", &o);
    o.plan.input = input("e", 13, 500);
    full("cr-e", &o);
    let left = generations(s.as_ref(), "cr");
    assert!(left.contains(&gen_c), "a generation a run directory still builds is kept: {left:?}");
    assert!(!left.contains(&gen_a) && !left.contains(&gen_b), "{left:?}");
    run_c.remove().unwrap();
    o.plan.input = input("f", 14, 600);
    full("cr-f", &o);
    let left = generations(s.as_ref(), "cr");
    assert!(!left.contains(&gen_c) && !left.contains(&gen_d), "{left:?}");
    assert_eq!(s.count("cr").unwrap(), 14);
}

#[test]
fn embedded_store_concurrent_rebuilds_keep_each_others_collections() {
    let dir = tempfile::tempdir().unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    concurrent_rebuilds_scenario(
        &StoreTarget::Embedded { path: dir.path().join("store") },
        dir.path(),
        embedder.as_ref(),
    );
}

#[test]
fn server_store_concurrent_rebuilds_keep_each_others_collections() {
    let dir = tempfile::tempdir().unwrap();
    let server =
        qdrant_test_server::TestServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), &dir.path().join("srv"))
            .unwrap();
    let embedder = embed::open(None, Some(2), Default::default()).unwrap();
    concurrent_rebuilds_scenario(
        &StoreTarget::Server { url: server.url(), api_key: None },
        dir.path(),
        embedder.as_ref(),
    );
    server.stop();
}
