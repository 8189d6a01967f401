//! What `--quota auto` learned, per account (or endpoint) and mailbox, kept
//! in the data directory so that the next run starts at that pace with no
//! probing: a probe costs at most one refusal (one penalty) per mailbox,
//! ever. A JSON file, rewritten whole through a temporary file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Overrides the data directory (tests; a shared machine).
const DATA_DIR_ENV: &str = "GMAILSCRIPT_DATA_DIR";
const FILE: &str = "quota.json";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Entry {
    /// Units per window, counted at the 2026 costs.
    units: u64,
    window_ms: u64,
    /// When it was learned, RFC 3339.
    learned_at: String,
}

#[derive(Debug, Clone)]
pub(crate) struct QuotaMemory {
    path: PathBuf,
    key: String,
    window: Duration,
}

/// The data directory: `GMAILSCRIPT_DATA_DIR`, else the user's.
pub(crate) fn data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(DATA_DIR_ENV) {
        return Some(PathBuf::from(d));
    }
    directories::ProjectDirs::from("", "", "gmailscript").map(|d| d.data_dir().to_path_buf())
}

impl QuotaMemory {
    /// `who`: `account:NAME` or `endpoint:URL`; `mailbox`: the user acted on.
    pub(crate) fn new(dir: &Path, who: &str, mailbox: &str, window: Duration) -> QuotaMemory {
        QuotaMemory {
            path: dir.join(FILE),
            key: format!(
                "{who} {} window:{}ms",
                mailbox.to_lowercase(),
                window.as_millis()
            ),
            window,
        }
    }

    fn read(&self) -> BTreeMap<String, Entry> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// The units learned for this mailbox at this window, if any.
    pub(crate) fn get(&self) -> Option<u64> {
        self.read()
            .get(&self.key)
            .filter(|e| e.window_ms == self.window.as_millis() as u64 && e.units > 0)
            .map(|e| e.units)
    }

    pub(crate) fn put(&self, units: u64) -> std::io::Result<()> {
        let mut all = self.read();
        all.insert(
            self.key.clone(),
            Entry {
                units,
                window_ms: self.window.as_millis() as u64,
                learned_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            },
        );
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self
            .path
            .with_extension(format!("tmp.{}", std::process::id()));
        let body = serde_json::to_vec_pretty(&all).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, body)?;
        std::fs::rename(&tmp, &self.path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_mailbox_and_window() {
        let dir = tempfile::tempdir().unwrap();
        let w = Duration::from_secs(60);
        let a = QuotaMemory::new(dir.path(), "account:work", "Me@x.com", w);
        assert_eq!(a.get(), None);
        a.put(57_000).unwrap();
        assert_eq!(a.get(), Some(57_000));
        assert_eq!(
            QuotaMemory::new(dir.path(), "account:work", "me@x.com", w).get(),
            Some(57_000)
        );
        assert_eq!(
            QuotaMemory::new(dir.path(), "account:work", "you@x.com", w).get(),
            None
        );
        assert_eq!(
            QuotaMemory::new(dir.path(), "account:home", "me@x.com", w).get(),
            None
        );
        let fast = QuotaMemory::new(dir.path(), "account:work", "me@x.com", w / 60);
        assert_eq!(fast.get(), None, "another window is another quota clock");
        fast.put(5_900).unwrap();
        assert_eq!(a.get(), Some(57_000));
        // A damaged file is as good as none: learning starts over.
        std::fs::write(a.path(), b"{not json").unwrap();
        assert_eq!(a.get(), None);
    }
}
