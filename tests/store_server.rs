//! The server store (qdrant-client over gRPC) against the qdrant-edge test server: the shared store
//! contract, retries when the server is down, the clear error when it stays down, and bulk-mode
//! index settings being restored.

#[path = "support/contract.rs"]
mod contract;
#[path = "support/data.rs"]
mod data;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use contract::DIM;
use data::*;
use qdrant_client::qdrant as pb;
use qdrant_test_server::TestServer;
use vdb_core::store::server::{RetryPolicy, ServerStore, DEFAULT_HNSW_M};
use vdb_core::store::{LoadOptions, VectorStore};
use vdb_core::ErrorKind;

fn start(storage: &Path) -> TestServer {
    TestServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), storage).unwrap()
}

fn connect(url: &str) -> ServerStore {
    ServerStore::connect(url, None).unwrap().with_retry(RetryPolicy { max_retries: 2, base_ms: 20 })
}

/// A free port: bind port 0, note it, let it go.
fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// HNSW `m` as the server reports it, read with a plain qdrant-client.
fn hnsw_m(url: &str, collection: &str) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = qdrant_client::Qdrant::from_url(url).skip_compatibility_check().build().unwrap();
        let info = client.collection_info(collection).await.unwrap().result.unwrap();
        info.config.unwrap().hnsw_config.unwrap().m.unwrap()
    })
}

fn payload_index_fields(url: &str, collection: &str) -> Vec<String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = qdrant_client::Qdrant::from_url(url).skip_compatibility_check().build().unwrap();
        let info = client.collection_info(collection).await.unwrap().result.unwrap();
        let mut f: Vec<String> = info.payload_schema.keys().cloned().collect();
        f.sort();
        f
    })
}

#[test]
fn ensure_mismatch_and_recreate() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let s = connect(&server.url());
    assert_eq!(s.describe(), format!("qdrant server {}", server.url()));
    contract::ensure_and_mismatch(&s, "c1");
    let err = s.ensure_collection(&spec("c1", DIM), false).unwrap_err();
    assert!(err.to_string().contains(&server.url()), "{err}");
    contract::aliases(&s, "al");
    // Payload indexes were created with the collection.
    assert_eq!(payload_index_fields(&server.url(), "c1"), ["company", "date", "year"]);
}

#[test]
fn hybrid_search() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    contract::hybrid(&connect(&server.url()), "h");
}

#[test]
fn load_search_filter_retrieve() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let s = connect(&server.url());
    contract::load_count_idempotent(&s, "c");
    contract::search_nearest(&s, "c");
    contract::filters(&s, "c");
    contract::retrieve(&s, "c");
}

#[test]
fn errors() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    contract::errors(&connect(&server.url()), "c");
}

#[test]
fn paged_scroll() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    contract::paged_scroll(&connect(&server.url()), "paged");
}

#[test]
fn bulk_mode_roundtrip() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    contract::bulk_mode(&connect(&server.url()), "bulk", 1_000, 32);
    assert_eq!(hnsw_m(&server.url(), "bulk"), DEFAULT_HNSW_M);
}

#[test]
fn server_down_at_first_then_up_gets_every_point() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let url = format!("http://{addr}");
    // Create the collection, then take the server down.
    let server = TestServer::start(addr, tmp.path()).unwrap();
    connect(&url).ensure_collection(&spec("c", DIM), false).unwrap();
    server.stop();

    let opts = LoadOptions { batch_size: 50, parallel: 2, max_retries: 8, retry_base_ms: 100 };
    let loader_url = url.clone();
    let start = Instant::now();
    let loader = std::thread::spawn(move || {
        let s = ServerStore::connect(&loader_url, None).unwrap();
        s.upsert("c", points(0..500, DIM), &opts)
    });
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!loader.is_finished(), "upsert returned while the server was down");
    let server = TestServer::start(addr, tmp.path()).unwrap();
    let written = loader.join().unwrap().expect("upsert should succeed once the server is up");
    assert_eq!(written, 500);
    assert!(start.elapsed() >= Duration::from_millis(1200));
    let s = connect(&server.url());
    assert_eq!(s.count("c").unwrap(), 500);
    assert_eq!(s.retrieve("c", &[id(499)]).unwrap()[0].payload, payload(499));
}

