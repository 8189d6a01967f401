//! Run state for resume: the message ids already done, the failures recorded,
//! and a small key/value table (history id, output resume points), kept in one
//! SQLite file.
//!
//! Writes collect in one open transaction that [`Store::commit`] makes
//! durable, so recording 100,000 ids costs a few thousand commits, not
//! 100,000. Journal: WAL with `synchronous=NORMAL`, so a commit survives the
//! process being killed; a power cut may lose the last commits but never
//! damages the file. Callers fsync their output before committing the state,
//! so a state that lost commits only lags behind the output, and the resumed
//! run redoes that work.
//!
//! Dropping a `Store` does not commit: what was recorded since the last
//! `commit()` is rolled back. Only the caller knows when its outputs are
//! flushed, and a state that got ahead of them (ids marked done, an old
//! resume point) would make the next run skip messages that are not on disk.
//! Rolled-back ids are simply fetched again.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

const APP: &str = "gmailscript";
const SCHEMA: i64 = 1;
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

const CREATE: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS done (id TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS failures (
        id TEXT PRIMARY KEY, status INTEGER NOT NULL, reason TEXT NOT NULL,
        message TEXT NOT NULL, class TEXT NOT NULL, attempts INTEGER NOT NULL);
    CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT OR IGNORE INTO meta (key, value) VALUES ('app', 'gmailscript'), ('schema', '1');
";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state file {}: the folder {} does not exist; create it or pick another path", path.display(), parent.display())]
    NoFolder { path: PathBuf, parent: PathBuf },
    #[error("state file {} is a folder; give the path of a file", path.display())]
    IsFolder { path: PathBuf },
    #[error("{} is not a gmailscript state file (or it is damaged): {detail}. It was left as it is; move it away or pick another path", path.display())]
    NotOurs { path: PathBuf, detail: String },
    #[error("state file {} was written by a newer gmailscript (schema {found}, this one knows {SCHEMA}); upgrade gmailscript or pick another path", path.display())]
    Newer { path: PathBuf, found: i64 },
    #[error("state file {} is in use by another run; wait for it to finish or pick another path", path.display())]
    InUse { path: PathBuf },
    #[error("state file {} cannot be written: {}{}", path.display(), place.describe(source), write_hint(source, path, place, *exists))]
    CannotWrite {
        path: PathBuf,
        place: WritePlace,
        /// Whether the state file exists (and was left as it is).
        exists: bool,
        source: io::Error,
    },
    #[error("state file {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("state file {}: {source}", path.display())]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// What refused a write: the state file, or its folder (where SQLite must
/// create the journal, `-wal` and `-shm`, beside it).
#[derive(Debug)]
pub enum WritePlace {
    File,
    Folder(PathBuf),
}

impl WritePlace {
    fn describe(&self, e: &io::Error) -> String {
        match self {
            WritePlace::File => e.to_string(),
            WritePlace::Folder(dir) => format!(
                "its folder {} takes no new files ({e}), and the state keeps its journal beside it",
                dir.display()
            ),
        }
    }
}

/// What to do about a state that cannot be written.
fn write_hint(e: &io::Error, path: &Path, place: &WritePlace, exists: bool) -> String {
    let fix = match (e.kind(), place) {
        (io::ErrorKind::ReadOnlyFilesystem, _) if !exists => {
            "it is on a read-only file system: pick a path on a writable disk".into()
        }
        (io::ErrorKind::ReadOnlyFilesystem, _) => {
            "it is on a read-only file system: copy it to a writable disk and use the copy".into()
        }
        (io::ErrorKind::PermissionDenied, WritePlace::File) => format!(
            "make it writable (chmod u+w {}) or use a copy you can write",
            path.display()
        ),
        (io::ErrorKind::PermissionDenied, WritePlace::Folder(dir)) if !exists => format!(
            "make the folder writable (chmod u+w {}) or pick a path in a folder you can write",
            dir.display()
        ),
        (io::ErrorKind::PermissionDenied, WritePlace::Folder(dir)) => format!(
            "make the folder writable (chmod u+w {}) or use a copy of the state in a folder you can write",
            dir.display()
        ),
        _ => "check the disk and its permissions, or pick another path".into(),
    };
    let left = if exists {
        ". The file was left as it is"
    } else {
        ""
    };
    format!("; {fix}{left}")
}

