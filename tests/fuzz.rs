//! Fuzzing (proptest) of the three readers that take bytes from disk: the parquet source (through
//! the plan step, which also maps, validates and splits), the shard reader (and the accessors the
//! embed and load steps use on what it returns) and the manifest reader. Arbitrary bytes and
//! mutations of valid files must never panic: every outcome is a value or a `VdbError`.
//!
//! CI runs a few cases per target (`PROPTEST_CASES`, default 16); `scripts/fuzz.sh` runs many more
//! for a bounded time. A failing case is shrunk and saved by proptest under
//! `tests/fuzz.proptest-regressions` (commit it: it is replayed first on every run).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;
use vdb_core::handoff::shard::{self, EMBED, ID, ROW, TEXT, VECTOR_SHARD};
use vdb_core::handoff::{Manifest, RunDir};
use vdb_core::pipeline::{self, PlanOptions};
use vdb_core::progress::Silent;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// Valid files to mutate, made once per test binary.
struct Seeds {
    _dir: tempfile::TempDir,
    parquet: Vec<u8>,
    planned_shard: Vec<u8>,
    embedded_shard: Vec<u8>,
    manifest: Vec<u8>,
}

fn seeds() -> &'static Seeds {
    static SEEDS: OnceLock<Seeds> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.parquet");
        vdb_core::sample::write_sample(&input, 40, 7).unwrap();
        let run = RunDir::at(dir.path().join("run"));
        let opts = PlanOptions {
            input: input.clone(),
            mapping: Default::default(),
            shard_rows: 25,
            strict: false,
            reuse: true,
        };
        pipeline::plan(&run, &opts, &Silent).unwrap();
        let planned = std::fs::read(run.shard_path(0)).unwrap();
        let batch = shard::read_shard(&run.shard_path(0), None).unwrap();
        let hashes = shard::hashes(&batch).unwrap();
        let embedded = shard::vectors_batch(&hashes, vec![0.5; hashes.len() * 4], 4).unwrap();
        let ep = dir.path().join("embedded.arrow");
        shard::write_shard(&ep, &embedded).unwrap();
        Seeds {
            parquet: std::fs::read(&input).unwrap(),
            planned_shard: planned,
            embedded_shard: std::fs::read(&ep).unwrap(),
            manifest: std::fs::read(run.manifest_path()).unwrap(),
            _dir: dir,
        }
    })
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<Index>(), 1u8..=255).prop_map(|(i, b)| Edit::Flip(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn mutate(seed: &[u8], edits: &[Edit]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for e in edits {
        if b.is_empty() {
            break;
        }
        match e {
            Edit::Flip(i, x) => {
                let i = i.index(b.len());
                b[i] ^= x;
            }
            Edit::Set(i, x) => {
                let i = i.index(b.len());
                b[i] = *x;
            }
            Edit::Insert(i, xs) => {
                let i = i.index(b.len() + 1);
                b.splice(i..i, xs.iter().copied());
            }
            Edit::Delete(i, n) => {
                let i = i.index(b.len());
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Edit::Truncate(i) => {
                let i = i.index(b.len());
                b.truncate(i);
            }
        }
    }
    b
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The parquet source as the plan step uses it: open, map, stream, validate, split into shards.
fn plan_bytes(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let input = write(dir.path(), "x.parquet", bytes);
    let run = RunDir::at(dir.path().join("run"));
    let opts = PlanOptions { input, mapping: Default::default(), shard_rows: 16, strict: false, reuse: true };
    if let Ok(summary) = pipeline::plan(&run, &opts, &Silent) {
        // Whatever was accepted reads back as shards of exactly the valid rows.
        let m = Manifest::read(&run).unwrap();
        assert_eq!(m.rows_valid, summary.rows_valid);
        for s in &m.shards {
            let batch = shard::read_shard(&run.shard_path(s.index), Some(&s.checksum)).unwrap();
            assert_eq!(batch.num_rows() as u64, s.rows);
        }
    }
}

/// The shard reader, and what the embed and load steps do with a shard it returns.
fn read_shard_bytes(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "shard-00000.arrow", bytes);
    let Ok(batch) = shard::read_shard(&p, None) else { return };
    let _ = shard::string_column(&batch, TEXT);
    let _ = shard::string_column(&batch, ID);
    let _ = shard::u64_column(&batch, ROW);
    let _ = shard::u32_column(&batch, VECTOR_SHARD);
    let _ = shard::bool_column(&batch, EMBED);
    let _ = shard::embeddings(&batch);
    if let Ok(hashes) = shard::hashes(&batch) {
        let vectors: HashMap<_, _> = hashes.iter().map(|h| (*h, vec![0.0f32; 4])).collect();
        let bm25 = vdb_core::sparse::Bm25::new(Default::default()).unwrap();
        let _ = pipeline::load::points_of(&batch, &vectors, "model", Some(&bm25));
    }
}

fn read_manifest_bytes(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "manifest.json", bytes);
    if let Ok(m) = Manifest::from_bytes(bytes, &p) {
        for i in 0..m.shards.len() + 1 {
            let _ = m.shard(i);
        }
        let _ = m.to_bytes();
    }
}

/// A manifest whose JSON is mutated but whose checksum line matches it: exercises the JSON reader
/// behind the checksum (a plain mutation nearly always fails the checksum first).
fn rechecksummed(mutated_body: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    let mut body = b"{\n".to_vec();
    body.extend_from_slice(mutated_body);
    let mut out = b"{\n  \"sha256\": \"".to_vec();
    out.extend_from_slice(hex::encode(Sha256::digest(&body)).as_bytes());
    out.extend_from_slice(b"\",\n");
    out.extend_from_slice(mutated_body);
    out
}

/// The manifest's JSON after its checksum line.
fn manifest_rest() -> &'static [u8] {
    let m = &seeds().manifest;
    let start = m.windows(3).position(|w| w == b"\",\n").unwrap() + 3;
    &m[start..]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parquet_source_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        plan_bytes(&bytes);
    }

    #[test]
    fn parquet_source_mutated(edits in prop::collection::vec(edit(), 1..6)) {
        plan_bytes(&mutate(&seeds().parquet, &edits));
    }

    #[test]
    fn shard_reader_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        read_shard_bytes(&bytes);
    }

    #[test]
    fn shard_reader_mutated(edits in prop::collection::vec(edit(), 1..6), embedded in any::<bool>()) {
        let seed = if embedded { &seeds().embedded_shard } else { &seeds().planned_shard };
        let bytes = mutate(seed, &edits);
        read_shard_bytes(&bytes);
        // With the manifest's checksum, a changed shard is always refused.
        if bytes != *seed {
            let dir = tempfile::tempdir().unwrap();
            let p = write(dir.path(), "s.arrow", &bytes);
            let sum = {
                let q = write(dir.path(), "orig.arrow", seed);
                vdb_core::files::sha256_file(&q).unwrap()
            };
            let err = shard::read_shard(&p, Some(&sum)).unwrap_err();
            prop_assert_eq!(err.kind, vdb_core::ErrorKind::Handoff);
        }
    }

    #[test]
    fn manifest_reader_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        read_manifest_bytes(&bytes);
    }

    #[test]
    fn manifest_reader_mutated(edits in prop::collection::vec(edit(), 1..6)) {
        let seed = &seeds().manifest;
        let bytes = mutate(seed, &edits);
        read_manifest_bytes(&bytes);
        if bytes != *seed {
            // Any damage to the file is detected (the checksum), and the error names it.
            let err = Manifest::from_bytes(&bytes, Path::new("/run/manifest.json")).unwrap_err();
            prop_assert_eq!(err.kind, vdb_core::ErrorKind::Handoff);
            prop_assert!(err.message.contains("/run/manifest.json"), "{}", err.message);
        }
        read_manifest_bytes(&rechecksummed(&mutate(manifest_rest(), &edits)));
    }
}

#[test]
fn seeds_are_valid() {
    // The mutation targets start from files the readers accept.
    let s = seeds();
    let m = Manifest::from_bytes(&s.manifest, Path::new("m.json")).unwrap();
    assert_eq!(m.rows_valid, 40);
    assert_eq!(Manifest::from_bytes(&rechecksummed(manifest_rest()), Path::new("m.json")).unwrap(), m);
    assert_eq!(shard::read_shard(&write(s._dir.path(), "p.arrow", &s.planned_shard), None).unwrap().num_rows(), 25);
}
