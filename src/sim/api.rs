//! The REST calls under `/gmail/v1/users/{userId}/...`: routing, auth,
//! quota, faults and latency around each call, then the call itself
//! against the user's mailbox. Batch parts come through here too.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::auth::Principal;
use super::errors::{self, ApiReply, PENALTY_SHAPES, RATE_SHAPES};
use super::faults::{self, Fault, Scope};
use super::fields::{self, Selection};
use super::mailbox::{Change, Mailbox, SimMessage};
use super::quota::{Refusal, Refused};
use super::render::{self, Format};
use super::stats::CallEnd;
use super::{search, Sim, User};

/// One inner call: a plain request or a batch part.
pub(crate) struct Call<'a> {
    pub(crate) method: &'a str,
    /// Path and query, e.g. `/gmail/v1/users/me/messages?q=x`.
    pub(crate) target: &'a str,
    pub(crate) authorization: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

/// What a route does; the name is Google's method name (for quota costs).
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Profile,
    ListMessages,
    GetMessage(String),
    GetAttachment(String, String),
    Modify(String),
    BatchModify,
    Trash(String),
    Untrash(String),
    Delete(String),
    ListThreads,
    GetThread(String),
    ListLabels,
    GetLabel(String),
    CreateLabel,
    UpdateLabel(String),
    PatchLabel(String),
    DeleteLabel(String),
    History,
    /// messages.import / messages.insert (see import.rs).
    Import(super::import::Kind),
}

impl Op {
    fn name(&self) -> &'static str {
        match self {
            Op::Profile => "getProfile",
            Op::ListMessages => "messages.list",
            Op::GetMessage(_) => "messages.get",
            Op::GetAttachment(..) => "messages.attachments.get",
            Op::Modify(_) => "messages.modify",
            Op::BatchModify => "messages.batchModify",
            Op::Trash(_) => "messages.trash",
            Op::Untrash(_) => "messages.untrash",
            Op::Delete(_) => "messages.delete",
            Op::ListThreads => "threads.list",
            Op::GetThread(_) => "threads.get",
            Op::ListLabels => "labels.list",
            Op::GetLabel(_) => "labels.get",
            Op::CreateLabel => "labels.create",
            Op::UpdateLabel(_) => "labels.update",
            Op::PatchLabel(_) => "labels.patch",
            Op::DeleteLabel(_) => "labels.delete",
            Op::History => "history.list",
            Op::Import(super::import::Kind::Import) => "messages.import",
            Op::Import(super::import::Kind::Insert) => "messages.insert",
        }
    }

    /// The method's own query parameters (discovery document gmail.v1).
    fn params(&self) -> &'static [&'static str] {
        match self {
            Op::ListMessages | Op::ListThreads => &[
                "includeSpamTrash",
                "labelIds",
                "maxResults",
                "pageToken",
                "q",
            ],
            Op::GetMessage(_) | Op::GetThread(_) => &["format", "metadataHeaders"],
            Op::History => &[
                "historyTypes",
                "labelId",
                "maxResults",
                "pageToken",
                "startHistoryId",
            ],
            Op::Import(super::import::Kind::Import) => &[
                "deleted",
                "internalDateSource",
                "neverMarkSpam",
                "processForCalendar",
            ],
            Op::Import(super::import::Kind::Insert) => &["deleted", "internalDateSource"],
            _ => &[],
        }
    }

    /// The schema of the method's answer, for `fields=`; None when it
    /// answers no body.
    fn response_schema(&self) -> Option<&'static str> {
        Some(match self {
            Op::Profile => "Profile",
            Op::ListMessages => "ListMessagesResponse",
            Op::GetMessage(_) | Op::Modify(_) | Op::Trash(_) | Op::Untrash(_) | Op::Import(_) => {
                "Message"
            }
            Op::GetAttachment(..) => "MessagePartBody",
            Op::BatchModify | Op::Delete(_) => return None,
            Op::ListThreads => "ListThreadsResponse",
            Op::GetThread(_) => "Thread",
            Op::ListLabels => "ListLabelsResponse",
            Op::GetLabel(_) | Op::CreateLabel | Op::UpdateLabel(_) | Op::PatchLabel(_) => "Label",
            Op::DeleteLabel(_) => return None,
            Op::History => "ListHistoryResponse",
        })
    }

    /// Fails for a suspended user: what reads a message or changes
    /// anything. Listing ids, labels, history and the profile still answer,
    /// as administrators found (got-your-back#114, #258: ids listed, every
    /// get refused).
    fn refused_when_suspended(&self) -> bool {
        self.mutates()
            || matches!(
                self,
                Op::GetMessage(_) | Op::GetAttachment(..) | Op::GetThread(_)
            )
    }

    fn mutates(&self) -> bool {
        matches!(
            self,
            Op::Modify(_)
                | Op::BatchModify
                | Op::Trash(_)
                | Op::Untrash(_)
                | Op::Delete(_)
                | Op::CreateLabel
                | Op::UpdateLabel(_)
                | Op::PatchLabel(_)
                | Op::DeleteLabel(_)
                | Op::Import(_)
        )
    }
}

