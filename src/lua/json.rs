//! `json.encode(value, {pretty = bool})`, `json.decode(text)`, `json.null`.

use mlua::{Lua, LuaSerdeExt, Table, Value};

use super::message::LuaMessage;
use super::opts::Opts;

pub fn register(lua: &Lua) -> mlua::Result<()> {
    let json = lua.create_table()?;
    json.set(
        "encode",
        lua.create_function(|lua, (v, opts): (Value, Option<Value>)| {
            let o = Opts::new("json.encode", opts, &["pretty"])?;
            let pretty = o.boolean("pretty")?.unwrap_or(false);
            let value = to_json(lua, v)?;
            let text = if pretty {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            };
            text.map_err(|e| mlua::Error::runtime(format!("json.encode: {e}")))
        })?,
    )?;
    json.set(
        "decode",
        lua.create_function(|lua, text: mlua::String| {
            match serde_json::from_slice::<serde_json::Value>(&text.as_bytes()) {
                Ok(v) => Ok((lua.to_value(&v)?, Value::Nil)),
                Err(e) => Ok((
                    Value::Nil,
                    Value::String(lua.create_string(format!("json.decode: {e}"))?),
                )),
            }
        })?,
    )?;
    json.set("null", lua.null())?;
    lua.globals().set("json", json)?;
    Ok(())
}

/// A Lua value as JSON; a message becomes its Gmail JSON.
pub fn to_json(lua: &Lua, v: Value) -> mlua::Result<serde_json::Value> {
    if let Value::UserData(ud) = &v {
        if let Ok(m) = ud.borrow::<LuaMessage>() {
            return serde_json::from_str(m.0.json())
                .map_err(|e| mlua::Error::runtime(format!("message JSON: {e}")));
        }
    }
    if let Value::Table(t) = &v {
        // Messages nested in tables are encoded as their JSON too.
        if has_userdata(t)? {
            let copy = lua.create_table()?;
            for pair in t.pairs::<Value, Value>() {
                let (k, val) = pair?;
                let val = match val {
                    Value::UserData(_) | Value::Table(_) => lua.to_value(&to_json(lua, val)?)?,
                    other => other,
                };
                copy.raw_set(k, val)?;
            }
            return lua.from_value(Value::Table(copy));
        }
    }
    lua.from_value(v)
        .map_err(|e| mlua::Error::runtime(format!("json.encode: {e}")))
}

fn has_userdata(t: &Table) -> mlua::Result<bool> {
    for pair in t.pairs::<Value, Value>() {
        let (_, v) = pair?;
        if matches!(v, Value::UserData(_)) {
            return Ok(true);
        }
    }
    Ok(false)
}
