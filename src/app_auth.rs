//! `gmailscript auth ...`: log in, add a service account, list accounts,
//! log out; and the token source a run gets for `--account`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::bail;

use crate::auth::cache::{self, Account, AccountStore, Kind, DEFAULT_ACCOUNT};
use crate::auth::oauth::{self, InstalledSource, GET_DESKTOP_CLIENT};
use crate::auth::service::{self, ServiceSource};
use crate::auth::{scope_name, AuthError, FixedToken, Secret, TokenSource};
use crate::cli::{AuthArgs, AuthCommand, LoginArgs, LogoutArgs, ServiceAccountArgs};
use crate::endpoint::{check_token_endpoint, endpoint_url};
use crate::exit::{UsageError, EXIT_OK};
use crate::gmail::client::{ClientConfig, GOOGLE_BASE_URL};
use crate::gmail::request::Request;
use crate::gmail::{ApiError, Client};

impl From<AuthError> for UsageError {
    fn from(e: AuthError) -> UsageError {
        UsageError(e.message)
    }
}

pub async fn auth(args: AuthArgs) -> anyhow::Result<u8> {
    let store = AccountStore::open().map_err(UsageError::from)?;
    match args.command {
        AuthCommand::Login(a) => login(&store, a).await,
        AuthCommand::ServiceAccount(a) => service_account(&store, a).await,
        AuthCommand::Status => status(&store),
        AuthCommand::Logout(a) => logout(&store, a).await,
    }
}

/// The account runs use without `--account`, if it exists.
pub(crate) fn default_account() -> Result<Option<String>, UsageError> {
    let store = AccountStore::open()?;
    Ok(store
        .load(DEFAULT_ACCOUNT)?
        .map(|_| DEFAULT_ACCOUNT.to_string()))
}

/// The token source of a saved account. `user` (`--user`) is the subject a
/// service account acts for, instead of the saved one.
pub(crate) async fn account_tokens(
    name: &str,
    user: Option<&str>,
) -> Result<Arc<dyn TokenSource>, UsageError> {
    let store = AccountStore::open()?;
    let account = store.load(name)?.ok_or_else(|| {
        UsageError(format!(
            "no account named {name} (gmailscript auth status lists the saved ones; \
             gmailscript auth login --account {name} adds one)"
        ))
    })?;
    Ok(match &account.kind {
        Kind::Installed { client_secret } => {
            Arc::new(InstalledSource::open(&store, name, client_secret, &account.scopes).await?)
        }
        Kind::ServiceAccount { key, subject } => {
            let subject = user.filter(|u| *u != "me").or(subject.as_deref());
            Arc::new(ServiceSource::open(name, key, subject, &account.scopes).await?)
        }
    })
}

/// A saved service account, for a `--users` run: its key and the subject
/// it saved (the administrator who lists the domain's users).
pub(crate) struct Delegation {
    name: String,
    key: PathBuf,
    pub(crate) subject: Option<String>,
    scopes: Vec<String>,
}

impl Delegation {
    /// The service account saved as `name`; a user's own login cannot act
    /// for other mailboxes, so it is refused, saying what to do.
    pub(crate) fn open(name: &str) -> Result<Delegation, UsageError> {
        let store = AccountStore::open()?;
        let account = store.load(name)?.ok_or_else(|| {
            UsageError(format!(
                "no account named {name} (gmailscript auth status lists the saved ones)"
            ))
        })?;
        match account.kind {
            Kind::ServiceAccount { key, subject } => Ok(Delegation {
                name: name.to_string(),
                key,
                subject,
                scopes: account.scopes,
            }),
            Kind::Installed { .. } => Err(UsageError(format!(
                "--users acts for each user of a domain, which only a service account with                  domain-wide delegation may do; account {name} is a login of one user. Add one:                  gmailscript auth service-account --key FILE --subject ADMIN --account corp                  (docs/accounts.md)"
            ))),
        }
    }

    /// Tokens acting for `subject`, with the account's scopes, or `scopes`.
    pub(crate) async fn tokens(
        &self,
        subject: &str,
        scopes: Option<&[String]>,
    ) -> Result<Arc<dyn TokenSource>, UsageError> {
        let scopes = scopes.unwrap_or(&self.scopes);
        Ok(Arc::new(
            ServiceSource::open(&self.name, &self.key, Some(subject), scopes).await?,
        ))
    }
}

