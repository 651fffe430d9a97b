//! Behaviour both stores must share, run against each (`store_embedded.rs`, `store_server.rs`).

#![allow(dead_code)]

use serde_json::json;
use vdb_core::store::{CollectionSpec, Condition, EnsureOutcome, LoadOptions, SearchParams, VectorStore};
use vdb_core::ErrorKind;

use super::data::*;

pub const DIM: usize = 16;
pub const N: usize = 300;

pub fn opts() -> LoadOptions {
    LoadOptions { batch_size: 64, parallel: 3, max_retries: 2, retry_base_ms: 20 }
}

/// ensure: created, existed, mismatch (clear error), recreate.
pub fn ensure_and_mismatch(store: &dyn VectorStore, name: &str) {
    assert!(!store.collection_exists(name).unwrap());
    assert_eq!(store.ensure_collection(&spec(name, DIM), false).unwrap(), EnsureOutcome::Created);
    assert!(store.collection_exists(name).unwrap());
    assert!(store.collections().unwrap().contains(&name.to_string()));
    assert_eq!(store.ensure_collection(&spec(name, DIM), false).unwrap(), EnsureOutcome::Existed);
    assert_eq!(store.upsert(name, points(0..10, DIM), &opts()).unwrap(), 10);

    let err = store.ensure_collection(&spec(name, DIM * 2), false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CollectionMismatch, "{err}");
    let msg = err.to_string();
    assert!(msg.contains(&format!("size {DIM} / cosine")), "{msg}");
    assert!(msg.contains(&format!("size {} / cosine", DIM * 2)), "{msg}");
    assert!(msg.contains(name), "{msg}");
    // The mismatch left the collection alone.
    assert_eq!(store.count(name).unwrap(), 10);

    let mut dot = spec(name, DIM);
    dot.distance = vdb_core::store::Distance::Dot;
    let err = store.ensure_collection(&dot, false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CollectionMismatch);
    assert!(err.to_string().contains("dot"), "{err}");

    assert_eq!(store.ensure_collection(&spec(name, DIM * 2), true).unwrap(), EnsureOutcome::Recreated);
    assert_eq!(store.count(name).unwrap(), 0);
    assert_eq!(store.ensure_collection(&spec(name, DIM * 2), false).unwrap(), EnsureOutcome::Existed);
    // recreate=true drops a matching collection too: "start from an empty collection". (The
    // pipeline calls ensure once per run, never from parallel tasks.)
    store.upsert(name, points(0..5, DIM * 2), &opts()).unwrap();
    assert_eq!(store.ensure_collection(&spec(name, DIM * 2), true).unwrap(), EnsureOutcome::Recreated);
    assert_eq!(store.count(name).unwrap(), 0);
}

/// Load N points, count N; load them again, still N.
pub fn load_count_idempotent(store: &dyn VectorStore, name: &str) {
    store.ensure_collection(&spec(name, DIM), false).unwrap();
    assert_eq!(store.upsert(name, points(0..N, DIM), &opts()).unwrap(), N as u64);
    assert_eq!(store.count(name).unwrap(), N as u64);
    assert_eq!(store.upsert(name, points(0..N, DIM), &opts()).unwrap(), N as u64);
    assert_eq!(store.count(name).unwrap(), N as u64);
    // A partial overlap adds only the new ones.
    store.upsert(name, points(N - 10..N + 10, DIM), &opts()).unwrap();
    assert_eq!(store.count(name).unwrap(), N as u64 + 10);
    assert_eq!(store.upsert(name, Vec::new(), &opts()).unwrap(), 0);
}