#[test]
fn server_that_stays_down_gives_store_unavailable() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let s = connect(&url);
    let opts = LoadOptions { batch_size: 10, parallel: 2, max_retries: 3, retry_base_ms: 20 };
    let start = Instant::now();
    let err = s.upsert("sec_sentences", points(0..30, DIM), &opts).unwrap_err();
    assert_eq!(err.kind, ErrorKind::StoreUnavailable, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&url), "{msg}");
    assert!(msg.contains("sec_sentences"), "{msg}");
    assert!(msg.contains("4 attempts"), "{msg}");
    assert!(start.elapsed() < Duration::from_secs(10));
    // Every other call fails the same way, with the store's retry policy.
    let err = s.count("sec_sentences").unwrap_err();
    assert_eq!(err.kind, ErrorKind::StoreUnavailable);
    let cause = std::error::Error::source(&err).expect("the client's error is kept as the cause");
    assert!(cause.downcast_ref::<qdrant_client::QdrantError>().is_some(), "{cause:?}");
    let err = s.ensure_collection(&spec("sec_sentences", DIM), false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::StoreUnavailable);
    assert!(err.to_string().contains(&url));
}

#[test]
fn bulk_mode_settings_are_restored_after_a_failed_load() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let url = format!("http://{addr}");
    let server = TestServer::start(addr, tmp.path()).unwrap();
    let s = connect(&url);
    s.ensure_collection(&spec("c", DIM), false).unwrap();
    assert_eq!(hnsw_m(&url, "c"), DEFAULT_HNSW_M);

    // 1. The load fails (a point of the wrong size), then the clean-up path restores indexing.
    s.set_bulk_mode("c", true).unwrap();
    assert_eq!(hnsw_m(&url, "c"), 0);
    s.set_bulk_mode("c", true).unwrap(); // idempotent: the original is still remembered
    let mut bad = points(0..10, DIM);
    bad[3].vector.push(0.0);
    assert!(s.upsert("c", bad, &contract::opts()).is_err());
    s.set_bulk_mode("c", false).unwrap();
    assert_eq!(hnsw_m(&url, "c"), DEFAULT_HNSW_M);

    // 2. The server goes away mid-load: StoreUnavailable; once it is back, restore still works.
    s.set_bulk_mode("c", true).unwrap();
    server.stop();
    let err = s.upsert("c", points(0..10, DIM), &contract::opts()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::StoreUnavailable);
    assert!(s.set_bulk_mode("c", false).is_err(), "restore cannot work while the server is down");
    let server = TestServer::start(addr, tmp.path()).unwrap();
    assert_eq!(hnsw_m(&url, "c"), 0, "m=0 survives the restart");
    s.set_bulk_mode("c", false).unwrap();
    assert_eq!(hnsw_m(&url, "c"), DEFAULT_HNSW_M);

    // 3. A non-default m is remembered and restored as is.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = qdrant_client::Qdrant::from_url(&url).skip_compatibility_check().build().unwrap();
        client
            .update_collection(pb::UpdateCollection {
                collection_name: "c".into(),
                hnsw_config: Some(pb::HnswConfigDiff { m: Some(32), ..Default::default() }),
                ..Default::default()
            })
            .await
            .unwrap();
    });
    s.set_bulk_mode("c", true).unwrap();
    assert_eq!(hnsw_m(&url, "c"), 0);
    s.set_bulk_mode("c", false).unwrap();
    assert_eq!(hnsw_m(&url, "c"), 32);

    // 4. The process that switched bulk mode on died: another process (a new store, here after a
    //    server restart too) restores the original m from the collection's metadata.
    connect(&url).set_bulk_mode("c", true).unwrap();
    assert_eq!(hnsw_m(&url, "c"), 0);
    drop(server);
    let server = TestServer::start(addr, tmp.path()).unwrap();
    connect(&url).set_bulk_mode("c", true).unwrap(); // a retried task: still remembers 32
    connect(&url).set_bulk_mode("c", false).unwrap();
    assert_eq!(hnsw_m(&url, "c"), 32);
    // The record is cleared by the restore: bulk mode again starts from the current m.
    connect(&url).set_bulk_mode("c", false).unwrap();
    assert_eq!(hnsw_m(&url, "c"), 32);
    drop(server);
}

