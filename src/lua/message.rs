//! Messages in Lua: a userdata over the engine's parsed message, with the
//! fields as properties (`msg.id`, `msg.labels`, ...) and the helpers as
//! methods (`msg:header("Subject")`, `msg:text()`, `msg:raw()`).

use std::sync::Arc;

use mlua::{Lua, MetaMethod, UserData, UserDataFields, UserDataMethods, Value};

use crate::gmail::message::Message;
use crate::gmail::runner::Answer;

#[derive(Clone)]
pub(crate) struct LuaMessage(pub Arc<Message>);

/// The names registered below, for the REPL's completion (`m.<Tab>`,
/// `m:<Tab>`); a test checks each is there and of its kind.
pub(crate) const FIELDS: &[&str] = &[
    "id",
    "thread_id",
    "labels",
    "snippet",
    "size",
    "date",
    "history_id",
    "format",
];
pub(crate) const METHODS: &[&str] = &["header", "headers", "text", "raw", "has_label"];

impl UserData for LuaMessage {
    fn add_fields<F: UserDataFields<Self>>(fields: &mut F) {
        fields.add_field_method_get("id", |_, m| Ok(m.0.id.clone()));
        fields.add_field_method_get("thread_id", |_, m| Ok(m.0.thread_id.clone()));
        fields.add_field_method_get("labels", |lua, m| {
            lua.create_sequence_from(m.0.labels.clone())
        });
        fields.add_field_method_get("snippet", |_, m| Ok(m.0.snippet.clone()));
        fields.add_field_method_get("size", |_, m| Ok(m.0.size));
        fields.add_field_method_get("date", |_, m| Ok(m.0.date_seconds()));
        fields.add_field_method_get("history_id", |_, m| Ok(m.0.history_id.clone()));
        fields.add_field_method_get("format", |_, m| Ok(m.0.format.as_str()));
    }

    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("header", |_, m, name: String| Ok(m.0.header(&name)));
        methods.add_method("headers", |lua, m, ()| {
            let t = lua.create_table()?;
            for (i, (name, value)) in m.0.headers().into_iter().enumerate() {
                let h = lua.create_table()?;
                h.set("name", name)?;
                h.set("value", value)?;
                t.raw_set(i + 1, h)?;
            }
            Ok(t)
        });
        methods.add_method("text", |_, m, ()| Ok(m.0.text()));
        methods.add_method("raw", |lua, m, ()| match m.0.raw() {
            Some(bytes) => Ok(Value::String(lua.create_string(bytes)?)),
            None => Ok(Value::Nil),
        });
        methods.add_method("has_label", |lua, m, label: String| {
            if m.0.labels.iter().any(|l| l.eq_ignore_ascii_case(&label)) {
                return Ok(true);
            }
            // A user label's name: look it up among the labels known so far.
            let ctx = super::ctx(lua);
            let labels = ctx.labels.borrow();
            Ok(labels.as_ref().is_some_and(|ls| {
                ls.iter()
                    .any(|l| l.name.eq_ignore_ascii_case(&label) && m.0.labels.contains(&l.id))
            }))
        });
        methods.add_meta_method(MetaMethod::ToString, |_, m, ()| {
            Ok(format!(
                "message {} ({}, {} labels)",
                m.0.id,
                m.0.format.as_str(),
                m.0.labels.len()
            ))
        });
    }
}

/// Parse an answer body into a Lua message.
/// A checked answer as a message userdata: a messages.get answer is
/// already parsed; another (a format function's request) is parsed here.
pub(crate) fn from_answer(lua: &Lua, answer: Answer) -> mlua::Result<mlua::AnyUserData> {
    match answer {
        Answer::Message(m) => lua.create_userdata(LuaMessage(Arc::new(*m))),
        Answer::Body(body) => from_body(lua, &body),
    }
}

pub(crate) fn from_body(lua: &Lua, body: &[u8]) -> mlua::Result<mlua::AnyUserData> {
    let m = Message::from_json(body)
        .map_err(|e| mlua::Error::runtime(format!("bad message from Gmail: {e}")))?;
    lua.create_userdata(LuaMessage(Arc::new(m)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlua::ObjectLike;

    #[test]
    fn completion_names_match_the_registered_ones() {
        let lua = Lua::new();
        let body = br#"{"id":"m1","threadId":"t1","labelIds":["INBOX"],"snippet":"hi","sizeEstimate":10,"internalDate":"1000","historyId":"5"}"#;
        let m = from_body(&lua, body).unwrap();
        for f in FIELDS {
            assert!(
                !matches!(m.get::<Value>(*f).unwrap(), Value::Function(_)),
                "{f} is a field"
            );
        }
        for name in METHODS {
            assert!(
                matches!(m.get::<Value>(*name).unwrap(), Value::Function(_)),
                "{name} is a method"
            );
        }
    }
}
