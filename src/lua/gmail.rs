//! The `gmail` module: list, get, fetch, batch, history, labels, profile,
//! modify, trash. Thin: options are checked here and the engine does the
//! work. Expected failures of one call return `nil, err`; a wrong option
//! raises, naming it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use indicatif::ProgressBar;
use mlua::{
    AnyUserData, Function, Lua, LuaSerdeExt, MetaMethod, Table, UserData, UserDataMethods, Value,
};

use crate::gmail::chunk::ChunkStats;
use crate::gmail::client::{HistoryError, MessageRef, PageGuard};
use crate::gmail::request::{Format, ListQuery, Request};
use crate::gmail::runner::{
    check_answer, Answer, Decision, DefaultPolicy, Item, Policy, Report, RunOptions, Sink, Stop,
};
use crate::gmail::{ApiError, ErrorClass};

use super::message;
use super::opts::{display, Opts};
use super::store::LuaState;

#[derive(Debug, Clone)]
pub struct LabelInfo {
    pub id: String,
    pub name: String,
    pub system: bool,
}

/// An API error as the Lua table `{status, reason, message, class, ...}`.
pub fn err_table(lua: &Lua, e: &ApiError) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("status", e.status)?;
    t.set("reason", e.reason.as_str())?;
    t.set("message", e.message.as_str())?;
    t.set("class", e.class.as_str())?;
    if let Some(d) = e.retry_after {
        t.set("retry_after", d.as_secs_f64())?;
    }
    if let Some(d) = &e.diagnosis {
        t.set("diagnosis", d.as_str())?;
    }
    t.set("concurrent", e.concurrent)?;
    let mt = lua.create_table()?;
    mt.set(
        "__tostring",
        lua.create_function(|_, t: Table| {
            let status: u16 = t.get("status")?;
            let reason: String = t.get("reason")?;
            let message: String = t.get("message")?;
            let diagnosis: Option<String> = t.get("diagnosis")?;
            Ok(match diagnosis {
                Some(d) => format!("{status} {reason}: {message} ({d})"),
                None => format!("{status} {reason}: {message}"),
            })
        })?,
    )?;
    t.set_metatable(Some(mt));
    Ok(t)
}

fn fail(lua: &Lua, e: &ApiError) -> mlua::Result<(Value, Value)> {
    Ok((Value::Nil, Value::Table(err_table(lua, e)?)))
}

fn json_value(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    lua.to_value(v)
}

/// Label ids for names or ids: system ids and `Label_N` pass as they are;
/// names are looked up (labels.list, once).
pub async fn resolve_labels(lua: &Lua, func: &str, names: &[String]) -> mlua::Result<Vec<String>> {
    const SYSTEM: &[&str] = &[
        "INBOX",
        "SENT",
        "DRAFT",
        "SPAM",
        "TRASH",
        "UNREAD",
        "STARRED",
        "IMPORTANT",
        "CHAT",
        "CATEGORY_PERSONAL",
        "CATEGORY_SOCIAL",
        "CATEGORY_PROMOTIONS",
        "CATEGORY_UPDATES",
        "CATEGORY_FORUMS",
    ];
    let simple = |n: &String| SYSTEM.contains(&n.as_str()) || n.starts_with("Label_");
    if names.iter().all(simple) {
        return Ok(names.to_vec());
    }
    let labels = labels(lua).await.map_err(|e| {
        mlua::Error::runtime(format!("{func}: cannot list labels to resolve names: {e}"))
    })?;
    names
        .iter()
        .map(|n| {
            labels
                .iter()
                .find(|l| l.id == *n || l.name.eq_ignore_ascii_case(n))
                .map(|l| l.id.clone())
                .ok_or_else(|| {
                    let user: Vec<&str> = labels
                        .iter()
                        .filter(|l| !l.system)
                        .map(|l| l.name.as_str())
                        .collect();
                    mlua::Error::runtime(format!(
                        "{func}: unknown label {} (user labels: {})",
                        short(n),
                        user.join(", ")
                    ))
                })
        })
        .collect()
}

/// labels.list, fetched once and kept for name lookups.
pub async fn labels(lua: &Lua) -> Result<Vec<LabelInfo>, ApiError> {
    let ctx = super::ctx(lua);
    if let Some(l) = ctx.labels.borrow().clone() {
        return Ok(l);
    }
    let v = ctx
        .client()
        .call_json_retrying(&Request::list_labels(), &ctx.backoff)
        .await?;
    let list: Vec<LabelInfo> = v["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| LabelInfo {
            id: l["id"].as_str().unwrap_or("").to_string(),
            name: l["name"].as_str().unwrap_or("").to_string(),
            system: l["type"] == "system",
        })
        .collect();
    *ctx.labels.borrow_mut() = Some(list.clone());
    Ok(list)
}

type RefStream = Pin<Box<dyn Stream<Item = Result<MessageRef, ApiError>>>>;

/// `gmail.list{...}`: a callable iterator; `gmail.batch` takes its stream
/// directly, so a listing feeds a batch page by page.
pub struct IdIter {
    stream: RefCell<Option<RefStream>>,
    left: RefCell<Option<u64>>,
}

impl IdIter {
    fn take(&self) -> Option<RefStream> {
        let stream = self.stream.borrow_mut().take()?;
        Some(match self.left.borrow_mut().take() {
            Some(n) => Box::pin(stream.take(n as usize)),
            None => stream,
        })
    }
}

