//! The `store` module: run state in an SQLite file (see `crate::store`).
//! A state also keeps the resume points of the append outputs (jsonl,
//! mbox) opened with it, committed together with the ids marked done, so a
//! killed run resumes with outputs and state that agree.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};

use mlua::{Lua, UserData, UserDataMethods, Value};

use crate::gmail::ApiError;
use crate::output::Writer;
use crate::store::{FailureRecord, Store, StoreError};

pub type SharedWriter = Rc<RefCell<Box<dyn Writer>>>;

struct Inner {
    store: Store,
    outputs: Vec<Weak<RefCell<Box<dyn Writer>>>>,
}

#[derive(Clone)]
pub struct LuaState(Rc<RefCell<Inner>>);

/// The state key holding an output's resume point.
pub fn output_key(path: &Path) -> String {
    let abs = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    format!("output:{}", abs.display())
}

impl LuaState {
    pub fn path(&self) -> PathBuf {
        self.0.borrow().store.path().to_path_buf()
    }

    pub fn is_done(&self, id: &str) -> Result<bool, StoreError> {
        self.0.borrow().store.is_done(id)
    }

    pub fn mark_done(&self, id: &str) -> Result<(), StoreError> {
        self.0.borrow_mut().store.mark_done(id)
    }

    pub fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.0.borrow().store.get(key)
    }

    pub fn record_failure(&self, id: &str, e: &ApiError, attempts: u32) -> Result<(), StoreError> {
        self.0.borrow_mut().store.record_failure(&FailureRecord {
            id: id.to_string(),
            status: e.status,
            reason: e.reason.clone(),
            message: e.message.clone(),
            class: e.class.as_str().to_string(),
            attempts,
        })
    }

    /// Follow this output: its resume point is saved at every commit.
    pub fn register(&self, w: &SharedWriter) {
        self.0.borrow_mut().outputs.push(Rc::downgrade(w));
    }

    /// Flush the outputs, record where they stand, then commit: the state
    /// never says "done" for a message an output has not durably written.
    pub fn commit(&self) -> Result<(), String> {
        let mut inner = self.0.borrow_mut();
        inner.outputs.retain(|w| w.strong_count() > 0);
        let outputs: Vec<SharedWriter> = inner.outputs.iter().filter_map(Weak::upgrade).collect();
        inner.save(&outputs)
    }
}

impl Inner {
    fn save(&mut self, outputs: &[SharedWriter]) -> Result<(), String> {
        for w in outputs {
            let mut w = w.borrow_mut();
            w.flush().map_err(|e| e.to_string())?;
            if let Some(at) = w.resume_point() {
                self.store
                    .set(&output_key(w.path()), Some(&at.to_string()))
                    .map_err(|e| e.to_string())?;
            }
        }
        self.store.commit().map_err(|e| e.to_string())
    }
}

impl Drop for Inner {
    /// A state dropped without close() still saves its progress, but only
    /// when every output it follows is alive to record its resume point;
    /// otherwise the uncommitted marks are rolled back and fetched again.
    fn drop(&mut self) {
        let outputs: Option<Vec<SharedWriter>> = self.outputs.iter().map(Weak::upgrade).collect();
        if let Some(outputs) = outputs {
            let _ = self.save(&outputs);
        }
    }
}

fn lua_err(e: impl std::fmt::Display) -> mlua::Error {
    mlua::Error::runtime(e.to_string())
}

impl UserData for LuaState {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        methods.add_method("is_done", |_, s, id: String| {
            s.is_done(&id).map_err(lua_err)
        });
        methods.add_method("mark_done", |_, s, id: String| {
            s.mark_done(&id).map_err(lua_err)
        });
        methods.add_method("count", |_, s, ()| {
            s.0.borrow().store.count_done().map_err(lua_err)
        });
        methods.add_method("get", |_, s, key: String| s.get(&key).map_err(lua_err));
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
            s.0.borrow_mut()
                .store
                .set(&key, value.as_deref())
                .map_err(lua_err)
        });
        methods.add_method("failures", |lua, s, ()| {
            let list = s.0.borrow().store.failures().map_err(lua_err)?;
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
        methods.add_method("commit", |_, s, ()| s.commit().map_err(lua_err));
        methods.add_method("close", |_, s, ()| s.commit().map_err(lua_err));
        methods.add_method("path", |_, s, ()| Ok(s.path().display().to_string()));
        methods.add_meta_method(mlua::MetaMethod::ToString, |_, s, ()| {
            Ok(format!("state {}", s.path().display()))
        });
    }
}

pub fn register(lua: &Lua) -> mlua::Result<()> {
    let store = lua.create_table()?;
    store.set(
        "open",
        lua.create_function(|_, path: String| {
            let s = Store::open(Path::new(&path))
                .map_err(|e| mlua::Error::runtime(format!("store.open: {e}")))?;
            Ok(LuaState(Rc::new(RefCell::new(Inner {
                store: s,
                outputs: Vec::new(),
            }))))
        })?,
    )?;
    lua.globals().set("store", store)?;
    Ok(())
}
