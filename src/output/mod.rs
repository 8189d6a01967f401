//! Crash-safe writers for fetched messages: jsonl and mbox (one growing
//! file), maildir and an eml tree (one file per message).
//!
//! The contract with the run state: a caller writes a chunk, calls
//! `flush()`, then records the chunk's ids (and `resume_point()` for append
//! formats) in the state and commits it. So whatever the state says is done
//! is on disk, and whatever reached disk after the last commit is either cut
//! off at resume (append formats) or overwritten by the same id (per-message
//! formats): a resumed run neither loses nor duplicates a message.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

mod append;
mod eml;
mod lock;
mod maildir;

/// What a writer needs of a message.
pub struct OutMessage<'a> {
    pub id: &'a str,
    pub thread_id: &'a str,
    /// Label ids, e.g. "INBOX", "UNREAD", "Label_3".
    pub labels: &'a [String],
    /// Display names in the order of `labels`, for mbox's X-Gmail-Labels;
    /// may be empty, then the ids stand in.
    pub label_names: &'a [String],
    pub internal_date_ms: i64,
    /// The RFC 822 bytes, for mbox, maildir and eml.
    pub raw: Option<&'a [u8]>,
    /// One JSON text, for jsonl.
    pub json: &'a str,
}

pub trait Writer: Send {
    fn write(&mut self, m: &OutMessage) -> Result<(), OutputError>;
    /// Makes everything written so far durable (buffers written, fsync).
    fn flush(&mut self) -> Result<(), OutputError>;
    /// Messages written by this writer.
    fn count(&self) -> u64;
    fn kind(&self) -> &'static str;
    fn path(&self) -> &Path;
    /// For append formats (jsonl, mbox): bytes durably written so far, to
    /// store as a resume point; None for one-file-per-message formats.
    fn resume_point(&self) -> Option<u64> {
        None
    }
    /// Bring a stored message's labels up to date where the format keeps
    /// them outside the message (Maildir flags). True if it changed.
    fn relabel(&mut self, _id: &str, _labels: &[String]) -> Result<bool, OutputError> {
        Ok(false)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{kind} needs messages fetched with format \"raw\"")]
    NeedsRaw { kind: &'static str },
    #[error("cannot write {}: the folder {} does not exist; create it or pick another path", path.display(), parent.display())]
    NoFolder { path: PathBuf, parent: PathBuf },
    #[error("{} is a file, but a folder is needed there; move the file away or pick another path", path.display())]
    NotAFolder { path: PathBuf },
    #[error("{} is a folder, but {kind} writes one file; give a file path, e.g. {}", path.display(), path.join(format!("mail.{kind}")).display())]
    NotAFile { path: PathBuf, kind: &'static str },
    #[error("{} already holds {len} bytes and no resume point was given for it; resume the run that wrote it (with its state file), or move it away to start over", path.display())]
    Exists { path: PathBuf, len: u64 },
    #[error("{} does not match the state's resume point: {detail}. The file was changed or replaced since that run, or the state belongs to another file; restore the file, or move it away and start over with a fresh state file", path.display())]
    ResumeMismatch { path: PathBuf, detail: String },
    #[error("{} is being written by another run; wait for it to finish or pick another path", path.display())]
    InUse { path: PathBuf },
    #[error("{} is in use by another gmailscript run (pid {}?); wait for it to finish or pick another folder", path.display(), pid.map_or("unknown".to_string(), |p| p.to_string()))]
    FolderInUse { path: PathBuf, pid: Option<u32> },
    #[error("{} is a symbolic link; gmailscript clears its own temporary files there and never through a link: remove the link (what it points to is left alone) and run again", path.display())]
    Symlink { path: PathBuf },
    #[error("message id {id:?} cannot be used in a file name ({kind} output): ids may hold only letters, digits, '-' and '_'")]
    BadId { id: String, kind: &'static str },
    #[error("cannot {op} {}: {source}{}", path.display(), io_hint(source))]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// One JSON text per line.
///
/// Append formats and `resume_at`: `Some(n)` truncates the file to `n`
/// bytes, the point the caller's state recorded at its last commit (an error
/// if the file is shorter or `n` is not at the end of a record). `Some(0)`
/// therefore starts over. `None` means "no state for this file": a new or
/// empty file is fine, a non-empty one is refused rather than clobbered.
pub fn jsonl(path: &Path, resume_at: Option<u64>) -> Result<Box<dyn Writer>, OutputError> {
    Ok(Box::new(append::Jsonl::open(path, resume_at)?))
}

/// An mbox as Google Takeout writes it (X-GM-THRID, X-Gmail-Labels), mboxrd
/// quoted, LF line ends. `resume_at` as for [`jsonl`].
pub(crate) fn mbox(path: &Path, resume_at: Option<u64>) -> Result<Box<dyn Writer>, OutputError> {
    Ok(Box::new(append::Mbox::open(path, resume_at)?))
}

/// A Maildir (tmp/, new/, cur/), one file per message with LF line ends (as
/// Unix mail tools expect), named `cur/<secs>.<id>.gmailscript:2,<flags>`;
/// the same id written again replaces its file. Locked for one run at a
/// time (`.gmailscript-lock`); a symlinked tmp/ is refused.
pub fn maildir(dir: &Path) -> Result<Box<dyn Writer>, OutputError> {
    Ok(Box::new(maildir::Maildir::open(dir)?))
}

/// One file per message at `dir/YYYY/MM/<id>.eml` (UTC internal date), the
/// bytes exactly as Gmail gave them. Locked as [`maildir`] is.
pub(crate) fn eml(dir: &Path) -> Result<Box<dyn Writer>, OutputError> {
    Ok(Box::new(eml::Eml::open(dir)?))
}

fn io_hint(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::PermissionDenied => "; check its permissions or pick another path",
        io::ErrorKind::StorageFull => "; free some space and run again (the run resumes)",
        io::ErrorKind::ReadOnlyFilesystem => "; pick a path on a writable disk",
        _ => "",
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OutputError + 'a {
    move |source| OutputError::Io {
        op,
        path: path.into(),
        source,
    }
}

fn raw<'a>(m: &OutMessage<'a>, kind: &'static str) -> Result<&'a [u8], OutputError> {
    m.raw.ok_or(OutputError::NeedsRaw { kind })
}

/// Ids go into file names and mbox From_ lines; Gmail's are hex, and
/// anything else (a '/', a space, "..") could escape the folder or break
/// the format.
fn check_id(id: &str, kind: &'static str) -> Result<(), OutputError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(OutputError::BadId {
            id: id.into(),
            kind,
        })
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes sure `dir` is a folder, creating it when its parent exists (one
/// level only: a mistyped deep path should be an error, not a new tree).
fn ensure_dir(dir: &Path) -> Result<(), OutputError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(OutputError::NotAFolder { path: dir.into() }),
        // NotADirectory: some ancestor is a file, which the parent check names.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            let parent = parent_of(dir);
            match fs::metadata(parent) {
                Ok(m) if m.is_dir() => match fs::create_dir(dir) {
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
                    r => r.map_err(io_err("create the folder", dir)),
                },
                Ok(_) => Err(OutputError::NotAFolder {
                    path: parent.into(),
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(OutputError::NoFolder {
                    path: dir.into(),
                    parent: parent.into(),
                }),
                Err(e) => Err(io_err("open", parent)(e)),
            }
        }
        Err(e) => Err(io_err("open", dir)(e)),
    }
}

/// Renames are durable only once their folder's entry list is synced.
fn sync_dir(dir: &Path) -> Result<(), OutputError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("sync the folder", dir))
}

