//! `gmail.import(items, opts)`: messages put back into Gmail as their RFC
//! 822 bytes (messages.import, or messages.insert), with their labels, each
//! once.
//!
//! Items come from a list or an iterator of `{raw, labels, key}`. Label
//! names become ids here: system labels by id, user labels by name,
//! created when missing; a name Gmail refuses is created as
//! `"<name> (restored)"` and reported, never a failed message.
//!
//! Once: with `resume`, a key is marked pending (committed) before its
//! message is sent, and done with Gmail's id when the answer comes. A
//! pending key on a later run means the outcome is unknown (a kill between
//! the two): its Message-ID is looked up (`rfc822msgid:`) and, if found,
//! the key is done without sending again. Gmail itself merges a re-import
//! of a Message-ID it holds into that message; a message without a
//! Message-ID whose outcome is unknown is not sent again but reported.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use mlua::{Function, Lua, Table, Value};
use serde_json::json;

use crate::gmail::request::{DateSource, ImportOptions, ListQuery, Request};
use crate::gmail::runner::{Answer, Item, Report, RunOptions, Runner, Sink};
use crate::gmail::{ApiError, Client, ErrorClass};
use std::sync::Arc;

use super::batch::{note_outcome, report_table, Delivered, LuaPolicy, Raised};
use super::opts::{display, Opts};
use super::progress;
use super::store::LuaState;

const NAMES: &[&str] = &[
    "resume",
    "create_labels",
    "never_mark_spam",
    "internal_date",
    "mode",
    "on_error",
    "on_message",
    "parallel",
    "progress",
    "total",
    "user",
];

/// How a refused label name is renamed (docs/lua-api.md says so).
const RENAME_SUFFIX: &str = " (restored)";

const PENDING: &str = "import.pending:";
const ID: &str = "import.id:";

pub(crate) fn register(lua: &Lua, g: &Table) -> mlua::Result<()> {
    g.set("import", lua.create_async_function(import)?)
}

/// One message to import, read from the script's item table.
struct Entry {
    key: String,
    raw: Bytes,
    labels: Vec<String>,
}

enum Source {
    List(Vec<Value>, usize),
    Func(Function),
}

impl Source {
    fn of(v: Value) -> mlua::Result<Source> {
        match v {
            Value::Table(t) => Ok(Source::List(
                t.sequence_values::<Value>().collect::<mlua::Result<_>>()?,
                0,
            )),
            Value::Function(f) => Ok(Source::Func(f)),
            other => Err(mlua::Error::runtime(format!(
                "gmail.import: items must be a list of {{raw, labels, key}} tables or an iterator (input.maildir, input.mbox, input.eml), got {}",
                display(&other)
            ))),
        }
    }

    fn len(&self) -> Option<u64> {
        match self {
            Source::List(l, _) => Some(l.len() as u64),
            Source::Func(_) => None,
        }
    }

    /// The next item of a list, or the iterator to call for it.
    fn next(&mut self) -> Result<Value, Function> {
        match self {
            Source::List(l, i) => {
                let v = l.get(*i).cloned();
                *i += 1;
                Ok(v.unwrap_or(Value::Nil))
            }
            Source::Func(f) => Err(f.clone()),
        }
    }

    /// An item checked; `n` counts items for error messages.
    fn entry(v: Value, n: usize) -> mlua::Result<Option<Entry>> {
        let t = match v {
            Value::Nil => return Ok(None),
            Value::Table(t) => t,
            other => {
                return Err(mlua::Error::runtime(format!(
                    "gmail.import: item {n} must be a table {{raw = ..., labels = {{...}}, key = ...}}, got {}",
                    display(&other)
                )))
            }
        };
        let raw = match t.get::<Value>("raw")? {
            Value::String(s) if !s.as_bytes().is_empty() => Bytes::from(s.as_bytes().to_vec()),
            other => {
                return Err(mlua::Error::runtime(format!(
                    "gmail.import: item {n}: raw must be the message's RFC 822 bytes (a non-empty string), got {}",
                    display(&other)
                )))
            }
        };
        let labels = match t.get::<Value>("labels")? {
            Value::Nil => Vec::new(),
            Value::Table(l) => l
                .sequence_values::<Value>()
                .map(|v| match v? {
                    Value::String(s) => Ok(s.to_str()?.to_string()),
                    other => Err(mlua::Error::runtime(format!(
                        "gmail.import: item {n}: labels must be a list of label names, got {} in it",
                        display(&other)
                    ))),
                })
                .collect::<mlua::Result<_>>()?,
            other => {
                return Err(mlua::Error::runtime(format!(
                    "gmail.import: item {n}: labels must be a list of label names, got {}",
                    display(&other)
                )))
            }
        };
        let key = match t.get::<Value>("key")? {
            Value::String(s) if !s.as_bytes().is_empty() => s.to_str()?.to_string(),
            Value::Integer(i) => i.to_string(),
            // No key: the message's own digest is stable across runs.
            Value::Nil => {
                use sha2::Digest as _;
                format!("sha256:{:x}", sha2::Sha256::digest(&raw))
            }
            other => {
                return Err(mlua::Error::runtime(format!(
                    "gmail.import: item {n}: key must be a string, got {}",
                    display(&other)
                )))
            }
        };
        Ok(Some(Entry { key, raw, labels }))
    }
}

