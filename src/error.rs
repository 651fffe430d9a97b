//! One error type for the whole crate.
//!
//! Every error carries a stable [`ErrorKind`] slug (what a DAG or script branches on) and, where it
//! applies, the file, row and column it is about, so a person reads one clear sentence and a program
//! reads structured fields. The pyo3 layer maps kinds onto a Python exception hierarchy.

use std::fmt;
use std::path::{Path, PathBuf};

/// Stable, machine-readable error categories. The `as_str` slugs are part of the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input file does not exist or cannot be opened.
    FileNotFound,
    /// The file is not a parquet file (bad magic bytes).
    NotParquet,
    /// The file is parquet but damaged (truncated footer, corrupt pages).
    CorruptFile,
    /// A mapped column does not exist.
    MissingColumn,
    /// A mapped column has a type we cannot use.
    WrongColumnType,
    /// A text value is null, empty or whitespace only (only raised in strict mode).
    EmptyText,
    /// The same point id occurs twice (only raised in strict mode).
    DuplicateId,
    /// An id column has a null value: the row has no stable id.
    NullId,
    /// The input has no row to ingest (zero rows, or every row skipped).
    NoRows,
    /// A setting has a value that cannot work.
    InvalidConfig,
    /// The model folder is missing, incomplete or malformed.
    Model,
    /// The forward pass failed.
    Embed,
    /// The vector store answered with an error.
    Store,
    /// The vector store cannot be reached (after retries).
    StoreUnavailable,
    /// The vector store refused the credentials (API key missing or wrong): a retry repeats it.
    StoreAuth,
    /// A collection exists with another vector size or distance.
    CollectionMismatch,
    /// A handoff file (shard, manifest) is missing, damaged or fails its checksum.
    Handoff,
    /// The run directory belongs to another input or model.
    RunMismatch,
    /// Another process holds the lock (run directory or embedded store).
    Locked,
    /// Any other I/O failure.
    Io,
    /// A bug: an invariant did not hold.
    Internal,
}