/// Writes `bytes` to a new file at `tmp` and renames it to `dest`, so that
/// `dest` is either absent, the old file, or the whole new one for any
/// reader and after a kill. Durability against power loss is [`Durable`]'s,
/// at the next flush.
fn write_renamed(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let res = (|| {
        let mut f = fs::File::create(tmp).map_err(io_err("create", tmp))?;
        io::Write::write_all(&mut f, bytes).map_err(io_err("write", tmp))?;
        fs::rename(tmp, dest).map_err(io_err("rename into place", dest))
    })();
    if res.is_err() {
        let _ = fs::remove_file(tmp);
    }
    res
}

/// The files and folders changed since the last flush of a per-message
/// writer, made durable together at the flush: before the state records
/// their ids as done. An fsync per message capped a Maildir at about 3,600
/// messages/s here (docs/benchmarks.md); one `syncfs` per commit interval
/// costs about what one fsync does. A power loss before the flush can leave
/// a file of that interval empty, but its id is not done in the state, so a
/// resumed run writes it again under the same name.
#[derive(Default)]
struct Durable {
    files: Vec<PathBuf>,
    dirs: std::collections::BTreeSet<PathBuf>,
}

impl Durable {
    fn file(&mut self, path: PathBuf) {
        self.files.push(path);
    }

    fn dir(&mut self, dir: PathBuf) {
        self.dirs.insert(dir);
    }

    fn sync(&mut self, root: &Path) -> Result<(), OutputError> {
        if self.files.is_empty() && self.dirs.is_empty() {
            return Ok(());
        }
        if !syncfs(root)? {
            for f in &self.files {
                // Gone since (replaced by a later write of the same id): the
                // replacement is in the list too.
                match fs::File::open(f) {
                    Ok(file) => file.sync_data().map_err(io_err("sync", f))?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err("sync", f)(e)),
                }
            }
            for d in &self.dirs {
                sync_dir(d)?;
            }
        }
        self.files.clear();
        self.dirs.clear();
        Ok(())
    }
}

/// Flushes the whole file system holding `dir` (data and metadata); false
/// where there is no such call.
#[cfg(target_os = "linux")]
fn syncfs(dir: &Path) -> Result<bool, OutputError> {
    use std::os::fd::AsRawFd;
    let d = fs::File::open(dir).map_err(io_err("open", dir))?;
    // SAFETY: syncfs only reads the descriptor, which `d` keeps open.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io_err("sync the file system of", dir)(
            io::Error::last_os_error(),
        ));
    }
    Ok(true)
}

#[cfg(not(target_os = "linux"))]
fn syncfs(_dir: &Path) -> Result<bool, OutputError> {
    Ok(false)
}

/// Fails at open rather than at the first message if the folder cannot be
/// written (e.g. permissions).
fn probe_writable(dir: &Path) -> Result<(), OutputError> {
    let probe = dir.join(format!("probe.{}.gmailscript", std::process::id()));
    fs::File::create(&probe).map_err(io_err("write in", dir))?;
    fs::remove_file(&probe).map_err(io_err("remove", &probe))
}

/// CRLF to LF, for the formats Unix mail tools read (mbox, maildir).
fn to_lf(raw: &[u8], out: &mut Vec<u8>) {
    out.reserve(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
        out.extend_from_slice(&rest[..i]);
        out.push(b'\n');
        rest = &rest[i + 2..];
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests;
