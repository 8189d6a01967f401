//! Exit codes and the usage error that maps to 2: one place for what `main`,
//! `run`, `repl` and `auth` return.

/// Exit codes.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED_ITEMS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_STOPPED: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;

/// A usage or input problem: exit code 2, one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
