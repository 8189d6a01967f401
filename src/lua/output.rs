//! The `output` module: jsonl, mbox, maildir and eml writers (see
//! `crate::output`). A path that cannot be written fails when the output
//! is opened, before any fetching.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use mlua::{Lua, UserData, UserDataMethods, Value};

use crate::output::{self, OutMessage, Writer};

use super::message::LuaMessage;
use super::opts::Opts;
use super::store::{output_key, LuaState, SharedWriter};

struct LuaOutput {
    /// None once closed: dropping the writer releases its file lock.
    writer: RefCell<Option<SharedWriter>>,
    kind: &'static str,
    count_at_close: RefCell<u64>,
    /// The state that records this output's resume point, if any.
    state: Option<LuaState>,
}

fn lua_err(func: &str, e: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(format!("{func}: {e}"))
}

impl LuaOutput {
    fn writer(&self, method: &str) -> mlua::Result<SharedWriter> {
        self.writer.borrow().clone().ok_or_else(|| {
            mlua::Error::runtime(format!(
                "output.{}:{method}: this output is closed",
                self.kind
            ))
        })
    }

    fn write(&self, lua: &Lua, v: Value) -> mlua::Result<()> {
        let writer = self.writer("write")?;
        let kind = self.kind;
        let func = format!("output.{kind}:write");
        match &v {
            Value::UserData(ud) if ud.is::<LuaMessage>() => {
                let m = ud.borrow::<LuaMessage>()?;
                let m = &m.0;
                let ctx = super::ctx(lua);
                let names: Vec<String> = {
                    let labels = ctx.labels.borrow();
                    m.labels
                        .iter()
                        .map(|id| {
                            labels
                                .as_ref()
                                .and_then(|ls| ls.iter().find(|l| &l.id == id))
                                .map(|l| l.name.clone())
                                .unwrap_or_else(|| id.clone())
                        })
                        .collect()
                };
                let raw = m.raw();
                writer
                    .borrow_mut()
                    .write(&OutMessage {
                        id: &m.id,
                        thread_id: &m.thread_id,
                        labels: &m.labels,
                        label_names: &names,
                        internal_date_ms: m.internal_date_ms,
                        raw: raw.as_deref(),
                        json: m.json(),
                    })
                    .map_err(|e| lua_err(&func, e))
            }
            Value::Table(t) if kind == "jsonl" => {
                let json = serde_json::to_string(&super::json::to_json(lua, v.clone())?)
                    .map_err(|e| lua_err(&func, e))?;
                let id: Option<String> = t.get("id").ok().flatten();
                writer
                    .borrow_mut()
                    .write(&OutMessage {
                        id: id.as_deref().unwrap_or(""),
                        thread_id: "",
                        labels: &[],
                        label_names: &[],
                        internal_date_ms: 0,
                        raw: None,
                        json: &json,
                    })
                    .map_err(|e| lua_err(&func, e))
            }
            other => Err(mlua::Error::runtime(format!(
                "{func}: expected a message{}, got {}",
                if kind == "jsonl" { " or a table" } else { "" },
                other.type_name()
            ))),
        }
    }
}

impl UserData for LuaOutput {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("write", |lua, o, v: Value| o.write(lua, v));
        methods.add_method("count", |_, o, ()| {
            Ok(o.writer
                .borrow()
                .as_ref()
                .map(|w| w.borrow().count())
                .unwrap_or(o.closed_count()))
        });
        methods.add_method("relabel", |_, o, (id, labels): (String, Vec<String>)| {
            o.writer("relabel")?
                .borrow_mut()
                .relabel(&id, &labels)
                .map_err(|e| lua_err(&format!("output.{}:relabel", o.kind), e))
        });
        methods.add_method("close", |_, o, ()| {
            o.finish()
                .map_err(|e| lua_err(&format!("output.{}:close", o.kind), e))
        });
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, o, ()| {
            Ok(match o.writer.borrow().as_ref() {
                Some(w) => {
                    let w = w.borrow();
                    format!(
                        "{} output {} ({} written)",
                        w.kind(),
                        w.path().display(),
                        w.count()
                    )
                }
                None => format!("{} output (closed, {} written)", o.kind, o.closed_count()),
            })
        });
    }
}

