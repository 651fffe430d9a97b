//! A Qdrant gRPC server for tests, on top of qdrant-edge (the real Qdrant engine, in-process).
//!
//! Test code only: vdb_core's Rust tests and benchmarks use this library (a dev-dependency), and
//! the binary `qdrant_test_server` (`src/main.rs`) serves it to the Python end-to-end tests. It is
//! never part of vdb_core's library or wheel.
//!
//! It speaks the same protocol as a Qdrant server (qdrant-client's generated server traits), for the
//! subset a loader and its tests use: health check; collections create / get / list / delete /
//! update (HNSW and optimiser settings) / exists; aliases (create, move, rename, delete, list,
//! resolved by every collection and point operation except `exists`, as in Qdrant); points upsert / delete / get / count / search /
//! query (nearest or scroll-like) / scroll / create and delete field index. Filters support
//! must / should / must_not, match (keyword, integer, bool, any, except, text), range, is_empty,
//! is_null, has_id and nested filters. Everything else answers `Unimplemented`.
//!
//! Differences from a real server, deliberately kept: a single local shard per collection; updates
//! are applied synchronously (every upsert behaves like `wait=true`); no background optimiser (search
//! is exact over plain segments). Collections persist under the storage directory
//! (`<storage>/collections/<name>/`, aliases in `<storage>/aliases.json`), so a server restarted on
//! the same directory finds them again.

mod conversions;
mod engine;
mod lifecycle;
mod services;

pub use engine::Engine;
pub use lifecycle::{serve, TestServer};

pub const SERVER_VERSION: &str = "1.16.0";
