//! Where a batch's messages go: the script's on_message, the resume
//! state (each id marked done, committed every 50 and at the end), the
//! progress bar.

use futures_util::future::LocalBoxFuture;
use indicatif::ProgressBar;
use mlua::{Function, Lua};

use crate::gmail::runner::{Answer, Report, Sink};
use crate::lua::script_error;
use crate::lua::store::LuaState;

use super::Raised;

/// What `gmail.batch` and `gmail.import` deliver through: the script's
/// on_message, the resume state (committed every `every` keys), the
/// progress bar. Each run's sink records its own keys, then counts them.
pub(crate) struct Delivered {
    lua: Lua,
    on_message: Option<Function>,
    pub(crate) state: Option<LuaState>,
    /// A Lua error raised by on_message: the run stops, then it is re-raised.
    error: Raised,
    bar: Option<ProgressBar>,
    every: u32,
    since_commit: u32,
}

impl Delivered {
    pub(crate) fn new(
        lua: &Lua,
        on_message: Option<Function>,
        state: Option<LuaState>,
        error: &Raised,
        bar: Option<ProgressBar>,
        every: u32,
    ) -> Delivered {
        Delivered {
            lua: lua.clone(),
            on_message,
            state,
            error: error.clone(),
            bar,
            every: every.max(1),
            since_commit: 0,
        }
    }

    /// on_message with what `arg` makes (made only when there is one). It
    /// runs as a coroutine of the host, so it may call gmail.* (the run goes
    /// on meanwhile, up to the delivery queue's bound). When it raises, the
    /// run stops and the error is kept to re-raise.
    pub(crate) async fn on_message<A: mlua::IntoLuaMulti>(
        &self,
        arg: impl FnOnce(&Lua) -> mlua::Result<A>,
    ) -> Result<(), String> {
        let Some(f) = &self.on_message else {
            return Ok(());
        };
        let called = match arg(&self.lua) {
            Ok(a) => crate::lua::call_callback::<()>(&self.lua, f, a).await,
            Err(e) => Err(e),
        };
        called.map_err(|e| {
            let text = script_error(e.clone()).message;
            self.error.keep(e);
            text
        })
    }

    /// One key recorded in the state: committed every `every`, the bar moved.
    pub(crate) fn counted(&mut self) -> Result<(), String> {
        if let Some(s) = &self.state {
            self.since_commit += 1;
            if self.since_commit >= self.every {
                self.since_commit = 0;
                s.commit()?;
            }
        }
        if let Some(pb) = &self.bar {
            pb.inc(1);
        }
        Ok(())
    }

    /// The run waits for Gmail until `until` (None: no longer): the bar says so.
    pub(crate) fn waiting(&self, until: Option<std::time::SystemTime>) {
        if let Some(pb) = &self.bar {
            match until {
                Some(at) => {
                    let left = at
                        .duration_since(std::time::SystemTime::now())
                        .unwrap_or_default();
                    pb.set_message(format!(
                        "waiting for Gmail until {}",
                        crate::gmail::client::wall_time_after(left)
                    ));
                }
                None => pb.set_message(""),
            }
        }
    }
}

/// Where `gmail.batch` delivers: on_message with the message, then the id
/// marked done (committed every 50).
pub(crate) struct BatchSink(pub(crate) Delivered);

impl Sink for BatchSink {
    fn deliver<'a>(
        &'a mut self,
        key: &'a str,
        answer: Answer,
    ) -> LocalBoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            self.0
                .on_message(|lua| crate::lua::message::from_answer(lua, answer))
                .await?;
            if let Some(s) = &self.0.state {
                s.mark_done(key)?;
            }
            self.0.counted()
        })
    }

    fn waiting(&mut self, until: Option<std::time::SystemTime>) {
        self.0.waiting(until);
    }
}

/// The run is over: its failures recorded in the resume state, which is
/// committed.
pub(crate) fn commit_state(state: Option<&LuaState>, report: &Report) -> mlua::Result<()> {
    if let Some(s) = state {
        for f in &report.failed {
            s.record_failure(&f.key, &f.error, f.attempts)
                .map_err(|e| mlua::Error::runtime(format!("gmail.batch: {e}")))?;
        }
        s.commit()
            .map_err(|e| mlua::Error::runtime(format!("gmail.batch: {e}")))?;
    }
    Ok(())
}