/// The mailbox's address, from Gmail's profile (which also proves the
/// token works for Gmail).
async fn profile_email(endpoint: Option<&str>, token: &Secret) -> Result<String, ApiError> {
    let base_url = match endpoint {
        Some(url) => endpoint_url(url).map_err(|e| ApiError::network(e.0))?,
        None => GOOGLE_BASE_URL.to_string(),
    };
    let client = Client::new(
        ClientConfig {
            base_url,
            ..ClientConfig::default()
        },
        Arc::new(FixedToken::new(token.expose())),
    )?;
    let v = client.call_json(&Request::profile()).await?;
    Ok(v["emailAddress"].as_str().unwrap_or_default().to_string())
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The client secret to log in with: the one given, else the one this
/// account used before, else `client_secret.json` in the config directory.
fn client_secret_path(
    store: &AccountStore,
    given: Option<PathBuf>,
    previous: Option<&Account>,
) -> Result<PathBuf, UsageError> {
    if let Some(p) = given {
        return Ok(absolute(&p));
    }
    if let Some(Account {
        kind: Kind::Installed { client_secret },
        ..
    }) = previous
    {
        return Ok(client_secret.clone());
    }
    let beside = store.root().join("client_secret.json");
    if beside.is_file() {
        return Ok(beside);
    }
    Err(UsageError(format!(
        "no client secret file: give --client-secret FILE (or save it as {}). {GET_DESKTOP_CLIENT}",
        beside.display()
    )))
}

async fn login(store: &AccountStore, a: LoginArgs) -> anyhow::Result<u8> {
    let name = a.account.as_str();
    cache::check_name(name)?;
    if let Some(url) = &a.endpoint {
        check_token_endpoint(url, &format!("account {name}'s new"))?;
    }
    // A damaged account is being replaced: nothing of it is needed.
    let previous = store.load(name).ok().flatten();
    let secret_path = client_secret_path(store, a.client_secret, previous.as_ref())?;
    let secret = oauth::read_client_secret(&secret_path)?;
    let scopes = vec![a.scope.url().to_string()];
    let dir = store.create_dir(name)?;
    // The new login goes to a file of its own, so a failed one leaves the
    // old login working.
    let fresh = dir.join("tokens.json.new");
    let _ = std::fs::remove_file(&fresh);
    let token = match oauth::login(secret, &scopes, &fresh, !a.no_browser).await {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&fresh);
            if previous.is_none() {
                let _ = store.remove(name);
            }
            bail!(UsageError(e.message));
        }
    };
    cache::set_mode(&fresh, 0o600)?;
    let tokens = store.tokens_path(name)?;
    std::fs::rename(&fresh, &tokens)
        .map_err(|e| UsageError(format!("cannot save {}: {e}", tokens.display())))?;
    let email = profile_email(a.endpoint.as_deref(), &token).await;
    store.save(
        name,
        &Account {
            kind: Kind::Installed {
                client_secret: secret_path,
            },
            scopes,
            email: email.as_ref().ok().cloned(),
        },
    )?;
    let who = match &email {
        Ok(e) => format!("Logged in as {e}"),
        Err(_) => "Logged in".to_string(),
    };
    println!(
        "{who}: account {name} ({}); tokens saved in {} (readable only by you).",
        scope_name(a.scope.url()),
        dir.display()
    );
    if let Err(e) = email {
        eprintln!("gmailscript: but Gmail did not answer with the profile: {e}");
    }
    Ok(EXIT_OK)
}

async fn service_account(store: &AccountStore, a: ServiceAccountArgs) -> anyhow::Result<u8> {
    let name = a.account.as_str();
    cache::check_name(name)?;
    if let Some(url) = &a.endpoint {
        check_token_endpoint(url, &format!("account {name}'s"))?;
    }
    let key_path = absolute(&a.key);
    let scopes = vec![a.scope.url().to_string()];
    if a.subject.as_deref().is_none_or(str::is_empty) {
        bail!(UsageError(format!(
            "--subject USER is needed: {}. Give the user to act for (a run's --user can name another)",
            service::NO_SUBJECT
        )));
    }
    let source = ServiceSource::open(name, &key_path, a.subject.as_deref(), &scopes).await?;
    let key = service::read_key(&key_path)?;
    // One token now: delegation is checked at setup, not on the first run.
    let token = source.token().await?;
    let subject = a.subject.unwrap_or_default();
    let email = profile_email(a.endpoint.as_deref(), &token).await;
    store.save(
        name,
        &Account {
            kind: Kind::ServiceAccount {
                key: key_path,
                subject: Some(subject.clone()),
            },
            scopes,
            email: Some(email.as_ref().unwrap_or(&subject).clone()),
        },
    )?;
    println!(
        "Saved service account {} acting for {subject} as account {name} ({}). \
         Runs use it with --account {name}; --user EMAIL acts for another user of the domain.",
        key.client_email,
        scope_name(a.scope.url()),
    );
    if let Err(e) = email {
        eprintln!("gmailscript: but Gmail did not answer with {subject}'s profile: {e}");
    }
    Ok(EXIT_OK)
}

