//! Saved accounts: one folder per account under the config directory,
//! `accounts/NAME/account.json` (what the account is) and
//! `accounts/NAME/tokens.json` (yup-oauth2's token cache). Folders are 0700
//! and files 0600, set explicitly and tightened when found looser: the
//! refresh token in tokens.json opens the mailbox as well as a password.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{AuthError, Secret};

/// Overrides where accounts live (tests, or several separate setups).
const CONFIG_DIR_ENV: &str = "GMAILSCRIPT_CONFIG_DIR";
/// The account used when `--account` is not given.
pub(crate) const DEFAULT_ACCOUNT: &str = "default";

const ACCOUNT_FILE: &str = "account.json";
const TOKENS_FILE: &str = "tokens.json";
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// What an account authenticates with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A user's own login (installed-app flow); the client secret file is
    /// needed again to refresh tokens.
    Installed { client_secret: PathBuf },
    /// A service account with domain-wide delegation, acting for `subject`
    /// (or for `--user` on each run).
    ServiceAccount {
        key: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subject: Option<String>,
    },
}

impl Kind {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Kind::Installed { .. } => "installed",
            Kind::ServiceAccount { .. } => "service_account",
        }
    }
}

/// `account.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Account {
    #[serde(flatten)]
    pub(crate) kind: Kind,
    pub(crate) scopes: Vec<String>,
    /// The mailbox, when known (read from the profile at login).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) email: Option<String>,
}

/// What `tokens.json` holds, as far as anyone outside the token source
/// needs to know.
#[derive(Debug)]
pub(crate) struct CachedToken {
    /// Unix seconds.
    pub(crate) expires_at: Option<i64>,
    pub(crate) refresh_token: Option<Secret>,
}

/// How to log in again, for error messages.
pub(crate) fn login_hint(name: &str) -> String {
    format!("log in again: gmailscript auth login --account {name}")
}

/// How to set an account up again, for error messages.
fn setup_hint(name: &str, kind: Option<&Kind>) -> String {
    match kind {
        Some(Kind::Installed { .. }) => login_hint(name),
        Some(Kind::ServiceAccount { .. }) => format!(
            "set it up again: gmailscript auth service-account --key FILE --subject USER --account {name}"
        ),
        None => format!(
            "set it up again: gmailscript auth login --account {name} (or gmailscript auth service-account ... --account {name})"
        ),
    }
}

/// Account names become folder names: no separators, no dot files.
pub(crate) fn check_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AuthError::new(format!(
            "account name {name:?}: use letters, digits, '.', '_', '-' or '@' (at most 64, not starting with '.')"
        )))
    }
}

/// The config directory: `GMAILSCRIPT_CONFIG_DIR`, else the user's
/// (`~/.config/gmailscript` on Linux). Accounts live there, and the Lua
/// modules of `lua/` that `require` finds.
pub(crate) fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CONFIG_DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "gmailscript").map(|d| d.config_dir().to_path_buf())
}

/// The config directory and the accounts in it.
#[derive(Debug, Clone)]
pub(crate) struct AccountStore {
    root: PathBuf,
}

impl AccountStore {
    fn at(root: impl Into<PathBuf>) -> AccountStore {
        AccountStore { root: root.into() }
    }

