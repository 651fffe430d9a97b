//! Run directories and their locks.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{ErrorKind, Result, VdbError};
use crate::files::FileLock;

/// One run's private directory: `<work_dir>/<dag_id>/<run_id>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    pub path: PathBuf,
}

/// Keep ids usable as single path components (Airflow run ids contain ':' and '+', which are fine;
/// '/' and leading dots are not).
fn component(s: &str) -> String {
    let cleaned: String = s.chars().map(|c| if c == '/' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        "_".into()
    } else {
        cleaned
    }
}

impl RunDir {
    /// An explicit directory (the CLI's `--run-dir`).
    pub fn at(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// `<work_dir>/<dag_id>/<run_id>/`: a different run never touches it.
    pub fn for_run(work_dir: &Path, dag_id: &str, run_id: &str) -> RunDir {
        RunDir { path: work_dir.join(component(dag_id)).join(component(run_id)) }
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.path.join("manifest.json")
    }
    pub fn report_path(&self) -> PathBuf {
        self.path.join("report.json")
    }
    pub fn shard_path(&self, index: usize) -> PathBuf {
        self.path.join("shards").join(format!("shard-{index:05}.arrow"))
    }
    pub fn embedded_path(&self, index: usize) -> PathBuf {
        self.path.join("embedded").join(format!("shard-{index:05}.arrow"))
    }

    pub fn create(&self) -> Result<()> {
        for sub in ["shards", "embedded", "locks"] {
            let p = self.path.join(sub);
            fs::create_dir_all(&p).map_err(|e| VdbError::io(&p, "cannot create run directory", e))?;
        }
        Ok(())
    }

    /// Exclusive lock on `<run>/locks/<name>.lock`, waiting up to `timeout`.
    pub fn lock(&self, name: &str, timeout: Duration) -> Result<FileLock> {
        FileLock::acquire(&self.path.join("locks").join(format!("{name}.lock")), timeout)
    }

    /// Delete the run directory (after a successful run, or by the maintenance DAG's pruning).
    ///
    /// Refused (`invalid_config`) for a directory that is not a run directory: one with neither a
    /// `manifest.json` nor the `shards/` and `locks/` folders of a plan in progress. Refused
    /// (`locked`) while a task holds one of its locks: every lock is taken, without waiting, and
    /// held while the directory is renamed aside (one atomic step: from then on no task finds it)
    /// and deleted. A directory that does not exist is no error.
    pub fn remove(&self) -> Result<()> {
        if !self.path.exists() {
            return Ok(());
        }
        let is_run =
            self.manifest_path().is_file() || (self.path.join("shards").is_dir() && self.path.join("locks").is_dir());
        if !is_run {
            return Err(VdbError::new(
                ErrorKind::InvalidConfig,
                format!("{} is not a run directory (it has no manifest.json): not deleted", self.path.display()),
            )
            .with_file(&self.path));
        }
        let mut names: BTreeSet<String> = ["manifest".to_string(), "ingest".to_string()].into();
        if let Ok(entries) = fs::read_dir(self.path.join("locks")) {
            names.extend(
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".lock")).map(str::to_string)),
            );
        }
        let held = names
            .iter()
            .map(|name| {
                self.lock(name, Duration::ZERO).map_err(|e| match e.kind {
                    ErrorKind::Locked => VdbError::new(
                        ErrorKind::Locked,
                        format!(
                            "run directory {} is in use (a task holds locks/{name}.lock): not deleted",
                            self.path.display()
                        ),
                    )
                    .with_file(&self.path),
                    _ => e,
                })
            })
            .collect::<Result<Vec<FileLock>>>()?;
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let aside = self.path.with_file_name(format!(".{name}.removing-{}", std::process::id()));
        fs::rename(&self.path, &aside).map_err(|e| VdbError::io(&self.path, "cannot move aside to delete", e))?;
        let removed = fs::remove_dir_all(&aside).map_err(|e| VdbError::io(&aside, "cannot remove run directory", e));
        drop(held);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_become_one_path_component() {
        let r = RunDir::for_run(Path::new("/tmp/vdb"), "sec", "manual__2026-01-01T00:00:00+00:00/../x");
        assert_eq!(r.path, PathBuf::from("/tmp/vdb/sec/manual__2026-01-01T00:00:00+00:00_.._x"));
        assert_eq!(RunDir::for_run(Path::new("/w"), "..", "a").path, PathBuf::from("/w/_/a"));
    }

    #[test]
    fn only_an_idle_run_directory_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        // Not a run directory: refused, and nothing in it is touched.
        let other = dir.path().join("photos");
        fs::create_dir_all(other.join("2026")).unwrap();
        fs::write(other.join("2026/a.jpg"), b"x").unwrap();
        let err = RunDir::at(&other).remove().unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidConfig, "{}", err.message);
        assert!(err.message.contains("not a run directory"), "{}", err.message);
        assert!(other.join("2026/a.jpg").is_file());

        // A run directory whose shard lock a task holds: refused, the directory stays whole.
        let run = RunDir::at(dir.path().join("run"));
        run.create().unwrap();
        fs::write(run.manifest_path(), b"{}").unwrap();
        let held = run.lock("shard-00003", Duration::from_secs(1)).unwrap();
        let err = run.remove().unwrap_err();
        assert_eq!(err.kind, ErrorKind::Locked, "{}", err.message);
        assert!(err.message.contains("shard-00003.lock"), "{}", err.message);
        assert!(run.manifest_path().is_file());
        drop(held);

        // Idle: removed, with nothing left beside it; removing it again is no error.
        run.remove().unwrap();
        assert!(!run.path.exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "only photos/ is left");
        run.remove().unwrap();
    }

    #[test]
    fn second_locker_times_out_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::at(dir.path());
        run.create().unwrap();
        let held = run.lock("manifest", Duration::from_secs(1)).unwrap();
        let err = run.lock("manifest", Duration::from_millis(50)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Locked);
        assert!(err.message.contains("manifest.lock"), "{}", err.message);
        drop(held);
        run.lock("manifest", Duration::from_millis(50)).unwrap();
    }
}