/// Search returns the exact nearest neighbour first, with its payload; scores are best-first.
/// Expects `load_count_idempotent`'s data (N + 10 points).
pub fn search_nearest(store: &dyn VectorStore, name: &str) {
    let total = N + 10;
    for k in [0usize, 7, 123, total - 1] {
        let q = vector(k, DIM);
        let hits = store.search(name, &q, 5, &[]).unwrap();
        assert_eq!(hits.len(), 5);
        assert_eq!(hits[0].id, id(k).to_string());
        assert!((hits[0].score - 1.0).abs() < 1e-4, "self-similarity {}", hits[0].score);
        assert_eq!(hits[0].payload, payload(k));
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        // The second hit is the brute-force runner-up.
        let mut best: Vec<(f32, usize)> =
            (0..total).filter(|&i| i != k).map(|i| (cosine(&q, &vector(i, DIM)), i)).collect();
        best.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert_eq!(hits[1].id, id(best[0].1).to_string());
        assert!((hits[1].score - best[0].0).abs() < 1e-4);
    }
    // A query that is not a stored vector: same order as brute force.
    let q: Vec<f32> = vector(10_000, DIM);
    let hits = store.search(name, &q, 10, &[]).unwrap();
    let mut best: Vec<(f32, usize)> = (0..total).map(|i| (cosine(&q, &vector(i, DIM)), i)).collect();
    best.sort_by(|a, b| b.0.total_cmp(&a.0));
    let expect: Vec<String> = best[..10].iter().map(|(_, i)| id(*i).to_string()).collect();
    let got: Vec<String> = hits.iter().map(|h| h.id.clone()).collect();
    assert_eq!(got, expect);
    assert!(store.search(name, &q, 0, &[]).unwrap().is_empty());
}

fn filtered_ids(store: &dyn VectorStore, name: &str, filter: &[Condition]) -> Vec<String> {
    let hits = store.search(name, &vector(1, DIM), 10_000, filter).unwrap();
    let mut ids: Vec<String> = hits.into_iter().map(|h| h.id).collect();
    ids.sort();
    ids
}

/// Equals (keyword with spaces, integer, bool) and Range filters select exactly the right points.
/// Expects `load_count_idempotent`'s data.
pub fn filters(store: &dyn VectorStore, name: &str) {
    let total = N + 10;
    let eq = |f: &str, v: serde_json::Value| Condition::Equals { field: f.into(), value: v };
    let cases: Vec<(Vec<Condition>, Vec<String>)> = vec![
        (vec![eq("company", json!("acme"))], ids_where(total, |i| i % 3 == 0)),
        // A value with a space must be an exact keyword match, not full-text.
        (vec![eq("company", json!("initech corp"))], ids_where(total, |i| i % 3 == 2)),
        (vec![eq("company", json!("initech"))], vec![]),
        (vec![eq("year", json!(2003))], ids_where(total, |i| i % 10 == 3)),
        (vec![eq("flag", json!(true))], ids_where(total, |i| i % 4 == 0)),
        (
            vec![Condition::Range { field: "year".into(), gte: Some(2002.0), lte: Some(2004.0) }],
            ids_where(total, |i| (2..=4).contains(&(i % 10))),
        ),
        (vec![Condition::Range { field: "row".into(), gte: Some(250.5), lte: None }], ids_where(total, |i| i >= 251)),
        (
            vec![
                eq("company", json!("globex")),
                Condition::Range { field: "year".into(), gte: None, lte: Some(2001.0) },
            ],
            ids_where(total, |i| i % 3 == 1 && i % 10 <= 1),
        ),
    ];
    for (filter, expect) in cases {
        assert_eq!(filtered_ids(store, name, &filter), expect, "filter {filter:?}");
    }
    // Nearest neighbour under a filter is still the point itself when it matches.
    let hits = store.search(name, &vector(9, DIM), 3, &[eq("company", json!("acme"))]).unwrap();
    assert_eq!(hits[0].id, id(9).to_string());

    let bad = store.search(name, &vector(1, DIM), 3, &[eq("year", json!(2000.5))]).unwrap_err();
    assert_eq!(bad.kind, ErrorKind::InvalidConfig);

    // Qdrant's own filter JSON, as its documentation writes it: any/except, should, must_not,
    // nested filters, a numeric range and a datetime range on a date-only payload value.
    let q = |f: serde_json::Value| vec![Condition::Qdrant { filter: f }];
    let json_cases: Vec<(Vec<Condition>, Vec<String>)> = vec![
        (
            q(json!({"must": [{"key": "company", "match": {"any": ["acme", "globex"]}}],
                     "must_not": [{"key": "year", "range": {"gte": 2005}}]})),
            ids_where(total, |i| i % 3 != 2 && i % 10 < 5),
        ),
        (
            q(json!({"must": [{"key": "date", "range": {"gte": "2003-01-01", "lt": "2006-01-01T00:00:00Z"}}]})),
            ids_where(total, |i| (3..=5).contains(&(i % 10))),
        ),
        (
            q(
                json!({"should": [{"key": "flag", "match": {"value": true}}, {"key": "year", "match": {"value": 2001}}]}),
            ),
            ids_where(total, |i| i % 4 == 0 || i % 10 == 1),
        ),
        (
            q(json!({"must": [{"must_not": [{"key": "company", "match": {"except": ["acme"]}}]}]})),
            ids_where(total, |i| i % 3 == 0),
        ),
    ];
    for (filter, expect) in json_cases {
        assert_eq!(filtered_ids(store, name, &filter), expect, "filter {filter:?}");
    }
    // Combined with the short form (ANDed).
    let both = [
        eq("company", json!("acme")),
        Condition::Qdrant { filter: json!({"must": [{"key": "year", "match": {"value": 2003}}]}) },
    ];
    assert_eq!(filtered_ids(store, name, &both), ids_where(total, |i| i % 3 == 0 && i % 10 == 3));
    for bad in [json!({"mist": []}), json!({"must": [{"key": "date", "range": {"gte": "soon"}}]})] {
        let err = store.search(name, &vector(1, DIM), 3, &q(bad.clone())).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig, "{bad}: {err}");
    }
    // Search parameters: exact search and a wide hnsw_ef find the point itself first.
    for params in [SearchParams { hnsw_ef: None, exact: true }, SearchParams { hnsw_ef: Some(512), exact: false }] {
        let hits = store.search_with(name, &vector(9, DIM), 3, &[], &params).unwrap();
        assert_eq!(hits[0].id, id(9).to_string(), "{params:?}");
    }
}

