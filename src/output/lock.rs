//! Keeps two runs off one output: an OS lock (flock, through std's
//! `File::try_lock`) on the file itself for jsonl and mbox, and on
//! `.gmailscript-lock` in the folder for maildir and eml (removed at close).
//! The OS drops a lock when its file is closed, also when the process is
//! killed, so a dead run never leaves a stale lock behind, only a file.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use super::{io_err, OutputError};

/// The lock file of a folder output; it holds the pid of the run using it.
pub(super) const LOCK_FILE: &str = ".gmailscript-lock";

/// Takes `f`'s lock without waiting; false when another process holds it.
/// A filesystem without locks counts as taken: the state file's lock still
/// guards the usual case of two runs on one state.
pub(super) fn try_lock(f: &File) -> bool {
    !matches!(f.try_lock(), Err(TryLockError::WouldBlock))
}

/// Held by a folder writer for as long as it lives; the lock file goes
/// with it.
pub(super) struct FolderLock {
    file: File,
    path: PathBuf,
}

impl FolderLock {
    pub(super) fn acquire(dir: &Path) -> Result<FolderLock, OutputError> {
        let path = dir.join(LOCK_FILE);
        loop {
            let mut file = open_no_follow(&path)?;
            if !try_lock(&file) {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(OutputError::FolderInUse {
                    path: dir.into(),
                    pid: text.trim().parse().ok(),
                });
            }
            // The holder before us removes the file while it still holds
            // the lock: a lock taken on that removed file guards nothing,
            // so take the one now at the path.
            if !same_file(&file, &path) {
                continue;
            }
            let pid = std::process::id().to_string();
            file.set_len(0)
                .and_then(|_| file.rewind())
                .and_then(|_| file.write_all(pid.as_bytes()))
                .map_err(io_err("write", &path))?;
            return Ok(FolderLock { file, path });
        }
    }
}

impl Drop for FolderLock {
    /// Removed before the lock is released (when `file` closes), so nobody
    /// can take the lock of a file that is no longer at the path.
    fn drop(&mut self) {
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn open_no_follow(path: &Path) -> Result<File, OutputError> {
    let mut opts = OpenOptions::new();
    opts.read(true).write(true).create(true);
    // Writing the pid through a planted link would overwrite its target.
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NOFOLLOW);
    match opts.open(path) {
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            Err(OutputError::Symlink { path: path.into() })
        }
        r => r.map_err(io_err("create the lock file", path)),
    }
}

/// Whether `path` still names the open `file`.
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.is_file()
}

/// Refuses a symbolic link where gmailscript clears temporary files, then
/// makes sure the folder exists: removing "our" files through a link would
/// empty whatever folder it points to.
pub(super) fn ensure_own_dir(dir: &Path) -> Result<(), OutputError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(OutputError::Symlink { path: dir.into() }),
        Ok(_) => super::ensure_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => super::ensure_dir(dir),
        Err(e) => Err(io_err("open", dir)(e)),
    }
}