impl UserData for IdIter {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_async_meta_method(
            MetaMethod::Call,
            |lua, this, _: mlua::MultiValue| async move {
                if *this.left.borrow() == Some(0) {
                    return Ok((Value::Nil, Value::Nil));
                }
                let Some(mut stream) = this.stream.borrow_mut().take() else {
                    return Ok((Value::Nil, Value::Nil));
                };
                let next = stream.next().await;
                *this.stream.borrow_mut() = Some(stream);
                match next {
                    None => Ok((Value::Nil, Value::Nil)),
                    Some(Ok(r)) => {
                        if let Some(n) = this.left.borrow_mut().as_mut() {
                            *n -= 1;
                        }
                        Ok((
                            Value::String(lua.create_string(&r.id)?),
                            Value::String(lua.create_string(&r.thread_id)?),
                        ))
                    }
                    Some(Err(e)) => Err(mlua::Error::runtime(format!("gmail.list: {e}"))),
                }
            },
        );
    }
}

async fn list(lua: Lua, opts: Option<Value>) -> mlua::Result<AnyUserData> {
    let o = Opts::new(
        "gmail.list",
        opts,
        &["q", "labels", "include_spam_trash", "limit", "page_size"],
    )?;
    let names = o.strings("labels")?.unwrap_or_default();
    let query = ListQuery {
        q: o.string("q")?,
        label_ids: resolve_labels(&lua, "gmail.list", &names).await?,
        include_spam_trash: o.boolean("include_spam_trash")?.unwrap_or(false),
        page_size: o.integer("page_size", 1, 500)?.unwrap_or(500) as u32,
    };
    let limit = o.integer("limit", 0, u32::MAX.into())?.map(|n| n as u64);
    let ctx = super::ctx(&lua);
    let stream = ctx.client().list_messages(query, ctx.backoff.clone());
    lua.create_userdata(IdIter {
        stream: RefCell::new(Some(Box::pin(stream))),
        left: RefCell::new(limit),
    })
}

const FORMATS: &str = "minimal, metadata, full, raw";

fn parse_format(func: &str, s: &str) -> mlua::Result<Format> {
    Format::parse(s).ok_or_else(|| {
        mlua::Error::runtime(format!(
            "{func}: unknown format {} (valid: {FORMATS})",
            short(s)
        ))
    })
}

/// A value quoted for an error message, cut if long.
fn short(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("'{}…'", s.chars().take(40).collect::<String>())
    } else {
        format!("'{s}'")
    }
}

async fn get(lua: Lua, (id, opts): (String, Option<Value>)) -> mlua::Result<(Value, Value)> {
    let o = Opts::new("gmail.get", opts, &["format", "headers"])?;
    let format = match o.string("format")? {
        Some(f) => parse_format("gmail.get", &f)?,
        None => Format::Full,
    };
    let headers = o.strings("headers")?.unwrap_or_default();
    let ctx = super::ctx(&lua);
    let req = Request::get_message(&id, format, &headers);
    match ctx
        .client()
        .call_retrying(&req, &ctx.backoff)
        .await
        .and_then(|body| check_answer(&req, body))
    {
        Ok(answer) => Ok((
            Value::UserData(message::from_answer(&lua, answer)?),
            Value::Nil,
        )),
        Err(e) => fail(&lua, &e),
    }
}

/// A `{method, path, query, body}` table as a request.
fn fetch_request(func: &str, v: Value) -> mlua::Result<Request> {
    let o = Opts::new(func, Some(v), &["method", "path", "query", "body"])?;
    let method: &'static str = match o
        .string("method")?
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("GET") => "GET",
        Some("POST") => "POST",
        Some("PUT") => "PUT",
        Some("PATCH") => "PATCH",
        Some("DELETE") => "DELETE",
        Some(other) => {
            return Err(mlua::Error::runtime(format!(
                "{func}: option 'method' must be GET, POST, PUT, PATCH or DELETE, got {}",
                short(other)
            )))
        }
    };
    let path = o.string("path")?.ok_or_else(|| {
        mlua::Error::runtime(format!(
            "{func}: option 'path' is required, e.g. path = \"labels\""
        ))
    })?;
    if path.contains("://") || path.contains(char::is_whitespace) || path.contains('?') {
        return Err(mlua::Error::runtime(format!(
            "{func}: option 'path' must be a path below users/{{user}}/ without a query (use 'query'), got {}",
            short(&path)
        )));
    }
    let mut query = Vec::new();
    if let Value::Table(q) = o.raw("query")? {
        for pair in q.pairs::<String, Value>() {
            let (k, v) = pair?;
            match v {
                Value::Table(list) => {
                    for item in list.sequence_values::<Value>() {
                        query.push((k.clone(), scalar(func, &k, item?)?));
                    }
                }
                other => query.push((k.clone(), scalar(func, &k, other)?)),
            }
        }
    } else if !o.raw("query")?.is_nil() {
        return Err(o.error("query", "a table", &o.raw("query")?));
    }
    let body = match o.raw("body")? {
        Value::Nil => None,
        v @ Value::Table(_) => Some(serde_json::to_value(&v).map_err(|e| {
            mlua::Error::runtime(format!("{func}: option 'body' cannot be JSON: {e}"))
        })?),
        other => return Err(o.error("body", "a table", &other)),
    };
    Ok(Request::raw(method, &path, query, body))
}

