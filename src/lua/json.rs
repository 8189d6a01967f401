//! `json.encode(value, {pretty = bool})`, `json.decode(text)`, `json.null`.

use mlua::{Lua, LuaSerdeExt, Value};

use super::message::LuaMessage;
use super::opts::Opts;

pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
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

/// A Lua value as JSON; a message becomes its Gmail JSON, wherever it is.
/// A table with keys 1..n and nothing else is an array; any other table is
/// an object (number keys become strings), so no key is silently dropped.
pub(crate) fn to_json(_lua: &Lua, v: Value) -> mlua::Result<serde_json::Value> {
    convert(&v, 0)
}

fn convert(v: &Value, depth: usize) -> mlua::Result<serde_json::Value> {
    use serde_json::Value as J;
    if depth > 100 {
        return Err(mlua::Error::runtime(
            "json.encode: nested more than 100 levels (a table that contains itself?)",
        ));
    }
    Ok(match v {
        Value::Nil => J::Null,
        Value::LightUserData(p) if p.0.is_null() => J::Null,
        Value::Boolean(b) => J::Bool(*b),
        Value::Integer(i) => J::from(*i),
        Value::Number(n) => serde_json::Number::from_f64(*n)
            .map(J::Number)
            .ok_or_else(|| mlua::Error::runtime(format!("json.encode: {n} has no JSON form")))?,
        Value::String(s) => J::String(s.to_string_lossy()),
        Value::Table(t) => {
            let n = t.raw_len();
            let mut count = 0usize;
            let mut pairs = Vec::new();
            for pair in t.pairs::<Value, Value>() {
                let (k, v) = pair?;
                count += 1;
                pairs.push((k, v));
            }
            if n > 0 && count == n {
                let mut arr = Vec::with_capacity(n);
                for i in 1..=n {
                    arr.push(convert(&t.raw_get::<Value>(i)?, depth + 1)?);
                }
                J::Array(arr)
            } else {
                let mut map = serde_json::Map::new();
                for (k, v) in pairs {
                    let key = match &k {
                        Value::String(s) => s.to_string_lossy(),
                        Value::Integer(i) => i.to_string(),
                        Value::Number(n) => n.to_string(),
                        Value::Boolean(b) => b.to_string(),
                        other => {
                            return Err(mlua::Error::runtime(format!(
                                "json.encode: a key of type {} has no JSON form",
                                other.type_name()
                            )))
                        }
                    };
                    map.insert(key, convert(&v, depth + 1)?);
                }
                J::Object(map)
            }
        }
        Value::UserData(ud) => match ud.borrow::<LuaMessage>() {
            Ok(m) => serde_json::from_str(m.0.json())
                .map_err(|e| mlua::Error::runtime(format!("json.encode: message JSON: {e}")))?,
            Err(_) => {
                return Err(mlua::Error::runtime(
                    "json.encode: only messages among userdata values can be encoded",
                ))
            }
        },
        other => {
            return Err(mlua::Error::runtime(format!(
                "json.encode: a {} has no JSON form",
                other.type_name()
            )))
        }
    })
}