/// System labels by name as Gmail, Takeout and backups write them. None:
/// nothing to set (Takeout's "Opened" means read, "Archived" not in INBOX).
fn system_label(name: &str) -> Option<Option<&'static str>> {
    let n = name.trim().to_ascii_lowercase().replace(['_', ' '], "");
    Some(match n.as_str() {
        "inbox" => Some("INBOX"),
        "sent" | "sentmail" => Some("SENT"),
        "starred" => Some("STARRED"),
        "unread" => Some("UNREAD"),
        "important" => Some("IMPORTANT"),
        "spam" => Some("SPAM"),
        "trash" => Some("TRASH"),
        "categorypersonal" => Some("CATEGORY_PERSONAL"),
        "categorysocial" => Some("CATEGORY_SOCIAL"),
        "categorypromotions" => Some("CATEGORY_PROMOTIONS"),
        "categoryupdates" => Some("CATEGORY_UPDATES"),
        "categoryforums" => Some("CATEGORY_FORUMS"),
        // Not settable on an imported message, or only a state.
        "opened" | "archived" | "draft" | "drafts" | "chat" | "chats" | "allmail" => None,
        _ => return None,
    })
}

/// Label names to ids for one run: labels.list once, then each missing
/// user label created once.
#[derive(Default)]
struct Labels {
    by_name: HashMap<String, String>,
    create: bool,
    dry_run: bool,
    created: BTreeSet<String>,
    renamed: BTreeMap<String, String>,
    /// Names with nothing to set (Takeout's "Opened", "Draft", ...), and
    /// missing ones when create_labels is false.
    left_off: BTreeSet<String>,
    /// Another mailbox's client (the `user` option); None: the run's.
    other: Option<Arc<Client>>,
}

impl Labels {
    async fn load(
        lua: &Lua,
        create: bool,
        dry_run: bool,
        other: Option<Arc<Client>>,
    ) -> Result<Labels, ApiError> {
        let list = list_labels(lua, other.as_ref()).await?;
        Ok(Labels {
            other,
            by_name: list
                .into_iter()
                .map(|l| (l.name.to_lowercase(), l.id))
                .collect(),
            create,
            dry_run,
            ..Labels::default()
        })
    }

