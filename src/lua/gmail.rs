//! The `gmail` module table and the calls a script makes one at a time:
//! list, get, fetch, history, labels, profile. Each checks its arguments
//! and options, asks the engine, and turns the answer into Lua values.
//! The calls that go through the engine's runner have their own files and
//! are registered here: gmail.batch (`batch/`, with gmail.default_policy)
//! and gmail.modify and gmail.trash (`mutate.rs`). Expected failures of
//! one call return `nil, err`; a wrong option raises, naming it.

use std::cell::RefCell;
use std::collections::VecDeque;

use mlua::{AnyUserData, Lua, LuaSerdeExt, MetaMethod, UserData, UserDataMethods, Value};

use crate::gmail::client::{HistoryError, PageGuard};
use crate::gmail::history::{changes_of, Change};
use crate::gmail::request::{Format, ListQuery, Request};
use crate::gmail::runner::check_answer;
use crate::gmail::{ApiError, ErrorClass};

use super::batch::IdIter;
use super::error::err_table;
use super::labels::{labels, resolve_labels};
use super::message;
use super::opts::{display, Opts};
use super::request::{fetch_request, parse_format};

fn fail(lua: &Lua, e: &ApiError) -> mlua::Result<(Value, Value)> {
    Ok((Value::Nil, Value::Table(err_table(lua, e)?)))
}

fn json_value(lua: &Lua, v: &serde_json::Value) -> mlua::Result<Value> {
    lua.to_value(v)
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
    lua.create_userdata(IdIter::new(stream, limit))
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
async fn fetch(lua: Lua, req: Value) -> mlua::Result<(Value, Value)> {
    let req = fetch_request("gmail.fetch", req)?;
    let ctx = super::ctx(&lua);
    if ctx.dry_run && req.verb != "GET" {
        super::progress::eprint_line(&format!(
            "dry run: would {} users/me/{}",
            req.verb, req.path
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

/// `gmail.history(start)`: changes page by page.
struct HistoryIter {
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
                        return Ok(Value::Table(change_table(&lua, c)?));
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

/// A change as the table scripts see (`gmail.history`, `gmail.watch`).
pub(crate) fn change_table(lua: &Lua, c: Change) -> mlua::Result<mlua::Table> {
    let t = lua.create_table()?;
    t.set("history_id", c.history_id)?;
    t.set("type", c.kind.as_str())?;
    t.set("id", c.id)?;
    t.set("thread_id", c.thread_id)?;
    t.set("labels", lua.create_sequence_from(c.labels)?)?;
    if let Some(ml) = c.message_labels {
        t.set("message_labels", lua.create_sequence_from(ml)?)?;
    }
    Ok(t)
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

pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let g = lua.create_table()?;
    g.set("list", lua.create_async_function(list)?)?;
    g.set("get", lua.create_async_function(get)?)?;
    g.set("fetch", lua.create_async_function(fetch)?)?;
    g.set("batch", lua.create_async_function(super::batch::batch)?)?;
    g.set("history", lua.create_async_function(history)?)?;
    g.set("labels", lua.create_async_function(labels_fn)?)?;
    g.set("profile", lua.create_async_function(profile)?)?;
    g.set("modify", lua.create_async_function(super::mutate::modify)?)?;
    g.set("trash", lua.create_async_function(super::mutate::trash)?)?;
    super::watch::register(lua, &g)?;
    super::import::register(lua, &g)?;
    super::batch::install_default_policy(lua, &g)?;
    lua.globals().set("gmail", g)?;
    Ok(())
}
