//! Shard files: Arrow IPC (file format), written atomically, verified by checksum on read.
//!
//! A planned shard has the columns `id` (UUID string), `row` (source row number, for messages),
//! `text`, `text_hash` (the text's 16-byte fingerprint), `vector_shard` (the shard whose embedded
//! file holds the vector for this text), `embed` (this row's text is one this shard provides),
//! then the payload columns with their source types (dictionaries decoded).
//!
//! An embedded shard holds one row per distinct text the planned shard provides: `text_hash` and
//! `embedding: FixedSizeList<Float32, dim>`. The load step gives each row the vector of its
//! `text_hash` from the embedded shard `vector_shard` names.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray, Float32Array, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;

use super::ids::TextHash;
use crate::error::{catch_panic, ErrorKind, Result, VdbError};
use crate::files::{sha256_file, write_atomic};

pub const ID: &str = "id";
pub const ROW: &str = "row";
pub const TEXT: &str = "text";
pub const EMBEDDING: &str = "embedding";
pub const TEXT_HASH: &str = "text_hash";
pub const VECTOR_SHARD: &str = "vector_shard";
pub const EMBED: &str = "embed";
/// Columns of a planned shard before the payload columns.
pub const PLANNED_COLUMNS: [&str; 6] = [ID, ROW, TEXT, TEXT_HASH, VECTOR_SHARD, EMBED];

/// Write `batch` to `path` atomically; returns the file's sha256.
pub fn write_shard(path: &Path, batch: &RecordBatch) -> Result<String> {
    write_atomic(path, |w| {
        let mut fw = FileWriter::try_new(w, &batch.schema())
            .map_err(|e| VdbError::new(ErrorKind::Handoff, format!("cannot write shard {}: {e}", path.display())))?;
        fw.write(batch)
            .and_then(|_| fw.finish())
            .map_err(|e| VdbError::new(ErrorKind::Handoff, format!("cannot write shard {}: {e}", path.display())))
    })?;
    sha256_file(path)
}

/// Read a shard, first checking its sha256 against `expected` (when given).
pub fn read_shard(path: &Path, expected: Option<&str>) -> Result<RecordBatch> {
    if let Some(expected) = expected {
        let actual = sha256_file(path).map_err(|e| {
            VdbError::new(ErrorKind::Handoff, format!("shard {} is missing or unreadable: {e}", path.display()))
                .with_file(path)
        })?;
        if actual != expected {
            return Err(VdbError::new(
                ErrorKind::Handoff,
                format!("shard {} fails its checksum (sha256 {actual}, manifest says {expected})", path.display()),
            )
            .with_file(path));
        }
    }
    let bad = |e: &dyn std::fmt::Display| {
        VdbError::new(ErrorKind::Handoff, format!("cannot read shard {}: {e}", path.display())).with_file(path)
    };
    let file = File::open(path).map_err(|e| match e.kind() {
        // Not written yet (or removed): the step that writes it runs (again) first; no input error.
        std::io::ErrorKind::NotFound => VdbError::new(
            ErrorKind::Handoff,
            format!("shard {} does not exist (yet): run the step that writes it first", path.display()),
        )
        .with_file(path)
        .with_source(e),
        _ => VdbError::io(path, "cannot open shard", e),
    })?;
    // Arrow's IPC reader panics on some damaged files (found by `tests/fuzz.rs`: a changed buffer
    // length in an embedded shard): a damaged shard is an error like any other.
    catch_panic(
        || {
            let reader = FileReader::try_new(file, None).map_err(|e| bad(&e))?;
            let schema = reader.schema();
            let batches: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().map_err(|e| bad(&e))?;
            arrow::compute::concat_batches(&schema, &batches).map_err(|e| bad(&e))
        },
        |what| bad(&format!("damaged: {what}")),
    )?
}

/// A checksum-verified shard is usable only if it is present and matches.
pub fn checksum_matches(path: &Path, expected: &str) -> bool {
    matches!(sha256_file(path), Ok(actual) if actual == expected)
}

/// Typed accessors with clear errors.
pub fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<StringArray>())
        .ok_or_else(|| VdbError::new(ErrorKind::Handoff, format!("shard has no utf8 column {name:?}")))
}

pub fn u64_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a UInt64Array> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<UInt64Array>())
        .ok_or_else(|| VdbError::new(ErrorKind::Handoff, format!("shard has no uint64 column {name:?}")))
}

pub fn u32_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a UInt32Array> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .ok_or_else(|| VdbError::new(ErrorKind::Handoff, format!("shard has no uint32 column {name:?}")))
}

pub fn bool_column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a BooleanArray> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<BooleanArray>())
        .ok_or_else(|| VdbError::new(ErrorKind::Handoff, format!("shard has no boolean column {name:?}")))
}

/// The text fingerprints of a shard, row by row.
pub fn hashes(batch: &RecordBatch) -> Result<Vec<TextHash>> {
    let col = batch
        .column_by_name(TEXT_HASH)
        .and_then(|c| c.as_any().downcast_ref::<FixedSizeBinaryArray>())
        .filter(|c| c.value_length() == 16)
        .ok_or_else(|| VdbError::new(ErrorKind::Handoff, format!("shard has no 16-byte column {TEXT_HASH:?}")))?;
    Ok((0..col.len()).map(|i| col.value(i).try_into().expect("16 bytes")).collect())
}

