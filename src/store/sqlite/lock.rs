//! One server per SQLite file. The embedded store is written by one process: it
//! numbers points itself and remembers each device's `last_seq`, so a second
//! server on the same file hands out the same ids, and the first one's commits fail
//! from then on. A server therefore takes an exclusive advisory lock (`flock`) for
//! the database file, held for the store's life, and a second one is refused with
//! the holder named.
//!
//! The lock is on a file beside the database (`FILE.gattway-lock`), never on the
//! database itself: closing any descriptor of a file drops every POSIX lock the
//! process holds on it, SQLite's own included, so a descriptor of ours on the
//! database, opened to probe or closed while the pool's connections are still
//! ending, could strip them. Readers such as `sqlite3 FILE .backup` or a
//! `VACUUM INTO` go through SQLite's own locking as before; only another gattway is
//! kept out.

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

/// The lock, released when dropped (its file closes).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

/// The file beside `database` whose lock stands for it.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".gattway-lock");
    PathBuf::from(name)
}

impl FileLock {
    /// Takes the lock for the database at `path`, or says who holds it.
    pub fn take(path: &Path) -> Result<FileLock, LockError> {
        let file = Self::open(path)?;
        Self::try_take(path, file).map_err(|(e, _)| e)
    }

    fn open(path: &Path) -> Result<File, LockError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path(path))
            .map_err(|source| LockError::Io {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Locks `file`, or gives it back with why not.
    fn try_take(path: &Path, file: File) -> Result<FileLock, (LockError, File)> {
        match file.try_lock() {
            Ok(()) => Ok(FileLock { _file: file }),
            Err(TryLockError::WouldBlock) => {
                let holder = holder(&file).unwrap_or_else(|| "another process".into());
                let path = path.to_path_buf();
                Err((LockError::Held { path, holder }, file))
            }
            Err(TryLockError::Error(source)) => {
                let path = path.to_path_buf();
                Err((LockError::Io { path, source }, file))
            }
        }
    }
}

impl FileLock {
    /// [`FileLock::take`], tried again for up to `patience` while another holds
    /// it: a server that is stopping (a restart, or a store dropped in this
    /// process whose tasks are still ending) lets go within moments.
    pub async fn wait_for(path: &Path, patience: std::time::Duration) -> Result<FileLock, LockError> {
        let until = tokio::time::Instant::now() + patience;
        // One descriptor, tried again: not a file opened and closed every time.
        let mut file = Self::open(path)?;
        loop {
            match Self::try_take(path, file) {
                Err((LockError::Held { .. }, again)) if tokio::time::Instant::now() < until => {
                    file = again;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                done => return done.map_err(|(e, _)| e),
            }
        }
    }
}

/// The process holding a `flock` on this file, from `/proc/locks` (Linux), as
/// "pid N: its command line".
#[cfg(target_os = "linux")]
fn holder(file: &File) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let (inode, device) = (meta.ino(), meta.dev());
    // The device as /proc/locks writes it: hexadecimal major:minor.
    let (major, minor) = (
        (device >> 8) & 0xfff,
        (device & 0xff) | ((device >> 12) & 0xfff00),
    );
    let at = format!("{major:02x}:{minor:02x}:{inode}");
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 4242 08:01:1234567 0 EOF": the pid, then
    // MAJOR:MINOR:INODE of the file.
    let pid = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (kind, pid, file) = (fields.get(1)?, fields.get(4)?, fields.get(5)?);
        (*kind == "FLOCK" && *file == at).then(|| pid.to_string())
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
