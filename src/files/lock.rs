//! An OS file lock that works across processes.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{ErrorKind, Result, VdbError};

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
