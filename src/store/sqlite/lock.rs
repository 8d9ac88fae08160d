//! One server per SQLite file. The embedded store is written by one process: it
//! numbers points itself and remembers each device's `last_seq`, so a second
//! server on the same file hands out the same ids, and the first one's commits fail
//! from then on. A server therefore takes an exclusive advisory lock (`flock`) on
//! the database file itself, held for the store's life, and a second one is refused
//! with the holder named.
//!
//! `flock` locks are separate from the POSIX record locks SQLite takes, so readers
//! such as `sqlite3 FILE .backup` or a `VACUUM INTO` go through SQLite's own
//! locking as before; only another gattway is kept out.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

/// Why the file could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "the hub database {path} is in use by another gattway server ({holder}): one server per SQLite \
         file. Stop that one, or give this one its own --database (or data directory)"
    )]
    Held { path: PathBuf, holder: String },
    #[error("cannot open the hub database {path} to lock it: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The lock, released when dropped (the file closes). The store keeps it open for
/// its whole life: closing any descriptor of a file drops the POSIX locks a
/// process holds on it, SQLite's included, so it must not close early.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock on `path` (creating an empty file, which SQLite reads as an
    /// empty database), or says who holds it.
    pub fn take(path: &Path) -> Result<FileLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => Ok(FileLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held {
                path: path.to_path_buf(),
                holder: holder(&file).unwrap_or_else(|| "another process".into()),
            }),
            Err(TryLockError::Error(e)) => Err(io(e)),
        }
    }
}

impl FileLock {
    /// [`FileLock::take`], tried again for up to `patience` while another holds
    /// it: a server that is stopping (a restart, or a store dropped in this
    /// process whose tasks are still ending) lets go within moments.
    pub async fn wait_for(path: &Path, patience: std::time::Duration) -> Result<FileLock, LockError> {
        let until = tokio::time::Instant::now() + patience;
        loop {
            match FileLock::take(path) {
                Err(LockError::Held { .. }) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                done => return done,
            }
        }
    }
}

/// The process holding a `flock` on this file, from `/proc/locks` (Linux), as
/// "pid N: its command line".
#[cfg(target_os = "linux")]
fn holder(file: &File) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let inode = file.metadata().ok()?.ino();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF": the pid, then
    // MAJOR:MINOR:INODE of the file.
    let pid = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, file) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
        let ino: u64 = file.rsplit(':').next()?.parse().ok()?;
        (*kind == "FLOCK" && ino == inode).then(|| pid.to_string())
    })?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    Some(match cmdline.trim() {
        "" => format!("pid {pid}"),
        cmd => format!("pid {pid}: {cmd}"),
    })
}

#[cfg(not(target_os = "linux"))]
fn holder(_file: &File) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_file_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("gattway-lock-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hub.db");
        let first = FileLock::take(&path).expect("first");
        let err = FileLock::take(&path).expect_err("second is refused");
        let text = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{text}");
        #[cfg(target_os = "linux")]
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
        drop(first);
        FileLock::take(&path).expect("free again once dropped");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