fn route(method: &str, segs: &[String]) -> Option<Op> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let op = match (method, s.as_slice()) {
        ("GET", ["profile"]) => Op::Profile,
        ("GET", ["messages"]) => Op::ListMessages,
        ("POST", ["messages", "batchModify"]) => Op::BatchModify,
        ("POST", ["messages", "import"]) => Op::Import(super::import::Kind::Import),
        ("POST", ["messages"]) => Op::Import(super::import::Kind::Insert),
        ("GET", ["messages", id]) => Op::GetMessage(id.to_string()),
        ("DELETE", ["messages", id]) => Op::Delete(id.to_string()),
        ("GET", ["messages", id, "attachments", a]) => {
            Op::GetAttachment(id.to_string(), a.to_string())
        }
        ("POST", ["messages", id, "modify"]) => Op::Modify(id.to_string()),
        ("POST", ["messages", id, "trash"]) => Op::Trash(id.to_string()),
        ("POST", ["messages", id, "untrash"]) => Op::Untrash(id.to_string()),
        ("GET", ["threads"]) => Op::ListThreads,
        ("GET", ["threads", id]) => Op::GetThread(id.to_string()),
        ("GET", ["labels"]) => Op::ListLabels,
        ("GET", ["labels", id]) => Op::GetLabel(id.to_string()),
        ("POST", ["labels"]) => Op::CreateLabel,
        ("PUT", ["labels", id]) => Op::UpdateLabel(id.to_string()),
        ("PATCH", ["labels", id]) => Op::PatchLabel(id.to_string()),
        ("DELETE", ["labels", id]) => Op::DeleteLabel(id.to_string()),
        ("GET", ["history"]) => Op::History,
        _ => return None,
    };
    Some(op)
}

/// Query parameters, repeated ones kept in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Params {
        Params(
            url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
        )
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    /// The first parameter neither the method nor Google's system
    /// parameters know.
    fn unknown(&self, op: &Op) -> Option<&str> {
        self.0
            .iter()
            .map(|(n, _)| n.as_str())
            .find(|n| !SYSTEM_PARAMS.contains(n) && !op.params().contains(n))
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .collect()
    }
    fn flag(&self, k: &str) -> Result<bool, ApiReply> {
        match self.get(k) {
            None => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => Err(errors::invalid(&format!(
                "Invalid value for {k}: {v:?}. Use true or false."
            ))),
        }
    }
    fn max_results(&self, default: usize) -> Result<usize, ApiReply> {
        match self.get("maxResults") {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (1..=500).contains(&n) => Ok(n as usize),
                Ok(n) if n > 500 => Err(errors::invalid(&format!(
                    "Invalid maxResults: {n}. The maximum is 500."
                ))),
                _ => Err(errors::invalid(&format!(
                    "Invalid value for maxResults: {v:?}. It must be an integer from 1 to 500."
                ))),
            },
        }
    }
}

/// Parameters every Google API method takes (discovery document gmail.v1;
/// the Directory's are the same).
pub(super) const SYSTEM_PARAMS: &[&str] = &[
    "$.xgafv",
    "access_token",
    "alt",
    "callback",
    "fields",
    "key",
    "oauth_token",
    "prettyPrint",
    "quotaUser",
    "uploadType",
    "upload_protocol",
];

/// `X-HTTP-Method-Override`: Google's front end takes a POST carrying this
/// header as the named method. google-api-python-client sends a GET whose
/// URL passes 2 KB this way, its query moved into a form body. Returns the
/// method, target and body to serve, or None when nothing is overridden.
pub(crate) fn method_override(
    method: &str,
    target: &str,
    override_to: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Option<(String, String, Vec<u8>)> {
    let to = override_to?.trim().to_ascii_uppercase();
    if method != "POST" || to.is_empty() {
        return None;
    }
    let form = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded");
    if !(form && (to == "GET" || to == "DELETE")) {
        return Some((to, target.to_string(), body.to_vec()));
    }
    let extra = String::from_utf8_lossy(body);
    let extra = extra.trim();
    let target = match (target.split_once('?'), extra.is_empty()) {
        (_, true) => target.to_string(),
        (Some(_), false) => format!("{target}&{extra}"),
        (None, false) => format!("{target}?{extra}"),
    };
    Some((to, target, Vec::new()))
}

/// Split `target` into decoded path segments after `/gmail/v1/users/`, and
/// the query string.
fn split_target(target: &str) -> Option<(Vec<String>, &str)> {
    path_segments(target, "/gmail/v1/users/")
}

/// The percent-decoded path segments of `target` after `prefix`, and its
/// query string. A path keeps `+` as it is (only a query means a space by
/// it): `users/alice+news@example.com` names alice+news.
pub(crate) fn path_segments<'a>(target: &'a str, prefix: &str) -> Option<(Vec<String>, &'a str)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let rest = path.strip_prefix(prefix)?;
    let segs = rest
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    Some((segs, query))
}

