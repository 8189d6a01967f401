//! A user's own Google account: the installed-app login (loopback redirect;
//! Google retired the copy-paste flow) and, on every run, the access token
//! from the cached refresh token. yup-oauth2 does the OAuth; this file
//! decides what the user sees.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use yup_oauth2::authenticator::DefaultAuthenticator;
use yup_oauth2::authenticator_delegate::InstalledFlowDelegate;
use yup_oauth2::error::AuthErrorCode;
use yup_oauth2::{ApplicationSecret, InstalledFlowAuthenticator, InstalledFlowReturnMethod};

use super::cache::{login_hint, AccountStore};
use super::{AuthError, Secret, TokenFuture, TokenSource};

/// What to download when the client secret file is not the right one.
pub(crate) const GET_DESKTOP_CLIENT: &str =
    "Create an OAuth client ID of type Desktop app and download its JSON \
(Google Cloud console > APIs & Services > Credentials)";

/// How long a login waits for the browser to come back.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(600);
/// Any one exchange with the token endpoint.
pub(super) const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Read the client secret file Google's console downloads; only the
/// "installed" (Desktop app) kind can do a loopback login.
pub(crate) fn read_client_secret(path: &Path) -> Result<ApplicationSecret, AuthError> {
    let shown = path.display();
    let bytes = std::fs::read(path)
        .map_err(|e| AuthError::new(format!("cannot read the client secret file {shown}: {e}")))?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        AuthError::new(format!(
            "{shown} is not a client secret file (not JSON: {e}). {GET_DESKTOP_CLIENT}"
        ))
    })?;
    if v["type"] == "service_account" {
        return Err(AuthError::new(format!(
            "{shown} is a service account key, not a client secret: use gmailscript auth service-account --key {shown} --subject USER"
        )));
    }
    match (v.get("installed"), v.get("web")) {
        (Some(installed), _) => serde_json::from_value(installed.clone()).map_err(|e| {
            AuthError::new(format!(
                "{shown} is a damaged client secret file ({e}). {GET_DESKTOP_CLIENT}"
            ))
        }),
        (None, Some(_)) => Err(AuthError::new(format!(
            "{shown} is the client secret of a Web application client, which cannot receive a login \
             on this computer. {GET_DESKTOP_CLIENT}"
        ))),
        (None, None) => Err(AuthError::new(format!(
            "{shown} is not a client secret file (no \"installed\" section). {GET_DESKTOP_CLIENT}"
        ))),
    }
}

/// Shows the login URL on stderr and, unless told not to, opens a browser.
struct Browser {
    open: bool,
}

impl InstalledFlowDelegate for Browser {
    fn present_user_url<'a>(
        &'a self,
        url: &'a str,
        _need_code: bool,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async move {
            eprintln!(
                "Open this address in a browser to let gmailscript use your Gmail:\n\n  {url}\n\n\
                 Waiting for the browser to come back to this computer (Ctrl-C to give up)..."
            );
            if self.open {
                open_browser(url);
            }
            Ok(String::new())
        })
    }
}

/// Best effort: the URL is printed anyway, and a machine without a desktop
/// has neither command.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let spawned = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if let Ok(mut child) = spawned {
        // Reap it, so it does not linger as a zombie while we wait.
        std::thread::spawn(move || child.wait());
    }
}

/// The installed-app login: the browser consents, Google redirects to a
/// loopback port yup-oauth2 listens on, and the code becomes tokens, saved
/// in `tokens` (a new file, 0600). Returns the access token.
pub(crate) async fn login(
    secret: ApplicationSecret,
    scopes: &[String],
    tokens: &Path,
    open_browser: bool,
) -> Result<Secret, AuthError> {
    let auth = InstalledFlowAuthenticator::builder(secret, InstalledFlowReturnMethod::HTTPRedirect)
        .persist_tokens_to_disk(tokens)
        .flow_delegate(Box::new(Browser { open: open_browser }))
        .with_timeout(TOKEN_TIMEOUT)
        .build()
        .await
        .map_err(|e| AuthError::new(format!("cannot start the login: {e}")))?;
    let token = tokio::time::timeout(LOGIN_TIMEOUT, auth.token(scopes))
        .await
        .map_err(|_| {
            AuthError::new(
                "no answer from the browser within 10 minutes (declining the consent also ends here); run the login again"
                    ,
            )
        })?
        .map_err(|e| match &e {
            yup_oauth2::Error::AuthError(a) if a.error == AuthErrorCode::InvalidClient => {
                AuthError::new(format!(
                    "Google does not know this OAuth client ({a}); it may have been deleted. {GET_DESKTOP_CLIENT}"
                ))
            }
            _ => AuthError::new(format!("login failed: {}", describe(&e))),
        })?;
    token
        .token()
        .map(Secret::new)
        .ok_or_else(|| AuthError::new("login failed: the token endpoint sent no access token"))
}

