//! `manifest.json`: what a run is about and how far it got.
//!
//! Written by the plan step, then updated by the embed and load steps of possibly many processes
//! at once: every update is a read-modify-write under the run's manifest lock, written atomically.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::rundir::RunDir;
use crate::error::{ErrorKind, Result, VdbError};
use crate::files::write_bytes_atomic;
use crate::source::mapping::{ColumnMapping, ResolvedMapping};

/// 2: planned shards carry text fingerprints; embedded shards hold one vector per distinct text.
/// 3: the file starts with the sha256 of the rest (see [`Manifest::from_bytes`]).
pub const FORMAT: u32 = 3;
/// The first line of a manifest after `{`: its checksum, `"sha256": "<64 hex>",`.
const SUM_PREFIX: &[u8] = b"{\n  \"sha256\": \"";
const SUM_SUFFIX: &[u8] = b"\",\n";
/// How long a manifest update waits for another process's update.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputInfo {
    pub path: String,
    pub size: u64,
    /// sha256 over the size, the first and the last MiB (the footer: schema, row groups,
    /// statistics): any rewrite of the file changes it, and it costs two reads.
    pub fingerprint: String,
}

impl InputInfo {
    pub fn of(path: &Path) -> Result<InputInfo> {
        let mut f = File::open(path).map_err(|e| VdbError::input_io(path, "cannot open input file", e))?;
        let size = f.metadata().map_err(|e| VdbError::io(path, "cannot stat", e))?.len();
        let mut h = Sha256::new();
        h.update(size.to_le_bytes());
        const MIB: u64 = 1 << 20;
        let mut buf = vec![0u8; MIB.min(size) as usize];
        f.read_exact(&mut buf).map_err(|e| VdbError::io(path, "cannot read", e))?;
        h.update(&buf);
        if size > MIB {
            use std::io::{Seek, SeekFrom};
            let tail = MIB.min(size - MIB);
            f.seek(SeekFrom::End(-(tail as i64))).map_err(|e| VdbError::io(path, "cannot seek", e))?;
            let mut buf = vec![0u8; tail as usize];
            f.read_exact(&mut buf).map_err(|e| VdbError::io(path, "cannot read", e))?;
            h.update(&buf);
        }
        Ok(InputInfo { path: path.display().to_string(), size, fingerprint: hex::encode(h.finalize()) })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    Planned,
    Embedded,
    Loaded,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardEntry {
    pub index: usize,
    pub rows: u64,
    /// Source row number of the shard's first row.
    pub first_row: u64,
    pub checksum: String,
    pub state: ShardState,
    #[serde(default)]
    pub embedded_checksum: Option<String>,
    /// Points upserted by the load of this shard, and how many of them were new to the collection.
    #[serde(default)]
    pub loaded_points: Option<u64>,
    #[serde(default)]
    pub new_points: Option<u64>,
    /// Distinct texts whose vector this shard provides (first seen in this shard).
    #[serde(default)]
    pub texts: u64,
    /// Of those, computed by the model in the embed step (the others came from the collection).
    #[serde(default)]
    pub texts_embedded: Option<u64>,
    /// Points of this shard's load whose text (and so vector) was already in the collection under
    /// the same id, and whose id was there with another text.
    #[serde(default)]
    pub unchanged_points: Option<u64>,
    #[serde(default)]
    pub updated_points: Option<u64>,
    /// Of the loaded points, those written with a BM25 sparse vector (all of them in a collection
    /// with BM25, none in a dense-only one).
    #[serde(default)]
    pub sparse_points: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub null_text: u64,
    pub empty_text: u64,
    pub duplicate_id: u64,
}

impl Skipped {
    pub fn total(&self) -> u64 {
        self.null_text + self.empty_text + self.duplicate_id
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub model_id: String,
    pub dim: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub seconds: f64,
    pub rows: u64,
    /// Peak resident memory of the process that ran the step, MiB.
    pub peak_rss_mib: f64,
}

/// What a blue/green rebuild run has done so far (see `pipeline::rebuild`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RebuildState {
    /// The name people search: an alias once the switch has happened.
    pub alias: String,
    /// The collection this run builds.
    pub collection: String,
    /// Set by the switch.
    #[serde(default)]
    pub switched: bool,
    /// The collection the alias named before the switch (kept until the next rebuild).
    #[serde(default)]
    pub previous: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub vdb_core_version: String,
    pub input: InputInfo,
    /// The mapping as asked for (to detect a changed request) and as resolved.
    pub requested_mapping: ColumnMapping,
    pub mapping: ResolvedMapping,
    pub strict: bool,
    /// Each distinct text is embedded once and vectors are taken from the collection where it has
    /// them (the default); off: every row is embedded.
    pub reuse: bool,
    /// Distinct texts among the valid rows (with `reuse`; else equal to `rows_valid`).
    pub distinct_texts: u64,
    pub shard_rows: usize,
    pub rows_read: u64,
    pub rows_valid: u64,
    pub skipped: Skipped,
    pub shards: Vec<ShardEntry>,
    /// Set by the first embed; a later embed with another model is refused.
    #[serde(default)]
    pub model: Option<ModelInfo>,
    /// Set by ensure-collection: (store description, collection).
    #[serde(default)]
    pub target: Option<(String, String)>,
    /// Accumulated per step (several processes add to "embed" and "load").
    #[serde(default)]
    pub steps: BTreeMap<String, StepStats>,
    /// Set by a verify that found every valid row in the collection: the condition for a sync.
    #[serde(default)]
    pub verified: bool,
    /// Set by the sync step: (scope columns, points deleted).
    #[serde(default)]
    pub synced: Option<(Vec<String>, u64)>,
    /// A blue/green rebuild: set by ensure-collection, completed by the switch.
    #[serde(default)]
    pub rebuild: Option<RebuildState>,
    /// Set by ensure-collection: the BM25 parameters of the target collection's sparse vector, which
    /// every load of the run writes next to the dense one; `None`: the collection is dense only.
    #[serde(default)]
    pub sparse: Option<crate::sparse::Bm25Config>,
    /// Changes tracking (scope columns, order column): every load of the run writes
    /// `_vdb_first_seen` with its points (see `pipeline::changes`).
    #[serde(default)]
    pub changes: Option<(Vec<String>, String)>,
}

impl Manifest {
    pub fn read(run: &RunDir) -> Result<Manifest> {
        let p = run.manifest_path();
        let bytes = std::fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                VdbError::new(
                    ErrorKind::Handoff,
                    format!("{} does not exist: run the plan step for this run first", p.display()),
                )
                .with_file(&p)
            } else {
                VdbError::io(&p, "cannot read", e)
            }
        })?;
        Manifest::from_bytes(&bytes, &p)
    }

    /// The manifest in `bytes` (the contents of `path`, named in errors). The file is the pretty
    /// JSON of the manifest with a first member `"sha256"`: the hex sha256 of the file without that
    /// line. Any damaged byte fails the checksum (JSON that still parses included), so a damaged
    /// manifest is never trusted.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Manifest> {
        let p = path;
        let damaged = |why: String| {
            VdbError::new(
                ErrorKind::Handoff,
                format!(
                    "{} is damaged ({why}): the run directory's state cannot be trusted; delete the run directory \
                     to start over",
                    p.display()
                ),
            )
            .with_file(p)
        };
        let sum_end = SUM_PREFIX.len() + 64;
        let body = match bytes.get(sum_end..sum_end + SUM_SUFFIX.len()) {
            Some(suffix) if bytes.starts_with(SUM_PREFIX) && suffix == SUM_SUFFIX => {
                let expected = &bytes[SUM_PREFIX.len()..sum_end];
                let mut body = b"{\n".to_vec();
                body.extend_from_slice(&bytes[sum_end + SUM_SUFFIX.len()..]);
                let actual = hex::encode(Sha256::digest(&body));
                if actual.as_bytes() != expected {
                    return Err(damaged(format!(
                        "it fails its checksum: sha256 {actual}, its first line says {}",
                        String::from_utf8_lossy(expected)
                    )));
                }
                body
            }
            _ => {
                // No checksum line: a manifest of an older vdb_core (named below), or damage.
                let format = serde_json::from_slice::<serde_json::Value>(bytes)
                    .ok()
                    .and_then(|v| v.get("format").and_then(serde_json::Value::as_u64));
                match format {
                    Some(f) if f < FORMAT as u64 => bytes.to_vec(),
                    _ => return Err(damaged("it does not start with its checksum line".into())),
                }
            }
        };
        let m: Manifest = serde_json::from_slice(&body).map_err(|e| {
            VdbError::new(ErrorKind::Handoff, format!("{} is not a valid manifest: {e}", p.display())).with_file(p)
        })?;
        if m.format != FORMAT {
            return Err(VdbError::new(
                ErrorKind::Handoff,
                format!(
                    "{} has format {}, this vdb_core reads format {FORMAT}: the run directory was made by another \
                     version; use a new run directory (or delete this one to start over)",
                    p.display(),
                    m.format
                ),
            )
            .with_file(p));
        }
        Ok(m)
    }

    pub fn try_read(run: &RunDir) -> Result<Option<Manifest>> {
        if run.manifest_path().exists() {
            Manifest::read(run).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Write atomically. Callers that read-modify-write use [`Manifest::update`].
    pub fn write(&self, run: &RunDir) -> Result<()> {
        write_bytes_atomic(&run.manifest_path(), &self.to_bytes()?)
    }

    /// The file's bytes: the checksum line, then the pretty JSON (see [`Manifest::from_bytes`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let body = serde_json::to_vec_pretty(self).map_err(|e| VdbError::internal(e.to_string()))?;
        let rest = body.strip_prefix(b"{\n").ok_or_else(|| VdbError::internal("manifest JSON is not an object"))?;
        let mut out = Vec::with_capacity(body.len() + SUM_PREFIX.len() + 64 + SUM_SUFFIX.len());
        out.extend_from_slice(SUM_PREFIX);
        out.extend_from_slice(hex::encode(Sha256::digest(&body)).as_bytes());
        out.extend_from_slice(SUM_SUFFIX);
        out.extend_from_slice(rest);
        Ok(out)
    }

    /// Read-modify-write under the run's manifest lock; returns the updated manifest.
    pub fn update<T>(run: &RunDir, f: impl FnOnce(&mut Manifest) -> Result<T>) -> Result<(Manifest, T)> {
        let _lock = run.lock("manifest", LOCK_TIMEOUT)?;
        let mut m = Manifest::read(run)?;
        let out = f(&mut m)?;
        m.write(run)?;
        Ok((m, out))
    }

    pub fn shard(&self, index: usize) -> Result<&ShardEntry> {
        self.shards.get(index).ok_or_else(|| {
            VdbError::new(
                ErrorKind::InvalidConfig,
                format!("shard {index} does not exist; this run has {} shards", self.shards.len()),
            )
        })
    }

    /// Add a step's measurements (several processes contribute to the same step).
    pub fn add_step(&mut self, step: &str, seconds: f64, rows: u64, peak_rss_mib: f64) {
        let s = self.steps.entry(step.to_string()).or_default();
        s.seconds += seconds;
        s.rows += rows;
        s.peak_rss_mib = s.peak_rss_mib.max(peak_rss_mib);
    }
}