/// Releases a quota concurrency slot however the call ends (a client that
/// hangs up drops the future).
struct InFlight<'a> {
    sim: &'a Sim,
    user: String,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.sim.quota.release(&self.user);
    }
}

/// A call that passed auth, faults and quota, holding its concurrency slot
/// until it is answered.
pub(crate) struct Admitted<'a> {
    slot: InFlight<'a>,
    user: Arc<User>,
    op: Op,
    params: Params,
    units: u64,
    slow: bool,
    service: Duration,
    body: &'a [u8],
    /// `fields=`: the parts of the answer to keep.
    fields: Option<Selection>,
}

/// The first half of a call: either its answer already (an error, a fault,
/// a refusal) or an admission holding a concurrency slot. A batch admits all
/// its parts before running any, so they are in flight together as on the
/// real service.
pub(crate) enum Prepared<'a> {
    Done(ApiReply),
    Admitted(Box<Admitted<'a>>),
}

/// Answer one call, with auth, faults, quota and latency around it.
pub(crate) async fn handle(sim: &Sim, call: Call<'_>) -> ApiReply {
    match prepare(sim, call) {
        Prepared::Done(reply) => reply,
        Prepared::Admitted(a) => finish(sim, *a).await,
    }
}

pub(crate) fn prepare<'a>(sim: &'a Sim, call: Call<'a>) -> Prepared<'a> {
    let path = call.target.split('?').next().unwrap_or("");
    let op = split_target(call.target).and_then(|(segs, query)| {
        let op = segs
            .split_first()
            .and_then(|(_, rest)| route(call.method, rest))?;
        Some((segs, query, op))
    });
    if sim.in_outage() {
        // The service is down: no auth, no quota, nothing carried out.
        let name = op.as_ref().map(|(_, _, op)| op.name()).unwrap_or("unknown");
        sim.stats.call(name, "", 503, 0, CallEnd::Outage);
        return Prepared::Done(errors::server_error(503));
    }
    let Some((segs, query, op)) = op else {
        sim.stats.call("unknown", "", 404, 0, CallEnd::Served);
        return Prepared::Done(errors::unknown_method(call.method, path));
    };
    let name = op.name();
    let params = Params::parse(query);
    let early = |reply: ApiReply| {
        sim.stats.call(name, "", reply.status, 0, CallEnd::Served);
        Prepared::Done(reply)
    };
    // The front end binds the query before anything else: a parameter the
    // method does not have is a 400, not ignored.
    if let Some(unknown) = params.unknown(&op) {
        return early(errors::unknown_parameter(unknown));
    }
    if let Some(alt) = params.get("alt").filter(|a| *a != "json") {
        return early(errors::invalid(&format!(
            "Invalid value for alt: {alt:?}. This method answers only alt=json."
        )));
    }
    let fields = match params.get("fields").filter(|f| !f.is_empty()) {
        None => None,
        Some(f) => match fields::parse(f, op.response_schema()) {
            Ok(sel) => Some(sel),
            Err(bad) => return early(errors::invalid_fields(&bad)),
        },
    };
    // Credentials: the Authorization header, else `access_token` in the
    // query (Google accepts both).
    let from_query = params
        .get("access_token")
        .or_else(|| params.get("oauth_token"))
        .map(|t| format!("Bearer {t}"));
    let authorization = call.authorization.or(from_query.as_deref());
    let Some(authorization) = authorization else {
        return early(errors::login_required());
    };
    let Some(principal) = sim.auth.principal(Some(authorization)) else {
        return early(errors::unauthenticated());
    };
    let email = principal.email.clone();
    let done = |reply: ApiReply, outcome: CallEnd| {
        sim.stats.call(name, &email, reply.status, 0, outcome);
        Prepared::Done(reply)
    };
    let user_id = &segs[0];
    if user_id != "me" && !user_id.eq_ignore_ascii_case(&email) {
        return done(
            errors::forbidden(&format!("Delegation denied for {email}")),
            CallEnd::Served,
        );
    }
    if principal.no_mailbox {
        return done(
            errors::failed_precondition("Precondition check failed."),
            CallEnd::Served,
        );
    }
    let user = match sim.user(&email) {
        Some(u) if u.gmail => u,
        _ => {
            return done(
                errors::failed_precondition("Mail service not enabled"),
                CallEnd::Served,
            )
        }
    };
    if let Some(reply) = scope_refusal(&principal, &op, &params) {
        return done(reply, CallEnd::Served);
    }
    let key = format!("{} {}", call.method, call.target);
    let mut slow = false;
    let fault = sim.faults.decide(Scope::Call, &key);
    match fault {
        Some(Fault::Status(429)) => {
            // Refused before admission; with --charge-refused it costs
            // its units all the same.
            let charged = sim.quota.charge_refused(&email, name);
            let reply = rate_reply(sim, &key, Duration::from_secs(1));
            sim.stats.refused_units(charged);
            sim.stats
                .call(name, &email, reply.status, charged, CallEnd::Injected);
            return Prepared::Done(reply);
        }
        Some(Fault::Status(code)) if !(500..=599).contains(&code) => {
            return done(errors::injected(code), CallEnd::Injected)
        }
        Some(Fault::Slow) => slow = true,
        _ => {}
    }
    let units = match sim.quota.admit(&email, name) {
        Ok(units) => units,
        Err(refused) => {
            let (reply, end) = refusal_reply(sim, &key, refused);
            sim.stats
                .call(name, &email, reply.status, refused.charged, end);
            return Prepared::Done(reply);
        }
    };
    let slot = InFlight { sim, user: email };
    if user.suspended && op.refused_when_suspended() {
        // After admission, as a backend error is: it costs its units.
        let reply = errors::suspended(sim.config.suspended_error);
        sim.stats
            .call(name, &slot.user, reply.status, units, CallEnd::Served);
        return Prepared::Done(reply);
    }
    if let Some(Fault::Status(code)) = fault {
        // A backend error comes after the front end admitted and charged
        // the call (quota is checked before dispatch), so it costs units.
        let reply = errors::injected(code);
        sim.stats
            .call(name, &slot.user, reply.status, units, CallEnd::Injected);
        return Prepared::Done(reply);
    }
    Prepared::Admitted(Box::new(Admitted {
        slot,
        user,
        op,
        params,
        units,
        slow,
        service: service_time(sim, &key),
        body: call.body,
        fields,
    }))
}

