//! `time.now()`, `time.sleep(seconds)` and the global `sleep`. Sleeping
//! yields to the runtime, so engine work in flight goes on.

use std::time::Duration;

use mlua::Lua;

pub fn register(lua: &Lua) -> mlua::Result<()> {
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
    let sleep = lua.create_async_function(|_, seconds: f64| async move {
        if !(seconds.is_finite() && seconds >= 0.0) {
            return Err(mlua::Error::runtime(format!(
                "sleep: seconds must be a number of 0 or more, got {seconds}"
            )));
        }
        tokio::time::sleep(Duration::from_secs_f64(seconds.min(86_400.0))).await;
        Ok(())
    })?;
    time.set("sleep", sleep.clone())?;
    lua.globals().set("time", time)?;
    lua.globals().set("sleep", sleep)?;
    Ok(())
}