#[test]
fn parallel_requests_and_many_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let s = connect(&server.url());
    s.ensure_collection(&spec("c", DIM), false).unwrap();
    let opts = LoadOptions { batch_size: 7, parallel: 8, max_retries: 2, retry_base_ms: 20 };
    assert_eq!(s.upsert("c", points(0..1000, DIM), &opts).unwrap(), 1000);
    assert_eq!(s.count("c").unwrap(), 1000);
}

/// The runnable test server (crates/qdrant-test-server) the Python end-to-end tests launch.
/// `cargo build --workspace` (in `make test`) builds it beside the test binaries' directory;
/// without it this test fails and says how to build it.
#[test]
fn example_server_binary() {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("qdrant_test_server");
    assert!(bin.exists(), "{} is not built: run `cargo build --workspace` (`make test` does)", bin.display());
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(&bin)
        .args(["--port", "0", "--storage"])
        .arg(tmp.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on 127.0.0.1:").expect(&line);
    let url = format!("http://127.0.0.1:{addr}");
    let s = connect(&url);
    s.ensure_collection(&spec("c", DIM), false).unwrap();
    s.upsert("c", points(0..20, DIM), &contract::opts()).unwrap();
    assert_eq!(s.count("c").unwrap(), 20);
    // SIGTERM: clean exit, data flushed.
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(rest.is_empty(), "exactly one line on stdout, got more: {rest:?}");
    let server = TestServer::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), tmp.path()).unwrap();
    assert_eq!(connect(&server.url()).count("c").unwrap(), 20);
}

/// A server that requires an API key: the right key works; a wrong or missing key is a clear
/// authentication error naming the server, never the key, and is not retried.
#[test]
fn api_key_is_required_and_never_printed() {
    let tmp = tempfile::tempdir().unwrap();
    let key = "s3cr3t-key-value";
    let server =
        TestServer::start_with_key(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), tmp.path(), Some(key.into())).unwrap();
    let good = ServerStore::connect(&server.url(), Some(key)).unwrap();
    good.ensure_collection(&spec("k", DIM), false).unwrap();
    assert_eq!(good.count("k").unwrap(), 0);
    for wrong in [Some("not-the-key"), None] {
        let store = ServerStore::connect(&server.url(), wrong).unwrap();
        let started = std::time::Instant::now();
        let err = store.count("k").unwrap_err();
        assert_eq!(err.kind, ErrorKind::StoreAuth, "a refused key is its own kind (a retry repeats it): {err}");
        assert!(err.message.contains("API key") && err.message.contains(&server.url()), "{}", err.message);
        assert!(!err.message.contains(key) && !err.message.contains("not-the-key"), "{}", err.message);
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "an authentication error is not retried");
    }
    server.stop();
}

fn collection_info(url: &str, collection: &str) -> pb::CollectionInfo {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let client = qdrant_client::Qdrant::from_url(url).skip_compatibility_check().build().unwrap();
        client.collection_info(collection).await.unwrap().result.unwrap()
    })
}

