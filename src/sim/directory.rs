//! The Admin SDK Directory API's user calls, as a domain run uses them:
//! `GET /admin/directory/v1/users` (users.list) and
//! `GET /admin/directory/v1/users/{userKey}` (users.get).
//!
//! Every user the simulator serves is in the directory: Gmail users, users
//! without Gmail (`isMailboxSetup: false`) and suspended users
//! (`suspended: true`). The default user (index 0) is the only
//! administrator. Org units come from a user's index: 0 is in `/`, then
//! `/Sales`, `/Engineering`, `/Support` in turn (user1 in /Sales, user2 in
//! /Engineering, user3 in /Support, user4 in /Sales ...).
//!
//! Only an administrator's token with a directory scope may call; a
//! service account without a subject or any other user gets 403 "Not
//! Authorized to access this resource/api". The Directory has its own quota
//! on Google, not Gmail's: these calls spend no Gmail units, and faults and
//! outages do not strike them.

use serde_json::{json, Value};

use super::errors::{self, ApiReply};
use super::fields;
use super::stats::CallEnd;
use super::{Sim, User};

/// The customer id `my_customer` stands for.
const CUSTOMER_ID: &str = "C0sim0000";

/// Org units by a user's index (index 0, the administrator, is in `/`).
const ORG_UNITS: [&str; 3] = ["/Sales", "/Engineering", "/Support"];

const PREFIX: &str = "/admin/directory/v1/";

use super::api::SYSTEM_PARAMS;

const LIST_PARAMS: &[&str] = &[
    "customFieldMask",
    "customer",
    "domain",
    "event",
    "maxResults",
    "orderBy",
    "pageToken",
    "projection",
    "query",
    "showDeleted",
    "sortOrder",
    "viewType",
];

const GET_PARAMS: &[&str] = &["customFieldMask", "projection", "viewType"];

pub(crate) fn is_directory(path: &str) -> bool {
    path.starts_with(PREFIX)
}

/// A user's org unit.
fn org_unit(index: u64) -> &'static str {
    match index {
        0 => "/",
        i => ORG_UNITS[((i - 1) % ORG_UNITS.len() as u64) as usize],
    }
}

/// The directory's resource for `u`, in Google's shape (the fields
/// `projection=basic` gives that a domain run can use).
fn user_resource(sim: &Sim, u: &User) -> Value {
    let local = u.email.split('@').next().unwrap_or("");
    let domain = u.email.split('@').nth(1).unwrap_or("");
    let cap = |s: &str| {
        let mut c = s.chars();
        c.next()
            .map(|f| f.to_uppercase().chain(c).collect::<String>())
            .unwrap_or_default()
    };
    let given = cap(local);
    let family = cap(domain.split('.').next().unwrap_or(""));
    // Dates from the simulator's calendar, never the real one.
    let stamp = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
            .unwrap_or_default()
    };
    let start = sim.clock.start_ms();
    let index = i64::try_from(u.index).unwrap_or(i64::MAX);
    let created = start - 2 * 365 * 86_400_000 + index.saturating_mul(60_000);
    let mut v = json!({
        "kind": "admin#directory#user",
        "id": format!("1{:020}", u.index + 1),
        "etag": format!("\"sim-{:x}\"", u.index),
        "primaryEmail": u.email,
        "name": {
            "givenName": given,
            "familyName": family,
            "fullName": format!("{given} {family}"),
        },
        "isAdmin": u.index == 0,
        "isDelegatedAdmin": false,
        "lastLoginTime": stamp(if u.suspended { created } else { start - 86_400_000 }),
        "creationTime": stamp(created),
        "agreedToTerms": true,
        "suspended": u.suspended,
        "archived": false,
        "changePasswordAtNextLogin": false,
        "ipWhitelisted": false,
        "emails": [{ "address": u.email, "primary": true }],
        "customerId": CUSTOMER_ID,
        "orgUnitPath": org_unit(u.index),
        "isMailboxSetup": u.gmail,
        "isEnrolledIn2Sv": false,
        "isEnforcedIn2Sv": false,
        "includeInGlobalAddressList": true,
    });
    if u.suspended {
        v["suspensionReason"] = json!("ADMIN");
    }
    v
}

