//! The parquet source's errors, from Rust: each names the file and the column or row.

use vdb_core::pipeline::{self, PlanOptions};
use vdb_core::source::inspect::inspect;
use vdb_core::source::reader::ParquetSource;
use vdb_core::source::ColumnMapping;
use vdb_core::{handoff::RunDir, progress::Silent, ErrorKind};

use std::path::Path;

fn sample(dir: &std::path::Path, rows: u64) -> std::path::PathBuf {
    let p = dir.join("s.parquet");
    vdb_core::sample::write_sample(&p, rows, 1).unwrap();
    p
}

#[test]
fn missing_not_parquet_and_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.parquet");
    let e = ParquetSource::open(&missing).err().unwrap();
    assert_eq!(e.kind, ErrorKind::FileNotFound);
    assert!(e.message.contains("missing.parquet"));

    let csv = dir.path().join("x.parquet");
    std::fs::write(&csv, "a,b\n1,2\n").unwrap();
    let e = ParquetSource::open(&csv).err().unwrap();
    assert_eq!(e.kind, ErrorKind::NotParquet);
    assert_eq!(e.file.as_deref(), Some(csv.as_path()));

    let good = sample(dir.path(), 500);
    let bytes = std::fs::read(&good).unwrap();
    let cut = dir.path().join("cut.parquet");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    let e = ParquetSource::open(&cut).err().unwrap();
    assert_eq!(e.kind, ErrorKind::CorruptFile);
    assert!(e.message.contains("truncated") && e.message.contains("cut.parquet"), "{}", e.message);
}

#[test]
fn inspect_is_footer_only_and_reports_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let p = sample(dir.path(), 1000);
    let i = inspect(p.to_str().unwrap(), &ColumnMapping::default()).unwrap();
    assert_eq!((i.rows, i.row_groups), (1000, 1));
    assert_eq!(i.mapping.unwrap().text, "sentence");
    let bad = ColumnMapping { text: Some("body".into()), ..Default::default() };
    let i = inspect(p.to_str().unwrap(), &bad).unwrap();
    assert!(i.mapping.is_none() && i.mapping_error.unwrap().contains("body"));
}

#[test]
fn plan_streams_more_than_one_batch_into_exact_shards() {
    let dir = tempfile::tempdir().unwrap();
    let p = sample(dir.path(), 20_000);
    let run = RunDir::at(dir.path().join("run"));
    let opts = PlanOptions { input: p, mapping: Default::default(), shard_rows: 9_000, strict: false, reuse: true };
    let s = pipeline::plan(&run, &opts, &Silent).unwrap();
    assert_eq!((s.rows_read, s.rows_valid, s.shards.len()), (20_000, 20_000, 3));
    let again = pipeline::plan(&run, &opts, &Silent).unwrap();
    assert!(again.resumed);
    let other = PlanOptions { shard_rows: 1_000, ..opts };
    let e = pipeline::plan(&run, &other, &Silent).unwrap_err();
    assert_eq!(e.kind, ErrorKind::RunMismatch);
}

/// Regression (found by `scripts/fuzz.sh`, saved in tests/fuzz.proptest-regressions): one flipped
/// byte in the parquet footer (byte 4122 of a 40-row sample: a column chunk's offset) made the
/// parquet crate panic ("column start and length should not be negative") inside the plan step.
/// Now: a `corrupt_file` error naming the file.
#[test]
fn a_footer_that_makes_the_parquet_reader_panic_is_a_corrupt_file_error() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz_negative_column_offset.parquet");
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::at(dir.path().join("run"));
    let opts =
        PlanOptions { input: p.clone(), mapping: Default::default(), shard_rows: 16, strict: false, reuse: true };
    let e = pipeline::plan(&run, &opts, &Silent).unwrap_err();
    assert_eq!(e.kind, ErrorKind::CorruptFile, "{}", e.message);
    assert_eq!(e.file.as_deref(), Some(p.as_path()));
    assert!(
        e.message.contains("damaged parquet file") && e.message.contains("should not be negative"),
        "{}",
        e.message
    );
    assert!(!run.manifest_path().exists());
}