/// Cluster and memory settings reach Qdrant's create request (read back from the server), and the
/// collection works with them.
#[test]
#[allow(deprecated)] // on_disk / on_disk_payload: the fields every 1.x server reports
fn collection_options_are_created_as_asked() {
    use vdb_core::store::{CollectionOptions, Quantization};
    let tmp = tempfile::tempdir().unwrap();
    let server = start(tmp.path());
    let s = connect(&server.url());
    let mut sp = spec("big", DIM);
    sp.options = CollectionOptions {
        shard_number: Some(3),
        replication_factor: Some(2),
        write_consistency_factor: Some(2),
        on_disk: true,
        on_disk_payload: true,
        quantization: Some(Quantization::Int8),
        ..Default::default()
    };
    s.ensure_collection(&sp, false).unwrap();
    let info = collection_info(&server.url(), "big");
    let cfg = info.config.unwrap();
    let params = cfg.params.unwrap();
    assert_eq!(
        (params.shard_number, params.replication_factor, params.write_consistency_factor, params.on_disk_payload),
        (3, Some(2), Some(2), true)
    );
    let Some(pb::vectors_config::Config::Params(v)) = params.vectors_config.unwrap().config else { panic!() };
    assert_eq!(v.on_disk, Some(true));
    // The BM25 vector (default), with Qdrant's IDF modifier.
    let sparse = params.sparse_vectors_config.unwrap().map;
    assert_eq!(sparse["bm25"].modifier, Some(pb::Modifier::Idf as i32));
    assert!(matches!(
        cfg.quantization_config.and_then(|q| q.quantization),
        Some(pb::quantization_config::Quantization::Scalar(q)) if q.r#type == pb::QuantizationType::Int8 as i32
    ));
    // Upserts (at least one request per shard in flight) and search work on it.
    s.upsert("big", points(0..300, DIM), &contract::opts()).unwrap();
    assert_eq!(s.count("big").unwrap(), 300);
    assert_eq!(s.search("big", &vector(7, DIM), 1, &[]).unwrap()[0].id, id(7).to_string());
    // Zero is refused before any request.
    sp.name = "zero".into();
    sp.options.shard_number = Some(0);
    assert_eq!(s.ensure_collection(&sp, false).unwrap_err().kind, ErrorKind::InvalidConfig);
    server.stop();
}

/// The same store contract against a real Qdrant server a developer points it at:
/// `VDB_TEST_QDRANT_URL=http://localhost:6334 [VDB_TEST_QDRANT_API_KEY=...] cargo test --test
/// store_server real_qdrant -- --ignored`. Uses collections named `vdb_contract_*` (recreated).
#[test]
#[ignore = "opt-in: needs VDB_TEST_QDRANT_URL, a real Qdrant server"]
fn real_qdrant_contract() {
    let url = std::env::var("VDB_TEST_QDRANT_URL")
        .unwrap_or_else(|_| panic!("set VDB_TEST_QDRANT_URL to a real Qdrant server's gRPC URL (http://host:6334)"));
    let key = std::env::var("VDB_TEST_QDRANT_API_KEY").ok();
    let s = ServerStore::connect(&url, key.as_deref()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut client = qdrant_client::Qdrant::from_url(&url).skip_compatibility_check();
        if let Some(k) = &key {
            client = client.api_key(k.clone());
        }
        let client = client.build().unwrap();
        for name in [
            "vdb_contract_c1",
            "vdb_contract_c",
            "vdb_contract_bulk",
            "vdb_contract_al_a",
            "vdb_contract_al_b",
            "vdb_contract_h",
            "vdb_contract_h_dense",
        ] {
            if client.collection_exists(name).await.unwrap() {
                client.delete_collection(name).await.unwrap();
            }
        }
    });
    contract::ensure_and_mismatch(&s, "vdb_contract_c1");
    contract::load_count_idempotent(&s, "vdb_contract_c");
    contract::search_nearest(&s, "vdb_contract_c");
    contract::filters(&s, "vdb_contract_c");
    contract::retrieve(&s, "vdb_contract_c");
    contract::bulk_mode(&s, "vdb_contract_bulk", 1_000, 32);
    contract::aliases(&s, "vdb_contract_al");
    contract::hybrid(&s, "vdb_contract_h");
}
