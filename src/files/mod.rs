//! File utilities below everything that keeps state on disk (the run handoff, the embedded store):
//! atomic writes with checksums, and an OS file lock that works across processes.

pub mod atomic;
pub mod lock;

pub use atomic::{sha256_file, write_atomic, write_bytes_atomic};
pub use lock::FileLock;
