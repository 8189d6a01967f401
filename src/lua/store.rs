//! The `store` module: run state in an SQLite file (see `crate::store`).
//! A state also keeps the resume points of the append outputs (jsonl,
//! mbox) opened with it, committed together with the ids marked done, so a
//! killed run resumes with outputs and state that agree. Every commit also
//! flushes the per-message outputs (maildir, eml) of the same Lua, which keep
//! no resume point: the state never says done for a file not yet durable.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use mlua::{Lua, UserData, UserDataMethods, Value};

use crate::gmail::ApiError;
use crate::output::Writer;
use crate::store::{FailureRecord, Store};

use super::opts::Opts;

pub(crate) type SharedWriter = Rc<RefCell<Box<dyn Writer>>>;
type WeakWriter = Weak<RefCell<Box<dyn Writer>>>;

struct Inner {
    /// None once closed (the file is released).
    store: Option<Store>,
    path: PathBuf,
    outputs: Vec<WeakWriter>,
    per_message: PerMessage,
}

#[derive(Clone)]
pub(crate) struct LuaState(Rc<RefCell<Inner>>);

/// The per-message outputs opened in one Lua (maildir, eml), whatever state
/// they were opened with or without: each state flushes them at its commits.
#[derive(Clone, Default)]
pub(crate) struct PerMessage(Rc<RefCell<Vec<WeakWriter>>>);

impl PerMessage {
    pub(crate) fn of(lua: &Lua) -> PerMessage {
        if let Some(p) = lua.app_data_ref::<PerMessage>() {
            return p.clone();
        }
        let p = PerMessage::default();
        lua.set_app_data(p.clone());
        p
    }

    pub(crate) fn add(&self, w: &SharedWriter) {
        let mut list = self.0.borrow_mut();
        list.retain(|w| w.strong_count() > 0);
        list.push(Rc::downgrade(w));
    }

    fn live(&self) -> Vec<SharedWriter> {
        self.0.borrow().iter().filter_map(Weak::upgrade).collect()
    }
}

/// The state key holding an output's resume point.
pub(crate) fn output_key(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("output:{}", abs.display())
}

impl Inner {
    fn store(&mut self) -> Result<&mut Store, String> {
        let path = self.path.display().to_string();
        self.store
            .as_mut()
            .ok_or_else(|| format!("the state {path} is closed"))
    }

    /// Flush the outputs, record where they stand, then commit: the state
    /// never says "done" for a message an output has not durably written.
    fn save(&mut self, outputs: &[SharedWriter]) -> Result<(), String> {
        let store = self.store()?;
        for w in outputs {
            let mut w = w.borrow_mut();
            w.flush().map_err(|e| e.to_string())?;
            if let Some(at) = w.resume_point() {
                store
                    .set(&output_key(w.path()), Some(&at.to_string()))
                    .map_err(|e| e.to_string())?;
            }
        }
        store.commit().map_err(|e| e.to_string())
    }

    fn live_outputs(&mut self) -> Vec<SharedWriter> {
        self.outputs.retain(|w| w.strong_count() > 0);
        let mut live: Vec<SharedWriter> = self.outputs.iter().filter_map(Weak::upgrade).collect();
        live.extend(self.per_message.live());
        live
    }
}

impl Drop for Inner {
    /// A state dropped without close() still saves its progress: outputs
    /// already gone recorded their last resume point when they closed (see
    /// `LuaState::record_point`); the live ones are flushed and recorded now.
    fn drop(&mut self) {
        if self.store.is_some() {
            let outputs = self.live_outputs();
            let _ = self.save(&outputs);
        }
    }
}

