//! What a finished engine run tells the script (the report table) and
//! the host (the outcome behind the exit code and summary).

use mlua::{Lua, Table};

use crate::gmail::runner::{Report, Stop};
use crate::lua::error::err_table;
use crate::lua::store::LuaState;

/// A run's report as the table gmail.batch, gmail.modify and gmail.trash
/// return: counts, `stopped`, and the `failures` and `skips` listed.
pub(crate) fn report_table(lua: &Lua, r: &Report, dry_run: bool) -> mlua::Result<Table> {
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
pub(crate) fn note_outcome(lua: &Lua, r: &Report, state: Option<&LuaState>) {
    let ctx = crate::lua::ctx(lua);
    let mut o = ctx.outcome.borrow_mut();
    o.failed += r.failed.len() as u64;
    o.ok += r.ok;
    o.skipped += r.skipped.len() as u64;
    o.not_done += r.not_done;
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
