//! An eml tree: `root/YYYY/MM/<id>.eml`, each written in a temporary folder
//! under the root and renamed into place; a flush makes them durable.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::DateTime;

use super::lock::{ensure_own_dir, FolderLock};
use super::{
    check_id, ensure_dir, io_err, probe_writable, write_renamed, Durable, OutMessage, OutputError,
    Writer,
};

/// One temporary folder for the whole tree, so clearing what a killed run
/// left needs no walk over a million files.
const TMP: &str = ".gmailscript-tmp";

pub(super) struct Eml {
    /// Held first: no other run clears the temporary folder under us.
    _lock: FolderLock,
    root: PathBuf,
    tmp: PathBuf,
    /// Month folders known to exist.
    made: HashSet<PathBuf>,
    durable: Durable,
    count: u64,
}

impl Eml {
    pub(super) fn open(root: &Path) -> Result<Self, OutputError> {
        ensure_dir(root)?;
        let lock = FolderLock::acquire(root)?;
        let tmp = root.join(TMP);
        ensure_own_dir(&tmp)?;
        // What a killed run left; only plain files (a link is not ours).
        for entry in fs::read_dir(&tmp).map_err(io_err("read the folder", &tmp))? {
            let entry = entry.map_err(io_err("read the folder", &tmp))?;
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let path = entry.path();
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            }
        }
        probe_writable(&tmp)?;
        Ok(Eml {
            _lock: lock,
            root: root.into(),
            tmp,
            made: HashSet::new(),
            durable: Durable::default(),
            count: 0,
        })
    }
}

impl Writer for Eml {
    fn write(&mut self, m: &OutMessage) -> Result<(), OutputError> {
        let raw = super::raw(m, "eml")?;
        check_id(m.id, "eml")?;
        let date = DateTime::from_timestamp_millis(m.internal_date_ms).unwrap_or_default();
        let year = self.root.join(date.format("%Y").to_string());
        let month = year.join(date.format("%m").to_string());
        if !self.made.contains(&month) {
            fs::create_dir_all(&month).map_err(io_err("create the folder", &month))?;
            // New entries in the root and the year folder need syncing too.
            self.durable.dir(self.root.clone());
            self.durable.dir(year);
            self.made.insert(month.clone());
        }
        let name = format!("{}.eml", m.id);
        let dest = month.join(&name);
        write_renamed(&self.tmp.join(&name), &dest, raw)?;
        self.durable.file(dest);
        self.durable.dir(month);
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
        "eml"
    }
    fn path(&self) -> &Path {
        &self.root
    }
}

impl Drop for Eml {
    /// Leaves no empty temporary folder behind; fails harmlessly if a
    /// write left something in it.
    fn drop(&mut self) {
        let _ = fs::remove_dir(&self.tmp);
    }
}