impl ErrorKind {
    /// Every kind, in declaration order (the Python stub's `ErrorKind` literal is checked against
    /// this list by `tests/test_contract.py`).
    pub const ALL: [ErrorKind; 21] = [
        ErrorKind::FileNotFound,
        ErrorKind::NotParquet,
        ErrorKind::CorruptFile,
        ErrorKind::MissingColumn,
        ErrorKind::WrongColumnType,
        ErrorKind::EmptyText,
        ErrorKind::DuplicateId,
        ErrorKind::NullId,
        ErrorKind::NoRows,
        ErrorKind::InvalidConfig,
        ErrorKind::Model,
        ErrorKind::Embed,
        ErrorKind::Store,
        ErrorKind::StoreUnavailable,
        ErrorKind::StoreAuth,
        ErrorKind::CollectionMismatch,
        ErrorKind::Handoff,
        ErrorKind::RunMismatch,
        ErrorKind::Locked,
        ErrorKind::Io,
        ErrorKind::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::FileNotFound => "file_not_found",
            ErrorKind::NotParquet => "not_parquet",
            ErrorKind::CorruptFile => "corrupt_file",
            ErrorKind::MissingColumn => "missing_column",
            ErrorKind::WrongColumnType => "wrong_column_type",
            ErrorKind::EmptyText => "empty_text",
            ErrorKind::DuplicateId => "duplicate_id",
            ErrorKind::NullId => "null_id",
            ErrorKind::NoRows => "no_rows",
            ErrorKind::InvalidConfig => "invalid_config",
            ErrorKind::Model => "model",
            ErrorKind::Embed => "embed",
            ErrorKind::Store => "store",
            ErrorKind::StoreUnavailable => "store_unavailable",
            ErrorKind::StoreAuth => "store_auth",
            ErrorKind::CollectionMismatch => "collection_mismatch",
            ErrorKind::Handoff => "handoff",
            ErrorKind::RunMismatch => "run_mismatch",
            ErrorKind::Locked => "locked",
            ErrorKind::Io => "io",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The crate's error: a kind, a sentence, and where it happened.
#[derive(Debug)]
pub struct VdbError {
    pub kind: ErrorKind,
    /// A complete sentence for a person. Already names the file/row/column when they are known.
    pub message: String,
    pub file: Option<PathBuf>,
    pub row: Option<u64>,
    pub column: Option<String>,
    /// The error this one was made from (I/O, Qdrant, ...), for `source()` chains. Control flow
    /// never looks at it: the kind says what happened.
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl fmt::Display for VdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for VdbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl VdbError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        VdbError { kind, message: message.into(), file: None, row: None, column: None, source: None }
    }
    /// Keep the underlying error (see [`VdbError::source`]).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
    pub fn with_file(mut self, file: impl AsRef<Path>) -> Self {
        self.file = Some(file.as_ref().to_path_buf());
        self
    }
    pub fn with_row(mut self, row: u64) -> Self {
        self.row = Some(row);
        self
    }
    pub fn with_column(mut self, column: impl Into<String>) -> Self {
        self.column = Some(column.into());
        self
    }
    /// An I/O error about `path`, with the path in the sentence: kind `io` whatever the cause (a
    /// missing run-directory file may be about to be written by another task, so it is no input
    /// error). Errors about the user's input file use [`VdbError::input_io`].
    pub fn io(path: impl AsRef<Path>, what: &str, err: std::io::Error) -> Self {
        let path = path.as_ref();
        VdbError::new(ErrorKind::Io, format!("{what} {}: {err}", path.display())).with_file(path).with_source(err)
    }
    /// [`VdbError::io`] for the user's input file: a missing one is `file_not_found` (an input
    /// error: a retry does not make it appear).
    pub fn input_io(path: impl AsRef<Path>, what: &str, err: std::io::Error) -> Self {
        let mut e = VdbError::io(path, what, err);
        if e.source.as_ref().and_then(|s| s.downcast_ref::<std::io::Error>()).map(std::io::Error::kind)
            == Some(std::io::ErrorKind::NotFound)
        {
            e.kind = ErrorKind::FileNotFound;
        }
        e
    }
    pub fn internal(message: impl Into<String>) -> Self {
        VdbError::new(ErrorKind::Internal, message)
    }
}

pub type Result<T, E = VdbError> = std::result::Result<T, E>;

/// Runs `f`, turning a panic into the error `on_panic` makes of its message. For third-party
/// readers that panic on damaged input instead of returning an error (found by `tests/fuzz.rs`), and
/// for the Python boundary, which a panic must not cross.
pub fn catch_panic<T>(f: impl FnOnce() -> T, on_panic: impl FnOnce(String) -> VdbError) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        on_panic(what)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    /// `ALL` holds every kind once: the match below does not compile when a kind is added without
    /// a place in it, and each place must hold that kind.
    #[test]
    fn all_kinds_are_listed_once() {
        let place = |k: ErrorKind| match k {
            ErrorKind::FileNotFound => 0,
            ErrorKind::NotParquet => 1,
            ErrorKind::CorruptFile => 2,
            ErrorKind::MissingColumn => 3,
            ErrorKind::WrongColumnType => 4,
            ErrorKind::EmptyText => 5,
            ErrorKind::DuplicateId => 6,
            ErrorKind::NullId => 7,
            ErrorKind::NoRows => 8,
            ErrorKind::InvalidConfig => 9,
            ErrorKind::Model => 10,
            ErrorKind::Embed => 11,
            ErrorKind::Store => 12,
            ErrorKind::StoreUnavailable => 13,
            ErrorKind::StoreAuth => 14,
            ErrorKind::CollectionMismatch => 15,
            ErrorKind::Handoff => 16,
            ErrorKind::RunMismatch => 17,
            ErrorKind::Locked => 18,
            ErrorKind::Io => 19,
            ErrorKind::Internal => 20,
        };
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::ALL[place(k)], k);
        }
        let mut slugs: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        slugs.sort();
        slugs.dedup();
        assert_eq!(slugs.len(), ErrorKind::ALL.len());
    }

    #[test]
    fn io_errors_keep_their_cause() {
        let missing = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let err = VdbError::io("/no/such/file", "cannot open", missing());
        assert_eq!(err.kind, ErrorKind::Io, "a missing run-directory file is no input error");
        assert_eq!(VdbError::input_io("/no/such/file", "cannot open", missing()).kind, ErrorKind::FileNotFound);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(VdbError::input_io("/x", "cannot open", denied).kind, ErrorKind::Io);
        let cause = err.source().expect("the io::Error is the source");
        assert_eq!(cause.downcast_ref::<std::io::Error>().map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));
        assert!(VdbError::new(ErrorKind::Store, "x").source().is_none());
    }
}