fn scalar(func: &str, key: &str, v: Value) -> mlua::Result<String> {
    match v {
        Value::String(s) => Ok(s.to_str()?.to_string()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        other => Err(mlua::Error::runtime(format!(
            "{func}: query value for '{key}' must be a string, number or boolean, got {}",
            other.type_name()
        ))),
    }
}

async fn fetch(lua: Lua, req: Value) -> mlua::Result<(Value, Value)> {
    let req = fetch_request("gmail.fetch", req)?;
    let ctx = super::ctx(&lua);
    if ctx.dry_run && req.http_method != "GET" {
        super::progress::eprint_line(&format!(
            "dry run: would {} users/me/{}",
            req.http_method, req.path
        ));
        return Ok((Value::Table(lua.create_table()?), Value::Nil));
    }
    match ctx.client().call_json_retrying(&req, &ctx.backoff).await {
        Ok(v) => Ok((json_value(&lua, &v)?, Value::Nil)),
        Err(e) => fail(&lua, &e),
    }
}

async fn profile(lua: Lua, _: ()) -> mlua::Result<(Value, Value)> {
    let ctx = super::ctx(&lua);
    match ctx
        .client()
        .call_json_retrying(&Request::profile(), &ctx.backoff)
        .await
    {
        Ok(v) => {
            let t = lua.create_table()?;
            t.set("email", v["emailAddress"].as_str().unwrap_or(""))?;
            t.set("messages_total", v["messagesTotal"].as_u64().unwrap_or(0))?;
            t.set("threads_total", v["threadsTotal"].as_u64().unwrap_or(0))?;
            t.set("history_id", v["historyId"].as_str().unwrap_or(""))?;
            Ok((Value::Table(t), Value::Nil))
        }
        Err(e) => fail(&lua, &e),
    }
}

async fn labels_fn(lua: Lua, _: ()) -> mlua::Result<(Value, Value)> {
    match labels(&lua).await {
        Ok(list) => {
            let t = lua.create_table()?;
            for (i, l) in list.iter().enumerate() {
                let e = lua.create_table()?;
                e.set("id", l.id.as_str())?;
                e.set("name", l.name.as_str())?;
                e.set("type", if l.system { "system" } else { "user" })?;
                t.raw_set(i + 1, e)?;
            }
            Ok((Value::Table(t), Value::Nil))
        }
        Err(e) => fail(&lua, &e),
    }
}

/// One history record as changes, in the API's order.
fn changes_of(record: &serde_json::Value) -> Vec<Change> {
    let hid = record["id"].as_str().unwrap_or("").to_string();
    let mut out = Vec::new();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(String::from))
            .collect()
    };
    for (key, kind) in [
        ("messagesAdded", "added"),
        ("messagesDeleted", "deleted"),
        ("labelsAdded", "labels_added"),
        ("labelsRemoved", "labels_removed"),
    ] {
        for c in record[key].as_array().into_iter().flatten() {
            let m = &c["message"];
            let (labels, message_labels) = match kind {
                "added" => (strings(&m["labelIds"]), None),
                "deleted" => (Vec::new(), None),
                _ => (strings(&c["labelIds"]), Some(strings(&m["labelIds"]))),
            };
            out.push(Change {
                history_id: hid.clone(),
                kind,
                id: m["id"].as_str().unwrap_or("").to_string(),
                thread_id: m["threadId"].as_str().unwrap_or("").to_string(),
                labels,
                message_labels,
            });
        }
    }
    out
}

struct Change {
    history_id: String,
    kind: &'static str,
    id: String,
    thread_id: String,
    labels: Vec<String>,
    message_labels: Option<Vec<String>>,
}

/// `gmail.history(start)`: changes page by page.
pub struct HistoryIter {
    start: String,
    buffered: RefCell<VecDeque<Change>>,
    next_page: RefCell<Option<String>>,
    /// Ends a history whose pages loop (a token seen before, empty pages).
    guard: RefCell<PageGuard>,
}

impl UserData for HistoryIter {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_async_meta_method(
            MetaMethod::Call,
            |lua, this, _: mlua::MultiValue| async move {
                loop {
                    let next = this.buffered.borrow_mut().pop_front();
                    if let Some(c) = next {
                        let t = lua.create_table()?;
                        t.set("history_id", c.history_id)?;
                        t.set("type", c.kind)?;
                        t.set("id", c.id)?;
                        t.set("thread_id", c.thread_id)?;
                        t.set("labels", lua.create_sequence_from(c.labels)?)?;
                        if let Some(ml) = c.message_labels {
                            t.set("message_labels", lua.create_sequence_from(ml)?)?;
                        }
                        return Ok(Value::Table(t));
                    }
                    let Some(token) = this.next_page.borrow_mut().take() else {
                        return Ok(Value::Nil);
                    };
                    let ctx = super::ctx(&lua);
                    let page = ctx
                        .client()
                        .history_page(&this.start, Some(&token), &ctx.backoff)
                        .await
                        .map_err(|e| mlua::Error::runtime(format!("gmail.history: {e}")))?;
                    this.fill(&page)
                        .map_err(|e| mlua::Error::runtime(format!("gmail.history: {e}")))?;
                }
            },
        );
    }
}

impl HistoryIter {
    fn fill(&self, page: &serde_json::Value) -> Result<(), ApiError> {
        let records = page["history"].as_array();
        let next = page["nextPageToken"].as_str().map(String::from);
        self.guard.borrow_mut().check(
            "history.list",
            records.map_or(0, Vec::len),
            next.as_deref(),
        )?;
        let mut buf = self.buffered.borrow_mut();
        for r in records.into_iter().flatten() {
            buf.extend(changes_of(r));
        }
        *self.next_page.borrow_mut() = next;
        Ok(())
    }
}