/// One query term of `users.list` (Google's "Search for users" syntax, the
/// part a domain run uses).
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Suspended(bool),
    Admin(bool),
    /// `orgUnitPath=/Sales` matches /Sales and the units below it.
    OrgUnit(String),
    /// `email:jo*` (prefix) or `email=jo@x` (exact).
    EmailPrefix(String),
    Email(String),
}

impl Term {
    fn matches(&self, u: &User) -> bool {
        let email = u.email.to_lowercase();
        match self {
            Term::Suspended(b) => u.suspended == *b,
            Term::Admin(b) => (u.index == 0) == *b,
            Term::OrgUnit(p) => {
                let ou = org_unit(u.index).to_lowercase();
                let p = p.trim_end_matches('/').to_lowercase();
                p.is_empty() || ou == p || ou.starts_with(&format!("{p}/"))
            }
            Term::EmailPrefix(p) => email.starts_with(p),
            Term::Email(e) => email == *e,
        }
    }
}

/// Parse `query`: terms separated by spaces, each `field=value` or
/// `field:value`; a value may be quoted with '...' or "..." (spaces inside).
/// None when a term is not one the simulator knows.
fn parse_query(q: &str) -> Option<Vec<Term>> {
    let mut terms = Vec::new();
    let mut rest = q.trim();
    while !rest.is_empty() {
        let op_at = rest.find(['=', ':'])?;
        let field = rest[..op_at].trim();
        let op = &rest[op_at..op_at + 1];
        let after = rest[op_at + 1..].trim_start();
        let (value, next) = match after.chars().next() {
            Some(quote @ ('\'' | '"')) => {
                let close = after[1..].find(quote)? + 1;
                (&after[1..close], &after[close + 1..])
            }
            _ => {
                let end = after.find(' ').unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        let flag = |v: &str| match v.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        };
        let term = match (field.to_ascii_lowercase().as_str(), op) {
            ("issuspended", "=") => Term::Suspended(flag(value)?),
            ("isadmin", "=") => Term::Admin(flag(value)?),
            ("orgunitpath", "=") if value.starts_with('/') => Term::OrgUnit(value.to_string()),
            ("email", ":") => match value.strip_suffix('*') {
                Some(p) => Term::EmailPrefix(p.to_lowercase()),
                // `email:jo` matches addresses starting with "jo" too.
                None => Term::EmailPrefix(value.to_lowercase()),
            },
            ("email", "=") => Term::Email(value.to_lowercase()),
            _ => return None,
        };
        terms.push(term);
        rest = next.trim_start();
    }
    Some(terms)
}

/// A page token: the offset of the next user, so a token is good as long
/// as the directory does not change (it never does while the simulator
/// runs).
fn page_token(offset: usize) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("sim-users:{offset}"))
}

fn page_offset(token: &str) -> Option<usize> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    String::from_utf8(raw)
        .ok()?
        .strip_prefix("sim-users:")?
        .parse()
        .ok()
}

/// Answer a Directory call.
pub(crate) fn handle(
    sim: &Sim,
    method: &str,
    target: &str,
    authorization: Option<&str>,
) -> ApiReply {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let segs = super::api::path_segments(path, PREFIX).map_or_else(|| vec![String::new()], |s| s.0);
    let (name, key) = match (method, segs.as_slice()) {
        ("GET", [users]) if users == "users" => ("directory.users.list", None),
        ("GET", [users, key]) if users == "users" && !key.is_empty() => {
            ("directory.users.get", Some(key.clone()))
        }
        _ => {
            sim.stats.call("unknown", "", 404, 0, CallEnd::Served);
            return errors::unknown_method(method, path);
        }
    };
    let params: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let (reply, who) = answer(sim, key.as_deref(), &params, authorization);
    sim.stats.call(name, &who, reply.status, 0, CallEnd::Served);
    reply
}

