//! Opening a parquet file with clear errors, and streaming its record batches.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use parquet::file::metadata::ParquetMetaData;

use super::mapping::{ColumnMapping, ResolvedMapping};
use crate::error::{catch_panic, ErrorKind, Result, VdbError};

/// Rows per record batch while streaming: bounded memory whatever the file size.
pub const READ_BATCH_ROWS: usize = 8192;

/// An opened, validated parquet file.
pub struct ParquetSource {
    pub path: PathBuf,
    pub size: u64,
    builder: Option<ParquetRecordBatchReaderBuilder<File>>,
    pub schema: SchemaRef,
    pub metadata: Arc<ParquetMetaData>,
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Classify a file that the parquet reader rejected: not parquet at all, or damaged.
fn classify(path: &Path, size: u64, err: &dyn std::fmt::Display) -> VdbError {
    let mut head = [0u8; 4];
    let mut tail = [0u8; 4];
    let mut magic_ok = |f: &mut File| -> std::io::Result<(bool, bool)> {
        if size < 8 {
            return Ok((false, false));
        }
        f.read_exact(&mut head)?;
        f.seek(SeekFrom::End(-4))?;
        f.read_exact(&mut tail)?;
        Ok((&head == b"PAR1", &tail == b"PAR1"))
    };
    let (head_ok, tail_ok) = File::open(path).and_then(|mut f| magic_ok(&mut f)).unwrap_or((false, false));
    let p = display(path);
    if !head_ok {
        VdbError::new(
            ErrorKind::NotParquet,
            format!("{p} is not a parquet file (it does not start with the PAR1 magic bytes; size {size} bytes)"),
        )
        .with_file(path)
    } else if !tail_ok {
        VdbError::new(
            ErrorKind::CorruptFile,
            format!("{p} is a truncated parquet file (no footer at the end; size {size} bytes): {err}"),
        )
        .with_file(path)
    } else {
        VdbError::new(ErrorKind::CorruptFile, format!("{p} is a damaged parquet file: {err}")).with_file(path)
    }
}

/// Runs a call into the parquet reader. The parquet crate panics on some damaged files instead of
/// returning an error (found by `tests/fuzz.rs`: a flipped byte in a column chunk's offset in the
/// footer gives "column start and length should not be negative"); such a panic becomes a
/// `corrupt_file` error naming the file.
fn guarded<T>(path: &Path, f: impl FnOnce() -> T) -> Result<T> {
    catch_panic(f, |what| {
        VdbError::new(ErrorKind::CorruptFile, format!("{} is a damaged parquet file: {what}", display(path)))
            .with_file(path)
    })
}

impl ParquetSource {
    pub fn open(path: impl AsRef<Path>) -> Result<ParquetSource> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                VdbError::new(ErrorKind::FileNotFound, format!("input file {} does not exist", display(path)))
                    .with_file(path)
            } else {
                VdbError::input_io(path, "cannot open input file", e)
            }
        })?;
        let meta = file.metadata().map_err(|e| VdbError::io(path, "cannot stat", e))?;
        if meta.is_dir() {
            return Err(VdbError::new(
                ErrorKind::NotParquet,
                format!("{} is a directory, not a parquet file", display(path)),
            )
            .with_file(path));
        }
        let size = meta.len();
        let builder =
            guarded(path, || ParquetRecordBatchReaderBuilder::try_new(file))?.map_err(|e| classify(path, size, &e))?;
        let schema = builder.schema().clone();
        let metadata = builder.metadata().clone();
        Ok(ParquetSource { path: path.to_path_buf(), size, builder: Some(builder), schema, metadata })
    }

    pub fn num_rows(&self) -> u64 {
        self.metadata.file_metadata().num_rows().max(0) as u64
    }

    pub fn resolve(&self, mapping: &ColumnMapping) -> Result<ResolvedMapping> {
        mapping.resolve(&self.schema, &display(&self.path))
    }

    /// Stream the mapped columns in batches of `READ_BATCH_ROWS`. Consumes the reader builder.
    pub fn stream(&mut self, mapping: &ResolvedMapping) -> Result<BatchStream> {
        let builder = self.builder.take().ok_or_else(|| VdbError::internal("parquet source streamed twice"))?;
        let indices = mapping.needed_columns(&self.schema);
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        let reader = guarded(&self.path, || builder.with_projection(mask).with_batch_size(READ_BATCH_ROWS).build())?
            .map_err(|e| classify(&self.path, self.size, &e))?;
        Ok(BatchStream { reader, path: self.path.clone(), size: self.size, next_row: 0, failed: false })
    }
}

/// Record batches with the row number of their first row.
pub struct BatchStream {
    reader: ParquetRecordBatchReader,
    path: PathBuf,
    size: u64,
    next_row: u64,
    /// After an error the reader's state is unknown: the stream ends.
    failed: bool,
}

impl Iterator for BatchStream {
    type Item = Result<(u64, RecordBatch)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let next = match guarded(&self.path, || self.reader.next()) {
            Ok(next) => next?,
            Err(e) => {
                self.failed = true;
                let msg = format!("{} (reading rows from {})", e.message, self.next_row);
                return Some(Err(VdbError { message: msg, row: Some(self.next_row), ..e }));
            }
        };
        match next {
            Ok(batch) => {
                let first = self.next_row;
                self.next_row += batch.num_rows() as u64;
                Some(Ok((first, batch)))
            }
            Err(e) => {
                self.failed = true;
                let err = classify(&self.path, self.size, &e);
                let msg = format!("{} (reading rows from {})", err.message, self.next_row);
                Some(Err(VdbError { message: msg, row: Some(self.next_row), ..err }))
            }
        }
    }
}