async fn history(lua: Lua, start: Value) -> mlua::Result<(Value, Value)> {
    let start = match start {
        Value::String(s) => s.to_str()?.to_string(),
        Value::Integer(i) if i > 0 => i.to_string(),
        other => {
            return Err(mlua::Error::runtime(format!(
                "gmail.history: start must be a history id (a string like \"12345\"), got {}",
                display(&other)
            )))
        }
    };
    let ctx = super::ctx(&lua);
    match ctx.client().history_page(&start, None, &ctx.backoff).await {
        Ok(page) => {
            let it = HistoryIter {
                start,
                buffered: RefCell::new(VecDeque::new()),
                next_page: RefCell::new(None),
                guard: RefCell::new(PageGuard::default()),
            };
            if let Err(e) = it.fill(&page) {
                return fail(&lua, &e);
            }
            Ok((Value::UserData(lua.create_userdata(it)?), Value::Nil))
        }
        Err(HistoryError::TooOld(_)) => {
            let mut e = ApiError::local(
                ErrorClass::NotFound,
                "historyTooOld",
                format!("history from {start} is no longer kept: list everything again"),
            );
            e.status = 404;
            let t = err_table(&lua, &e)?;
            t.set("too_old", true)?;
            Ok((Value::Nil, Value::Table(t)))
        }
        Err(HistoryError::Api(e)) => fail(&lua, &e),
    }
}

/// The policy of one `gmail.batch`: the script's on_error and chunk rule,
/// falling back to the default policy.
struct LuaPolicy {
    lua: Lua,
    on_error: Option<Function>,
    chunk: Option<ChunkRule>,
    /// A Lua error raised by a callback: the run stops, then it is re-raised.
    error: Rc<RefCell<Option<mlua::Error>>>,
    bar: Option<ProgressBar>,
    retries: u64,
}

/// The wait of an on_error `"retry", seconds`: a script's number, so
/// checked as every wait is; a wrong one raises (the run stops saying so)
/// rather than waits forever or never.
fn retry_wait(v: &Value) -> mlua::Result<Option<Duration>> {
    if v.is_nil() {
        return Ok(None);
    }
    super::opts::seconds(v).map(Some).map_err(|_| {
        let max = super::opts::MAX_WAIT_SECS;
        mlua::Error::runtime(match v {
            Value::Integer(_) | Value::Number(_) => format!(
                "gmail.batch: on_error returned \"retry\" with a wait of {} seconds; the wait must be from 0 to {max} seconds",
                display(v)
            ),
            other => format!(
                "gmail.batch: on_error returned \"retry\" with a wait of {}; the wait must be a number of seconds from 0 to {max}",
                super::opts::got(other)
            ),
        })
    })
}

enum ChunkRule {
    Fixed(usize),
    Func(Function),
}

impl LuaPolicy {
    fn raise(&self, e: mlua::Error) {
        self.error.borrow_mut().get_or_insert(e);
    }
}

impl Policy for LuaPolicy {
    fn on_error(&mut self, err: &ApiError, key: &str, attempt: u32) -> Decision {
        let decision = match &self.on_error {
            None => DefaultPolicy.on_error(err, key, attempt),
            Some(f) => {
                let call = || -> mlua::Result<Decision> {
                    let (word, delay): (Value, Value) =
                        f.call((err_table(&self.lua, err)?, key, attempt))?;
                    let word = match &word {
                        Value::String(s) => s.to_str()?.to_string(),
                        // Nothing said: the default policy decides.
                        Value::Nil => {
                            return Ok(DefaultPolicy.on_error(err, key, attempt))
                        }
                        other => {
                            return Err(mlua::Error::runtime(format!(
                                "gmail.batch: on_error must return \"retry\", \"skip\", \"fail\", \"abort\" or \"split\", got {}",
                                display(other)
                            )))
                        }
                    };
                    match Decision::parse(&word) {
                        Some(Decision::Retry(_)) => Ok(Decision::Retry(retry_wait(&delay)?)),
                        Some(d) => Ok(d),
                        None => Err(mlua::Error::runtime(format!(
                            "gmail.batch: on_error must return \"retry\", \"skip\", \"fail\", \"abort\" or \"split\", got {word:?}"
                        ))),
                    }
                };
                match call() {
                    Ok(d) => d,
                    Err(e) => {
                        self.raise(e);
                        Decision::Abort
                    }
                }
            }
        };
        if matches!(decision, Decision::Retry(_) | Decision::Split) {
            self.retries += 1;
            if let Some(pb) = &self.bar {
                pb.set_message(format!("{} retries", self.retries));
            }
        }
        decision
    }

    fn halt(&self) -> Option<String> {
        self.error
            .borrow()
            .as_ref()
            .map(|e| super::script_error(e.clone()).message)
    }