/// The answer to a quota refusal, counted in the stats by kind.
fn refusal_reply(sim: &Sim, key: &str, refused: Refused) -> (ApiReply, CallEnd) {
    let started = matches!(refused.why, Refusal::Penalty { started: true, .. });
    sim.stats
        .refusal(refused.why.kind(), refused.charged, started);
    match refused.why {
        Refusal::Concurrency => (errors::too_many_concurrent(), CallEnd::ConcurrencyLimited),
        Refusal::User { retry_after } | Refusal::Second { retry_after } => {
            (rate_reply(sim, key, retry_after), CallEnd::RateLimited)
        }
        Refusal::Penalty { retry_after, .. } => {
            let shape = faults::pick(sim.config.seed ^ 0x7e4a, key, PENALTY_SHAPES);
            let reply = errors::rate_penalty(
                shape,
                &retry_at(retry_after),
                retry_after.as_secs_f64().ceil() as u64,
            );
            (reply, CallEnd::RateLimited)
        }
        Refusal::Daily { .. } => (errors::daily_limit_exceeded(), CallEnd::DailyLimited),
        Refusal::Project { retry_after } => (
            errors::project_rate_limited(
                faults::pick(sim.config.seed ^ 0x9a0e, key, 2) == 1,
                retry_after.as_secs_f64().ceil() as u64,
            ),
            CallEnd::RateLimited,
        ),
    }
}

