//! Requests made from Lua values: a format name (gmail.get, gmail.batch)
//! and a `{method, path, query, body}` table (gmail.fetch, a batch's
//! format function).

use mlua::Value;

use crate::gmail::request::{Format, Request};

use super::opts::{short, Opts};

pub(crate) const FORMATS: &str = "minimal, metadata, full, raw";

pub(crate) fn parse_format(func: &str, s: &str) -> mlua::Result<Format> {
    Format::parse(s).ok_or_else(|| {
        mlua::Error::runtime(format!(
            "{func}: unknown format {} (valid: {FORMATS})",
            short(s)
        ))
    })
}

/// A `{method, path, query, body}` table as a request.
pub(crate) fn fetch_request(func: &str, v: Value) -> mlua::Result<Request> {
    let o = Opts::new(func, Some(v), &["method", "path", "query", "body"])?;
    let method: &'static str = match o
        .string("method")?
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("GET") => "GET",
        Some("POST") => "POST",
        Some("PUT") => "PUT",
        Some("PATCH") => "PATCH",
        Some("DELETE") => "DELETE",
        Some(other) => {
            return Err(mlua::Error::runtime(format!(
                "{func}: option 'method' must be GET, POST, PUT, PATCH or DELETE, got {}",
                short(other)
            )))
        }
    };
    let path = o.string("path")?.ok_or_else(|| {
        mlua::Error::runtime(format!(
            "{func}: option 'path' is required, e.g. path = \"labels\""
        ))
    })?;
    if path.contains("://") || path.contains(char::is_whitespace) || path.contains('?') {
        return Err(mlua::Error::runtime(format!(
            "{func}: option 'path' must be a path below users/{{user}}/ without a query (use 'query'), got {}",
            short(&path)
        )));
    }
    let mut query = Vec::new();
    if let Value::Table(q) = o.raw("query")? {
        for pair in q.pairs::<String, Value>() {
            let (k, v) = pair?;
            match v {
                Value::Table(list) => {
                    for item in list.sequence_values::<Value>() {
                        query.push((k.clone(), scalar(func, &k, item?)?));
                    }
                }
                other => query.push((k.clone(), scalar(func, &k, other)?)),
            }
        }
    } else if !o.raw("query")?.is_nil() {
        return Err(o.error("query", "a table", &o.raw("query")?));
    }
    let body = match o.raw("body")? {
        Value::Nil => None,
        v @ Value::Table(_) => Some(serde_json::to_value(&v).map_err(|e| {
            mlua::Error::runtime(format!("{func}: option 'body' cannot be JSON: {e}"))
        })?),
        other => return Err(o.error("body", "a table", &other)),
    };
    Ok(Request::raw(method, &path, query, body))
}

fn scalar(func: &str, key: &str, v: Value) -> mlua::Result<String> {
    match v {
        Value::String(s) => Ok(s.to_str()?.to_string()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Boolean(b) => Ok(b.to_string()),
        other => Err(mlua::Error::runtime(format!(
            "{func}: query value for '{key}' must be a string, number or boolean, got {}",
            other.type_name()
        ))),
    }
}