/// One id whose fetch failed for good, as the policy recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FailureRecord {
    pub(crate) id: String,
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) message: String,
    pub(crate) class: String,
    pub(crate) attempts: u32,
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens the state file, creating it if missing (or empty). A file that
    /// is not ours is reported and never written to.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let path = path.to_path_buf();
        check_location(&path)?;
        let fresh = check_header(&path)?;
        // Before SQLite: it opens a file it cannot write read-only, and a
        // WAL database read-only fails as "disk I/O error", which would
        // read as a damaged file.
        check_writable(&path)?;
        let err = |e| sql_error(&path, e);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(err)?;
        // Not rusqlite's 5 s: a second run should fail at once.
        conn.busy_timeout(Duration::from_millis(100)).map_err(err)?;
        // Until the file is known to be ours, closing must not checkpoint a
        // foreign WAL into its database.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
            .map_err(err)?;
        // One run at a time: in exclusive mode the first read takes the file
        // lock and keeps it until close (in WAL mode, an exclusive lock).
        conn.query_row("PRAGMA locking_mode = EXCLUSIVE", [], |_| Ok(()))
            .map_err(err)?;
        if !fresh {
            let wal = wal_path(&path);
            let wal_existed = wal.exists();
            if let Err(e) = verify(&conn, &path) {
                drop(conn);
                // Reading a foreign WAL database creates an empty -wal file.
                if matches!(e, StoreError::NotOurs { .. })
                    && !wal_existed
                    && fs::metadata(&wal).is_ok_and(|m| m.len() == 0)
                {
                    let _ = fs::remove_file(&wal);
                }
                return Err(e);
            }
        }
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, false)
            .map_err(err)?;
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .map_err(err)?;
        conn.execute_batch("PRAGMA synchronous = NORMAL")
            .map_err(err)?;
        // The write also takes the exclusive lock for a file just created.
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {CREATE} COMMIT;"))
            .map_err(err)?;
        Ok(Store { conn, path })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_done(&self, id: &str) -> Result<bool, StoreError> {
        self.conn
            .prepare_cached("SELECT 1 FROM done WHERE id = ?1")
            .and_then(|mut s| s.exists([id]))
            .map_err(|e| self.err(e))
    }

    /// Records `id` as done and forgets any failure recorded for it.
    pub fn mark_done(&mut self, id: &str) -> Result<(), StoreError> {
        self.begin()?;
        let run = || -> rusqlite::Result<()> {
            self.conn
                .prepare_cached("INSERT OR IGNORE INTO done (id) VALUES (?1)")?
                .execute([id])?;
            self.conn
                .prepare_cached("DELETE FROM failures WHERE id = ?1")?
                .execute([id])?;
            Ok(())
        };
        run().map_err(|e| self.err(e))
    }

    pub(crate) fn count_done(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM done", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Records a failure; a later one for the same id replaces it.
    pub(crate) fn record_failure(&mut self, f: &FailureRecord) -> Result<(), StoreError> {
        self.begin()?;
        self.conn
            .prepare_cached(
                "INSERT INTO failures (id, status, reason, message, class, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET status = excluded.status,
                   reason = excluded.reason, message = excluded.message,
                   class = excluded.class, attempts = excluded.attempts",
            )
            .and_then(|mut s| {
                s.execute(params![
                    f.id, f.status, f.reason, f.message, f.class, f.attempts
                ])
            })
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Failures still standing, in the order they were first recorded.
    pub(crate) fn failures(&self) -> Result<Vec<FailureRecord>, StoreError> {
        let run = || -> rusqlite::Result<Vec<FailureRecord>> {
            let mut s = self.conn.prepare_cached(
                "SELECT id, status, reason, message, class, attempts FROM failures ORDER BY rowid",
            )?;
            let rows = s.query_map([], |r| {
                Ok(FailureRecord {
                    id: r.get(0)?,
                    status: r.get(1)?,
                    reason: r.get(2)?,
                    message: r.get(3)?,
                    class: r.get(4)?,
                    attempts: r.get(5)?,
                })
            })?;
            rows.collect()
        };
        run().map_err(|e| self.err(e))
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .prepare_cached("SELECT value FROM kv WHERE key = ?1")
            .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
            .map_err(|e| self.err(e))
    }

    /// Sets `key`; `None` deletes it.
    pub(crate) fn set(&mut self, key: &str, value: Option<&str>) -> Result<(), StoreError> {
        self.begin()?;
        let res = match value {
            Some(v) => self
                .conn
                .prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute([key, v])),
            None => self
                .conn
                .prepare_cached("DELETE FROM kv WHERE key = ?1")
                .and_then(|mut s| s.execute([key])),
        };
        res.map(drop).map_err(|e| self.err(e))
    }

    /// Makes everything recorded so far durable.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        self.conn.execute_batch("COMMIT").map_err(|e| self.err(e))
    }

    /// Commits and releases the file for the next run.
    pub(crate) fn close(mut self) -> Result<(), StoreError> {
        self.commit()
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        if self.conn.is_autocommit() {
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        sql_error(&self.path, e)
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn check_location(path: &Path) -> Result<(), StoreError> {
    if path.is_dir() {
        return Err(StoreError::IsFolder { path: path.into() });
    }
    let parent = parent_of(path);
    if !parent.is_dir() {
        return Err(StoreError::NoFolder {
            path: path.into(),
            parent: parent.into(),
        });
    }
    Ok(())
}

/// The state file (if it exists) opens for writing, and its folder takes
/// new files (SQLite's `-wal` and `-shm`); a probe file shows the latter
/// and is removed at once.
fn check_writable(path: &Path) -> Result<(), StoreError> {
    let exists = match fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(source) => {
            return Err(StoreError::CannotWrite {
                path: path.into(),
                place: WritePlace::File,
                exists: true,
                source,
            })
        }
    };
    let parent = parent_of(path);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(".probe-{}", std::process::id()));
    let probe = parent.join(name);
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = fs::remove_file(&probe);
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(StoreError::CannotWrite {
            path: path.into(),
            place: WritePlace::Folder(parent.into()),
            exists,
            source,
        }),
    }
}

