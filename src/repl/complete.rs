//! Tab completion: `:` commands and help topics; globals and keywords;
//! members reachable from the typed prefix, walking tables in the Lua
//! state (`gmail.ba` → `gmail.batch`). On a message `m.` lists its fields
//! and `m:` its methods; on a string `s:` lists the string library.

use mlua::{Lua, Value};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use super::show::{is_identifier, keywords};
use crate::lua::message::{LuaMessage, FIELDS, METHODS};

const COMMANDS: &[&str] = &[":help", ":quit"];

/// The editor's helper: it reads the live Lua state on each Tab.
pub(crate) struct ReplHelper {
    pub(crate) lua: Lua,
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let (start, names) = complete(&self.lua, &line[..pos]);
        let pairs = names
            .into_iter()
            .map(|n| Pair {
                display: n.clone(),
                replacement: n,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for ReplHelper {
    type Hint = String;
}
impl Highlighter for ReplHelper {}
impl Validator for ReplHelper {}
impl Helper for ReplHelper {}

/// Where the word being completed starts in `before` (the line up to the
/// cursor), and what it may become, sorted.
fn complete(lua: &Lua, before: &str) -> (usize, Vec<String>) {
    let trimmed = before.trim_start();
    if trimmed.starts_with(':') {
        return command(before);
    }
    let start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '_' || c == '.' || c == ':'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let token = &before[start..];
    let (names, partial) = match token.rfind(['.', ':']) {
        None => {
            let mut names = string_keys(&lua.globals());
            names.extend(keywords().iter().map(|k| k.to_string()));
            (names, token)
        }
        Some(at) => {
            let sep = token.as_bytes()[at];
            (
                walk(lua, &token[..at])
                    .map(|v| members(lua, &v, sep == b':'))
                    .unwrap_or_default(),
                &token[at + 1..],
            )
        }
    };
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|n| n.starts_with(partial))
        .collect();
    names.sort();
    names.dedup();
    (before.len() - partial.len(), names)
}

/// `:he` → `:help`; `:help gmail.b` → the help topics.
fn command(before: &str) -> (usize, Vec<String>) {
    let lead = before.len() - before.trim_start().len();
    match before[lead..].split_once(' ') {
        None => (
            lead,
            COMMANDS
                .iter()
                .filter(|c| c.starts_with(&before[lead..]))
                .map(|c| c.to_string())
                .collect(),
        ),
        Some((":help", arg)) => {
            let arg = arg.trim_start();
            let lower = arg.to_lowercase();
            let topics = super::help::topics()
                .into_iter()
                .filter(|t| t.to_lowercase().starts_with(&lower))
                .map(String::from)
                .collect();
            (before.len() - arg.len(), topics)
        }
        Some(_) => (before.len(), Vec::new()),
    }
}

/// The value at a dotted path of globals (`gmail.default_policy`),
/// through plain tables only: completing never runs Lua code.
fn walk(lua: &Lua, path: &str) -> Option<Value> {
    let mut v = Value::Table(lua.globals());
    for seg in path.split('.') {
        if !is_identifier(seg) {
            return None;
        }
        v = match v {
            Value::Table(t) => match t.raw_get(seg).ok()? {
                // A field kept in the metatable's `__index` table (as
                // `gmail.default_policy` is, being read-only).
                Value::Nil => match t.metatable().map(|mt| mt.raw_get("__index")) {
                    Some(Ok(Value::Table(fields))) => fields.raw_get(seg).ok()?,
                    _ => Value::Nil,
                },
                found => found,
            },
            _ => return None,
        };
    }
    Some(v)
}

/// Names after `v.` (fields) or `v:` (methods).
fn members(lua: &Lua, v: &Value, methods: bool) -> Vec<String> {
    match v {
        Value::Table(t) => {
            let mut names: Vec<String> = t
                .pairs::<Value, Value>()
                .filter_map(Result::ok)
                .filter(|(_, v)| !methods || v.is_function())
                .filter_map(|(k, _)| k.as_str().map(|s| s.to_string()))
                .filter(|k| is_identifier(k))
                .collect();
            // Methods of objects made with a metatable (`__index = Class`).
            if let Some(Ok(Value::Table(class))) = t.metatable().map(|mt| mt.raw_get("__index")) {
                names.extend(members(lua, &Value::Table(class), methods));
            }
            names
        }
        Value::UserData(ud) if ud.is::<LuaMessage>() => {
            let names = if methods { METHODS } else { FIELDS };
            names.iter().map(|s| s.to_string()).collect()
        }
        // Outputs, states and iterators keep their methods in `__index`.
        Value::UserData(ud) => match ud.metatable().and_then(|mt| mt.get::<Value>("__index")) {
            Ok(Value::Table(t)) => string_keys(&t)
                .into_iter()
                .filter(|k| !k.starts_with("__"))
                .collect(),
            _ => Vec::new(),
        },
        Value::String(_) if methods => match lua.globals().raw_get::<Value>("string") {
            Ok(Value::Table(t)) => string_keys(&t),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    }
}

fn string_keys(t: &mlua::Table) -> Vec<String> {
    t.pairs::<Value, Value>()
        .filter_map(Result::ok)
        .filter_map(|(k, _)| k.as_str().map(|s| s.to_string()))
        .filter(|k| is_identifier(k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lua() -> Lua {
        let lua = Lua::new();
        lua.load(
            "gmail = { batch = 1, bar = 2, list = 3, default_policy = { on_error = function() end, name = 'x' } }
             Obj = {} Obj.__index = Obj function Obj.write() end obj = setmetatable({ n = 1 }, Obj)
             s = 'text'
             ro = setmetatable({}, { __index = { hidden = { deep = 1 } } })",
        )
        .exec()
        .unwrap();
        lua
    }

    #[test]
    fn globals_modules_and_paths() {
        let lua = lua();
        assert_eq!(complete(&lua, "gma"), (0, vec!["gmail".to_string()]));
        assert_eq!(
            complete(&lua, "print(gmail.ba"),
            (12, vec!["bar".to_string(), "batch".to_string()])
        );
        assert_eq!(
            complete(&lua, "gmail.default_policy."),
            (21, vec!["name".to_string(), "on_error".to_string()])
        );
        assert_eq!(
            complete(&lua, "gmail.default_policy:"),
            (21, vec!["on_error".to_string()])
        );
        // Fields a read-only table keeps in its metatable's __index.
        assert_eq!(complete(&lua, "ro.hid").1, vec!["hidden".to_string()]);
        assert_eq!(complete(&lua, "ro.hidden.").1, vec!["deep".to_string()]);
        assert_eq!(complete(&lua, "obj:w").1, vec!["write".to_string()]);
        assert!(complete(&lua, "s:up").1.contains(&"upper".to_string()));
        assert!(complete(&lua, "fun").1.contains(&"function".to_string()));
        assert!(complete(&lua, "nothing.here.").1.is_empty());
        assert!(complete(&lua, "1.").1.is_empty());
    }

    #[test]
    fn messages_fields_and_methods() {
        let lua = lua();
        let body = br#"{"id":"m1","threadId":"t1"}"#;
        let m = crate::lua::message::from_body(&lua, body).unwrap();
        lua.globals().set("m", m).unwrap();
        assert_eq!(
            complete(&lua, "m:h").1,
            vec!["has_label", "header", "headers"]
        );
        assert_eq!(complete(&lua, "m.th").1, vec!["thread_id"]);
    }

    #[test]
    fn commands_and_topics() {
        let lua = lua();
        assert_eq!(complete(&lua, ":he"), (0, vec![":help".to_string()]));
        assert_eq!(
            complete(&lua, ":help gmail.ba"),
            (6, vec!["gmail.batch".to_string()])
        );
    }
}