/// Retrieve by id: present ones in request order with payloads, missing ones absent.
pub fn retrieve(store: &dyn VectorStore, name: &str) {
    let missing = uuid::Uuid::new_v4();
    let hits = store.retrieve(name, &[id(5), missing, id(2)]).unwrap();
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    let (a, b) = (id(5).to_string(), id(2).to_string());
    assert_eq!(ids, [a.as_str(), b.as_str()]);
    assert_eq!(hits[0].payload, payload(5));
    assert_eq!(hits[1].payload, payload(2));
    assert_eq!(hits[0].score, 0.0);
    assert!(store.retrieve(name, &[]).unwrap().is_empty());
}

/// More points than one scroll page (the stores' `SCROLL_PAGE`, 1,024): `scroll_ids`, `scan` and
/// `find_keys` go through every page, and `find_keys` stops paging once it has every key.
pub fn paged_scroll(store: &dyn VectorStore, name: &str) {
    const PAGE: usize = 1024;
    let n = 2 * PAGE + 452;
    store.ensure_collection(&spec(name, DIM), false).unwrap();
    store.upsert(name, points(0..n, DIM), &opts()).unwrap();
    let acme = [Condition::Equals { field: "company".into(), value: json!("acme") }];

    let mut all: Vec<String> = store.scroll_ids(name, &[]).unwrap().iter().map(|u| u.to_string()).collect();
    all.sort();
    assert_eq!(all, ids_where(n, |_| true));
    let mut some: Vec<String> = store.scroll_ids(name, &acme).unwrap().iter().map(|u| u.to_string()).collect();
    some.sort();
    assert_eq!(some, ids_where(n, |i| i % 3 == 0));

    let (mut sizes, mut seen) = (Vec::new(), Vec::new());
    store
        .scan(name, &[], &["row".to_string()], true, &mut |page| {
            sizes.push(page.len());
            for p in page {
                let row = p.payload["row"].as_u64().unwrap() as usize;
                assert_eq!((p.id, p.payload.len()), (id(row), 1));
                assert_eq!(p.vector.map(|v| v.len()), Some(DIM));
                seen.push(p.id.to_string());
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(sizes, [PAGE, PAGE, n - 2 * PAGE]);
    seen.sort();
    assert_eq!(seen, all);
    // An error of the page callback ends the scan with that error.
    let mut pages = 0;
    let err = store
        .scan(name, &[], &[], false, &mut |_| {
            pages += 1;
            Err(vdb_core::VdbError::internal("stop"))
        })
        .unwrap_err();
    assert_eq!((pages, err.message.as_str()), (1, "stop"));

    // Every company is on the first page (so the paging can stop there); an absent key makes it read
    // every page. Either way each key found names a point that holds it.
    for keys in [vec!["acme", "globex", "initech corp"], vec!["acme", "globex", "initech corp", "nobody"]] {
        let keys: Vec<String> = keys.into_iter().map(String::from).collect();
        let found = store.find_keys(name, "company", &keys).unwrap();
        assert_eq!(found.len(), 3, "{found:?}");
        for (key, point) in &found {
            assert_eq!(store.retrieve(name, &[*point]).unwrap()[0].payload["company"], json!(key));
        }
    }
}

/// Wrong sizes, unknown collections and bad names are clear errors.
pub fn errors(store: &dyn VectorStore, name: &str) {
    store.ensure_collection(&spec(name, DIM), false).unwrap();
    let mut pts = points(0..3, DIM);
    pts[1].vector.pop();
    let err = store.upsert(name, pts, &opts()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Store, "{err}");
    assert!(err.to_string().contains(&format!("size {}", DIM - 1)), "{err}");

    let err = store.ensure_collection(&spec("bad/name", DIM), false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig);
    let err = store.ensure_collection(&spec(name, 0), false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidConfig);

    let other = format!("{name}_missing");
    assert!(!store.collection_exists(&other).unwrap());
    let err = store.upsert(&other, points(0..1, DIM), &opts()).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Store, "{err}");
    assert!(err.to_string().contains(&other), "{err}");
    assert_eq!(store.count(&other).unwrap_err().kind, ErrorKind::Store);
    // Restoring indexing on a collection that never came to be is a no-op (clean-up paths).
    store.set_bulk_mode(&other, false).unwrap();
    assert!(store.set_bulk_mode(&other, true).is_err());
}

/// Bulk mode: load with indexing deferred, switch it back on, data and search intact; more upserts
/// afterwards still work.
pub fn bulk_mode(store: &dyn VectorStore, name: &str, n: usize, dim: usize) {
    store.ensure_collection(&spec(name, dim), false).unwrap();
    store.set_bulk_mode(name, true).unwrap();
    let o = LoadOptions { batch_size: 256, ..opts() };
    assert_eq!(store.upsert(name, points(0..n, dim), &o).unwrap(), n as u64);
    store.set_bulk_mode(name, false).unwrap();
    assert_eq!(store.count(name).unwrap(), n as u64);
    store.upsert(name, points(n..n + 50, dim), &o).unwrap();
    assert_eq!(store.count(name).unwrap(), n as u64 + 50);
    for k in [3usize, n / 2, n + 10] {
        let hits = store.search(name, &vector(k, dim), 3, &[]).unwrap();
        assert_eq!(hits[0].id, id(k).to_string());
    }
    let hits = store
        .search(name, &vector(4, dim), 5, &[Condition::Equals { field: "year".into(), value: json!(2004) }])
        .unwrap();
    assert_eq!(hits[0].id, id(4).to_string());
    assert!(hits.iter().all(|h| h.payload["year"] == json!(2004)));
}

/// Aliases: every operation accepts one for its collection; a switch moves it at once; a collection
/// name cannot be an alias; deleting a collection takes its aliases with it. Collections
/// `<prefix>_a`, `<prefix>_b` and alias `<prefix>`.
pub fn aliases(store: &dyn VectorStore, prefix: &str) {
    let (alias, a, b) = (prefix.to_string(), format!("{prefix}_a"), format!("{prefix}_b"));
    let mut spec_a = spec(&a, DIM);
    spec_a.model = Some("model-a".into());
    store.ensure_collection(&spec_a, false).unwrap();
    store.upsert(&a, points(0..10, DIM), &opts()).unwrap();
    store.ensure_collection(&spec(&b, DIM), false).unwrap();
    store.upsert(&b, points(0..20, DIM), &opts()).unwrap();
    assert!(!store.aliases().unwrap().iter().any(|(x, _)| *x == alias));
    assert!(!store.collection_exists(&alias).unwrap());

    assert_eq!(store.switch_alias(&alias, &a).unwrap(), None);
    assert!(store.aliases().unwrap().contains(&(alias.clone(), a.clone())));
    assert!(store.collection_exists(&alias).unwrap());
    assert!(!store.collections().unwrap().contains(&alias), "an alias is not listed as a collection");
    assert_eq!(store.count(&alias).unwrap(), 10);
    assert_eq!(store.collection_model(&alias).unwrap().as_deref(), Some("model-a"));
    let hits = store.search(&alias, &vector(3, DIM), 1, &[]).unwrap();
    assert_eq!(hits[0].id, id(3).to_string());
    assert_eq!(store.retrieve(&alias, &[id(4)]).unwrap().len(), 1);
    assert_eq!(store.scroll_ids(&alias, &[]).unwrap().len(), 10);
    // Writes and collection management through the alias reach the collection it names.
    store.upsert(&alias, points(10..12, DIM), &opts()).unwrap();
    assert_eq!(store.count(&a).unwrap(), 12);
    assert_eq!(
        store.ensure_collection(&CollectionSpec { name: alias.clone(), ..spec_a.clone() }, false).unwrap(),
        EnsureOutcome::Existed
    );
    store.set_bulk_mode(&alias, true).unwrap();
    store.set_bulk_mode(&alias, false).unwrap();
    assert!(!store.collections().unwrap().contains(&alias), "ensure through an alias made no collection");

    // Switch: the name answers from the other collection at once.
    assert_eq!(store.switch_alias(&alias, &b).unwrap(), Some(a.clone()));
    assert_eq!(store.count(&alias).unwrap(), 20);
    assert_eq!(store.count(&a).unwrap(), 12, "the previous collection is untouched");

    // A missing target, or an alias with a collection's name: refused, nothing changes.
    assert!(store.switch_alias(&alias, &format!("{prefix}_missing")).is_err());
    assert!(store.switch_alias(&a, &b).is_err());
    assert_eq!(store.count(&alias).unwrap(), 20);
    assert_eq!(store.count(&a).unwrap(), 12);

    // Deleting the collection takes its alias along; deleting by alias or twice deletes nothing.
    assert!(!store.delete_collection(&alias).unwrap());
    assert!(store.delete_collection(&b).unwrap());
    assert!(!store.delete_collection(&b).unwrap());
    assert!(!store.collection_exists(&b).unwrap());
    assert!(!store.aliases().unwrap().iter().any(|(x, _)| *x == alias));
    assert!(!store.collection_exists(&alias).unwrap());
    assert_eq!(store.count(&a).unwrap(), 12);
}

/// Sentences of the hybrid contract: rare exact words (LIBOR, goodwill) that BM25 finds, and dense
/// vectors (pseudo-random, so a dense query is a point's own vector) that the dense search finds.
pub const HYBRID_TEXTS: [&str; 6] = [
    "LIBOR transition risk could increase our borrowing costs",
    "Cybersecurity breaches could harm our reputation and business",
    "Goodwill impairment charges reduced net income",
    "Competition in our markets is intense",
    "Our supply chain depends on a few suppliers in Asia",
    "Changes in interest rates affect our borrowing costs",
];

fn hybrid_points(bm25: Option<&vdb_core::sparse::Bm25>) -> Vec<vdb_core::store::PointRecord> {
    HYBRID_TEXTS
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let mut p = point(i, DIM);
            p.payload.insert("text".into(), json!(text));
            p.sparse = bm25.map(|b| b.embed_document(text));
            p
        })
        .collect()
}