/// The RFC 3339 time `after` from now. Real wall time, not the simulated
/// calendar: the client reads this stamp against its own clock, and it must
/// agree with Retry-After.
fn retry_at(after: Duration) -> String {
    let at = chrono::Utc::now()
        + chrono::Duration::from_std(after).unwrap_or_else(|_| chrono::Duration::zero());
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The second half: service time, then the call against the mailbox.
pub(crate) async fn finish(sim: &Sim, a: Admitted<'_>) -> ApiReply {
    if a.slow {
        tokio::time::sleep(sim.faults.slow_delay).await;
    }
    if !a.service.is_zero() {
        tokio::time::sleep(a.service).await;
    }
    let lock = sim.mailbox(&a.user);
    let reply = if let Op::Import(kind) = a.op {
        let opts = import_options(kind, &a.params);
        let now = sim.clock.now_ms();
        opts.and_then(|o| {
            let mut mb = lock.write().unwrap();
            super::import::execute(&mut mb, kind, &o, a.body, now)
        })
    } else if a.op.mutates() {
        let mut mb = lock.write().unwrap();
        execute_mut(&mut mb, &a.op, a.body)
    } else {
        let mb = lock.read().unwrap();
        execute(sim, &a.user.email, &mb, &a.op, &a.params)
    };
    let mut reply = reply.unwrap_or_else(|e| e);
    if let Some(sel) = &a.fields {
        if reply.status < 300 {
            reply.body = reply.body.take().map(|b| sel.apply(b));
        }
    }
    sim.stats.call(
        a.op.name(),
        &a.slot.user,
        reply.status,
        a.units,
        CallEnd::Served,
    );
    drop(a.slot);
    reply
}

/// A per-user rate error in one of the real service's shapes, picked
/// deterministically from the seed and the request.
fn rate_reply(sim: &Sim, key: &str, retry_after: Duration) -> ApiReply {
    let shape = RATE_SHAPES[faults::pick(sim.config.seed, key, RATE_SHAPES.len())];
    errors::rate_limited(
        shape,
        &retry_at(retry_after),
        retry_after.as_secs_f64().ceil() as u64,
    )
}

/// latency ± jitter, deterministic per request.
fn service_time(sim: &Sim, key: &str) -> Duration {
    let (base, jitter) = (sim.config.latency, sim.config.jitter);
    if jitter.is_zero() {
        return base;
    }
    let span = jitter.as_micros() as usize * 2 + 1;
    let offset =
        faults::pick(sim.config.seed ^ 0x5157, key, span) as i64 - jitter.as_micros() as i64;
    let micros = (base.as_micros() as i64 + offset).max(0) as u64;
    Duration::from_micros(micros)
}

/// The query parameters of messages.import / insert, checked.
fn import_options(
    kind: super::import::Kind,
    params: &Params,
) -> Result<super::import::Options, ApiReply> {
    let default_header = kind == super::import::Kind::Import;
    let date_header = match params.get("internalDateSource") {
        None => default_header,
        Some("dateHeader") => true,
        Some("receivedTime") => false,
        Some(v) => {
            return Err(errors::invalid(&format!(
            "Invalid value for internalDateSource: {v:?}. Valid values: receivedTime, dateHeader."
        )))
        }
    };
    Ok(super::import::Options {
        date_header,
        never_mark_spam: params.flag("neverMarkSpam")?,
        deleted: params.flag("deleted")?,
    })
}

fn scope_refusal(p: &Principal, op: &Op, params: &Params) -> Option<ApiReply> {
    // Import and insert need only the insert scope (or modify, or full).
    if matches!(op, Op::Import(_)) {
        let ok = p.can_modify() || p.scopes.iter().any(|s| s == super::auth::SCOPE_INSERT);
        return (!ok).then(errors::insufficient_scope);
    }
    if !p.can_read() {
        return Some(errors::insufficient_scope());
    }
    if matches!(op, Op::Delete(_)) && !p.can_delete() {
        return Some(errors::insufficient_scope());
    }
    if op.mutates() && !p.can_modify() {
        return Some(errors::insufficient_scope());
    }
    if p.metadata_only() {
        if params.get("q").is_some() {
            return Some(errors::forbidden(
                "Metadata scope does not support 'q' parameter",
            ));
        }
        if matches!(params.get("format"), Some("full") | Some("raw"))
            || (matches!(op, Op::GetMessage(_) | Op::GetThread(_))
                && params.get("format").is_none())
            || matches!(op, Op::GetAttachment(..))
        {
            return Some(errors::forbidden(&format!(
                "Metadata scope doesn't allow format {}",
                params.get("format").unwrap_or("FULL").to_uppercase()
            )));
        }
    }
    None
}

type Reply = Result<ApiReply, ApiReply>;

/// Gmail ids are hexadecimal; anything else is a 400, not a 404.
fn check_id(id: &str) -> Result<(), ApiReply> {
    if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Err(errors::invalid("Invalid id value"))
    } else {
        Ok(())
    }
}

fn find<'a>(mb: &'a Mailbox, id: &str) -> Result<&'a SimMessage, ApiReply> {
    check_id(id)?;
    mb.messages.get(id).ok_or_else(errors::not_found)
}

fn format_param(params: &Params, default: Format) -> Result<Format, ApiReply> {
    match params.get("format") {
        None => Ok(default),
        Some(f) => Format::parse(&f.to_lowercase()).ok_or_else(|| {
            errors::invalid(&format!(
                "Invalid value at 'format' ({f:?}). Valid values: minimal, metadata, full, raw."
            ))
        }),
    }
}

fn execute(sim: &Sim, email: &str, mb: &Mailbox, op: &Op, params: &Params) -> Reply {
    let hid = |h: u64| json!(h.to_string());
    match op {
        Op::Profile => {
            let threads: HashSet<&str> =
                mb.messages.values().map(|m| m.thread_id.as_str()).collect();
            Ok(ApiReply::ok(json!({
                "emailAddress": email,
                "messagesTotal": mb.messages.len(),
                "threadsTotal": threads.len(),
                "historyId": hid(mb.history_id),
            })))
        }
        Op::ListMessages => list_messages(sim, mb, params),
        Op::GetMessage(id) => {
            let m = find(mb, id)?;
            let format = format_param(params, Format::Full)?;
            Ok(ApiReply::ok(render::message_json(
                m,
                format,
                &params.all("metadataHeaders"),
            )))
        }
        Op::GetAttachment(id, aid) => {
            let m = find(mb, id)?;
            let data = render::attachment(m, aid)
                .ok_or_else(|| errors::invalid("Invalid attachment token"))?;
            use base64::Engine as _;
            Ok(ApiReply::ok(json!({
                "attachmentId": aid,
                "size": data.len(),
                "data": base64::engine::general_purpose::URL_SAFE.encode(&data),
            })))
        }
        Op::ListThreads => list_threads(sim, mb, params),
        Op::GetThread(id) => {
            check_id(id)?;
            let format = format_param(params, Format::Full)?;
            if format == Format::Raw {
                return Err(errors::invalid("Invalid value at 'format' (\"raw\"): threads.get supports minimal, metadata and full."));
            }
            let headers = params.all("metadataHeaders");
            let mut msgs: Vec<&SimMessage> = mb
                .messages
                .values()
                .filter(|m| &m.thread_id == id)
                .collect();
            if msgs.is_empty() {
                return Err(errors::not_found());
            }
            msgs.sort_by(|a, b| (a.internal_date_ms, &a.id).cmp(&(b.internal_date_ms, &b.id)));
            let history = msgs.iter().map(|m| m.history_id).max().unwrap_or(0);
            Ok(ApiReply::ok(json!({
                "id": id,
                "historyId": hid(history),
                "messages": msgs.iter().map(|m| render::message_json(m, format, &headers)).collect::<Vec<_>>(),
            })))
        }
        Op::ListLabels => Ok(ApiReply::ok(json!({
            "labels": mb.labels.iter().map(label_json).collect::<Vec<_>>(),
        }))),
        Op::GetLabel(id) => {
            let l = mb
                .labels
                .iter()
                .find(|l| &l.id == id)
                .ok_or_else(errors::not_found)?;
            let mut v = label_json(l);
            let with: Vec<&SimMessage> = mb.messages.values().filter(|m| m.has_label(id)).collect();
            let unread = with.iter().filter(|m| m.has_label("UNREAD"));
            let threads: HashSet<&str> = with.iter().map(|m| m.thread_id.as_str()).collect();
            let unread_threads: HashSet<&str> =
                unread.clone().map(|m| m.thread_id.as_str()).collect();
            v["messagesTotal"] = json!(with.len());
            v["messagesUnread"] = json!(unread.count());
            v["threadsTotal"] = json!(threads.len());
            v["threadsUnread"] = json!(unread_threads.len());
            Ok(ApiReply::ok(v))
        }
        Op::History => history(mb, params),
        _ => unreachable!("mutations go through execute_mut"),
    }
}