    /// `GMAILSCRIPT_CONFIG_DIR`, else the user's config directory
    /// (`~/.config/gmailscript` on Linux).
    pub(crate) fn open() -> Result<AccountStore, AuthError> {
        config_dir().map(AccountStore::at).ok_or_else(|| {
            AuthError::new(format!(
                "cannot find a home directory to keep accounts in; set {CONFIG_DIR_ENV}"
            ))
        })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    fn accounts(&self) -> PathBuf {
        self.root.join("accounts")
    }

    fn dir(&self, name: &str) -> Result<PathBuf, AuthError> {
        check_name(name)?;
        Ok(self.accounts().join(name))
    }

    pub(crate) fn tokens_path(&self, name: &str) -> Result<PathBuf, AuthError> {
        Ok(self.dir(name)?.join(TOKENS_FILE))
    }

    /// The account's folder, made (0700, like the folders above it) if new.
    pub(crate) fn create_dir(&self, name: &str) -> Result<PathBuf, AuthError> {
        let dir = self.dir(name)?;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
        builder
            .create(&dir)
            .map_err(|e| io_error("cannot create", &dir, e))?;
        // Explicitly, whatever the umask or an older folder's mode.
        for d in [&self.root, &self.accounts(), &dir] {
            set_mode(d, DIR_MODE)?;
        }
        Ok(dir)
    }

    /// The account, or None if there is no such account.
    pub(crate) fn load(&self, name: &str) -> Result<Option<Account>, AuthError> {
        let dir = self.dir(name)?;
        let path = dir.join(ACCOUNT_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("cannot read", &path, e)),
        };
        self.tighten(name)?;
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            AuthError::new(format!(
                "account {name}: {} is damaged ({e}); {}",
                path.display(),
                setup_hint(name, None)
            ))
        })
    }

    pub(crate) fn save(&self, name: &str, account: &Account) -> Result<(), AuthError> {
        let dir = self.create_dir(name)?;
        let json = serde_json::to_vec_pretty(account)
            .map_err(|e| AuthError::new(format!("cannot encode the account: {e}")))?;
        write_private(&dir.join(ACCOUNT_FILE), &json)
    }

    /// Forget the account: its folder and everything in it. False if there
    /// was none.
    pub(crate) fn remove(&self, name: &str) -> Result<bool, AuthError> {
        let dir = self.dir(name)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("cannot remove", &dir, e)),
        }
    }

    /// Names of the saved accounts, sorted.
    pub(crate) fn names(&self) -> Result<Vec<String>, AuthError> {
        let accounts = self.accounts();
        let entries = match std::fs::read_dir(&accounts) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("cannot list", &accounts, e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(ACCOUNT_FILE).is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| check_name(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// The cached token's expiry and refresh token; None when nothing is
    /// cached (never logged in, or logged out).
    pub(crate) fn cached_token(&self, name: &str) -> Result<Option<CachedToken>, AuthError> {
        #[derive(Deserialize)]
        struct Entry {
            token: yup_oauth2::storage::TokenInfo,
        }
        let path = self.tokens_path(name)?;
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("cannot read", &path, e)),
        };
        let entries: Vec<Entry> = serde_json::from_slice(&bytes).map_err(|_| {
            AuthError::new(format!(
                "account {name}: its token cache {} is damaged; {}",
                path.display(),
                login_hint(name)
            ))
        })?;
        // One entry per scope set; gmailscript asks for one set per account.
        Ok(entries.into_iter().next().map(|e| CachedToken {
            expires_at: e.token.expires_at.map(|t| t.unix_timestamp()),
            refresh_token: e.token.refresh_token.map(Secret::new),
        }))
    }

    /// Put the account's folders and files back to 0700/0600 if they were
    /// found looser (copied with `cp -r`, unpacked from a backup, ...).
    pub(crate) fn tighten(&self, name: &str) -> Result<(), AuthError> {
        let dir = self.dir(name)?;
        for (path, mode) in [
            (self.root.clone(), DIR_MODE),
            (self.accounts(), DIR_MODE),
            (dir.clone(), DIR_MODE),
            (dir.join(ACCOUNT_FILE), FILE_MODE),
            (dir.join(TOKENS_FILE), FILE_MODE),
        ] {
            if path.exists() {
                set_mode(&path, mode)?;
            }
        }
        Ok(())
    }
}

fn io_error(what: &str, path: &Path, e: std::io::Error) -> AuthError {
    AuthError::new(format!("{what} {}: {e}", path.display()))
}

/// Write a file readable only by its owner, atomically (a crash leaves the
/// old file or the new one).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AuthError> {
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    let write = || -> std::io::Result<()> {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| io_error("cannot write", &tmp, e))?;
    // A leftover temporary file keeps its old mode; `mode` above only
    // applies to a new one.
    set_mode(&tmp, FILE_MODE)?;
    std::fs::rename(&tmp, path).map_err(|e| io_error("cannot write", path, e))
}

/// Set `path`'s permission bits to `mode`, warning when they were looser.
#[cfg(unix)]
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), AuthError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| io_error("cannot read", path, e))?;
    let old = meta.permissions().mode() & 0o777;
    if old == mode {
        return Ok(());
    }
    if old & !mode != 0 {
        tracing::warn!(
            "{} was readable by others ({old:04o}); set to {mode:04o}",
            path.display()
        );
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_error("cannot set permissions of", path, e))
}

/// Other systems: the user's profile folder is private already.
#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) -> Result<(), AuthError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_folder_safe() {
        for ok in ["default", "work", "me@example.com", "a_b-c.d"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            ".hidden",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn accounts_round_trip_in_private_files() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AccountStore::at(tmp.path().join("cfg"));
        assert!(store.load("work").unwrap().is_none());
        let account = Account {
            kind: Kind::ServiceAccount {
                key: "/k.json".into(),
                subject: Some("a@example.com".into()),
            },
            scopes: vec![super::super::SCOPE_READONLY.into()],
            email: Some("a@example.com".into()),
        };
        store.save("work", &account).unwrap();
        assert_eq!(store.load("work").unwrap(), Some(account));
        assert_eq!(store.names().unwrap(), vec!["work".to_string()]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            let dir = store.dir("work").unwrap();
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(store.root()), 0o700);
            assert_eq!(mode(&dir.join(ACCOUNT_FILE)), 0o600);
            // Found looser: tightened on the next load.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::set_permissions(
                dir.join(ACCOUNT_FILE),
                std::fs::Permissions::from_mode(0o644),
            )
            .unwrap();
            store.load("work").unwrap();
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(ACCOUNT_FILE)), 0o600);
        }
        assert!(store.remove("work").unwrap());
        assert!(!store.remove("work").unwrap());
        assert!(store.names().unwrap().is_empty());
    }

    #[test]
    fn damaged_files_say_how_to_recover() {
        let tmp = tempfile::tempdir().unwrap();
        let store = AccountStore::at(tmp.path());
        let dir = store.create_dir("work").unwrap();
        std::fs::write(dir.join(ACCOUNT_FILE), "{not json").unwrap();
        let e = store.load("work").unwrap_err().message;
        assert!(e.contains("damaged") && e.contains("--account work"), "{e}");
        std::fs::write(dir.join(TOKENS_FILE), "[{\"scopes\": 3").unwrap();
        let e = store.cached_token("work").unwrap_err().message;
        assert!(
            e.contains("damaged") && e.contains("gmailscript auth login --account work"),
            "{e}"
        );
    }
}
