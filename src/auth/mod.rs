//! Where access tokens come from. The engine asks a [`TokenSource`] for a
//! token before each request and for a fresh one after a 401. Tokens are
//! wrapped in [`Secret`] so they never reach logs or error text.
//!
//! Sources: [`FixedToken`] (the simulator, `GMAILSCRIPT_TOKEN`),
//! [`oauth::InstalledSource`] (a user's login, refreshed from its cached
//! refresh token) and [`service::ServiceSource`] (a service account acting
//! for a delegated subject). [`cache`] keeps the saved accounts.

use std::future::Future;
use std::pin::Pin;

pub(crate) mod cache;
pub(crate) mod oauth;
pub(crate) mod service;

/// Read mail and labels, change nothing (the default).
pub(crate) const SCOPE_READONLY: &str = "https://www.googleapis.com/auth/gmail.readonly";
/// Also label, archive and trash; no permanent delete.
pub(crate) const SCOPE_MODIFY: &str = "https://www.googleapis.com/auth/gmail.modify";
/// Everything, permanent delete included.
pub(crate) const SCOPE_FULL: &str = "https://mail.google.com/";

/// A scope's short name (`readonly`, `modify`, `full`), or the URL itself
/// for one gmailscript does not ask for.
pub(crate) fn scope_name(url: &str) -> &str {
    match url {
        SCOPE_READONLY => "readonly",
        SCOPE_MODIFY => "modify",
        SCOPE_FULL => "full",
        other => other,
    }
}

/// An access token. Its `Debug` and `Display` print `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(token: impl Into<String>) -> Secret {
        Secret(token.into())
    }
    /// The token itself, for the Authorization header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    pub(crate) message: String,
    /// The token endpoint could not be reached or broke off: worth trying
    /// again like any network error. Otherwise it refused (`invalid_grant`,
    /// a bad key or client), and trying again cannot help.
    pub(crate) transient: bool,
}

impl AuthError {
    /// A refusal, or a local problem (a missing file): not retried.
    fn new(message: impl Into<String>) -> AuthError {
        AuthError {
            message: message.into(),
            transient: false,
        }
    }

    /// The token endpoint was out of reach; the login itself may be fine.
    fn transient(message: impl Into<String>) -> AuthError {
        AuthError {
            message: message.into(),
            transient: true,
        }
    }
}

pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Secret, AuthError>> + Send + 'a>>;

/// A token source for another mailbox, or None (see [`TokenSource::for_subject`]).
type SubjectFuture<'a> = Pin<
    Box<
        dyn Future<Output = Option<Result<std::sync::Arc<dyn TokenSource>, AuthError>>> + Send + 'a,
    >,
>;

pub trait TokenSource: Send + Sync {
    /// A token to use now (cached while valid).
    fn token(&self) -> TokenFuture<'_>;
    /// Tokens of the same credentials for another mailbox: a service
    /// account's for another subject of its domain. None: these
    /// credentials are one user's, and their token is the one to send.
    fn for_subject<'a>(&'a self, _subject: &'a str) -> SubjectFuture<'a> {
        Box::pin(async { None })
    }
    /// The server refused `stale` (401): a fresh token. A source that cannot
    /// refresh returns the same token, and the second 401 becomes an error.
    fn refresh(&self, stale: &Secret) -> TokenFuture<'_>;
}

/// One fixed token (the simulator's, or `GMAILSCRIPT_TOKEN`).
pub struct FixedToken(Secret);

impl FixedToken {
    pub fn new(token: impl Into<String>) -> FixedToken {
        FixedToken(Secret::new(token))
    }
}

impl TokenSource for FixedToken {
    fn token(&self) -> TokenFuture<'_> {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }
    fn refresh(&self, _stale: &Secret) -> TokenFuture<'_> {
        self.token()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("ya29.very-secret");
        assert_eq!(format!("{s:?} {s}"), "[redacted] [redacted]");
        assert_eq!(s.expose(), "ya29.very-secret");
    }
}
