//! The run handoff: how separate task processes pass data, through files only.
//!
//! ```text
//! ${VDB_WORK_DIR:-/tmp/vdb}/<dag_id>/<run_id>/
//!   manifest.json            input + fingerprint, column mapping, model, shards and their states
//!   locks/manifest.lock      flock serialising manifest updates across processes; beside it the
//!                            locks of each shard (shard-00000.lock), of ensure and of a whole ingest
//!   shards/shard-00000.arrow           planned rows: id, row, text, payload columns (Arrow IPC)
//!   embedded/shard-00000.arrow         one vector per distinct text the shard provides (Arrow IPC)
//!   report.json              the run report (written by verify, completed by sync and switch)
//! ```
//! Every file is written atomically (temp name, fsync, rename, fsync dir), so a killed task never
//! leaves a file that looks complete, and every shard file's sha256 is recorded in the manifest and
//! checked before use.

pub mod ids;
pub mod manifest;
pub mod rundir;
pub mod shard;

pub use manifest::{Manifest, RebuildState, ShardEntry, ShardState};
pub use rundir::RunDir;
