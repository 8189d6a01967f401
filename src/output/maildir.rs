//! Maildir: each message is written to tmp/ and renamed into cur/, so cur/
//! and new/ only ever hold whole messages; a flush makes them durable.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::lock::{ensure_own_dir, FolderLock};
use super::{
    check_id, ensure_dir, io_err, probe_writable, to_lf, write_renamed, Durable, OutMessage,
    OutputError, Writer,
};

/// Marks our files: `<secs>.<id>.gmailscript:2,<flags>` in cur/.
const TAG: &str = ".gmailscript";

pub(super) struct Maildir {
    /// Held first: no other run clears tmp/ under us.
    _lock: FolderLock,
    root: PathBuf,
    /// Where each id's file is now (cur/ or new/, whatever its flags), so
    /// writing an id again replaces it instead of adding a copy.
    index: HashMap<String, PathBuf>,
    durable: Durable,
    count: u64,
    buf: Vec<u8>,
}

impl Maildir {
    pub(super) fn open(root: &Path) -> Result<Self, OutputError> {
        ensure_dir(root)?;
        let lock = FolderLock::acquire(root)?;
        let tmp = root.join("tmp");
        ensure_own_dir(&tmp)?;
        for sub in ["new", "cur"] {
            ensure_dir(&root.join(sub))?;
        }
        // A killed run leaves partial files here; none of them reached cur/.
        for entry in fs::read_dir(&tmp).map_err(io_err("read the folder", &tmp))? {
            let entry = entry.map_err(io_err("read the folder", &tmp))?;
            let ours = entry.file_name().to_str().is_some_and(|n| n.contains(TAG));
            if ours && entry.file_type().is_ok_and(|t| t.is_file()) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            }
        }
        probe_writable(&tmp)?;
        let mut md = Maildir {
            _lock: lock,
            root: root.into(),
            index: HashMap::new(),
            durable: Durable::default(),
            count: 0,
            buf: Vec::new(),
        };
        for sub in ["cur", "new"] {
            for (name, path) in list(&root.join(sub))? {
                if let Some(id) = id_of(&name) {
                    md.index_existing(id, path)?;
                }
            }
        }
        Ok(md)
    }

    /// Two files for one id mean a run was killed between renaming the new
    /// file in and removing the old one: the newer file wins.
    fn index_existing(&mut self, id: &str, path: PathBuf) -> Result<(), OutputError> {
        let Some(prev) = self.index.get(id) else {
            self.index.insert(id.into(), path);
            return Ok(());
        };
        let (keep, stale) = if mtime(&path) >= mtime(prev) {
            (path, prev.clone())
        } else {
            (prev.clone(), path)
        };
        self.remove(&stale)?;
        self.index.insert(id.into(), keep);
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> Result<(), OutputError> {
        match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove", path)(e));
            }
            _ => {}
        }
        if let Some(dir) = path.parent() {
            self.durable.dir(dir.into());
        }
        Ok(())
    }
}

impl Writer for Maildir {
    fn write(&mut self, m: &OutMessage) -> Result<(), OutputError> {
        let raw = super::raw(m, "maildir")?;
        check_id(m.id, "maildir")?;
        let flags = flags(m.labels);
        let secs = m.internal_date_ms.max(0) / 1000;
        let stem = format!("{secs}.{}{TAG}", m.id);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{stem}.{}", std::process::id()));
        let dest = self.root.join("cur").join(format!("{stem}:2,{flags}"));
        self.buf.clear();
        to_lf(raw, &mut self.buf);
        write_renamed(&tmp, &dest, &self.buf)?;
        self.durable.file(dest.clone());
        self.durable.dir(self.root.join("cur"));
        // Renamed in first, old one removed second: a kill in between
        // leaves a duplicate that the next open resolves, never a loss.
        if let Some(old) = self.index.insert(m.id.into(), dest.clone()) {
            if old != dest {
                self.remove(&old)?;
            }
        }
        self.count += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), OutputError> {
        self.durable.sync(&self.root)
    }

    fn count(&self) -> u64 {
        self.count
    }
    fn kind(&self) -> &'static str {
        "maildir"
    }
    fn path(&self) -> &Path {
        &self.root
    }

    fn relabel(&mut self, id: &str, labels: &[String]) -> Result<bool, OutputError> {
        let Some(old) = self.index.get(id).cloned() else {
            return Ok(false);
        };
        let name = old.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let stem = name.split(":2,").next().unwrap_or(name);
        let dest = self
            .root
            .join("cur")
            .join(format!("{stem}:2,{}", flags(labels)));
        if dest == old {
            return Ok(false);
        }
        fs::rename(&old, &dest).map_err(io_err("rename", &old))?;
        self.index.insert(id.into(), dest);
        self.durable.dir(self.root.join("cur"));
        if let Some(dir) = old.parent() {
            self.durable.dir(dir.into());
        }
        Ok(true)
    }
}

/// Maildir flags for Gmail labels, in ASCII order: F flagged, S seen.
fn flags(labels: &[String]) -> &'static str {
    let has = |label: &str| labels.iter().any(|l| l == label);
    match (has("STARRED"), has("UNREAD")) {
        (true, false) => "FS",
        (true, true) => "F",
        (false, false) => "S",
        (false, true) => "",
    }
}

/// The id in one of our file names, e.g. `1700000000.18c0a1.gmailscript:2,S`.
fn id_of(name: &str) -> Option<&str> {
    let at = name.find(TAG)?;
    let rest = &name[at + TAG.len()..];
    if !(rest.is_empty() || rest.starts_with(':')) {
        return None;
    }
    let (_, id) = name[..at].split_once('.')?;
    Some(id).filter(|id| !id.is_empty())
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// (file name, path) of the entries of `dir`; names that are not UTF-8
/// cannot be ours and are skipped.
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, OutputError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("read the folder", dir))? {
        let entry = entry.map_err(io_err("read the folder", dir))?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}
