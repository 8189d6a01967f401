//! The Admin SDK Directory's users.list, as a domain run uses it: the
//! domain's users, paged (500 a page), with the fields a run needs.

use std::collections::HashSet;

use serde_json::Value;

use super::backoff::Backoff;
use super::request::segment;
use super::{ApiError, Client, ErrorClass};

/// Google's Directory host; a simulator serves the same paths at its base.
pub(crate) const DIRECTORY_BASE_URL: &str = "https://admin.googleapis.com";
/// The scope users.list needs (read-only).
pub(crate) const SCOPE_DIRECTORY: &str =
    "https://www.googleapis.com/auth/admin.directory.user.readonly";

/// Most pages read (500 users each): 5,000,000 users, far more than a
/// domain has; a server that pages for ever is stopped here.
const MAX_PAGES: usize = 10_000;

/// One user of the directory.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DirUser {
    pub(crate) email: String,
    pub(crate) suspended: bool,
    /// false: Google has no mailbox for them (no licence, or not yet made).
    mailbox: bool,
    org_unit: String,
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserQuery {
    /// A Directory query (`orgUnitPath=/Sales`, `email:sales*`).
    pub(crate) query: Option<String>,
}

/// Every user the directory lists for the administrator behind `client`
/// (a client of the Directory's base URL), in its order; transient errors
/// retried as `backoff` says. Each address is checked, and each only once.
pub(crate) async fn list_users(
    client: &Client,
    q: &UserQuery,
    backoff: &Backoff,
) -> Result<Vec<DirUser>, ApiError> {
    let mut users = Vec::new();
    let mut seen = HashSet::new();
    let mut tokens_seen = HashSet::new();
    let mut page: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = format!(
            "/admin/directory/v1/users?customer=my_customer&maxResults=500&projection=basic\
             &fields={}",
            segment("users(primaryEmail,suspended,isMailboxSetup,orgUnitPath),nextPageToken")
        );
        if let Some(query) = &q.query {
            url.push_str(&format!("&query={}", segment(query)));
        }
        if let Some(t) = &page {
            url.push_str(&format!("&pageToken={}", segment(t)));
        }
        let v = get_retrying(client, &url, backoff).await?;
        let list = match v.get("users") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) => a.as_slice(),
            Some(_) => return Err(ApiError::malformed("users.list: `users` is not a list")),
        };
        for u in list {
            let Some(email) = u["primaryEmail"].as_str() else {
                return Err(ApiError::malformed(
                    "users.list: a user without primaryEmail",
                ));
            };
            let email = email.trim().to_lowercase();
            if !email.contains('@') || email.len() > 254 {
                return Err(ApiError::malformed(format!(
                    "users.list: {:?} is not an address",
                    email.chars().take(80).collect::<String>()
                )));
            }
            if !seen.insert(email.clone()) {
                continue;
            }
            users.push(DirUser {
                email,
                suspended: u["suspended"].as_bool().unwrap_or(false),
                mailbox: u["isMailboxSetup"].as_bool().unwrap_or(true),
                org_unit: u["orgUnitPath"].as_str().unwrap_or("/").to_string(),
            });
        }
        match v["nextPageToken"].as_str().filter(|t| !t.is_empty()) {
            None => return Ok(users),
            Some(t) => {
                if !tokens_seen.insert(t.to_string()) {
                    return Err(ApiError::malformed(
                        "users.list: a page token came back twice (the listing would never end)",
                    ));
                }
                page = Some(t.to_string());
            }
        }
    }
    Err(ApiError::malformed(format!(
        "users.list: more than {MAX_PAGES} pages; stopped"
    )))
}

async fn get_retrying(client: &Client, url: &str, backoff: &Backoff) -> Result<Value, ApiError> {
    let mut retry = 0;
    loop {
        match client.get_json_at(url).await {
            Err(e) if e.is_retryable_by_default() => {
                retry += 1;
                match backoff.delay(retry, e.retry_after) {
                    Some(d) => client.wait_to_retry(d, &e).await?,
                    None => return Err(e),
                }
            }
            Err(mut e) if e.class == ErrorClass::Forbidden || e.status == 403 => {
                e.diagnosis = Some(
                    "the Directory refused to list users: the account's subject must be an \
                     administrator of the domain, and domain-wide delegation must grant the \
                     scope https://www.googleapis.com/auth/admin.directory.user.readonly \
                     (docs/accounts.md)"
                        .into(),
                );
                return Err(e);
            }
            other => return other,
        }
    }
}
