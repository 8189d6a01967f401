//! How the REPL shows values: tables with sorted keys and indented, long
//! arrays, maps and strings cut with a count of what was left out,
//! messages summarised, error tables on one line.

use std::cmp::Ordering;
use std::ffi::c_void;

use mlua::{MultiValue, Table, Value};

use crate::gmail::message::Message;
use crate::lua::message::LuaMessage;

const MAX_ITEMS: usize = 50;
const MAX_KEYS: usize = 50;
const MAX_CHARS: usize = 200;
const MAX_DEPTH: usize = 4;
/// A table whose entries fit in this many columns is shown on one line.
const WIDTH: usize = 78;

const KEYWORDS: &[&str] = &[
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
    "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
];

/// What an entry returned: one value per line, or tab-separated when
/// each fits on one line (as the standalone Lua prompt prints them).
/// Trailing nils after the first value are left out: a call's `value,
/// nil` (no error) shows the value alone.
pub(crate) fn values(values: &MultiValue) -> String {
    let mut kept: Vec<&Value> = values.iter().collect();
    while kept.len() > 1 && kept.last().is_some_and(|v| v.is_nil()) {
        kept.pop();
    }
    let shown: Vec<String> = kept.into_iter().map(top).collect();
    if shown.iter().any(|s| s.contains('\n')) {
        shown.join("\n")
    } else {
        shown.join("\t")
    }
}

fn top(v: &Value) -> String {
    if let Value::UserData(ud) = v {
        if let Ok(m) = ud.borrow::<LuaMessage>() {
            return message_block(&m.0);
        }
    }
    Printer::default().value(v, 0)
}

#[derive(Default)]
struct Printer {
    /// The tables being shown, outermost first: a cycle shows as such.
    path: Vec<*const c_void>,
}

impl Printer {
    fn value(&mut self, v: &Value, indent: usize) -> String {
        match v {
            Value::Nil => "nil".into(),
            Value::Boolean(b) => b.to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Number(n) => number(*n),
            Value::String(s) => quote(&s.to_string_lossy()),
            Value::Table(t) => self.table(t, indent),
            Value::LightUserData(p) if p.0.is_null() => "json.null".into(),
            // What pcall returns for an error raised in Rust.
            Value::Error(e) => crate::lua::script_error((**e).clone()).message,
            Value::UserData(ud) => match ud.borrow::<LuaMessage>() {
                Ok(m) => message_line(&m.0),
                Err(_) => tostring(v),
            },
            other => tostring(other),
        }
    }

    fn table(&mut self, t: &Table, indent: usize) -> String {
        if let Some(line) = error_line(t) {
            return line;
        }
        let ptr = t.to_pointer();
        if self.path.contains(&ptr) {
            return "{…cycle}".into();
        }
        let len = t.raw_len();
        let mut others: Vec<(Value, Value)> = t
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .filter(|(k, _)| !in_array(k, len))
            .collect();
        if len + others.len() == 0 {
            return "{}".into();
        }
        if self.path.len() >= MAX_DEPTH {
            return format!("{{… {} entries}}", len + others.len());
        }
        others.sort_by(|a, b| key_order(&a.0, &b.0));
        self.path.push(ptr);
        let mut parts = Vec::new();
        for i in 1..=len.min(MAX_ITEMS) {
            let v = t.raw_get::<Value>(i).unwrap_or(Value::Nil);
            parts.push(self.value(&v, indent + 1));
        }
        if len > MAX_ITEMS {
            parts.push(format!("… {} more items", len - MAX_ITEMS));
        }
        for (k, v) in others.iter().take(MAX_KEYS) {
            parts.push(format!("{} = {}", key(k), self.value(v, indent + 1)));
        }
        if others.len() > MAX_KEYS {
            parts.push(format!("… {} more keys", others.len() - MAX_KEYS));
        }
        self.path.pop();
        let one_line = parts.iter().map(|p| p.chars().count() + 2).sum::<usize>() + 2;
        if parts.iter().all(|p| !p.contains('\n')) && indent * 2 + one_line <= WIDTH {
            return format!("{{ {} }}", parts.join(", "));
        }
        let pad = "  ".repeat(indent + 1);
        let mut out = String::from("{\n");
        for p in parts {
            out.push_str(&pad);
            out.push_str(&p);
            out.push_str(",\n");
        }
        out.push_str(&"  ".repeat(indent));
        out.push('}');
        out
    }
}