fn hit_ids(hits: &[vdb_core::store::Hit]) -> Vec<String> {
    hits.iter().map(|h| h.id.clone()).collect()
}

/// Qdrant's IDF (`fancy_idf` of its query context): ln((n − df + 0.5) / (df + 0.5) + 1).
fn idf(n: f32, df: f32) -> f32 {
    ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
}

/// Hybrid search on a collection with the BM25 vector: sparse scores follow Qdrant's IDF formula,
/// RRF fuses the two lists as Qdrant's `rrf_scoring` does, filters apply to both, stored sparse
/// vectors read back equal, other BM25 parameters are a mismatch; a dense-only collection stays
/// dense-only and refuses sparse queries.
pub fn hybrid(store: &dyn VectorStore, name: &str) {
    use vdb_core::sparse::{Bm25, Bm25Config};
    use vdb_core::store::{Fusion, QueryVectors};
    let bm25 = Bm25::new(Bm25Config::default()).unwrap();
    let no = SearchParams::default();
    assert_eq!(store.ensure_collection(&spec(name, DIM), false).unwrap(), EnsureOutcome::Created);
    assert_eq!(store.collection_sparse(name).unwrap(), Some(Bm25Config::default()));
    store.upsert(name, hybrid_points(Some(&bm25)), &opts()).unwrap();
    let idx = |i: usize| id(i).to_string();

    // Stored sparse vectors read back as written.
    let ids: Vec<_> = (0..HYBRID_TEXTS.len()).map(id).collect();
    let stored = store.sparse_vectors(name, &ids).unwrap();
    for (i, text) in HYBRID_TEXTS.iter().enumerate() {
        assert_eq!(stored.get(&id(i)), Some(&bm25.embed_document(text)), "sparse vector of point {i}");
    }

    // Sparse: only the sentences with the words, scored Σ idf · weight (IDF of the live collection).
    let n = HYBRID_TEXTS.len() as f32;
    let q = bm25.embed_query("borrowing costs");
    let hits = store.query(name, &QueryVectors::Sparse(&q), 10, &[], &no).unwrap();
    let mut got = hit_ids(&hits);
    got.sort();
    let mut want = vec![idx(0), idx(5)];
    want.sort();
    assert_eq!(got, want, "only the sentences with 'borrowing costs'");
    for h in &hits {
        let i = (0..HYBRID_TEXTS.len()).find(|&i| idx(i) == h.id).unwrap();
        let doc = bm25.embed_document(HYBRID_TEXTS[i]);
        let expected: f32 = q
            .indices
            .iter()
            .map(|t| {
                let df = HYBRID_TEXTS.iter().filter(|d| bm25.embed_document(d).indices.contains(t)).count() as f32;
                doc.indices.iter().position(|x| x == t).map_or(0.0, |p| doc.values[p] * idf(n, df))
            })
            .sum();
        assert!(
            (h.score - expected).abs() < 1e-4 * expected.max(1.0),
            "BM25 score {} vs Qdrant's formula {expected}",
            h.score
        );
    }
    let libor = bm25.embed_query("LIBOR");
    let hits = store.query(name, &QueryVectors::Sparse(&libor), 10, &[], &no).unwrap();
    assert_eq!(hit_ids(&hits), [idx(0)]);

    // Hybrid: the dense query is point 3's own vector, the sparse one finds point 0 only: both lead.
    let dense = vector(3, DIM);
    let dense_hits = store.query(name, &QueryVectors::Dense(&dense), 40, &[], &no).unwrap();
    assert_eq!(dense_hits[0].id, idx(3));
    let hybrid = QueryVectors::Hybrid { dense: &dense, sparse: &libor, fusion: Fusion::Rrf };
    let hits = store.query(name, &hybrid, 10, &[], &no).unwrap();
    let mut top2 = hit_ids(&hits[..2]);
    top2.sort();
    let mut want = vec![idx(0), idx(3)];
    want.sort();
    assert_eq!(top2, want, "hybrid finds the dense and the sparse answer");
    // RRF as Qdrant computes it (k = 2): Σ over the lists 1 / (position + k), position from 1.
    let rrf = |id: &str| -> f32 {
        [hit_ids(&dense_hits), vec![idx(0)]]
            .iter()
            .filter_map(|list| list.iter().position(|x| x == id))
            .map(|p| 1.0 / ((p + 1) as f32 + 2.0 - 1.0))
            .sum()
    };
    for h in &hits {
        assert!((h.score - rrf(&h.id)).abs() < 1e-6, "RRF score of {}: {} vs {}", h.id, h.score, rrf(&h.id));
    }
    let dbsf = QueryVectors::Hybrid { dense: &dense, sparse: &libor, fusion: Fusion::Dbsf };
    let hits = store.query(name, &dbsf, 10, &[], &no).unwrap();
    assert!(hit_ids(&hits).contains(&idx(0)) && hit_ids(&hits).contains(&idx(3)), "{hits:?}");

    // Filters apply to both prefetches: only globex's sentences (points 1 and 4).
    let only = [Condition::Equals { field: "company".into(), value: json!(COMPANIES[1]) }];
    let hits = store.query(name, &hybrid, 10, &only, &no).unwrap();
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| h.payload["company"] == json!(COMPANIES[1])), "{hits:?}");

    // Other BM25 parameters are a mismatch; no sparse request (dense-only run) is none.
    let mut other = spec(name, DIM);
    other.options.sparse = Some(Bm25Config { avg_len: 20.0, ..Default::default() });
    let err = store.ensure_collection(&other, false).unwrap_err();
    assert_eq!(err.kind, ErrorKind::CollectionMismatch, "{err}");
    assert!(err.to_string().contains("avg_len=256") && err.to_string().contains("avg_len=20"), "{err}");
    let mut dense_only = spec(name, DIM);
    dense_only.options.sparse = None;
    assert_eq!(store.ensure_collection(&dense_only, false).unwrap(), EnsureOutcome::Existed);
    assert_eq!(store.collection_sparse(name).unwrap(), Some(Bm25Config::default()));

    // A dense-only collection: stays so when asked for BM25, takes dense vectors only, refuses
    // sparse and hybrid queries with a hint.
    let plain = format!("{name}_dense");
    assert_eq!(
        store.ensure_collection(&CollectionSpec { name: plain.clone(), ..dense_only }, false).unwrap(),
        EnsureOutcome::Created
    );
    assert_eq!(store.ensure_collection(&spec(&plain, DIM), false).unwrap(), EnsureOutcome::Existed);
    assert_eq!(store.collection_sparse(&plain).unwrap(), None);
    store.upsert(&plain, hybrid_points(Some(&bm25)), &opts()).unwrap();
    assert_eq!(store.count(&plain).unwrap(), HYBRID_TEXTS.len() as u64);
    assert!(store.sparse_vectors(&plain, &ids).unwrap().is_empty());
    for q in [QueryVectors::Sparse(&libor), hybrid] {
        let err = store.query(&plain, &q, 10, &[], &no).unwrap_err();
        assert_eq!(err.kind, ErrorKind::CollectionMismatch, "{err}");
        assert!(err.to_string().contains("rebuild"), "{err}");
    }
    assert_eq!(store.query(&plain, &QueryVectors::Dense(&dense), 1, &[], &no).unwrap()[0].id, idx(3));
}