/// True when the file is missing or empty (ours to initialise). A file that
/// does not start like an SQLite database is refused before SQLite sees it.
fn check_header(path: &Path) -> Result<bool, StoreError> {
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(source) => {
            return Err(StoreError::Io {
                path: path.into(),
                source,
            })
        }
    };
    let mut head = Vec::with_capacity(SQLITE_MAGIC.len());
    f.by_ref()
        .take(SQLITE_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|source| StoreError::Io {
            path: path.into(),
            source,
        })?;
    if head.is_empty() {
        return Ok(true);
    }
    let not_ours = |detail: &str| StoreError::NotOurs {
        path: path.into(),
        detail: detail.into(),
    };
    if head != SQLITE_MAGIC {
        return Err(not_ours("it is not an SQLite database"));
    }
    // Ours are WAL files, never with a rollback journal; opening a database
    // that has one would replay it, i.e. write to another program's file.
    let mut journal = path.as_os_str().to_owned();
    journal.push("-journal");
    if Path::new(&journal).exists() {
        return Err(not_ours(
            "it is an SQLite database of another program, with a rollback journal beside it",
        ));
    }
    Ok(false)
}

/// Checks the meta table of an existing database, reading only.
fn verify(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let not_ours = |detail: String| StoreError::NotOurs {
        path: path.into(),
        detail,
    };
    let read = || -> rusqlite::Result<(Option<String>, Option<String>)> {
        let has_meta: bool = conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
            [],
            |r| r.get(0),
        )?;
        if !has_meta {
            return Ok((None, None));
        }
        let value = |key: &str| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| {
                r.get::<_, String>(0)
            })
            .optional()
        };
        Ok((value("app")?, value("schema")?))
    };
    match read() {
        Err(e) if is_busy(&e) => Err(StoreError::InUse { path: path.into() }),
        Err(e) => Err(not_ours(e.to_string())),
        Ok((Some(app), Some(schema))) if app == APP => match schema.parse::<i64>() {
            Ok(SCHEMA) => Ok(()),
            Ok(found) if found > SCHEMA => Err(StoreError::Newer {
                path: path.into(),
                found,
            }),
            _ => Err(not_ours(format!("unknown schema {schema:?}"))),
        },
        Ok(_) => Err(not_ours(
            "it is an SQLite database of another program".into(),
        )),
    }
}

fn wal_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push("-wal");
    p.into()
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
    )
}

fn sql_error(path: &Path, e: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    if is_busy(&e) {
        return StoreError::InUse { path };
    }
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::NotOurs {
            path,
            detail: e.to_string(),
        },
        _ => StoreError::Sqlite { path, source: e },
    }
}

#[cfg(test)]
mod tests;