fn label_json(l: &super::mailbox::Label) -> Value {
    match l.kind {
        super::mailbox::LabelType::System => json!({"id": l.id, "name": l.name, "type": "system"}),
        super::mailbox::LabelType::User => json!({
            "id": l.id, "name": l.name, "type": "user",
            "messageListVisibility": "show", "labelListVisibility": "labelShow",
        }),
    }
}

/// Page tokens are opaque decimal numbers, like Google's: here the id of the
/// last message returned, so paging is stable while the mailbox changes.
fn decode_token(t: &str) -> Result<String, ApiReply> {
    t.parse::<u64>()
        .map(|n| format!("{n:016x}"))
        .map_err(|_| errors::invalid("Invalid pageToken"))
}

fn encode_token(id: &str) -> String {
    u64::from_str_radix(id, 16).unwrap_or(0).to_string()
}

/// Messages matching list parameters, newest first, from `after` (exclusive).
fn matching<'a>(
    sim: &Sim,
    mb: &'a Mailbox,
    params: &Params,
    after: Option<String>,
) -> Result<impl Iterator<Item = &'a SimMessage> + 'a, ApiReply> {
    let q = params.get("q").unwrap_or("");
    let query = search::parse(q).map_err(|e| errors::invalid(&e.to_string()))?;
    let label_ids = params.all("labelIds");
    mb.check_labels(&label_ids)
        .map_err(|e| errors::invalid(&e.to_string()))?;
    let include_spam_trash = params.flag("includeSpamTrash")?
        || query.mentions_spam_or_trash()
        || label_ids.iter().any(|l| l == "SPAM" || l == "TRASH");
    let now = sim.clock.now_ms();
    let range = match after {
        Some(a) => mb.messages.range(..a),
        None => mb.messages.range::<String, _>(..),
    };
    Ok(range.rev().map(|(_, m)| m).filter(move |m| {
        label_ids.iter().all(|l| m.has_label(l))
            && (include_spam_trash || !(m.has_label("SPAM") || m.has_label("TRASH")))
            && query.matches(m, mb, now)
    }))
}

fn list_messages(sim: &Sim, mb: &Mailbox, params: &Params) -> Reply {
    let max = params.max_results(100)?;
    let after = params.get("pageToken").map(decode_token).transpose()?;
    let mut page: Vec<&SimMessage> = matching(sim, mb, params, after)?.take(max + 1).collect();
    let more = page.len() > max;
    page.truncate(max);
    let mut v = Map::new();
    if !page.is_empty() {
        v.insert(
            "messages".into(),
            page.iter()
                .map(|m| json!({"id": m.id, "threadId": m.thread_id}))
                .collect(),
        );
    }
    if more {
        v.insert(
            "nextPageToken".into(),
            json!(encode_token(&page[max - 1].id)),
        );
    }
    v.insert(
        "resultSizeEstimate".into(),
        json!(page.len() + more as usize),
    );
    Ok(ApiReply::ok(Value::Object(v)))
}

