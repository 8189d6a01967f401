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

/// Where `gmail.batch` delivers: the script's on_message, the resume
/// state (committed every 50), the progress bar.
pub(crate) struct BatchSink {
    lua: Lua,
    on_message: Option<Function>,
    state: Option<LuaState>,
    /// A Lua error raised by on_message: the run stops, then it is re-raised.
    error: Raised,
    bar: Option<ProgressBar>,
    since_commit: u32,
}

impl BatchSink {
    pub(crate) fn new(
        lua: &Lua,
        on_message: Option<Function>,
        state: Option<LuaState>,
        error: &Raised,
        bar: Option<ProgressBar>,
    ) -> BatchSink {
        BatchSink {
            lua: lua.clone(),
            on_message,
            state,
            error: error.clone(),
            bar,
            since_commit: 0,
        }
    }
}

impl BatchSink {
    /// After on_message: the id marked done in the state, the bar moved.
    fn done(&mut self, key: &str) -> Result<(), String> {
        if let Some(s) = &self.state {
            s.mark_done(key).map_err(|e| e.to_string())?;
            self.since_commit += 1;
            if self.since_commit >= 50 {
                self.since_commit = 0;
                s.commit().map_err(|e| e.to_string())?;
            }
        }
        if let Some(pb) = &self.bar {
            pb.inc(1);
        }
        Ok(())
    }

    /// on_message raised: the run stops, the error kept to re-raise.
    fn failed(&self, e: mlua::Error) -> Result<(), String> {
        let text = script_error(e.clone()).message;
        self.error.keep(e);
        Err(text)
    }
}

impl Sink for BatchSink {
    fn deliver(&mut self, key: &str, answer: Answer) -> Result<(), String> {
        if let Some(f) = &self.on_message {
            let msg = crate::lua::message::from_answer(&self.lua, answer);
            if let Err(e) = msg.and_then(|m| f.call::<()>(m)) {
                return self.failed(e);
            }
        }
        self.done(key)
    }

    /// on_message runs as a coroutine of the host, so it may call gmail.*
    /// (the run goes on meanwhile, up to the delivery queue's bound).
    fn deliver_async<'a>(
        &'a mut self,
        key: &'a str,
        answer: Answer,
    ) -> LocalBoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if let Some(f) = &self.on_message {
                let called = match crate::lua::message::from_answer(&self.lua, answer) {
                    Ok(m) => crate::lua::call_callback::<()>(&self.lua, f, m).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = called {
                    return self.failed(e);
                }
            }
            self.done(key)
        })
    }

    fn waiting(&mut self, until: Option<std::time::SystemTime>) {
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
