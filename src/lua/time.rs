//! `time.now()`, `time.sleep(seconds)` and the global `sleep`. Sleeping
//! yields to the runtime, so engine work in flight goes on.

use mlua::{Lua, Value};

pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let time = lua.create_table()?;
    time.set(
        "now",
        lua.create_function(|_, ()| {
            Ok(std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0))
        })?,
    )?;
    // A Value, not an f64: mlua would turn "1" into 1 (Lua's coercion).
    let sleep = lua.create_async_function(|_, seconds: Value| async move {
        let wait = super::opts::seconds(&seconds).map_err(|r| {
            mlua::Error::runtime(format!(
                "sleep: seconds must be a number from 0 to {}, got {}",
                super::opts::MAX_WAIT_SECS,
                r.got
            ))
        })?;
        tokio::time::sleep(wait).await;
        Ok(())
    })?;
    time.set("sleep", sleep.clone())?;
    lua.globals().set("time", time)?;
    lua.globals().set("sleep", sleep)?;
    Ok(())
}
