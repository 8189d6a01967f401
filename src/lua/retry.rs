//! `retry(fn, {attempts, base, max, jitter})`: call fn until it succeeds,
//! with the engine's backoff between tries. A raised error, or a returned
//! `nil, err` whose class is rate, server or network, counts as failure.

use std::time::Duration;

use mlua::{Function, Lua, MultiValue, Value};

use crate::gmail::backoff::Backoff;
use crate::gmail::runner::{Decision, DefaultPolicy};
use crate::gmail::ErrorClass;

use super::opts::{self, Opts};

/// A returned error is retried when the default policy would retry its
/// class (rate, server, network).
fn retryable(err: &Value) -> bool {
    let Value::Table(t) = err else {
        return false;
    };
    let class = t.get::<Option<String>>("class").ok().flatten();
    class
        .as_deref()
        .and_then(ErrorClass::parse)
        .is_some_and(|c| matches!(DefaultPolicy::decide(c), Decision::Retry(_)))
}

/// The wait an error asks for. It may come from the script's own table,
/// so it is checked like any wait: a huge or NaN one raises rather than
/// hangs the run.
fn retry_after(err: &Value) -> mlua::Result<Option<Duration>> {
    let Value::Table(t) = err else {
        return Ok(None);
    };
    match t.get::<Value>("retry_after")? {
        Value::Nil => Ok(None),
        v => opts::seconds(&v)
            .map(Some)
            .map_err(|r| mlua::Error::runtime(format!("retry: the error's retry_after {r}"))),
    }
}

/// `{attempts, base, max, jitter}` of `retry` and of `gmail.batch`'s
/// `backoff`, over `defaults`; also whether `attempts` was given.
pub(crate) fn backoff_options(o: &Opts, defaults: &Backoff) -> mlua::Result<(Backoff, bool)> {
    let attempts = o.integer("attempts", 1, 1000)?;
    let jitter = match o.string("jitter")?.as_deref() {
        None => defaults.jitter,
        Some("full") => true,
        Some("none") => false,
        Some(_) => return Err(o.error("jitter", "\"full\" or \"none\"", &o.raw("jitter")?)),
    };
    let backoff = Backoff {
        attempts: attempts.map_or(defaults.attempts, |n| n as u32),
        base: o.duration("base")?.unwrap_or(defaults.base),
        cap: o.duration("max")?.unwrap_or(defaults.cap),
        jitter,
    };
    Ok((backoff, attempts.is_some()))
}

pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let f =
        lua.create_async_function(|lua, (func, opts): (Function, Option<Value>)| async move {
            let o = Opts::new("retry", opts, &["attempts", "base", "max", "jitter"])?;
            let defaults = Backoff {
                attempts: 6,
                ..Backoff::default()
            };
            let (backoff, _) = backoff_options(&o, &defaults)?;
            let ctx = super::ctx(&lua);
            let mut tries = 0u32;
            loop {
                tries += 1;
                let (failure, after) = match func.call_async::<MultiValue>(()).await {
                    Ok(values) => {
                        let first = values.front().cloned().unwrap_or(Value::Nil);
                        let second = values.get(1).cloned().unwrap_or(Value::Nil);
                        if first.is_nil() && retryable(&second) {
                            let after = retry_after(&second)?;
                            (Err(values), after)
                        } else {
                            return Ok(values);
                        }
                    }
                    Err(e) => (Ok(e), None),
                };
                if ctx.cancelled() {
                    // Interrupted: no more tries; the failure as it came.
                    return match failure {
                        Ok(e) => Err(e),
                        Err(values) => Ok(values),
                    };
                }
                match backoff.delay(tries, after) {
                    Some(wait) => tokio::time::sleep(wait).await,
                    // Out of tries: the last error is raised.
                    None => {
                        return Err(match failure {
                            Ok(e) => e,
                            Err(values) => {
                                let err = values.get(1).cloned().unwrap_or(Value::Nil);
                                let text = err.to_string().unwrap_or_else(|_| "error".into());
                                mlua::Error::runtime(format!(
                                    "retry: gave up after {tries} tries: {text}"
                                ))
                            }
                        })
                    }
                }
            }
        })?;
    lua.globals().set("retry", f)?;
    Ok(())
}
