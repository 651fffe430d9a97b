//! vdb_core: SEC-filing sentences from parquet to vectors in Qdrant.
//!
//! ```text
//!  parquet ──► source ──► handoff (run dir: manifest.json + Arrow IPC shards)
//!                              │
//!                              ▼
//!                           embed (candle MiniLM) ──► handoff (embedded shards)
//!                                                          │
//!                                                          ▼
//!                                                   store (Qdrant server | embedded)
//! ```
//!
//! Each concern is one module; [`pipeline`] strings them into the steps the DAG and the CLI run.
//! The pyo3 layer (`python` feature) only translates.

pub mod config;
pub mod embed;
pub mod error;
pub mod handoff;
pub mod pipeline;
pub mod progress;
pub mod sample;
pub mod source;
pub mod store;

#[cfg(feature = "python")]
mod python;

pub use error::{ErrorKind, Result, VdbError};

/// The crate version (also `vdb_core.__version__`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Whether this build of the library checks integer overflow (the test build does, kernels
/// included: see `[profile.test.package.vdb_core]` in Cargo.toml). For that test only.
#[doc(hidden)]
pub fn overflow_checks() -> bool {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let checked = std::panic::catch_unwind(|| std::hint::black_box(u8::MAX) + std::hint::black_box(1u8)).is_err();
    std::panic::set_hook(previous);
    checked
}
