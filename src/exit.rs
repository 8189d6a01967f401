//! Exit codes and the usage error that maps to 2: one place for what `main`,
//! `run`, `repl` and `auth` return.

/// Exit codes.
pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_FAILED_ITEMS: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub(crate) const EXIT_STOPPED: u8 = 3;
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// A usage or input problem: exit code 2, one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub String);

/// An error and its causes on one line, each said once. Many errors here
/// write their cause into their own message (Lua and the logs show one
/// level), so a cause whose text is already on the line is left out:
/// "cannot open m.mbox: No such file or directory (os error 2)", not the
/// OS error twice.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open m.mbox: {source}")]
    struct Open {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_is_said_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(Open { source: io() });
        let line = one_line(&e);
        assert_eq!(line, format!("cannot open m.mbox: {}", io()));
        // A cause not in the message is still said, after it.
        let e = anyhow::Error::new(io()).context("loading the mailbox");
        assert_eq!(one_line(&e), format!("loading the mailbox: {}", io()));
    }
}