impl LuaOutput {
    fn closed_count(&self) -> u64 {
        *self.count_at_close.borrow()
    }

    /// Flush, leave the final resume point with the state (committed with
    /// the ids it covers), and release the file.
    fn finish(&self) -> Result<(), String> {
        let Some(w) = self.writer.borrow_mut().take() else {
            return Ok(());
        };
        *self.count_at_close.borrow_mut() = w.borrow().count();
        match &self.state {
            Some(s) => s.record_point(&w),
            None => w.borrow_mut().flush().map_err(|e| e.to_string()),
        }
    }
}

impl Drop for LuaOutput {
    fn drop(&mut self) {
        // Buffered bytes reach the disk even if the script forgot close().
        let _ = self.finish();
    }
}

fn wrap(func: &str, writer: Box<dyn Writer>, state: Option<&LuaState>) -> mlua::Result<LuaOutput> {
    let writer: SharedWriter = Rc::new(RefCell::new(writer));
    if let Some(s) = state {
        s.register(&writer);
        // Record the starting point now, so a run killed before its first
        // commit resumes this file instead of finding it unexplained.
        s.commit().map_err(|e| lua_err(func, e))?;
    }
    let kind = writer.borrow().kind();
    Ok(LuaOutput {
        writer: RefCell::new(Some(writer)),
        kind,
        count_at_close: RefCell::new(0),
        state: state.cloned(),
    })
}

/// Every state's commit flushes this output first (see `PerMessage`).
fn per_message(lua: &Lua, o: LuaOutput) -> mlua::Result<LuaOutput> {
    if let Some(w) = o.writer.borrow().as_ref() {
        super::store::PerMessage::of(lua).add(w);
    }
    Ok(o)
}

/// `{resume = state}` of the append formats: where the state says the file
/// stood at its last commit. `{overwrite = true}`: start the file over.
fn resume_of(
    func: &'static str,
    path: &str,
    opts: Option<Value>,
) -> mlua::Result<(Option<LuaState>, Option<u64>)> {
    let o = Opts::new(func, opts, &["resume", "overwrite"])?;
    let overwrite = o.boolean("overwrite")?.unwrap_or(false);
    if overwrite && !o.raw("resume")?.is_nil() {
        return Err(mlua::Error::runtime(format!(
            "{func}: options 'resume' and 'overwrite' cannot go together"
        )));
    }
    let Some(state) = LuaState::option(&o, "resume")? else {
        return Ok((None, overwrite.then_some(0)));
    };
    let at = state
        .get(&output_key(Path::new(path)))
        .map_err(|e| lua_err(func, e))?
        .and_then(|v| v.parse().ok());
    Ok((Some(state), at))
}

pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let out = lua.create_table()?;
    out.set(
        "jsonl",
        lua.create_function(|_, (path, opts): (String, Option<Value>)| {
            let (state, at) = resume_of("output.jsonl", &path, opts)?;
            let w = output::jsonl(Path::new(&path), at).map_err(|e| lua_err("output.jsonl", e))?;
            wrap("output.jsonl", w, state.as_ref())
        })?,
    )?;
    out.set(
        "mbox",
        lua.create_async_function(|lua, (path, opts): (String, Option<Value>)| async move {
            let (state, at) = resume_of("output.mbox", &path, opts)?;
            let w = output::mbox(Path::new(&path), at).map_err(|e| lua_err("output.mbox", e))?;
            // X-Gmail-Labels wants label names: know them before writing.
            let _ = super::labels::labels(&lua).await;
            wrap("output.mbox", w, state.as_ref())
        })?,
    )?;
    out.set(
        "maildir",
        lua.create_function(|lua, dir: String| {
            let w = output::maildir(Path::new(&dir)).map_err(|e| lua_err("output.maildir", e))?;
            per_message(lua, wrap("output.maildir", w, None)?)
        })?,
    )?;
    out.set(
        "eml",
        lua.create_function(|lua, dir: String| {
            let w = output::eml(Path::new(&dir)).map_err(|e| lua_err("output.eml", e))?;
            per_message(lua, wrap("output.eml", w, None)?)
        })?,
    )?;
    lua.globals().set("output", out)?;
    Ok(())
}