/// What went wrong talking to a token endpoint, in one line and without
/// any token.
pub(super) fn describe(e: &yup_oauth2::Error) -> String {
    use yup_oauth2::Error as E;
    match e {
        E::AuthError(a) => format!("the token endpoint refused: {a}"),
        E::HttpError(_) | E::HttpClientError(_) => {
            format!("cannot reach the token endpoint: {e}")
        }
        E::StorageError(_) => format!("cannot save the tokens: {e}"),
        _ => e.to_string(),
    }
}

/// An error of yup-oauth2's as ours: one that never reached an answer
/// from the token endpoint is transient (a network blip), the rest refusals.
pub(super) fn from_yup(message: String, e: &yup_oauth2::Error) -> AuthError {
    use yup_oauth2::Error as E;
    match e {
        E::HttpError(_) | E::HttpClientError(_) => AuthError::transient(message),
        _ => AuthError::new(message),
    }
}

/// Marks the refusal of [`NoLogin`], so it is not mistaken for a user's.
const NEEDS_LOGIN: &str = "gmailscript: a new login is needed";

/// During a run nobody is at the browser: when the refresh token no longer
/// works, yup-oauth2 falls back to a new login, and this refuses it.
struct NoLogin;

impl InstalledFlowDelegate for NoLogin {
    fn present_user_url<'a>(
        &'a self,
        _url: &'a str,
        _need_code: bool,
    ) -> Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>> {
        Box::pin(async { Err(NEEDS_LOGIN.to_string()) })
    }
}

/// Access tokens for a logged-in account, from its cached refresh token.
pub(crate) struct InstalledSource {
    account: String,
    auth: DefaultAuthenticator,
    scopes: Vec<String>,
    token_uri: String,
}

impl InstalledSource {
    /// Check the account is logged in and open its token cache; nothing is
    /// sent yet.
    pub(crate) async fn open(
        store: &AccountStore,
        account: &str,
        client_secret: &Path,
        scopes: &[String],
    ) -> Result<InstalledSource, AuthError> {
        if !client_secret.exists() {
            return Err(AuthError::new(format!(
                "account {account}: its client secret file {} is gone (it is needed to renew tokens); \
                 {} --client-secret FILE",
                client_secret.display(),
                login_hint(account)
            )));
        }
        let secret = read_client_secret(client_secret)
            .map_err(|e| AuthError::new(format!("account {account}: {e}")))?;
        let has_refresh = store
            .cached_token(account)?
            .is_some_and(|t| t.refresh_token.is_some());
        if !has_refresh {
            return Err(AuthError::new(format!(
                "account {account} is not logged in; {}",
                login_hint(account)
            )));
        }
        store.tighten(account)?;
        let token_uri = secret.token_uri.clone();
        let auth =
            InstalledFlowAuthenticator::builder(secret, InstalledFlowReturnMethod::Interactive)
                .persist_tokens_to_disk(store.tokens_path(account)?)
                .flow_delegate(Box::new(NoLogin))
                .with_timeout(TOKEN_TIMEOUT)
                .build()
                .await
                .map_err(|e| {
                    AuthError::new(format!(
                        "account {account}: cannot open its token cache ({e}); {}",
                        login_hint(account)
                    ))
                })?;
        Ok(InstalledSource {
            account: account.to_string(),
            auth,
            scopes: scopes.to_vec(),
            token_uri,
        })
    }

    async fn finish(
        &self,
        got: Result<yup_oauth2::AccessToken, yup_oauth2::Error>,
    ) -> Result<Secret, AuthError> {
        let account = &self.account;
        match got {
            Ok(t) => t.token().map(Secret::new).ok_or_else(|| {
                AuthError::new(format!(
                    "account {account}: the token endpoint sent no access token"
                ))
            }),
            Err(yup_oauth2::Error::UserError(m)) if m == NEEDS_LOGIN => {
                Err(self.refresh_refused().await)
            }
            Err(e) => Err(from_yup(format!("account {account}: {}", describe(&e)), &e)),
        }
    }

