//! A service account with domain-wide delegation: it signs a JWT naming the
//! user it acts for (`sub`) and trades it for that user's access token.
//! Tokens stay in memory: one is minted per run (and per subject, since
//! `--user` may change it), so nothing of it is written to disk.

use std::path::Path;

use yup_oauth2::authenticator::DefaultAuthenticator;
use yup_oauth2::error::AuthErrorCode;
use yup_oauth2::{ServiceAccountAuthenticator, ServiceAccountKey};

use super::oauth::{describe, TOKEN_TIMEOUT};
use super::{scope_name, AuthError, Secret, TokenFuture, TokenSource};

const GET_KEY: &str =
    "In the Google Cloud console: IAM & Admin > Service accounts > (the account) > Keys > \
Add key > JSON";

/// Why a service account needs a subject: the usual cause of
/// `400 Precondition check failed`.
pub(crate) const NO_SUBJECT: &str =
    "a service account has no mailbox of its own and must act for a user of \
the domain (domain-wide delegation); without one every Gmail call answers `400 Precondition check \
failed` (failedPrecondition), the most common cause of that error";

/// Read a service account key file (the JSON the Cloud console downloads).
pub(crate) fn read_key(path: &Path) -> Result<ServiceAccountKey, AuthError> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| AuthError::new(format!("cannot read the key file {shown}: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        AuthError::new(format!(
            "{shown} is not a service account key (not JSON: {e}). {GET_KEY}"
        ))
    })?;
    if v.get("installed").is_some() || v.get("web").is_some() {
        return Err(AuthError::new(format!(
            "{shown} is an OAuth client secret, not a service account key: log in with it instead: \
             gmailscript auth login --client-secret {shown}"
        )));
    }
    if v["type"] != "service_account" {
        return Err(AuthError::new(format!(
            "{shown} is not a service account key (its \"type\" is not \"service_account\"). {GET_KEY}"
        )));
    }
    serde_json::from_value(v).map_err(|e| {
        AuthError::new(format!(
            "{shown} is a damaged service account key ({e}). {GET_KEY}"
        ))
    })
}

/// Access tokens for `subject`, signed with a service account's key.
pub(crate) struct ServiceSource {
    account: String,
    auth: DefaultAuthenticator,
    scopes: Vec<String>,
    subject: String,
    client_id: String,
    key: std::path::PathBuf,
}

impl ServiceSource {
    /// Refuses a missing subject before anything is sent; reads the key.
    pub(crate) async fn open(
        account: &str,
        key: &Path,
        subject: Option<&str>,
        scopes: &[String],
    ) -> Result<ServiceSource, AuthError> {
        let Some(subject) = subject.filter(|s| !s.is_empty()) else {
            return Err(AuthError::new(format!(
                "account {account}: no user to act for: {NO_SUBJECT}. Name the user with --user EMAIL, \
                 or save one: gmailscript auth service-account --key FILE --subject USER --account {account}"
            )));
        };
        let key_path = key.to_path_buf();
        let key = read_key(key).map_err(|e| AuthError::new(format!("account {account}: {e}")))?;
        let client_id = key.client_id.clone().unwrap_or_default();
        let auth = ServiceAccountAuthenticator::builder(key)
            .subject(subject)
            .with_timeout(TOKEN_TIMEOUT)
            .build()
            .await
            .map_err(|e| {
                AuthError::new(format!(
                    "account {account}: the key's private key cannot be used ({e}). {GET_KEY}"
                ))
            })?;
        Ok(ServiceSource {
            account: account.to_string(),
            auth,
            scopes: scopes.to_vec(),
            subject: subject.to_string(),
            client_id,
            key: key_path,
        })
    }

    fn finish(
        &self,
        got: Result<yup_oauth2::AccessToken, yup_oauth2::Error>,
    ) -> Result<Secret, AuthError> {
        let (account, subject) = (&self.account, &self.subject);
        let why = match got {
            Ok(t) => {
                return t.token().map(Secret::new).ok_or_else(|| {
                    AuthError::new(format!(
                        "account {account}: the token endpoint sent no access token"
                    ))
                })
            }
            Err(yup_oauth2::Error::AuthError(a)) => match a.error {
                AuthErrorCode::UnauthorizedClient => format!(
                    "Google will not let the service account act for {subject} ({a}): domain-wide \
                     delegation is not granted to client ID {} for these scopes. In the Admin console \
                     (Security > Access and data control > API controls > Manage Domain Wide \
                     Delegation) add that client ID with the scopes {}",
                    self.client_id,
                    self.scopes.join(",")
                ),
                AuthErrorCode::InvalidGrant
                    if a
                        .error_description
                        .as_deref()
                        .is_some_and(|d| d.contains("Invalid email")) =>
                {
                    format!("{subject} is not a user Google knows in the domain ({a})")
                }
                AuthErrorCode::InvalidGrant => format!(
                    "Google refused the service account's signed request ({a}): check that the key \
                     is still active (Cloud console > Service accounts > Keys) and the computer's clock"
                ),
                AuthErrorCode::InvalidScope => format!(
                    "Google refused the scopes {} ({a})",
                    self.scopes
                        .iter()
                        .map(|s| scope_name(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => format!("the token endpoint refused: {a}"),
            },
            Err(e) => return Err(super::oauth::from_yup(format!("account {account}: {}", describe(&e)), &e)),
        };
        Err(AuthError::new(format!("account {account}: {why}")))
    }
}

impl TokenSource for ServiceSource {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move { self.finish(self.auth.token(&self.scopes).await) })
    }

    /// Service account tokens are not refreshed but minted anew.
    fn refresh(&self, _stale: &Secret) -> TokenFuture<'_> {
        Box::pin(async move { self.finish(self.auth.force_refreshed_token(&self.scopes).await) })
    }

    /// The same key and scopes, acting for `subject`.
    fn for_subject<'a>(&'a self, subject: &'a str) -> super::SubjectFuture<'a> {
        Box::pin(async move {
            let s =
                ServiceSource::open(&self.account, &self.key, Some(subject), &self.scopes).await;
            Some(s.map(|s| std::sync::Arc::new(s) as std::sync::Arc<dyn TokenSource>))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.json");
        std::fs::write(&path, json).unwrap();
        (dir, path)
    }

    #[test]
    fn key_file_kinds() {
        let (_d, p) = file(r#"{"installed":{"client_id":"x"}}"#);
        assert!(read_key(&p).unwrap_err().message.contains("auth login"));
        let (_d, p) = file("nope");
        assert!(read_key(&p).unwrap_err().message.contains("Add key > JSON"));
        let (_d, p) = file(r#"{"type":"service_account","client_email":"a@b"}"#);
        assert!(read_key(&p).unwrap_err().message.contains("damaged"));
        let (_d, p) = file(r#"{"type":"authorized_user"}"#);
        assert!(read_key(&p)
            .unwrap_err()
            .message
            .contains("not a service account key"));
    }

    #[tokio::test]
    async fn no_subject_is_refused_before_anything_is_read_or_sent() {
        for subject in [None, Some("")] {
            let e = ServiceSource::open(
                "corp",
                Path::new("/nonexistent/key.json"),
                subject,
                &[super::super::SCOPE_READONLY.to_string()],
            )
            .await
            .err()
            .unwrap()
            .message;
            assert!(
                e.contains("400 Precondition check failed") && e.contains("--user EMAIL"),
                "{e}"
            );
        }
    }
}