fn list_threads(sim: &Sim, mb: &Mailbox, params: &Params) -> Reply {
    let max = params.max_results(100)?;
    let offset: usize = match params.get("pageToken") {
        Some(t) => t
            .parse()
            .map_err(|_| errors::invalid("Invalid pageToken"))?,
        None => 0,
    };
    let mut seen = HashSet::new();
    let mut threads = Vec::new();
    for m in matching(sim, mb, params, None)? {
        if seen.insert(m.thread_id.as_str()) {
            threads.push(m);
            if threads.len() > offset + max {
                break;
            }
        }
    }
    let more = threads.len() > offset + max;
    let page: Vec<Value> = threads
        .iter()
        .skip(offset)
        .take(max)
        .map(|m| json!({"id": m.thread_id, "snippet": m.snippet, "historyId": m.history_id.to_string()}))
        .collect();
    let mut v = Map::new();
    let n = page.len();
    if n > 0 {
        v.insert("threads".into(), Value::Array(page));
    }
    if more {
        v.insert("nextPageToken".into(), json!((offset + max).to_string()));
    }
    v.insert("resultSizeEstimate".into(), json!(n + more as usize));
    Ok(ApiReply::ok(Value::Object(v)))
}

fn history(mb: &Mailbox, params: &Params) -> Reply {
    let start = params
        .get("startHistoryId")
        .ok_or_else(|| errors::invalid("Missing required parameter: startHistoryId"))?;
    let start: u64 = start
        .parse()
        .map_err(|_| errors::invalid(&format!("Invalid startHistoryId: {start:?}")))?;
    if start < mb.history_floor {
        return Err(errors::not_found());
    }
    let max = params.max_results(100)?;
    let from = match params.get("pageToken") {
        Some(t) => t
            .parse::<u64>()
            .map_err(|_| errors::invalid("Invalid pageToken"))?,
        None => start,
    };
    let label = params.get("labelId");
    let types = params.all("historyTypes");
    for t in &types {
        if ![
            "messageAdded",
            "messageDeleted",
            "labelAdded",
            "labelRemoved",
        ]
        .contains(&t.as_str())
        {
            return Err(errors::invalid(&format!(
                "Invalid value for historyTypes: {t:?}. Valid values: messageAdded, messageDeleted, labelAdded, labelRemoved."
            )));
        }
    }
    let wanted = |c: &Change| {
        let kind = match c {
            Change::Added { .. } => "messageAdded",
            Change::Deleted => "messageDeleted",
            Change::LabelsAdded { .. } => "labelAdded",
            Change::LabelsRemoved { .. } => "labelRemoved",
        };
        types.is_empty() || types.iter().any(|t| t == kind)
    };
    let has_label = |c: &Change| match (label, c) {
        (None, _) => true,
        (Some(l), Change::Added { label_ids })
        | (Some(l), Change::LabelsAdded { now: label_ids, .. })
        | (Some(l), Change::LabelsRemoved { now: label_ids, .. }) => {
            label_ids.iter().any(|x| x == l)
        }
        (Some(_), Change::Deleted) => true,
    };
    let mut records = Vec::new();
    let mut next = None;
    for r in mb.history.iter().filter(|r| r.id > from) {
        if !(wanted(&r.change) && has_label(&r.change)) {
            continue;
        }
        if records.len() == max {
            next = Some(records_last_id(&records));
            break;
        }
        let msg = json!({"id": r.message_id, "threadId": r.thread_id});
        let mut rec = json!({"id": r.id.to_string(), "messages": [msg]});
        let with_labels = |labels: &Vec<String>| json!({"id": r.message_id, "threadId": r.thread_id, "labelIds": labels});
        match &r.change {
            Change::Added { label_ids } => {
                rec["messagesAdded"] = json!([{"message": with_labels(label_ids)}])
            }
            Change::Deleted => rec["messagesDeleted"] = json!([{"message": msg}]),
            Change::LabelsAdded { label_ids, now } => {
                rec["labelsAdded"] = json!([{"message": with_labels(now), "labelIds": label_ids}])
            }
            Change::LabelsRemoved { label_ids, now } => {
                rec["labelsRemoved"] = json!([{"message": with_labels(now), "labelIds": label_ids}])
            }
        }
        records.push((r.id, rec));
    }
    let mut v = Map::new();
    if !records.is_empty() {
        v.insert(
            "history".into(),
            records.into_iter().map(|(_, r)| r).collect(),
        );
    }
    if let Some(n) = next {
        v.insert("nextPageToken".into(), json!(n.to_string()));
    }
    v.insert("historyId".into(), json!(mb.history_id.to_string()));
    Ok(ApiReply::ok(Value::Object(v)))
}

fn records_last_id(records: &[(u64, Value)]) -> u64 {
    records.last().map(|(id, _)| *id).unwrap_or(0)
}

/// The JSON body of a mutation: `{"ids":[..],"addLabelIds":[..],"removeLabelIds":[..]}`.
fn body_json(body: &[u8]) -> Result<Value, ApiReply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| errors::bad_request(&format!("Invalid JSON payload received. {e}")))?;
    if !v.is_object() {
        return Err(errors::bad_request(
            "Invalid JSON payload received. Expected an object.",
        ));
    }
    Ok(v)
}

fn string_list(v: &Value, field: &str) -> Result<Vec<String>, ApiReply> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(String::from).ok_or_else(|| {
                    errors::bad_request(&format!(
                        "Invalid value at '{field}': expected a list of strings"
                    ))
                })
            })
            .collect(),
        Some(_) => Err(errors::bad_request(&format!(
            "Invalid value at '{field}': expected a list of strings"
        ))),
    }
}