fn in_array(k: &Value, len: usize) -> bool {
    matches!(k, Value::Integer(i) if *i >= 1 && (*i as usize) <= len)
}

/// Numbers first (by value), then strings, then anything else.
fn key_order(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Integer(_) | Value::Number(_) => 0,
            Value::String(_) => 1,
            Value::Boolean(_) => 2,
            _ => 3,
        }
    }
    let num = |v: &Value| match v {
        Value::Integer(i) => Some(*i as f64),
        Value::Number(n) => Some(*n),
        _ => None,
    };
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(&y.as_bytes()),
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
            _ => rank(a).cmp(&rank(b)),
        },
    }
}

fn key(k: &Value) -> String {
    match k {
        Value::String(s) => {
            let s = s.to_string_lossy();
            if is_identifier(&s) {
                s
            } else {
                format!("[{}]", quote(&s))
            }
        }
        Value::Integer(i) => format!("[{i}]"),
        Value::Number(n) => format!("[{}]", number(*n)),
        other => format!("[{}]", tostring(other)),
    }
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !KEYWORDS.contains(&s)
}

pub(crate) fn keywords() -> &'static [&'static str] {
    KEYWORDS
}

/// As Lua writes numbers: a float with no fraction keeps its `.0`.
fn number(n: f64) -> String {
    if n.is_nan() {
        "nan".into()
    } else if n.is_infinite() {
        if n > 0.0 { "inf" } else { "-inf" }.into()
    } else if n.fract() == 0.0 && n.abs() < 1e16 {
        format!("{n:.1}")
    } else {
        n.to_string()
    }
}