    /// yup-oauth2 does not say why a refresh failed (it goes on to a new
    /// login, which [`NoLogin`] refuses). A token endpoint that cannot be
    /// reached is a network problem; one that answers refused the refresh
    /// token (`invalid_grant`: revoked, expired, password changed).
    async fn refresh_refused(&self) -> AuthError {
        let account = &self.account;
        match reachable(&self.token_uri).await {
            Err(why) => AuthError::transient(format!(
                "account {account}: cannot renew the access token: {why}; check the network and run again \
                 (the saved login is kept)"
            )),
            Ok(()) => AuthError::new(format!(
                "account {account}: Google no longer accepts the saved login (revoked, expired, or the \
                 password changed); {}",
                login_hint(account)
            )),
        }
    }
}

impl TokenSource for InstalledSource {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move { self.finish(self.auth.token(&self.scopes).await).await })
    }

    fn refresh(&self, _stale: &Secret) -> TokenFuture<'_> {
        Box::pin(async move {
            self.finish(self.auth.force_refreshed_token(&self.scopes).await)
                .await
        })
    }
}

/// Whether anything listens at the URL's host and port.
async fn reachable(uri: &str) -> Result<(), String> {
    let url = url::Url::parse(uri).map_err(|_| format!("bad token endpoint {uri:?}"))?;
    let host = url.host_str().unwrap_or("").to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    match tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("{host}:{port} cannot be reached ({e})")),
        Err(_) => Err(format!("{host}:{port} does not answer")),
    }
}

/// Tell Google to forget a refresh token (logout). The revoke endpoint sits
/// beside the token endpoint (`.../token` -> `.../revoke`).
pub(crate) async fn revoke(token_uri: &str, token: &Secret) -> Result<(), String> {
    let url = match token_uri.rsplit_once('/') {
        Some((base, "token")) => format!("{base}/revoke"),
        _ => return Err(format!("no revoke endpoint known beside {token_uri}")),
    };
    let answer = reqwest::Client::new()
        .post(&url)
        .timeout(TOKEN_TIMEOUT)
        .form(&[("token", token.expose())])
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    match answer.status().as_u16() {
        200 => Ok(()),
        // Already revoked or expired: nothing left to revoke.
        400 => Ok(()),
        s => Err(format!("{url} answered {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_file(json: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client_secret.json");
        std::fs::write(&path, json).unwrap();
        (dir, path)
    }

    #[test]
    fn client_secret_kinds() {
        let (_d, p) = secret_file(
            r#"{"installed":{"client_id":"id","client_secret":"s","auth_uri":"http://127.0.0.1:1/o/oauth2/auth",
                "token_uri":"http://127.0.0.1:1/token","redirect_uris":["http://localhost"]}}"#,
        );
        assert_eq!(read_client_secret(&p).unwrap().client_id, "id");

        let (_d, p) = secret_file(
            r#"{"web":{"client_id":"id","client_secret":"s","auth_uri":"a","token_uri":"t","redirect_uris":[]}}"#,
        );
        let e = read_client_secret(&p).unwrap_err().message;
        assert!(
            e.contains("Web application") && e.contains("Desktop app"),
            "{e}"
        );

        let (_d, p) = secret_file("{oops");
        let e = read_client_secret(&p).unwrap_err().message;
        assert!(e.contains("not JSON") && e.contains("Desktop app"), "{e}");

        let (_d, p) = secret_file(r#"{"installed":{"client_id":"id"}}"#);
        let e = read_client_secret(&p).unwrap_err().message;
        assert!(e.contains("damaged") && e.contains("Desktop app"), "{e}");

        let (_d, p) = secret_file(r#"{"type":"service_account","private_key":"k"}"#);
        let e = read_client_secret(&p).unwrap_err().message;
        assert!(e.contains("auth service-account"), "{e}");

        let e = read_client_secret(Path::new("/nonexistent/cs.json"))
            .unwrap_err()
            .message;
        assert!(e.contains("cannot read"), "{e}");
    }
}
