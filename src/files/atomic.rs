//! Atomic file writes and checksums.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Result, VdbError};

/// Write a file atomically: `write` fills a temp file beside `path`, which is fsynced and renamed
/// over `path`, and the directory is fsynced. A crash leaves either the old file or the new one,
/// never a partial file under the final name (temp files are named `.<name>.tmp-<pid>`).
pub fn write_atomic<F>(path: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<&File>) -> Result<()>,
{
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| VdbError::io(dir, "cannot create directory", e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| VdbError::io(&tmp, "cannot create", e))?;
        {
            let mut w = BufWriter::with_capacity(1 << 20, &file);
            write(&mut w)?;
            w.flush().map_err(|e| VdbError::io(&tmp, "cannot write", e))?;
        }
        file.sync_all().map_err(|e| VdbError::io(&tmp, "cannot fsync", e))?;
        fs::rename(&tmp, path).map_err(|e| VdbError::io(path, "cannot rename temp file onto", e))?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `write_atomic` for a byte buffer.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| w.write_all(bytes).map_err(|e| VdbError::io(path, "cannot write", e)))
}

/// Hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| VdbError::io(path, "cannot open", e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| VdbError::io(path, "cannot read", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_bytes_atomic(&p, b"old").unwrap();
        let err = write_atomic(&p, |w| {
            w.write_all(b"partial new content").unwrap();
            Err(VdbError::internal("killed mid-write"))
        });
        assert!(err.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "temp file left behind: {names:?}");
    }

    #[test]
    fn checksum_changes_with_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        write_bytes_atomic(&p, b"one").unwrap();
        let a = sha256_file(&p).unwrap();
        write_bytes_atomic(&p, b"two").unwrap();
        assert_ne!(a, sha256_file(&p).unwrap());
        assert_eq!(a.len(), 64);
    }
}