/// A fingerprint column.
pub fn hash_array(hashes: &[TextHash]) -> Result<FixedSizeBinaryArray> {
    FixedSizeBinaryArray::try_from_iter(hashes.iter()).or_else(|e| {
        if hashes.is_empty() {
            Ok(FixedSizeBinaryArray::new_null(16, 0))
        } else {
            Err(VdbError::internal(format!("text_hash column: {e}")))
        }
    })
}

/// An embedded shard: one vector (row-major `vectors`, `dim` each) per fingerprint.
pub fn vectors_batch(hashes: &[TextHash], vectors: Vec<f32>, dim: usize) -> Result<RecordBatch> {
    let hash_col = hash_array(hashes)?;
    let empty = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(TEXT_HASH, DataType::FixedSizeBinary(16), false)])),
        vec![Arc::new(hash_col)],
    )
    .map_err(|e| VdbError::internal(format!("embedded shard: {e}")))?;
    with_embeddings(&empty, vectors, dim)
}

/// Append an `embedding` column (row-major `vectors`, `dim` per row) to a planned shard.
pub fn with_embeddings(batch: &RecordBatch, vectors: Vec<f32>, dim: usize) -> Result<RecordBatch> {
    if vectors.len() != batch.num_rows() * dim {
        return Err(VdbError::internal(format!("{} floats for {} rows of dim {dim}", vectors.len(), batch.num_rows())));
    }
    let item = Arc::new(Field::new("item", DataType::Float32, false));
    let values = Arc::new(Float32Array::from(vectors));
    let list = FixedSizeListArray::try_new(item, dim as i32, values, None)
        .map_err(|e| VdbError::internal(format!("embedding column: {e}")))?;
    let mut fields: Vec<Arc<Field>> = batch.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(EMBEDDING, list.data_type().clone(), false)));
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(list));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| VdbError::internal(format!("embedded shard: {e}")))
}

/// The `embedding` column as (flat values, dim).
pub fn embeddings(batch: &RecordBatch) -> Result<(&[f32], usize)> {
    let list = batch
        .column_by_name(EMBEDDING)
        .and_then(|c| c.as_any().downcast_ref::<FixedSizeListArray>())
        .ok_or_else(|| VdbError::new(ErrorKind::Handoff, "shard has no embedding column"))?;
    let dim = list.value_length() as usize;
    let values = list
        .values()
        .as_any()
        .downcast_ref::<Float32Array>()
        .ok_or_else(|| VdbError::new(ErrorKind::Handoff, "embedding column is not float32"))?;
    let start = list.offset() * dim;
    Ok((&values.values()[start..start + list.len() * dim], dim))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_batch() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new(ID, DataType::Utf8, false),
            Field::new(ROW, DataType::UInt64, false),
            Field::new(TEXT, DataType::Utf8, false),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(UInt64Array::from(vec![0u64, 1])),
                Arc::new(StringArray::from(vec!["one", "two"])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_trip_with_embeddings_and_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.arrow");
        let b = with_embeddings(&sample_batch(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3).unwrap();
        let sum = write_shard(&p, &b).unwrap();
        let back = read_shard(&p, Some(&sum)).unwrap();
        assert_eq!(back, b);
        let (v, dim) = embeddings(&back).unwrap();
        assert_eq!((v, dim), (&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0][..], 3));
        assert!(checksum_matches(&p, &sum));
    }

    #[test]
    fn corrupted_shard_is_rejected_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.arrow");
        let sum = write_shard(&p, &sample_batch()).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n / 2] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
        let err = read_shard(&p, Some(&sum)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Handoff);
        assert!(err.message.contains("s.arrow") && err.message.contains("checksum"), "{}", err.message);
        assert!(!checksum_matches(&p, &sum));
    }

    /// Regression (found by `scripts/fuzz.sh`, saved in tests/fuzz.proptest-regressions): one byte
    /// of an embedded shard set to 3 made Arrow's IPC reader panic ("the offset of the new Buffer
    /// cannot exceed the existing length"). Every byte set so: a value or a Handoff error.
    #[test]
    fn every_byte_of_an_embedded_shard_damaged_gives_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let hashes: Vec<TextHash> = (0..25).map(|i| crate::handoff::ids::text_hash(&format!("text {i}"))).collect();
        let p = dir.path().join("e.arrow");
        write_shard(&p, &vectors_batch(&hashes, vec![0.5; 25 * 4], 4).unwrap()).unwrap();
        let good = std::fs::read(&p).unwrap();
        let mut caught = 0;
        // The first half (schema and record batch: where the panic was). Damage in the footer's
        // block lengths can make the reader allocate what they claim (seconds per read here): the
        // pipeline never parses a shard before its sha256 matched the manifest's.
        for i in 0..good.len() / 2 {
            let mut bytes = good.clone();
            bytes[i] = 3;
            std::fs::write(&p, &bytes).unwrap();
            let outcome = std::panic::catch_unwind(|| read_shard(&p, None));
            let Ok(result) = outcome else { panic!("byte {i} set to 3: read_shard panicked") };
            if let Err(e) = result {
                assert_eq!(e.kind, ErrorKind::Handoff, "byte {i}: {}", e.message);
                assert!(e.message.contains("e.arrow"), "{}", e.message);
                caught += e.message.contains("damaged:") as usize;
            }
        }
        assert!(caught > 0, "no damage made the IPC reader panic: the regression is not exercised");
    }

    #[test]
    fn wrong_vector_count_is_an_error() {
        assert!(with_embeddings(&sample_batch(), vec![0.0; 5], 3).is_err());
    }
}
