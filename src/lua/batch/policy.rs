//! The policy side of a batch in Lua: the adapter that turns the
//! script's on_error and chunk rule into the engine's [`Policy`] (falling
//! back to the built-in [`DefaultPolicy`]), and `gmail.default_policy`,
//! the read-only table through which a script's on_error reaches that
//! same built-in policy.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use indicatif::ProgressBar;
use mlua::{Function, Lua, Table, Value};

use crate::gmail::chunk::ChunkStats;
use crate::gmail::runner::{Decision, DefaultPolicy, Policy};
use crate::gmail::{ApiError, ErrorClass};
use crate::lua::error::err_table;
use crate::lua::opts::{self, display};

use super::Raised;

/// The policy of one `gmail.batch`: the script's on_error and chunk rule,
/// falling back to the default policy.
pub(crate) struct LuaPolicy {
    lua: Lua,
    on_error: Option<Function>,
    chunk: Option<ChunkRule>,
    /// A Lua error raised by a callback: the run stops, then it is re-raised.
    error: Raised,
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
    opts::seconds(v).map(Some).map_err(|_| {
        let max = opts::MAX_WAIT_SECS;
        mlua::Error::runtime(match v {
            Value::Integer(_) | Value::Number(_) => format!(
                "gmail.batch: on_error returned \"retry\" with a wait of {} seconds; the wait must be from 0 to {max} seconds",
                display(v)
            ),
            other => format!(
                "gmail.batch: on_error returned \"retry\" with a wait of {}; the wait must be a number of seconds from 0 to {max}",
                opts::got(other)
            ),
        })
    })
}

/// The `chunk` option: a fixed size, or a function(stats) giving one.
pub(crate) enum ChunkRule {
    Fixed(usize),
    Func(Function),
}

impl LuaPolicy {
    pub(crate) fn new(
        lua: &Lua,
        on_error: Option<Function>,
        chunk: Option<ChunkRule>,
        error: &Raised,
        bar: Option<ProgressBar>,
    ) -> LuaPolicy {
        LuaPolicy {
            lua: lua.clone(),
            on_error,
            chunk,
            error: error.clone(),
            bar,
            retries: 0,
        }
    }

    fn raise(&self, e: mlua::Error) {
        self.error.keep(e);
    }

    /// No on_error: the built-in policy, its retries shown on the bar.
    fn default_decision(&mut self, err: &ApiError, key: &str, attempt: u32) -> Decision {
        let d = DefaultPolicy.on_error(err, key, attempt);
        self.count_retry(&d);
        d
    }

    fn count_retry(&mut self, decision: &Decision) {
        if matches!(decision, Decision::Retry(_) | Decision::Split) {
            self.retries += 1;
            if let Some(pb) = &self.bar {
                pb.set_message(format!("{} retries", self.retries));
            }
        }
    }
}

impl LuaPolicy {
    /// The decision of what the script's on_error returned (or raised).
    fn decision(
        &mut self,
        err: &ApiError,
        key: &str,
        attempt: u32,
        returned: mlua::Result<(Value, Value)>,
    ) -> Decision {
        let judge = |(word, delay): (Value, Value)| -> mlua::Result<Decision> {
            let word = match &word {
                Value::String(s) => s.to_str()?.to_string(),
                // Nothing said: the default policy decides.
                Value::Nil => return Ok(DefaultPolicy.on_error(err, key, attempt)),
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
        let decision = match returned.and_then(judge) {
            Ok(d) => d,
            Err(e) => {
                self.raise(e);
                Decision::Abort
            }
        };
        self.count_retry(&decision);
        decision
    }
}

impl Policy for LuaPolicy {
    fn on_error(&mut self, err: &ApiError, key: &str, attempt: u32) -> Decision {
        let returned = match &self.on_error {
            None => return self.default_decision(err, key, attempt),
            Some(f) => err_table(&self.lua, err).and_then(|t| f.call((t, key, attempt))),
        };
        self.decision(err, key, attempt, returned)
    }

    /// The script's on_error runs as a coroutine of the host, so it may
    /// call gmail.* (the run waits for it).
    fn on_error_async<'a>(
        &'a mut self,
        err: &'a ApiError,
        key: &'a str,
        attempt: u32,
    ) -> LocalBoxFuture<'a, Decision> {
        Box::pin(async move {
            let returned = match &self.on_error {
                None => return self.default_decision(err, key, attempt),
                Some(f) => match err_table(&self.lua, err) {
                    Ok(t) => crate::lua::call_callback(&self.lua, f, (t, key, attempt)).await,
                    Err(e) => Err(e),
                },
            };
            self.decision(err, key, attempt, returned)
        })
    }

    fn halt(&self) -> Option<String> {
        self.error.message()
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

/// `gmail.default_policy` in the `gmail` table `g`, read-only, and the
/// key itself guarded.
pub(crate) fn install_default(lua: &Lua, g: &Table) -> mlua::Result<()> {
    g.set("default_policy", default_policy(lua)?)?;
    protect_default_policy(lua, g)
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
                    opts::got(other)
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