    fn chunk_size(&mut self, stats: &ChunkStats) -> Option<usize> {
        match &self.chunk {
            None => None,
            Some(ChunkRule::Fixed(n)) => Some(*n),
            Some(ChunkRule::Func(f)) => {
                let call = || -> mlua::Result<usize> {
                    let t = self.lua.create_table()?;
                    t.set("sent", stats.sent)?;
                    t.set("ok", stats.ok)?;
                    t.set("concurrency_errors", stats.concurrency_errors)?;
                    t.set("rate_errors", stats.rate_errors)?;
                    t.set("server_errors", stats.server_errors)?;
                    t.set("network_error", stats.network_error)?;
                    t.set("size", stats.size)?;
                    let v: Value = f.call(t)?;
                    match v {
                        Value::Integer(n) if (1..=100).contains(&n) => Ok(n as usize),
                        Value::Number(n) if (1.0..=100.0).contains(&n) => Ok(n as usize),
                        other => Err(mlua::Error::runtime(format!(
                            "gmail.batch: the chunk function must return a number from 1 to 100, got {}",
                            display(&other)
                        ))),
                    }
                };
                match call() {
                    Ok(n) => Some(n),
                    Err(e) => {
                        self.raise(e);
                        Some(stats.size.max(1))
                    }
                }
            }
        }
    }
}

/// Where a batch's ids come from.
enum Ids {
    List(Vec<String>),
    Stream(RefStream),
    Func(Function),
}

fn ids_of(func: &str, v: Value) -> mlua::Result<Ids> {
    match v {
        Value::Table(t) => {
            let mut ids = Vec::with_capacity(t.raw_len());
            for (i, v) in t.sequence_values::<Value>().enumerate() {
                match v? {
                    Value::String(s) => ids.push(s.to_str()?.to_string()),
                    other => {
                        return Err(mlua::Error::runtime(format!(
                            "{func}: ids[{}] must be a message id string, got {}",
                            i + 1,
                            display(&other)
                        )))
                    }
                }
            }
            Ok(Ids::List(ids))
        }
        Value::UserData(ud) => {
            let it = ud.borrow::<IdIter>().map_err(|_| {
                mlua::Error::runtime(format!(
                    "{func}: ids must be a list of ids, gmail.list{{...}}, or an iterator function"
                ))
            })?;
            let stream = it.take().ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "{func}: this gmail.list iterator was already used up"
                ))
            })?;
            Ok(Ids::Stream(stream))
        }
        Value::Function(f) => Ok(Ids::Func(f)),
        other => Err(mlua::Error::runtime(format!(
            "{func}: ids must be a list of ids, gmail.list{{...}}, or an iterator function, got {}",
            display(&other)
        ))),
    }
}

const BATCH_OPTIONS: &[&str] = &[
    "format",
    "headers",
    "chunk",
    "max_chunk",
    "parallel",
    "on_error",
    "on_message",
    "resume",
    "max_attempts",
    "backoff",
    "progress",
    "total",
];

fn report_table(lua: &Lua, r: &Report, dry_run: bool) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("ok", r.ok)?;
    t.set("skipped", r.skipped.len())?;
    t.set("failed", r.failed.len())?;
    t.set("retried", r.retried)?;
    t.set("units", r.units)?;
    t.set("seconds", r.elapsed.as_secs_f64())?;
    t.set("rate_errors", r.rate_errors)?;
    t.set("not_done", r.not_done)?;
    if let Some(s) = &r.stopped {
        t.set("stopped", s.to_string())?;
    }
    for (key, list) in [("failures", &r.failed), ("skips", &r.skipped)] {
        let l = lua.create_table()?;
        for (i, f) in list.iter().enumerate() {
            let e = lua.create_table()?;
            e.set("id", f.key.as_str())?;
            e.set("error", err_table(lua, &f.error)?)?;
            e.set("attempts", f.attempts)?;
            l.raw_set(i + 1, e)?;
        }
        t.set(key, l)?;
    }
    if dry_run {
        t.set("dry_run", true)?;
    }
    Ok(t)
}

/// Record a finished run in the host's outcome (exit code, summary).
fn note_outcome(lua: &Lua, r: &Report, state: Option<&LuaState>) {
    let ctx = super::ctx(lua);
    let mut o = ctx.outcome.borrow_mut();
    o.failed += r.failed.len() as u64;
    if !r.failed.is_empty() {
        if let Some(s) = state {
            o.failures_in = Some(s.path());
        }
    }
    match &r.stopped {
        Some(Stop::Cancelled) => o.cancelled = true,
        Some(
            s @ (Stop::Policy { .. } | Stop::Source(_) | Stop::Sink { .. } | Stop::Wait { .. }),
        ) => o.stopped = Some(s.to_string()),
        _ => {}
    }
}

/// Where `gmail.batch` delivers: the script's on_message, the resume
/// state (committed every 50), the progress bar.
struct BatchSink {
    lua: Lua,
    on_message: Option<Function>,
    state: Option<LuaState>,
    /// A Lua error raised by on_message: the run stops, then it is re-raised.
    error: Rc<RefCell<Option<mlua::Error>>>,
    bar: Option<ProgressBar>,
    since_commit: u32,
}

impl Sink for BatchSink {
    fn deliver(&mut self, key: &str, answer: Answer) -> Result<(), String> {
        if let Some(f) = &self.on_message {
            let call = || -> mlua::Result<()> {
                let msg = message::from_answer(&self.lua, answer)?;
                f.call::<()>(msg)
            };
            if let Err(e) = call() {
                let text = super::script_error(e.clone()).message;
                self.error.borrow_mut().get_or_insert(e);
                return Err(text);
            }
        }
        if let Some(s) = &self.state {
            s.mark_done(key).map_err(|e| e.to_string())?;
            self.since_commit += 1;
            if self.since_commit >= 50 {
                self.since_commit = 0;
                s.commit().map_err(|e| e.to_string())?;
            }
        }
        if let Some(pb) = &self.bar {
            pb.inc(1);
        }
        Ok(())
    }

