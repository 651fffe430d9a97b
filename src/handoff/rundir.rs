//! Run directories and their locks.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{ErrorKind, Result, VdbError};

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

    /// Delete the run directory (after a successful run).
    pub fn remove(&self) -> Result<()> {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(VdbError::io(&self.path, "cannot remove run directory", e)),
        }
    }
}

/// An OS advisory lock (flock) held until drop. Works across processes (and on shared volumes
/// that support flock), which is what Airflow's task processes and a Celery scale-out need.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    pub fn acquire(path: &Path, timeout: Duration) -> Result<FileLock> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| VdbError::io(dir, "cannot create lock directory", e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| VdbError::io(path, "cannot open lock file", e))?;
        let start = Instant::now();
        let mut delay = Duration::from_millis(5);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(FileLock { file, path: path.to_path_buf() }),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= timeout {
                        return Err(VdbError::new(
                            ErrorKind::Locked,
                            format!(
                                "{} is locked by another process (waited {:.0?}); is another task working on the same run or store?",
                                path.display(),
                                timeout
                            ),
                        )
                        .with_file(path));
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(200));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(VdbError::io(path, "cannot lock", e)),
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
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