    async fn ids(&mut self, lua: &Lua, names: &[String]) -> Result<Vec<String>, ApiError> {
        let mut out = Vec::new();
        for name in names {
            match system_label(name) {
                Some(Some(id)) => out.push(id.to_string()),
                Some(None) => {
                    self.left_off.insert(name.clone());
                }
                None => {
                    if let Some(id) = self.user_label(lua, name).await? {
                        out.push(id);
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    async fn user_label(&mut self, lua: &Lua, name: &str) -> Result<Option<String>, ApiError> {
        let name = name.trim();
        if name.is_empty() {
            return Ok(None);
        }
        if let Some(id) = self.by_name.get(&name.to_lowercase()) {
            return Ok(Some(id.clone()));
        }
        if let Some(new) = self.renamed.get(name) {
            return Ok(self.by_name.get(&new.to_lowercase()).cloned());
        }
        if !self.create {
            self.left_off.insert(name.to_string());
            return Ok(None);
        }
        if self.dry_run {
            self.created.insert(name.to_string());
            self.by_name
                .insert(name.to_lowercase(), format!("(new:{name})"));
            return Ok(None);
        }
        let ctx = super::ctx(lua);
        // Invalidated: gmail.labels() after this run sees the new ones.
        if self.other.is_none() {
            *ctx.labels.borrow_mut() = None;
        }
        let client = self.other.clone().unwrap_or_else(|| ctx.client().clone());
        let mut want = name.to_string();
        for _ in 0..3 {
            let req = Request::raw("POST", "labels", Vec::new(), Some(json!({ "name": want })));
            match client.call_json_retrying(&req, &ctx.backoff).await {
                Ok(v) => {
                    let id = v["id"].as_str().unwrap_or("").to_string();
                    if id.is_empty() {
                        return Err(ApiError::malformed("labels.create answered without an id"));
                    }
                    self.by_name.insert(want.to_lowercase(), id.clone());
                    if want == name {
                        self.created.insert(want);
                    } else {
                        self.created.insert(want.clone());
                        self.renamed.insert(name.to_string(), want);
                    }
                    return Ok(Some(id));
                }
                // Taken (another client, a case difference): use the one there.
                Err(e) if e.status == 409 => {
                    let list = list_labels(lua, self.other.as_ref()).await?;
                    if self.other.is_none() {
                        *ctx.labels.borrow_mut() = None;
                    }
                    if let Some(l) = list.iter().find(|l| l.name.eq_ignore_ascii_case(&want)) {
                        self.by_name.insert(want.to_lowercase(), l.id.clone());
                        if want != name {
                            self.renamed.insert(name.to_string(), want);
                        }
                        return Ok(Some(l.id.clone()));
                    }
                    want = format!("{want}{RENAME_SUFFIX}");
                }
                // Refused ("Invalid label name": a reserved or localised
                // system name): the documented rename.
                Err(e) if e.status == 400 => want = format!("{name}{RENAME_SUFFIX}"),
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::invalid(format!(
            "Gmail refused the label {name:?} and its rename {want:?}"
        )))
    }
}

/// The Message-ID of `raw` (angle brackets removed), for rfc822msgid:.
fn message_id(raw: &[u8]) -> Option<String> {
    let head_end = memchr::memmem::find(raw, b"\r\n\r\n")
        .or_else(|| memchr::memmem::find(raw, b"\n\n"))
        .unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("message-id") {
            let mut v = value.trim().to_string();
            while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                v.push_str(next.trim());
                lines.next();
            }
            let v = v.trim().trim_start_matches('<').trim_end_matches('>');
            return (!v.is_empty() && !v.contains(char::is_whitespace)).then(|| v.to_string());
        }
    }
    None
}

/// The mailbox's labels: the run's (cached, as gmail.labels has them), or
/// another mailbox's, asked each time.
async fn list_labels(
    lua: &Lua,
    other: Option<&Arc<Client>>,
) -> Result<Vec<super::labels::LabelInfo>, ApiError> {
    let Some(client) = other else {
        return super::labels::labels(lua).await;
    };
    let ctx = super::ctx(lua);
    let v = client
        .call_json_retrying(&Request::list_labels(), &ctx.backoff)
        .await?;
    Ok(v["labels"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| super::labels::LabelInfo {
            id: l["id"].as_str().unwrap_or("").to_string(),
            name: l["name"].as_str().unwrap_or("").to_string(),
            system: l["type"] == "system",
        })
        .collect())
}

/// The id of the message whose Message-ID is `mid`, if Gmail holds one.
async fn lookup(
    lua: &Lua,
    other: Option<&Arc<Client>>,
    mid: &str,
) -> Result<Option<String>, ApiError> {
    let ctx = super::ctx(lua);
    let client = other.unwrap_or(ctx.client());
    let q = ListQuery {
        q: Some(format!("rfc822msgid:{mid}")),
        include_spam_trash: true,
        page_size: 2,
        ..ListQuery::default()
    };
    let v = client
        .call_json_retrying(&Request::list_messages(&q, None), &ctx.backoff)
        .await?;
    Ok(v["messages"][0]["id"].as_str().map(String::from))
}

struct Shared {
    source: Source,
    labels: Labels,
    state: Option<LuaState>,
    n: usize,
    already_done: u64,
    /// Pending keys found imported by their Message-ID.
    recovered: u64,
    /// Failures found before sending (unknown outcome, label trouble).
    early: Vec<(String, ApiError)>,
}

fn state_err(e: String) -> mlua::Error {
    mlua::Error::runtime(format!("gmail.import: the resume state: {e}"))
}

/// The next entry to send, past those done or resolved.
async fn next_entry(lua: &Lua, sh: &Rc<RefCell<Shared>>) -> mlua::Result<Option<Entry>> {
    loop {
        let (n, next) = {
            let mut s = sh.borrow_mut();
            s.n += 1;
            (s.n, s.source.next())
        };
        // An iterator may call Gmail itself (scripts/migrate.lua fetches
        // each message), so it is called as async.
        let v = match next {
            Ok(v) => v,
            Err(f) => f.call_async::<Value>(()).await?,
        };
        let entry = Source::entry(v, n)?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let state = sh.borrow().state.clone();
        let other = sh.borrow().labels.other.clone();
        if let Some(state) = &state {
            if state.is_done(&entry.key).map_err(state_err)? {
                sh.borrow_mut().already_done += 1;
                continue;
            }
            let pending = PENDING.to_string() + &entry.key;
            if state.get(&pending).map_err(state_err)?.is_some() {
                // Sent before, answer never recorded.
                match message_id(&entry.raw) {
                    Some(mid) => match lookup(lua, other.as_ref(), &mid).await {
                        Ok(Some(id)) => {
                            state.mark_done(&entry.key).map_err(state_err)?;
                            state
                                .set(&(ID.to_string() + &entry.key), Some(&id))
                                .map_err(state_err)?;
                            state.set(&pending, None).map_err(state_err)?;
                            sh.borrow_mut().recovered += 1;
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            sh.borrow_mut().early.push((entry.key, e));
                            continue;
                        }
                    },
                    None => {
                        let e = ApiError::local(
                            ErrorClass::Invalid,
                            "outcomeUnknown",
                            format!(
                                "an earlier run sent {} but stopped before Gmail's answer, and it has no Message-ID to look it up by; it is not sent again (it could be there twice). Check the mailbox, then state:set(\"{PENDING}{}\", nil) to send it again",
                                entry.key, entry.key
                            ),
                        );
                        sh.borrow_mut().early.push((entry.key, e));
                        continue;
                    }
                }
            }
        }
        return Ok(Some(entry));
    }
}

/// Where `gmail.import` delivers: the key recorded as imported (with the
/// id Gmail gave it, committed every 20) before on_message, which gets a
/// table of what Gmail made of it.
struct ImportSink(Delivered);

impl ImportSink {
    fn record(&mut self, key: &str, answer: &Answer) -> Result<serde_json::Value, String> {
        let v: serde_json::Value =
            serde_json::from_slice(answer.bytes()).map_err(|e| e.to_string())?;
        let id = v["id"].as_str().unwrap_or("");
        if let Some(s) = &self.0.state {
            s.mark_done(key)?;
            s.set(&(ID.to_string() + key), Some(id))?;
            s.set(&(PENDING.to_string() + key), None)?;
        }
        self.0.counted()?;
        Ok(v)
    }
}

fn imported_table(lua: &Lua, key: &str, v: &serde_json::Value) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.set("key", key)?;
    t.set("id", v["id"].as_str().unwrap_or(""))?;
    t.set("thread_id", v["threadId"].as_str().unwrap_or(""))?;
    let labels: Vec<String> = v["labelIds"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    t.set("labels", lua.create_sequence_from(labels)?)?;
    Ok(t)
}

impl Sink for ImportSink {
    fn deliver<'a>(
        &'a mut self,
        key: &'a str,
        answer: Answer,
    ) -> LocalBoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let v = self.record(key, &answer)?;
            self.0.on_message(|lua| imported_table(lua, key, &v)).await
        })
    }

