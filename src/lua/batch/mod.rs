//! `gmail.batch(ids, opts)`: many messages through the engine, with the
//! script's policy and callbacks. Each part has its own file: the options
//! (`options`), where the ids come from and which are done already
//! (`ids`), the Lua policy (`policy`), where messages go (`sink`), and what
//! the run reports (`report`). The bar on screen is `lua::progress`.

mod ids;
mod options;
mod policy;
mod report;
mod sink;

pub(crate) use ids::{ids_arg, IdIter};
pub(crate) use policy::install_default as install_default_policy;
pub(crate) use policy::LuaPolicy;
pub(crate) use report::{note_outcome, report_table};

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Lua, Table, Value};

use crate::lua::opts::Opts;
use crate::lua::progress;

use options::BatchOptions;
use sink::BatchSink;
pub(crate) use sink::Delivered;

pub(crate) async fn batch(lua: Lua, (ids, opts): (Value, Option<Value>)) -> mlua::Result<Table> {
    let o = Opts::new("gmail.batch", opts, options::NAMES)?;
    let ctx = crate::lua::ctx(&lua);
    let ids = ids::ids_of("gmail.batch", ids)?;
    // Options first, so a mistake is reported before any fetching.
    let opts = BatchOptions::parse(&o, &ctx.backoff, ids.count())?;
    let run_options = opts.run_options();

    // A Lua error from the ids iterator or the format function.
    let source_error = Raised::default();
    // Reading a listing or a list ahead runs no script code.
    let read_ahead = !matches!(ids, ids::Ids::Func(_));
    let (ids, already_done) = ids::skip_done(ids::stream(ids, &source_error), opts.state.clone());
    let bar = progress::start(&ctx, opts.progress, opts.total);
    let ids = progress::true_length(ids, bar.clone(), already_done.clone(), read_ahead);
    let items = ids::items(ids, opts.fetch, source_error.clone());
    // A Lua error from on_error, the chunk function or on_message.
    let callback_error = Raised::default();
    let mut policy = LuaPolicy::new(
        &lua,
        opts.on_error,
        opts.chunk,
        &callback_error,
        bar.clone(),
    );
    let mut sink = BatchSink(Delivered::new(
        &lua,
        opts.on_message,
        opts.state.clone(),
        &callback_error,
        bar.clone(),
        50,
    ));
    let running = ctx.running();
    let report = ctx
        .runner
        .run(
            Box::pin(items),
            &mut policy,
            &mut sink,
            &run_options,
            Some(ctx.cancel.clone()),
        )
        .await;
    drop(running);
    drop(sink);
    progress::finish(bar.as_ref());
    sink::commit_state(opts.state.as_ref(), &report)?;

    // A script error is raised, not counted as the policy's stop: a
    // script that catches it decides what happens next.
    source_error.raise()?;
    callback_error.raise()?;
    note_outcome(&lua, &report, opts.state.as_ref());
    ctx.outcome.borrow_mut().already_done += already_done.get();
    let t = report_table(&lua, &report, false)?;
    t.set("already_done", already_done.get())?;
    Ok(t)
}

/// A Lua error raised by a script's function while the engine runs (the
/// ids iterator, the format function, a callback): the run stops, then it
/// is raised. The first one is kept.
#[derive(Clone, Default)]
pub(crate) struct Raised(Rc<RefCell<Option<mlua::Error>>>);

impl Raised {
    pub(crate) fn keep(&self, e: mlua::Error) {
        self.0.borrow_mut().get_or_insert(e);
    }

    /// The kept error's message, the reason the run stops.
    fn message(&self) -> Option<String> {
        self.0
            .borrow()
            .as_ref()
            .map(|e| crate::lua::script_error(e.clone()).message)
    }

    /// Err with the kept error, if any (taking it).
    pub(crate) fn raise(&self) -> mlua::Result<()> {
        match self.0.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
