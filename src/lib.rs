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
pub mod files;
pub mod handoff;
pub mod pipeline;
pub mod progress;
pub mod sample;
pub mod source;
pub mod sparse;
pub mod store;

#[cfg(feature = "python")]
mod python;

pub use error::{ErrorKind, Result, VdbError};

/// The crate version (also `vdb_core.__version__`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    /// The library the tests run is built with overflow checks (the SIMD kernels included: see
    /// `[profile.test.package.vdb_core]` in Cargo.toml): an index or count that overflows fails a
    /// test instead of wrapping silently.
    #[test]
    fn the_tested_library_checks_integer_overflow() {
        let checked = std::panic::catch_unwind(|| std::hint::black_box(u8::MAX) + std::hint::black_box(1u8)).is_err();
        assert!(checked, "build the tests with [profile.test.package.vdb_core] overflow-checks = true");
    }
}
