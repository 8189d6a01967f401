//! `log.debug/info/warn/error(...)` to stderr. info and debug follow
//! --quiet and -v; a progress bar on screen is kept intact.

use mlua::{Lua, MultiValue, Value};

use super::progress::eprint_line;

fn join(args: MultiValue) -> String {
    args.iter()
        .map(|v| match v {
            Value::String(s) => s.to_string_lossy(),
            other => other.to_string().unwrap_or_else(|_| format!("{other:?}")),
        })
        .collect::<Vec<_>>()
        .join("\t")
}

pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let log = lua.create_table()?;
    for (level, min_verbose, quiet_hides) in [
        ("debug", 1u8, true),
        ("info", 0, true),
        ("warn", 0, false),
        ("error", 0, false),
    ] {
        log.set(
            level,
            lua.create_function(move |lua, args: MultiValue| {
                let ctx = super::ctx(lua);
                if ctx.verbose < min_verbose || (quiet_hides && ctx.quiet) {
                    return Ok(());
                }
                eprint_line(&format!("{level}: {}", join(args)));
                Ok(())
            })?,
        )?;
    }
    lua.globals().set("log", log)?;
    Ok(())
}