fn answer(
    sim: &Sim,
    key: Option<&str>,
    params: &[(String, String)],
    authorization: Option<&str>,
) -> (ApiReply, String) {
    let get = |k: &str| param(params, k);
    let own = if key.is_some() {
        GET_PARAMS
    } else {
        LIST_PARAMS
    };
    if let Some((unknown, _)) = params
        .iter()
        .find(|(n, _)| !SYSTEM_PARAMS.contains(&n.as_str()) && !own.contains(&n.as_str()))
    {
        return (errors::unknown_parameter(unknown), String::new());
    }
    let selection = match get("fields").filter(|f| !f.is_empty()) {
        None => None,
        Some(f) => match fields::parse(f, Some(if key.is_some() { "User" } else { "Users" })) {
            Ok(sel) => Some(sel),
            Err(bad) => return (errors::invalid_fields(&bad), String::new()),
        },
    };
    let from_query = get("access_token")
        .or_else(|| get("oauth_token"))
        .map(|t| format!("Bearer {t}"));
    let Some(authorization) = authorization.or(from_query.as_deref()) else {
        return (errors::login_required(), String::new());
    };
    let Some(principal) = sim.auth.principal(Some(authorization)) else {
        return (errors::unauthenticated(), String::new());
    };
    let who = principal.email.clone();
    if !principal.can_read_directory() {
        return (errors::insufficient_scope(), who);
    }
    let admin = !principal.no_mailbox
        && sim
            .user(&principal.email)
            .is_some_and(|u| u.index == 0 && !u.suspended);
    if !admin {
        return (errors::directory_not_authorized(), who);
    }
    let reply = match key {
        Some(key) => get_user(sim, key),
        None => list_users(sim, params),
    };
    let reply = match (selection, reply) {
        (Some(sel), mut r) if r.status < 300 => {
            r.body = r.body.take().map(|b| sel.apply(b));
            r
        }
        (_, r) => r,
    };
    (reply, who)
}

fn get_user(sim: &Sim, key: &str) -> ApiReply {
    let found = sim.user(key).or_else(|| {
        sim.directory
            .iter()
            .find(|u| format!("1{:020}", u.index + 1) == key)
            .cloned()
    });
    match found {
        Some(u) => ApiReply::ok(user_resource(sim, &u)),
        None => errors::directory_error(404, "notFound", "Resource Not Found: userKey"),
    }
}