    fn waiting(&mut self, until: Option<std::time::SystemTime>) {
        self.0.waiting(until);
    }
}

fn name_list(lua: &Lua, names: impl IntoIterator<Item = String>) -> mlua::Result<Table> {
    lua.create_sequence_from(names)
}

fn label_report(lua: &Lua, t: &Table, l: &Labels) -> mlua::Result<()> {
    t.set("labels_created", name_list(lua, l.created.iter().cloned())?)?;
    let renamed = lua.create_table()?;
    for (from, to) in &l.renamed {
        renamed.set(from.as_str(), to.as_str())?;
    }
    t.set("labels_renamed", renamed)?;
    t.set(
        "labels_left_off",
        name_list(lua, l.left_off.iter().cloned())?,
    )?;
    Ok(())
}

async fn import(lua: Lua, (items, opts): (Value, Option<Value>)) -> mlua::Result<Table> {
    let o = Opts::new("gmail.import", opts, NAMES)?;
    let state = LuaState::option(&o, "resume")?;
    let create = o.boolean("create_labels")?.unwrap_or(true);
    let never_mark_spam = o.boolean("never_mark_spam")?.unwrap_or(true);
    let date = match o.string("internal_date")?.as_deref() {
        None | Some("header") => DateSource::Header,
        Some("received") => DateSource::Received,
        Some(_) => {
            return Err(o.error(
                "internal_date",
                "\"header\" or \"received\"",
                &o.raw("internal_date")?,
            ))
        }
    };
    let insert = match o.string("mode")?.as_deref() {
        None | Some("import") => false,
        Some("insert") => true,
        Some(_) => return Err(o.error("mode", "\"import\" or \"insert\"", &o.raw("mode")?)),
    };
    let on_error = o.function("on_error")?;
    let on_message = o.function("on_message")?;
    // Uploads go one call each (a batch carries no media), so these are
    // calls in flight; the pacer holds them to the quota either way.
    let parallel = o.integer("parallel", 1, 16)?.unwrap_or(4) as usize;
    let show = o.boolean("progress")?.unwrap_or(true);
    let source = Source::of(items)?;
    let total = o
        .integer("total", 0, u32::MAX.into())?
        .map(|n| n as u64)
        .or(source.len());
    let user = o.string("user")?;
    if let Some(u) = &user {
        let ok = u.len() <= 254
            && u.split_once('@')
                .is_some_and(|(a, d)| !a.is_empty() && !d.is_empty())
            && !u.contains(['/', '?', '#', ' ']);
        if !ok {
            return Err(o.error("user", "an email address", &o.raw("user")?));
        }
    }
    let ctx = super::ctx(&lua);
    // Another mailbox: its own client and, since the quota is per mailbox,
    // its own pacer.
    let other = match &user {
        None => None,
        Some(u) => Some(Arc::new(ctx.client().for_user(u).await.map_err(|e| {
            mlua::Error::runtime(format!(
                "gmail.import: no access to the mailbox of {u}: {e}"
            ))
        })?)),
    };
    let other_runner = other.as_ref().map(|c| {
        Runner::new(
            c.clone(),
            ctx.runner.profile.clone(),
            ctx.runner.pacer.window(),
        )
    });
    let labels = Labels::load(&lua, create, ctx.dry_run, other)
        .await
        .map_err(|e| mlua::Error::runtime(format!("gmail.import: cannot list labels: {e}")))?;
    let sh = Rc::new(RefCell::new(Shared {
        source,
        labels,
        state: state.clone(),
        n: 0,
        already_done: 0,
        recovered: 0,
        early: Vec::new(),
    }));

    if ctx.dry_run {
        let mut count = 0u64;
        let mut bytes = 0u64;
        while let Some(entry) = next_entry(&lua, &sh).await? {
            let mut labels = std::mem::take(&mut sh.borrow_mut().labels);
            let r = labels.ids(&lua, &entry.labels).await;
            sh.borrow_mut().labels = labels;
            r.map_err(|e| mlua::Error::runtime(format!("gmail.import: {e}")))?;
            count += 1;
            bytes += entry.raw.len() as u64;
        }
        let s = sh.borrow();
        let created: Vec<&str> = s.labels.created.iter().map(String::as_str).collect();
        super::progress::eprint_line(&format!(
            "dry run: would {} {count} messages ({bytes} bytes; {} already done); would create {} labels{}{}",
            if insert { "insert" } else { "import" },
            s.already_done + s.recovered,
            created.len(),
            if created.is_empty() { "" } else { ": " },
            created.join(", ")
        ));
        let r = Report {
            ok: count,
            ..Report::default()
        };
        let t = report_table(&lua, &r, true)?;
        t.set("already_done", s.already_done + s.recovered)?;
        label_report(&lua, &t, &s.labels)?;
        return Ok(t);
    }

    let base = ImportOptions {
        insert,
        label_ids: Vec::new(),
        date,
        never_mark_spam,
    };
    let raised = Raised::default();
    let stream = {
        let (lua, sh, raised) = (lua.clone(), sh.clone(), raised.clone());
        futures_util::stream::unfold((), move |()| {
            let (lua, sh, raised, base) = (lua.clone(), sh.clone(), raised.clone(), base.clone());
            async move {
                loop {
                    let entry = match next_entry(&lua, &sh).await {
                        Ok(Some(e)) => e,
                        Ok(None) => return None,
                        Err(e) => {
                            raised.keep(e);
                            return Some((Err(ApiError::network("the items iterator failed")), ()));
                        }
                    };
                    let mut labels = std::mem::take(&mut sh.borrow_mut().labels);
                    let ids = labels.ids(&lua, &entry.labels).await;
                    sh.borrow_mut().labels = labels;
                    let ids = match ids {
                        Ok(ids) => ids,
                        Err(e) => {
                            sh.borrow_mut().early.push((entry.key, e));
                            continue;
                        }
                    };
                    // Pending, committed before the message goes out.
                    if let Some(s) = sh.borrow().state.clone() {
                        let marked = s
                            .set(&(PENDING.to_string() + &entry.key), Some("sent"))
                            .and_then(|()| s.commit());
                        if let Err(e) = marked {
                            raised.keep(state_err(e));
                            return Some((Err(ApiError::network("the resume state failed")), ()));
                        }
                    }
                    let opts = ImportOptions {
                        label_ids: ids,
                        ..base
                    };
                    let item = Item {
                        key: entry.key,
                        request: Request::import(entry.raw, &opts),
                    };
                    return Some((Ok(item), ()));
                }
            }
        })
    };
    let bar = progress::start(&ctx, show, total);
    let callback_error = Raised::default();
    let mut policy = LuaPolicy::new(&lua, on_error, None, &callback_error, bar.clone());
    let mut sink = ImportSink(Delivered::new(
        &lua,
        on_message,
        state.clone(),
        &callback_error,
        bar.clone(),
        20,
    ));
    let run = RunOptions {
        chunk_start: 1,
        chunk_max: 1,
        parallel,
        backoff: ctx.backoff.clone(),
        ..RunOptions::default()
    };
    let running = ctx.running();
    let mut report = other_runner
        .as_ref()
        .unwrap_or(&ctx.runner)
        .run(
            Box::pin(stream.fuse()),
            &mut policy,
            &mut sink,
            &run,
            Some(ctx.cancel.clone()),
        )
        .await;
    drop(running);
    drop(sink);
    progress::finish(bar.as_ref());
    let s = sh.borrow();
    for (key, error) in &s.early {
        report.failed.push(crate::gmail::runner::Failure {
            key: key.clone(),
            error: error.clone(),
            attempts: 0,
        });
    }
    if let Some(st) = &state {
        for f in &report.failed {
            st.record_failure(&f.key, &f.error, f.attempts)
                .map_err(state_err)?;
            // Gmail said no: nothing was imported, so nothing is pending.
            // An answer that could not be read leaves the outcome unknown.
            if !matches!(f.error.class, ErrorClass::Malformed | ErrorClass::Network)
                && f.error.reason != "outcomeUnknown"
            {
                st.set(&(PENDING.to_string() + &f.key), None)
                    .map_err(state_err)?;
            }
        }
        st.commit().map_err(state_err)?;
    }
    raised.raise()?;
    callback_error.raise()?;
    note_outcome(&lua, &report, state.as_ref());
    ctx.outcome.borrow_mut().already_done += s.already_done + s.recovered;
    let t = report_table(&lua, &report, false)?;
    t.set("already_done", s.already_done + s.recovered)?;
    t.set("recovered", s.recovered)?;
    label_report(&lua, &t, &s.labels)?;
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_read_from_the_head_only() {
        assert_eq!(
            message_id(b"Subject: x\r\nMessage-ID:\r\n <a@b>\r\n\r\nMessage-ID: <no@body>"),
            Some("a@b".into())
        );
        assert_eq!(message_id(b"Subject: x\n\nMessage-ID: <no@body>\n"), None);
        assert_eq!(message_id(b"Message-Id: <>\r\n\r\n"), None);
    }

    #[test]
    fn system_names_map_as_takeout_and_gmail_write_them() {
        assert_eq!(system_label("Inbox"), Some(Some("INBOX")));
        assert_eq!(
            system_label("Category Promotions"),
            Some(Some("CATEGORY_PROMOTIONS"))
        );
        assert_eq!(
            system_label("CATEGORY_UPDATES"),
            Some(Some("CATEGORY_UPDATES"))
        );
        assert_eq!(system_label("Opened"), Some(None));
        assert_eq!(
            system_label("Muted"),
            None,
            "a user label name, renamed if refused"
        );
        assert_eq!(system_label("Work/2024"), None);
    }
}