    fn waiting(&mut self, until: Option<std::time::SystemTime>) {
        if let Some(pb) = &self.bar {
            match until {
                Some(at) => {
                    let left = at
                        .duration_since(std::time::SystemTime::now())
                        .unwrap_or_default();
                    pb.set_message(format!(
                        "waiting for Gmail until {}",
                        crate::gmail::client::wall_time_after(left)
                    ));
                }
                None => pb.set_message(""),
            }
        }
    }
}

async fn batch(lua: Lua, (ids, opts): (Value, Option<Value>)) -> mlua::Result<Table> {
    let o = Opts::new("gmail.batch", opts, BATCH_OPTIONS)?;
    let ctx = super::ctx(&lua);
    let ids = ids_of("gmail.batch", ids)?;
    // Options first, so a mistake is reported before any fetching.
    enum Fmt {
        Fixed(Format),
        Func(Function),
    }
    let format = match o.raw("format")? {
        Value::Nil => Fmt::Fixed(Format::Metadata),
        Value::String(s) => Fmt::Fixed(parse_format("gmail.batch", &s.to_str()?)?),
        Value::Function(f) => Fmt::Func(f),
        other => {
            return Err(o.error(
                "format",
                &format!("one of {FORMATS}, or a function(id) returning a request"),
                &other,
            ))
        }
    };
    let headers = o
        .strings("headers")?
        .unwrap_or_else(|| ["From", "To", "Subject", "Date"].map(String::from).to_vec());
    let chunk = match o.raw("chunk")? {
        Value::Nil => None,
        Value::Function(f) => Some(ChunkRule::Func(f)),
        Value::Integer(_) | Value::Number(_) => Some(ChunkRule::Fixed(
            o.integer("chunk", 1, 100)?.unwrap_or(50) as usize,
        )),
        other => {
            return Err(o.error(
                "chunk",
                "a number from 1 to 100 or a function(stats)",
                &other,
            ))
        }
    };
    let max_chunk = o.integer("max_chunk", 1, 100)?.map(|n| n as usize);
    let parallel = o.integer("parallel", 1, 16)?.unwrap_or(1) as usize;
    // No on_error: the built-in policy (DefaultPolicy), straight from Rust.
    let on_error = o.function("on_error")?;
    let on_message = o.function("on_message")?;
    let state = LuaState::option(&o, "resume")?;
    let mut max_attempts = o.integer("max_attempts", 1, 1000)?.map(|n| n as u32);
    let backoff = match o.raw("backoff")? {
        Value::Nil => ctx.backoff.clone(),
        v @ Value::Table(_) => {
            let b = Opts::nested(
                "gmail.batch",
                "backoff",
                v,
                &["attempts", "base", "max", "jitter"],
            )?;
            let (backoff, attempts_given) = super::retry::backoff_options(&b, &ctx.backoff)?;
            // backoff.attempts caps the tries too, unless max_attempts says.
            if attempts_given {
                max_attempts = max_attempts.or(Some(backoff.attempts));
            }
            backoff
        }
        other => return Err(o.error("backoff", "a table {attempts, base, max, jitter}", &other)),
    };
    let show_progress = o.boolean("progress")?.unwrap_or(true);
    let total = o
        .integer("total", 0, u32::MAX.into())?
        .map(|n| n as u64)
        .or(match &ids {
            Ids::List(l) => Some(l.len() as u64),
            _ => None,
        });

    // A Lua error from the ids iterator or the format function: the run
    // stops, then it is raised.
    let req_error: Rc<RefCell<Option<mlua::Error>>> = Rc::new(RefCell::new(None));
    // The ids, as a stream the runner pulls from; done ones skipped.
    let skipped_done = Rc::new(RefCell::new(0u64));
    let iter_error = req_error.clone();
    let id_stream: Pin<Box<dyn Stream<Item = Result<String, ApiError>>>> = match ids {
        Ids::List(v) => Box::pin(futures_util::stream::iter(v.into_iter().map(Ok))),
        Ids::Stream(s) => Box::pin(s.map(|r| r.map(|m| m.id))),
        Ids::Func(f) => Box::pin(futures_util::stream::unfold(Some(f), move |f| {
            let iter_error = iter_error.clone();
            async move {
                let func = f?;
                let failed = |e: mlua::Error| {
                    iter_error.borrow_mut().get_or_insert(e);
                    Some((Err(ApiError::network("the ids iterator failed")), None))
                };
                match func.call::<Value>(()) {
                    Ok(Value::String(s)) => Some((Ok(s.to_string_lossy()), Some(func))),
                    Ok(Value::Nil) => None,
                    Ok(other) => failed(mlua::Error::runtime(format!(
                        "gmail.batch: the ids iterator gave {} instead of an id string",
                        display(&other)
                    ))),
                    Err(e) => failed(e),
                }
            }
        })),
    };
    let filter_state = state.clone();
    let skipped = skipped_done.clone();
    let id_stream = id_stream.filter(move |r| {
        let keep = match (r, &filter_state) {
            (Ok(id), Some(s)) => !s.is_done(id).unwrap_or(false),
            _ => true,
        };
        if !keep {
            *skipped.borrow_mut() += 1;
        }
        futures_util::future::ready(keep)
    });
    let req_err = req_error.clone();
    let items = id_stream.map(move |r| {
        let id = r?;
        let request = match &format {
            Fmt::Fixed(f) => Request::get_message(&id, *f, &headers),
            Fmt::Func(func) => match func
                .call::<Value>(id.as_str())
                .and_then(|v| fetch_request("gmail.batch format function", v))
            {
                Ok(r) => r,
                Err(e) => {
                    req_err.borrow_mut().get_or_insert(e);
                    return Err(ApiError::network("the format function failed"));
                }
            },
        };
        Ok(Item { key: id, request })
    });

    let bar = super::progress::start(&ctx, show_progress, total);
    let callback_error = Rc::new(RefCell::new(None::<mlua::Error>));
    let mut policy = LuaPolicy {
        lua: lua.clone(),
        on_error,
        chunk,
        error: callback_error.clone(),
        bar: bar.clone(),
        retries: 0,
    };
    let mut sink = BatchSink {
        lua: lua.clone(),
        on_message,
        state: state.clone(),
        error: callback_error.clone(),
        bar: bar.clone(),
        since_commit: 0,
    };
    let chunk_max = max_chunk.unwrap_or(match &policy.chunk {
        Some(ChunkRule::Fixed(n)) => *n,
        _ => 50,
    });
    let opts = RunOptions {
        chunk_start: chunk_max.min(50),
        chunk_max: chunk_max.max(match &policy.chunk {
            Some(ChunkRule::Func(_)) => 100,
            _ => 1,
        }),
        parallel,
        backoff,
        max_attempts: max_attempts.unwrap_or(RunOptions::default().max_attempts),
    };
    let running = ctx.running();
    let report = ctx
        .runner
        .run(
            Box::pin(items),
            &mut policy,
            &mut sink,
            &opts,
            Some(ctx.cancel.clone()),
        )
        .await;
    drop(running);
    drop(sink);
    super::progress::finish(bar.as_ref());
    if let Some(s) = &state {
        for f in &report.failed {
            s.record_failure(&f.key, &f.error, f.attempts)
                .map_err(|e| mlua::Error::runtime(format!("gmail.batch: {e}")))?;
        }
        s.commit()
            .map_err(|e| mlua::Error::runtime(format!("gmail.batch: {e}")))?;
    }
    // A script error is raised, not counted as the policy's stop: a
    // script that catches it decides what happens next.
    if let Some(e) = req_error.borrow_mut().take() {
        return Err(e);
    }
    if let Some(e) = callback_error.borrow_mut().take() {
        return Err(e);
    }
    note_outcome(&lua, &report, state.as_ref());
    let t = report_table(&lua, &report, false)?;
    t.set("already_done", *skipped_done.borrow())?;
    Ok(t)
}

