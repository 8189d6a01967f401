//! An engine error as scripts see it: the table `{status, reason,
//! message, class, ...}` that a call returns as its `err`, that on_error
//! is given, and that a batch report lists under failures and skips.

use mlua::{Lua, Table};

use crate::gmail::ApiError;

/// An API error as the Lua table `{status, reason, message, class, ...}`.
pub(crate) fn err_table(lua: &Lua, e: &ApiError) -> mlua::Result<Table> {
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