fn label_refusal(e: super::mailbox::LabelRefused) -> ApiReply {
    use super::mailbox::LabelRefused;
    match e {
        LabelRefused::Exists => errors::google_error(
            409,
            "ALREADY_EXISTS",
            "global",
            "duplicate",
            "Label name exists or conflicts",
        ),
        LabelRefused::Invalid => errors::invalid("Invalid label name"),
        LabelRefused::NotFound => errors::not_found(),
        LabelRefused::System => errors::invalid("Invalid label"),
    }
}

fn minimal_ref(m: &SimMessage) -> Value {
    json!({"id": m.id, "threadId": m.thread_id, "labelIds": m.label_ids})
}

/// A modify body's `addLabelIds` and `removeLabelIds`, each label known.
fn label_changes(mb: &Mailbox, b: &Value) -> Result<(Vec<String>, Vec<String>), ApiReply> {
    let (add, remove) = (
        string_list(b, "addLabelIds")?,
        string_list(b, "removeLabelIds")?,
    );
    for ids in [&add, &remove] {
        mb.check_labels(ids)
            .map_err(|e| errors::invalid(&e.to_string()))?;
    }
    Ok((add, remove))
}

fn execute_mut(mb: &mut Mailbox, op: &Op, body: &[u8]) -> Reply {
    match op {
        Op::Modify(id) => {
            check_id(id)?;
            let b = body_json(body)?;
            let (add, remove) = label_changes(mb, &b)?;
            let m = mb.modify(id, &add, &remove).ok_or_else(errors::not_found)?;
            Ok(ApiReply::ok(minimal_ref(m)))
        }
        Op::BatchModify => {
            let b = body_json(body)?;
            let ids = string_list(&b, "ids")?;
            if ids.is_empty() {
                return Err(errors::invalid("ids must be specified"));
            }
            if ids.len() > 1000 {
                return Err(errors::invalid("Number of ids cannot exceed 1000"));
            }
            for id in &ids {
                check_id(id)?;
            }
            let (add, remove) = label_changes(mb, &b)?;
            for id in &ids {
                // Ids no longer in the mailbox are passed over, as Gmail does.
                mb.modify(id, &add, &remove);
            }
            Ok(ApiReply::no_content())
        }
        Op::Trash(id) => {
            check_id(id)?;
            let m = mb
                .modify(id, &["TRASH".to_string()], &[])
                .ok_or_else(errors::not_found)?;
            Ok(ApiReply::ok(minimal_ref(m)))
        }
        Op::Untrash(id) => {
            check_id(id)?;
            let m = mb
                .modify(id, &[], &["TRASH".to_string()])
                .ok_or_else(errors::not_found)?;
            Ok(ApiReply::ok(minimal_ref(m)))
        }
        Op::Delete(id) => {
            check_id(id)?;
            if mb.delete(id) {
                Ok(ApiReply::no_content())
            } else {
                Err(errors::not_found())
            }
        }
        Op::CreateLabel => {
            let b = body_json(body)?;
            let name = b["name"].as_str().unwrap_or("");
            let l = mb.create_label(name).map_err(label_refusal)?;
            Ok(ApiReply::ok(label_json(&l)))
        }
        Op::UpdateLabel(id) | Op::PatchLabel(id) => {
            let b = body_json(body)?;
            let name = match b.get("name") {
                Some(Value::String(n)) => Some(n.as_str()),
                None | Some(Value::Null) => None,
                Some(_) => return Err(errors::invalid("Invalid label name")),
            };
            // update replaces the label: a name is required.
            if name.is_none() && matches!(op, Op::UpdateLabel(_)) {
                return Err(errors::invalid("Invalid label name"));
            }
            if let Some(other) = b["id"].as_str().filter(|i| i != id) {
                return Err(errors::invalid(&format!(
                    "The label id in the body ({other}) is not the one in the URL ({id})"
                )));
            }
            let l = mb.rename_label(id, name).map_err(|e| match e {
                super::mailbox::LabelRefused::System => errors::invalid("Invalid label"),
                e => label_refusal(e),
            })?;
            Ok(ApiReply::ok(label_json(&l)))
        }
        Op::DeleteLabel(id) => {
            mb.delete_label(id).map_err(|e| match e {
                super::mailbox::LabelRefused::System => errors::invalid("Invalid delete request"),
                e => label_refusal(e),
            })?;
            Ok(ApiReply::no_content())
        }
        _ => unreachable!("reads go through execute"),
    }
}

#[cfg(test)]
mod tests {
    use super::path_segments;

    #[test]
    fn path_segments_are_percent_decoded_and_keep_plus() {
        let (segs, query) = path_segments(
            "/gmail/v1/users/a+news%40x.com/messages/1%2F2?q=a+b",
            "/gmail/v1/users/",
        )
        .unwrap();
        assert_eq!(segs, ["a+news@x.com", "messages", "1/2"]);
        assert_eq!(query, "q=a+b");
        assert!(path_segments("/other/users/me", "/gmail/v1/users/").is_none());
    }
}