fn ids_arg(func: &str, v: Value) -> mlua::Result<Vec<String>> {
    match ids_of(func, v)? {
        Ids::List(l) => Ok(l),
        _ => Err(mlua::Error::runtime(format!(
            "{func}: ids must be a list of message ids"
        ))),
    }
}

fn preview(ids: &[String]) -> String {
    let shown: Vec<&str> = ids.iter().take(10).map(String::as_str).collect();
    if ids.len() > shown.len() {
        format!("{} and {} more", shown.join(", "), ids.len() - shown.len())
    } else {
        shown.join(", ")
    }
}

/// Run mutation requests through the runner (paced, retried, reported).
/// Also gives the keys of the items whose answer confirmed success.
async fn mutate(lua: &Lua, items: Vec<Item>) -> mlua::Result<(Report, Vec<String>)> {
    let ctx = super::ctx(lua);
    let mut policy = DefaultPolicy;
    let mut done = Vec::new();
    let mut sink = |key: &str, _: Answer| {
        done.push(key.to_string());
        Ok(())
    };
    let _running = ctx.running();
    let report = ctx
        .runner
        .run(
            futures_util::stream::iter(items.into_iter().map(Ok)),
            &mut policy,
            &mut sink,
            &RunOptions::default(),
            Some(ctx.cancel.clone()),
        )
        .await;
    note_outcome(lua, &report, None);
    Ok((report, done))
}

async fn modify(lua: Lua, (ids, opts): (Value, Value)) -> mlua::Result<Table> {
    let ids = ids_arg("gmail.modify", ids)?;
    let o = Opts::new("gmail.modify", Some(opts), &["add", "remove"])?;
    let add_names = o.strings("add")?.unwrap_or_default();
    let remove_names = o.strings("remove")?.unwrap_or_default();
    if add_names.is_empty() && remove_names.is_empty() {
        return Err(mlua::Error::runtime(
            "gmail.modify: give labels to 'add' or 'remove'",
        ));
    }
    let add = resolve_labels(&lua, "gmail.modify", &add_names).await?;
    let remove = resolve_labels(&lua, "gmail.modify", &remove_names).await?;
    let ctx = super::ctx(&lua);
    if ctx.dry_run {
        println!(
            "dry run: would modify {} messages: add [{}] remove [{}]: {}",
            ids.len(),
            add_names.join(", "),
            remove_names.join(", "),
            preview(&ids)
        );
        let r = Report {
            ok: ids.len() as u64,
            ..Report::default()
        };
        return report_table(&lua, &r, true);
    }
    let mut sizes = std::collections::HashMap::new();
    let items: Vec<Item> = Request::batch_modify_chunks(&ids, &add, &remove)
        .into_iter()
        .zip(ids.chunks(crate::gmail::request::BATCH_MODIFY_MAX))
        .map(|(request, chunk)| {
            let key = format!(
                "{}..{} ({} ids)",
                chunk[0],
                chunk[chunk.len() - 1],
                chunk.len()
            );
            sizes.insert(key.clone(), chunk.len() as u64);
            Item { key, request }
        })
        .collect();
    let (r, done) = mutate(&lua, items).await?;
    // Count messages, not calls: the ids of the calls whose answer said
    // they succeeded, and no others (a run that stopped early left some
    // calls failed, not done or never sent, and the last call may be short).
    let ok: u64 = done.iter().map(|key| sizes[key]).sum();
    let t = report_table(&lua, &r, false)?;
    t.set("ok", ok)?;
    Ok(t)
}

