//! `gmail.watch{ every, state, start }`: the mailbox's changes for ever, as
//! `gmail.history` gives them, for a `for` loop. The engine's watcher
//! (`gmail::watch`) polls and keeps the mark; this file turns its events
//! into tables and commits the mark to the state after each loop body, so
//! a restart goes on after the last change handled.

use std::cell::RefCell;
use std::time::Duration;

use mlua::{Lua, MetaMethod, UserData, UserDataMethods, Value};

use crate::gmail::watch::{Event, Mark, Watcher};

use super::opts::{display, Opts};
use super::store::LuaState;

/// The state key the mark is kept under.
const MARK_KEY: &str = "watch.mark";

/// Polling faster than this is never needed (Gmail's own push is slower).
const MIN_EVERY: Duration = Duration::from_millis(100);
const DEFAULT_EVERY: Duration = Duration::from_secs(30);

struct WatchIter {
    watcher: RefCell<Option<Watcher>>,
    state: Option<LuaState>,
    /// The mark as last committed to the state.
    committed: RefCell<Option<Mark>>,
}

impl WatchIter {
    fn commit(&self, mark: Mark) -> mlua::Result<()> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        if *self.committed.borrow() == Some(mark) {
            return Ok(());
        }
        state
            .set(MARK_KEY, Some(&mark.encode()))
            .and_then(|()| state.commit())
            .map_err(|e| {
                mlua::Error::runtime(format!(
                    "gmail.watch: cannot save the mark in {}: {e}",
                    state.path().display()
                ))
            })?;
        *self.committed.borrow_mut() = Some(mark);
        Ok(())
    }
}

impl UserData for WatchIter {
    fn add_methods<M: UserDataMethods<Self>>(methods: &mut M) {
        // The loop's to-be-closed value: a `break` (no error) ends the body
        // of the last change, so its mark is committed; an error leaves the
        // mark before it, and the change comes again on the next run.
        methods.add_meta_method(MetaMethod::Close, |_, this, err: Value| {
            if !err.is_nil() {
                return Ok(());
            }
            let mark = match this.watcher.borrow_mut().as_mut() {
                Some(w) => {
                    w.done();
                    w.mark()
                }
                None => return Ok(()),
            };
            this.commit(mark)
        });
        methods.add_async_meta_method(
            MetaMethod::Call,
            |lua, this, _: mlua::MultiValue| async move {
                // The watcher leaves its cell while it waits, so a loop body
                // that calls this iterator again (it should not) gets nil
                // rather than a borrow panic.
                let Some(mut w) = this.watcher.borrow_mut().take() else {
                    return Ok(Value::Nil);
                };
                // Asked for the next change: the loop body for the last one
                // returned.
                w.done();
                let result = async {
                    this.commit(w.mark())?;
                    loop {
                        let event = w
                            .next()
                            .await
                            .map_err(|e| mlua::Error::runtime(format!("gmail.watch: {e}")))?;
                        match event {
                            Event::Moved => this.commit(w.mark())?,
                            Event::Stopped => {
                                super::ctx(&lua).outcome.borrow_mut().watch_stopped = true;
                                return Ok(None);
                            }
                            Event::Change(c) => {
                                return Ok(Some(Value::Table(super::gmail::change_table(&lua, c)?)))
                            }
                            Event::Resync { from, history_id } => {
                                let t = lua.create_table()?;
                                t.set("type", "resync")?;
                                t.set("from", from)?;
                                t.set("history_id", history_id)?;
                                return Ok(Some(Value::Table(t)));
                            }
                        }
                    }
                }
                .await;
                match result {
                    Ok(Some(v)) => {
                        *this.watcher.borrow_mut() = Some(w);
                        Ok(v)
                    }
                    // Stopped, or failed for good: the watch is over.
                    Ok(None) => Ok(Value::Nil),
                    Err(e) => Err(e),
                }
            },
        );
    }
}

/// A history id given by the script: a string of digits or a positive
/// integer.
fn start_of(o: &Opts) -> mlua::Result<Option<u64>> {
    let v = o.raw("start")?;
    let n = match &v {
        Value::Nil => return Ok(None),
        Value::String(s) => s.to_str()?.parse::<u64>().ok(),
        Value::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    };
    match n {
        Some(n) if n > 0 => Ok(Some(n)),
        _ => Err(o.error("start", "a history id (a string like \"12345\")", &v)),
    }
}

/// `for c in gmail.watch{...}`: the iterator, and itself again as the
/// loop's closing value.
type Loop = (Value, Value, Value, Value);

fn for_loop(ud: mlua::AnyUserData) -> Loop {
    let v = Value::UserData(ud);
    (v.clone(), Value::Nil, Value::Nil, v)
}

async fn watch(lua: Lua, opts: Option<Value>) -> mlua::Result<Loop> {
    let o = Opts::new("gmail.watch", opts, &["every", "state", "start"])?;
    let every = o.duration("every")?.unwrap_or(DEFAULT_EVERY);
    if every < MIN_EVERY {
        return Err(mlua::Error::runtime(format!(
            "gmail.watch: option 'every' must be at least 0.1 s (\"100ms\"), got {}",
            display(&o.raw("every")?)
        )));
    }
    let state = LuaState::option(&o, "state")?;
    let ctx = super::ctx(&lua);
    let saved = match &state {
        None => None,
        Some(st) => match st.get(MARK_KEY).map_err(mlua::Error::runtime)? {
            None => None,
            Some(s) => Some(Mark::parse(&s).ok_or_else(|| {
                mlua::Error::runtime(format!(
                    "gmail.watch: the state {} holds a mark {:?} that is not one gmail.watch \
                     wrote; remove the key \"{MARK_KEY}\" (state:set(\"{MARK_KEY}\", nil)) to \
                     start from now",
                    st.path().display(),
                    super::opts::short(&s)
                ))
            })?),
        },
    };
    let mut watcher = Watcher::new(
        ctx.client().clone(),
        Mark::at(0),
        every,
        Some(ctx.cancel.clone()),
    );
    match (start_of(&o)?, saved) {
        (Some(start), _) => watcher.set_mark(Mark::at(start)),
        (None, Some(m)) => watcher.set_mark(m),
        (None, None) => {
            let started = watcher
                .start_now()
                .await
                .map_err(|e| mlua::Error::runtime(format!("gmail.watch: {e}")))?;
            if !started {
                // Stopped before it began: a loop that ends at once.
                ctx.outcome.borrow_mut().watch_stopped = true;
                let done = WatchIter {
                    watcher: RefCell::new(None),
                    state: None,
                    committed: RefCell::new(None),
                };
                return Ok(for_loop(lua.create_userdata(done)?));
            }
        }
    }
    let mark = watcher.mark();
    tracing::info!(
        "gmail.watch: from history id {}, every {every:?}",
        mark.encode()
    );
    let it = WatchIter {
        watcher: RefCell::new(Some(watcher)),
        state,
        committed: RefCell::new(None),
    };
    // A first run remembers where "now" was, so changes that arrive before
    // a crash are still handled after the restart.
    it.commit(mark)?;
    Ok(for_loop(lua.create_userdata(it)?))
}

pub(crate) fn register(lua: &Lua, gmail: &mlua::Table) -> mlua::Result<()> {
    gmail.set("watch", lua.create_async_function(watch)?)
}