/// A string in double quotes with Lua escapes, cut after MAX_CHARS.
fn quote(s: &str) -> String {
    let total = s.chars().count();
    let mut out = String::from("\"");
    for c in s.chars().take(MAX_CHARS) {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\{}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    if total > MAX_CHARS {
        out.push_str(&format!("… {} more characters", total - MAX_CHARS));
    }
    out
}

fn tostring(v: &Value) -> String {
    v.to_string()
        .unwrap_or_else(|_| format!("{}: ?", v.type_name()))
}

/// An error table from the gmail module (`{status, reason, message,
/// class}`) on one line.
fn error_line(t: &Table) -> Option<String> {
    let Ok(Value::Integer(status)) = t.raw_get::<Value>("status") else {
        return None;
    };
    let text = |k: &str| match t.raw_get::<Value>(k) {
        Ok(Value::String(s)) => Some(s.to_string_lossy()),
        _ => None,
    };
    let (reason, message, class) = (text("reason")?, text("message")?, text("class")?);
    let mut line = format!("error {status} {reason} ({class}): {message}");
    if let Some(d) = text("diagnosis") {
        line.push_str(" — ");
        line.push_str(&d);
    }
    Some(line)
}

fn date(m: &Message) -> Option<String> {
    chrono::DateTime::from_timestamp(m.date_seconds().floor() as i64, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
}

/// A message inside a table: one line.
fn message_line(m: &Message) -> String {
    let mut parts = vec![format!("message {}", m.id)];
    parts.extend(date(m));
    parts.extend(m.header("From"));
    parts.extend(m.header("Subject").map(|s| quote(&s)));
    parts.push(format!("[{}]", m.labels.join(", ")));
    parts.join(" · ")
}

/// A message on its own: a few lines.
fn message_block(m: &Message) -> String {
    let mut out = format!("message {} ({})", m.id, m.format.as_str());
    let mut field = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            out.push_str(&format!("\n  {name:<8} {v}"));
        }
    };
    field("date", date(m));
    field("from", m.header("From"));
    field("subject", m.header("Subject"));
    field("labels", Some(m.labels.join(", ")));
    field("size", Some(format!("{} bytes", m.size)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::Lua;

    fn show(lua: &Lua, expr: &str) -> String {
        let v: MultiValue = lua.load(format!("return {expr}")).eval().unwrap();
        values(&v)
    }

    #[test]
    fn scalars_and_several_values() {
        let lua = Lua::new();
        assert_eq!(
            show(&lua, "1, 2.5, 3.0, nil, true"),
            "1\t2.5\t3.0\tnil\ttrue"
        );
        assert_eq!(show(&lua, "'a\\n\"b\"'"), r#""a\n\"b\"""#);
        let long = show(&lua, "string.rep('x', 250)");
        assert!(long.ends_with("\"… 50 more characters"), "{long}");
    }

    #[test]
    fn tables_sorted_nested_and_cut() {
        let lua = Lua::new();
        assert_eq!(show(&lua, "{}"), "{}");
        assert_eq!(
            show(
                &lua,
                "{ b = 2, a = 1, [10] = 'x', 'first', ['not id'] = true }"
            ),
            r#"{ "first", [10] = "x", a = 1, b = 2, ["not id"] = true }"#
        );
        let big = show(
            &lua,
            "(function() local t = {} for i = 1, 462 do t[i] = i end return t end)()",
        );
        assert!(big.starts_with("{\n  1,\n  2,\n"), "{big}");
        assert!(big.ends_with("  50,\n  … 412 more items,\n}"), "{big}");
        let nested = show(
            &lua,
            "{ inner = { list = { 1, 2 } }, name = string.rep('n', 70) }",
        );
        assert_eq!(
            nested,
            format!(
                "{{\n  inner = {{ list = {{ 1, 2 }} }},\n  name = \"{}\",\n}}",
                "n".repeat(70)
            )
        );
        let cyclic = show(&lua, "(function() local t = {} t.self = t return t end)()");
        assert_eq!(cyclic, "{ self = {…cycle} }");
    }

    #[test]
    fn error_tables_on_one_line() {
        let lua = Lua::new();
        let shown = show(
            &lua,
            "nil, { status = 404, reason = 'notFound', message = 'Requested entity was not found.', class = 'not_found' }",
        );
        assert_eq!(
            shown,
            "nil\terror 404 notFound (not_found): Requested entity was not found."
        );
    }

    #[test]
    fn messages_summarised() {
        let lua = Lua::new();
        let body = br#"{"id":"m1","threadId":"t1","labelIds":["INBOX","UNREAD"],"sizeEstimate":1234,"internalDate":"1714564980000","payload":{"headers":[{"name":"From","value":"Alice <a@example.com>"},{"name":"Subject","value":"Lunch?"}]}}"#;
        let m = crate::lua::message::from_body(&lua, body).unwrap();
        let one = values(&MultiValue::from_vec(vec![Value::UserData(m.clone())]));
        assert_eq!(
            one,
            "message m1 (metadata)\n  date     2024-05-01 12:03 UTC\n  from     Alice <a@example.com>\n  subject  Lunch?\n  labels   INBOX, UNREAD\n  size     1234 bytes"
        );
        let t = lua.create_sequence_from([m]).unwrap();
        let inside = values(&MultiValue::from_vec(vec![Value::Table(t)]));
        assert_eq!(
            inside,
            "{\n  message m1 · 2024-05-01 12:03 UTC · Alice <a@example.com> · \"Lunch?\" · [INBOX, UNREAD],\n}"
        );
    }
}