fn param<'a>(params: &'a [(String, String)], k: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn list_users(sim: &Sim, params: &[(String, String)]) -> ApiReply {
    let get = |k: &str| param(params, k);
    let customer = get("customer").filter(|c| !c.is_empty());
    let domain = get("domain").filter(|d| !d.is_empty());
    if customer.is_none() && domain.is_none() {
        return errors::directory_bad_request();
    }
    if let Some(c) = customer {
        if c != "my_customer" && c != CUSTOMER_ID {
            return errors::directory_not_authorized();
        }
    }
    let domain = domain.map(str::to_lowercase);
    if let Some(d) = &domain {
        let ours = sim
            .directory
            .iter()
            .any(|u| u.email.to_lowercase().ends_with(&format!("@{d}")));
        if !ours {
            return errors::directory_not_authorized();
        }
    }
    let max = match get("maxResults") {
        None => 100,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=500).contains(&n) => n as usize,
            _ => return errors::directory_invalid_input(),
        },
    };
    let descending = match get("sortOrder") {
        None => false,
        Some(s) if s.eq_ignore_ascii_case("ASCENDING") => false,
        Some(s) if s.eq_ignore_ascii_case("DESCENDING") => true,
        Some(_) => return errors::directory_invalid_input(),
    };
    let order = get("orderBy").unwrap_or("email");
    if !["email", "familyName", "givenName"]
        .iter()
        .any(|o| o.eq_ignore_ascii_case(order))
    {
        return errors::directory_invalid_input();
    }
    for (k, allowed) in [
        ("projection", &["basic", "custom", "full"][..]),
        ("viewType", &["admin_view", "domain_public"][..]),
    ] {
        if let Some(v) = get(k) {
            if !allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) {
                return errors::directory_invalid_input();
            }
        }
    }
    let terms = match get("query").filter(|q| !q.trim().is_empty()) {
        None => Vec::new(),
        Some(q) => match parse_query(q) {
            Some(t) => t,
            None => return errors::directory_invalid_input(),
        },
    };
    let offset = match get("pageToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match page_offset(t) {
            Some(o) => o,
            None => return errors::directory_invalid_input(),
        },
    };
    // showDeleted=true lists deleted users, of which there are none.
    let deleted = get("showDeleted").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut matched: Vec<&User> = if deleted {
        Vec::new()
    } else {
        sim.directory
            .iter()
            .map(|u| u.as_ref())
            .filter(|u| {
                domain
                    .as_ref()
                    .is_none_or(|d| u.email.to_lowercase().ends_with(&format!("@{d}")))
            })
            .filter(|u| terms.iter().all(|t| t.matches(u)))
            .collect()
    };
    // The directory is in address order already; names sort as the
    // resource spells them (givenName is the local part, familyName the
    // domain's first label), ties in address order (a stable sort).
    let part = |u: &User, i: usize| {
        let e = u.email.to_lowercase();
        let (local, domain) = e.split_once('@').unwrap_or((&e, ""));
        let family = domain.split('.').next().unwrap_or("");
        if i == 0 { local } else { family }.to_string()
    };
    if order.eq_ignore_ascii_case("givenName") {
        matched.sort_by_cached_key(|u| part(u, 0));
    } else if order.eq_ignore_ascii_case("familyName") {
        matched.sort_by_cached_key(|u| part(u, 1));
    }
    if descending {
        matched.reverse();
    }
    let page: Vec<Value> = matched
        .iter()
        .skip(offset)
        .take(max)
        .map(|u| user_resource(sim, u))
        .collect();
    let next = offset.saturating_add(max);
    let mut body = json!({
        "kind": "admin#directory#users",
        "etag": "\"sim-directory\"",
    });
    // Google leaves `users` out of an empty page.
    if !page.is_empty() {
        body["users"] = Value::Array(page);
    }
    if next < matched.len() {
        body["nextPageToken"] = json!(page_token(next));
    }
    ApiReply::ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_parse_into_terms_or_are_refused() {
        assert_eq!(
            parse_query("isSuspended=false orgUnitPath='/Sales Team'"),
            Some(vec![
                Term::Suspended(false),
                Term::OrgUnit("/Sales Team".into())
            ])
        );
        assert_eq!(
            parse_query("email:user1*"),
            Some(vec![Term::EmailPrefix("user1".into())])
        );
        assert_eq!(parse_query("isSuspended=maybe"), None);
        assert_eq!(parse_query("frobnicate=1"), None);
        assert_eq!(parse_query("orgUnitPath=Sales"), None);
        assert_eq!(parse_query("email:'unclosed"), None);
    }

    #[test]
    fn org_units_go_round_by_index() {
        assert_eq!(org_unit(0), "/");
        assert_eq!(org_unit(1), "/Sales");
        assert_eq!(org_unit(2), "/Engineering");
        assert_eq!(org_unit(3), "/Support");
        assert_eq!(org_unit(4), "/Sales");
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_refused() {
        assert_eq!(page_offset(&page_token(500)), Some(500));
        assert_eq!(page_offset("nonsense!"), None);
    }
}