async fn trash(lua: Lua, ids: Value) -> mlua::Result<Table> {
    let ids = ids_arg("gmail.trash", ids)?;
    let ctx = super::ctx(&lua);
    if ctx.dry_run {
        println!(
            "dry run: would trash {} messages: {}",
            ids.len(),
            preview(&ids)
        );
        let r = Report {
            ok: ids.len() as u64,
            ..Report::default()
        };
        return report_table(&lua, &r, true);
    }
    let items = ids
        .iter()
        .map(|id| Item {
            key: id.clone(),
            request: Request::trash(id),
        })
        .collect();
    let (r, _) = mutate(&lua, items).await?;
    report_table(&lua, &r, false)
}

pub fn register(lua: &Lua) -> mlua::Result<()> {
    let g = lua.create_table()?;
    g.set("list", lua.create_async_function(list)?)?;
    g.set("get", lua.create_async_function(get)?)?;
    g.set("fetch", lua.create_async_function(fetch)?)?;
    g.set("batch", lua.create_async_function(batch)?)?;
    g.set("history", lua.create_async_function(history)?)?;
    g.set("labels", lua.create_async_function(labels_fn)?)?;
    g.set("profile", lua.create_async_function(profile)?)?;
    g.set("modify", lua.create_async_function(modify)?)?;
    g.set("trash", lua.create_async_function(trash)?)?;
    g.set("default_policy", default_policy(lua)?)?;
    protect_default_policy(lua, &g)?;
    lua.globals().set("gmail", g)?;
    Ok(())
}

const READ_ONLY: &str = "gmail.default_policy is read-only: it is the built-in policy, which \
    gmail.batch uses when it has no on_error; to change it, pass gmail.batch an on_error of \
    your own (it may call gmail.default_policy.on_error for the cases it leaves)";

/// `gmail.default_policy`: a read-only table whose `on_error` answers with
/// [`DefaultPolicy::decide`], so a script's own on_error can delegate to
/// the very policy gmail.batch uses without one.
///
/// [`DefaultPolicy::decide`]: crate::gmail::runner::DefaultPolicy::decide
fn default_policy(lua: &Lua) -> mlua::Result<Table> {
    let on_error = lua.create_function(|_, (err, _id, _attempt): (Value, Value, Value)| {
        let class = match &err {
            Value::Table(t) => t.get::<Value>("class")?,
            other => {
                return Err(mlua::Error::runtime(format!(
                    "gmail.default_policy.on_error: err must be an error table, got {}",
                    super::opts::got(other)
                )))
            }
        };
        // A class it does not know (or none): as any other class, "fail".
        let class = match class {
            Value::String(s) => ErrorClass::parse(&s.to_str()?),
            _ => None,
        };
        Ok(class.map_or(Decision::Fail, DefaultPolicy::decide).as_str())
    })?;
    let fields = lua.create_table()?;
    fields.raw_set("on_error", on_error)?;
    read_only(lua, lua.create_table()?, fields, |_| true)
}

/// `gmail.default_policy = ...` is refused too: replacing it would change
/// nothing gmail.batch does, so a script that tries is told.
fn protect_default_policy(lua: &Lua, gmail: &Table) -> mlua::Result<()> {
    let hidden = lua.create_table()?;
    hidden.raw_set("default_policy", gmail.raw_get::<Value>("default_policy")?)?;
    gmail.raw_set("default_policy", Value::Nil)?;
    read_only(
        lua,
        gmail.clone(),
        hidden,
        |k| matches!(k, Value::String(s) if s == "default_policy"),
    )
    .map(|_| ())
}

/// Give `t` a metatable that reads `fields` and refuses to write the keys
/// `guarded` picks (others are set as usual). `__metatable` hides it from
/// getmetatable/setmetatable; `__pairs` shows the fields to `pairs`.
fn read_only(
    lua: &Lua,
    t: Table,
    fields: Table,
    guarded: fn(&Value) -> bool,
) -> mlua::Result<Table> {
    let mt = lua.create_table()?;
    mt.raw_set("__index", fields.clone())?;
    mt.raw_set(
        "__newindex",
        lua.create_function(move |_, (t, k, v): (Table, Value, Value)| {
            if guarded(&k) {
                return Err(mlua::Error::runtime(READ_ONLY));
            }
            t.raw_set(k, v)
        })?,
    )?;
    // pairs(t) lists its own keys, then the guarded fields it reads.
    let pairs: Function = lua
        .load(
            r#"local fields = ...
            return function(t)
              local own = true
              local function step(_, k)
                local v
                if own then
                  k, v = next(t, k)
                  if k ~= nil then return k, v end
                  own = false
                end
                return next(fields, k)
              end
              return step, t, nil
            end"#,
        )
        .set_name("=gmailscript")
        .call(fields)?;
    mt.raw_set("__pairs", pairs)?;
    mt.raw_set("__metatable", false)?;
    t.set_metatable(Some(mt));
    Ok(t)
}