/// What `auth status` says about an account's token.
fn token_state(store: &AccountStore, name: &str, account: &Account) -> String {
    if matches!(account.kind, Kind::ServiceAccount { .. }) {
        return "new one each run".into();
    }
    match store.cached_token(name) {
        Err(_) => format!("token cache damaged: {}", cache::login_hint(name)),
        Ok(None) => format!("not logged in: {}", cache::login_hint(name)),
        Ok(Some(t)) if t.refresh_token.is_none() => {
            format!("cannot be renewed: {}", cache::login_hint(name))
        }
        Ok(Some(t)) => match t.expires_at {
            Some(at) => {
                let when = chrono::DateTime::from_timestamp(at, 0)
                    .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| at.to_string());
                if at > chrono::Utc::now().timestamp() {
                    format!("expires {when} (renewed as needed)")
                } else {
                    format!("expired {when} (renewed on the next run)")
                }
            }
            None => "no expiry".into(),
        },
    }
}

fn status(store: &AccountStore) -> anyhow::Result<u8> {
    let names = store.names()?;
    if names.is_empty() {
        println!(
            "No accounts in {}.\nLog in with: gmailscript auth login --client-secret FILE \
             (see docs/accounts.md), or try the simulator: gmailscript run SCRIPT --sim",
            store.root().display()
        );
        return Ok(EXIT_OK);
    }
    let mut rows = vec![["", "ACCOUNT", "KIND", "EMAIL", "SCOPES", "TOKEN"].map(String::from)];
    for name in &names {
        let mark = if name == DEFAULT_ACCOUNT { "*" } else { "" };
        rows.push(match store.load(name) {
            Ok(Some(account)) => [
                mark.to_string(),
                name.clone(),
                account.kind.name().to_string(),
                match &account.kind {
                    Kind::ServiceAccount { subject, .. } => subject
                        .as_deref()
                        .map(|s| format!("{s} (subject)"))
                        .unwrap_or_else(|| "(no subject: --user needed)".into()),
                    Kind::Installed { .. } => account.email.clone().unwrap_or_else(|| "?".into()),
                },
                account
                    .scopes
                    .iter()
                    .map(|s| scope_name(s))
                    .collect::<Vec<_>>()
                    .join(","),
                token_state(store, name, &account),
            ],
            Ok(None) => continue,
            Err(e) => [
                mark.to_string(),
                name.clone(),
                "?".into(),
                "".into(),
                "".into(),
                e.message,
            ],
        });
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    // The legend only where a row has the star; else say how runs choose.
    if rows.iter().skip(1).any(|r| r[0] == "*") {
        println!(
            "\n* the default account, used when --account is not given. Saved in {}.",
            store.root().display()
        );
    } else {
        println!(
            "\nNo account is named {DEFAULT_ACCOUNT}: runs need --account NAME (or log in with \
             --account {DEFAULT_ACCOUNT} to have one). Saved in {}.",
            store.root().display()
        );
    }
    Ok(EXIT_OK)
}

async fn logout(store: &AccountStore, a: LogoutArgs) -> anyhow::Result<u8> {
    let name = a.account.as_str();
    cache::check_name(name)?;
    // A damaged account can still be removed.
    let account = store.load(name).ok().flatten();
    let revoked = match &account {
        Some(Account {
            kind: Kind::Installed { client_secret },
            ..
        }) => revoke_login(store, name, client_secret).await,
        _ => None,
    };
    if !store.remove(name)? {
        bail!(UsageError(format!(
            "no account named {name} (gmailscript auth status lists the saved ones)"
        )));
    }
    match (&account, revoked) {
        (
            Some(Account {
                kind: Kind::ServiceAccount { key, .. },
                ..
            }),
            _,
        ) => println!(
            "Removed account {name}. The key file {} is yours and was left alone \
             (delete the key in the Cloud console to disable it).",
            key.display()
        ),
        (_, Some(Err(e))) => {
            println!("Logged out of account {name}: its tokens are deleted.");
            eprintln!(
                "gmailscript: could not revoke the login at Google ({e}); \
                 remove gmailscript's access at https://myaccount.google.com/permissions"
            );
        }
        (_, Some(Ok(()))) => {
            println!("Logged out of account {name}: the login is revoked at Google and its tokens are deleted.")
        }
        (_, None) => println!("Logged out of account {name}: its tokens are deleted."),
    }
    Ok(EXIT_OK)
}

/// Revoke the account's refresh token; None when there is none to revoke.
async fn revoke_login(
    store: &AccountStore,
    name: &str,
    client_secret: &Path,
) -> Option<Result<(), String>> {
    let refresh = store.cached_token(name).ok()??.refresh_token?;
    Some(match oauth::read_client_secret(client_secret) {
        Ok(secret) => oauth::revoke(&secret.token_uri, &refresh).await,
        Err(e) => Err(e.message),
    })
}