impl LuaState {
    /// Option `key` (`resume`) of an options table: a state from
    /// store.open, or nil.
    pub(crate) fn option(o: &Opts, key: &str) -> mlua::Result<Option<LuaState>> {
        match o.raw(key)? {
            Value::Nil => Ok(None),
            Value::UserData(ud) => match ud.borrow::<LuaState>() {
                Ok(state) => Ok(Some(state.clone())),
                Err(_) => {
                    Err(o.error(key, "a state from store.open", &Value::UserData(ud.clone())))
                }
            },
            other => Err(o.error(key, "a state from store.open", &other)),
        }
    }

    pub(crate) fn path(&self) -> PathBuf {
        self.0.borrow().path.clone()
    }

    pub(crate) fn is_done(&self, id: &str) -> Result<bool, String> {
        self.0
            .borrow_mut()
            .store()?
            .is_done(id)
            .map_err(|e| e.to_string())
    }

    pub(crate) fn mark_done(&self, id: &str) -> Result<(), String> {
        self.0
            .borrow_mut()
            .store()?
            .mark_done(id)
            .map_err(|e| e.to_string())
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<String>, String> {
        self.0
            .borrow_mut()
            .store()?
            .get(key)
            .map_err(|e| e.to_string())
    }

    pub(crate) fn set(&self, key: &str, value: Option<&str>) -> Result<(), String> {
        self.0
            .borrow_mut()
            .store()?
            .set(key, value)
            .map_err(|e| e.to_string())
    }

    pub(crate) fn record_failure(
        &self,
        id: &str,
        e: &ApiError,
        attempts: u32,
    ) -> Result<(), String> {
        self.0
            .borrow_mut()
            .store()?
            .record_failure(&FailureRecord {
                id: id.to_string(),
                status: e.status,
                reason: e.reason.clone(),
                message: e.message.clone(),
                class: e.class.as_str().to_string(),
                attempts,
            })
            .map_err(|e| e.to_string())
    }

    /// Follow this output: its resume point is saved at every commit.
    pub(crate) fn register(&self, w: &SharedWriter) {
        self.0.borrow_mut().outputs.push(Rc::downgrade(w));
    }

    /// An output this state follows is closing: flush it and record where
    /// it stands, to be committed with the ids marked done so far.
    pub(crate) fn record_point(&self, w: &SharedWriter) -> Result<(), String> {
        let mut inner = self.0.borrow_mut();
        let mut w = w.borrow_mut();
        w.flush().map_err(|e| e.to_string())?;
        match (w.resume_point(), inner.store.as_mut()) {
            (Some(at), Some(store)) => store
                .set(&output_key(w.path()), Some(&at.to_string()))
                .map_err(|e| e.to_string()),
            _ => Ok(()),
        }
    }

    pub(crate) fn commit(&self) -> Result<(), String> {
        let mut inner = self.0.borrow_mut();
        let outputs = inner.live_outputs();
        inner.save(&outputs)
    }

    /// Commit, then release the file.
    fn close(&self) -> Result<(), String> {
        let mut inner = self.0.borrow_mut();
        if inner.store.is_none() {
            return Ok(());
        }
        let outputs = inner.live_outputs();
        inner.save(&outputs)?;
        match inner.store.take() {
            Some(s) => s.close().map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

fn lua_err(method: &str) -> impl Fn(String) -> mlua::Error + '_ {
    move |e| mlua::Error::runtime(format!("state:{method}: {e}"))
}

impl UserData for LuaState {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("is_done", |_, s, id: String| {
            s.is_done(&id).map_err(lua_err("is_done"))
        });
        methods.add_method("mark_done", |_, s, id: String| {
            s.mark_done(&id).map_err(lua_err("mark_done"))
        });
        methods.add_method("count", |_, s, ()| {
            let mut inner = s.0.borrow_mut();
            let store = inner.store().map_err(lua_err("count"))?;
            store
                .count_done()
                .map_err(|e| lua_err("count")(e.to_string()))
        });
        methods.add_method("get", |_, s, key: String| {
            s.get(&key).map_err(lua_err("get"))
        });
        methods.add_method("set", |_, s, (key, value): (String, Value)| {
            let value = match value {
                Value::Nil => None,
                Value::String(v) => Some(v.to_str()?.to_string()),
                Value::Integer(i) => Some(i.to_string()),
                Value::Number(n) => Some(n.to_string()),
                Value::Boolean(b) => Some(b.to_string()),
                other => {
                    return Err(mlua::Error::runtime(format!(
                        "state:set: value must be a string, number, boolean or nil, got {}",
                        other.type_name()
                    )))
                }
            };
            let mut inner = s.0.borrow_mut();
            let store = inner.store().map_err(lua_err("set"))?;
            store
                .set(&key, value.as_deref())
                .map_err(|e| lua_err("set")(e.to_string()))
        });
        methods.add_method("failures", |lua, s, ()| {
            let list = {
                let mut inner = s.0.borrow_mut();
                let store = inner.store().map_err(lua_err("failures"))?;
                store
                    .failures()
                    .map_err(|e| lua_err("failures")(e.to_string()))?
            };
            let t = lua.create_table()?;
            for (i, f) in list.into_iter().enumerate() {
                let e = lua.create_table()?;
                e.set("id", f.id)?;
                let err = lua.create_table()?;
                err.set("status", f.status)?;
                err.set("reason", f.reason)?;
                err.set("message", f.message)?;
                err.set("class", f.class)?;
                e.set("error", err)?;
                e.set("attempts", f.attempts)?;
                t.raw_set(i + 1, e)?;
            }
            Ok(t)
        });
        methods.add_method("commit", |_, s, ()| s.commit().map_err(lua_err("commit")));
        methods.add_method("close", |_, s, ()| s.close().map_err(lua_err("close")));
        methods.add_method("path", |_, s, ()| Ok(s.path().display().to_string()));
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, s, ()| {
            Ok(format!("state {}", s.path().display()))
        });
    }
}

pub(crate) fn register(lua: &Lua) -> mlua::Result<()> {
    let store = lua.create_table()?;
    store.set(
        "open",
        lua.create_function(|lua, path: String| {
            let s = Store::open(Path::new(&path))
                .map_err(|e| mlua::Error::runtime(format!("store.open: {e}")))?;
            Ok(LuaState(Rc::new(RefCell::new(Inner {
                path: s.path().to_path_buf(),
                store: Some(s),
                outputs: Vec::new(),
                per_message: PerMessage::of(lua),
            }))))
        })?,
    )?;
    lua.globals().set("store", store)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{OutMessage, OutputError};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    struct Counting(Arc<AtomicU32>);
    impl Writer for Counting {
        fn write(&mut self, _: &OutMessage) -> Result<(), OutputError> {
            Ok(())
        }
        fn flush(&mut self) -> Result<(), OutputError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
        fn count(&self) -> u64 {
            0
        }
        fn kind(&self) -> &'static str {
            "counting"
        }
        fn path(&self) -> &Path {
            Path::new("x")
        }
    }

    /// A maildir opened without `resume` is still flushed before any state
    /// commits, so the state never says done for a file not yet durable.
    #[test]
    fn a_commit_flushes_the_per_message_outputs_first() {
        let lua = Lua::new();
        register(&lua).unwrap();
        let flushes = Arc::new(AtomicU32::new(0));
        let w: SharedWriter = Rc::new(RefCell::new(Box::new(Counting(flushes.clone()))));
        PerMessage::of(&lua).add(&w);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        lua.globals().set("path", path.to_str().unwrap()).unwrap();
        lua.load("local s = store.open(path); s:mark_done('a'); s:commit(); s:close()")
            .exec()
            .unwrap();
        assert_eq!(flushes.load(Ordering::SeqCst), 2, "commit and close");
        drop(w);
        lua.load("local s = store.open(path); s:commit(); s:close()")
            .exec()
            .unwrap();
        assert_eq!(
            flushes.load(Ordering::SeqCst),
            2,
            "a closed output is let go"
        );
    }
}
