//! The Lua host: one Lua state with the gmailscript modules, scripts run as
//! coroutines on the tokio runtime, so every engine call is async
//! underneath and looks synchronous in Lua. One file per module; each
//! registers itself from `register` (`gmail` registers gmail.batch, from
//! `batch/`, and gmail.modify and gmail.trash, from `mutate`). The other
//! files are what modules share: options tables (`opts`), errors as Lua
//! tables (`error`), requests from Lua values (`request`), labels, messages,
//! and the progress bar (`progress`).

mod batch;
mod coroutine;
mod error;
mod gmail;
mod import;
mod input;
mod json;
mod labels;
mod log;
pub(crate) mod message;
mod mutate;
mod opts;
mod output;
pub(crate) mod progress;
mod request;
mod require;
mod retry;
mod store;
mod time;
mod watch;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mlua::{Lua, Value};
use tokio::sync::watch as signal;

use crate::gmail::backoff::Backoff;
use crate::gmail::quota::Profile;
use crate::gmail::runner::Runner;
use crate::gmail::Client;

/// What the engine needs to know, for every module.
pub struct HostConfig {
    pub client: Arc<Client>,
    pub profile: Profile,
    /// The quota window (60 s on Gmail; shorter on a sped-up simulator).
    pub window: Duration,
    /// A pacer made by the caller (to learn the quota and remember it);
    /// else one for `profile` and `window`.
    pub pacer: Option<Arc<crate::gmail::quota::Pacer>>,
    pub dry_run: bool,
    /// No progress bars, no info logs.
    pub quiet: bool,
    pub verbose: u8,
    /// Turns true on Ctrl-C: runs stop cleanly.
    pub cancel: signal::Receiver<bool>,
}

/// How the script's work went, for the exit code and the summary.
#[derive(Debug, Default, Clone)]
pub(crate) struct Outcome {
    /// Items recorded as failed by any batch.
    pub(crate) failed: u64,
    /// Items delivered (or changed), skipped, and begun but not finished
    /// because a run stopped, over all engine runs; ids a resume state
    /// had done already.
    pub(crate) ok: u64,
    pub(crate) skipped: u64,
    pub(crate) not_done: u64,
    pub(crate) already_done: u64,
    /// Where failures were recorded (a state file), if anywhere.
    pub(crate) failures_in: Option<PathBuf>,
    /// A batch stopped on its policy's "abort" (the diagnosis).
    pub(crate) stopped: Option<String>,
    pub(crate) cancelled: bool,
    /// A `gmail.watch` loop ended on a stop request (Ctrl-C, SIGTERM): the
    /// normal end of a watch, not an interruption.
    pub(crate) watch_stopped: bool,
    /// The script raised (set by `run`, for its report).
    pub(crate) script_error: Option<String>,
    /// Quota units the engine's batches spent (set by `run`).
    pub(crate) units: u64,
}

/// Shared by every module through the Lua state's app data.
pub(crate) struct Ctx {
    pub(crate) runner: Runner,
    dry_run: bool,
    quiet: bool,
    verbose: u8,
    backoff: Backoff,
    cancel: signal::Receiver<bool>,
    pub(crate) outcome: RefCell<Outcome>,
    /// labels.list, fetched once when a name must be resolved.
    pub(crate) labels: RefCell<Option<Vec<labels::LabelInfo>>>,
    /// Engine runs (batches) under way; the REPL's Ctrl-C handler, on its
    /// own thread, reads it to stop a batch cleanly rather than drop it.
    pub(crate) running: Arc<AtomicUsize>,
    /// See `Host::set_interrupt`.
    interrupt: RefCell<Option<Arc<AtomicBool>>>,
    /// The threads running Lua code, outermost first, while an interrupt
    /// flag is set: mlua keeps one hook, on one thread, so a callback's
    /// thread takes it and gives it back to the one below when it ends.
    hooked: RefCell<Vec<mlua::Thread>>,
    /// One of many mailboxes of a `--users` run: a batch's bar is not drawn
    /// but kept in `batch_bar`, for the run's line of this mailbox.
    folded: std::cell::Cell<bool>,
    pub(crate) batch_bar: RefCell<Option<indicatif::ProgressBar>>,
}

/// Counts one engine run for as long as it lives.
struct Running(Arc<AtomicUsize>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Gives the interrupt hook back to the thread below when a hooked thread
/// ends (or its future is dropped). Callbacks may end out of order (an
/// on_error can run while an on_message waits), so each guard takes out
/// its own thread, wherever it stands.
struct Hooked<'a>(&'a Ctx, Option<mlua::Thread>);

impl Drop for Hooked<'_> {
    fn drop(&mut self) {
        let Some(mine) = self.1.take() else {
            return;
        };
        let mut threads = self.0.hooked.borrow_mut();
        if let Some(i) = threads.iter().rposition(|t| *t == mine) {
            threads.remove(i);
        }
        if let (Some(t), Some(flag)) = (threads.last(), self.0.interrupt.borrow().clone()) {
            set_interrupt_hook(t, flag);
        }
    }
}

/// Lua code on `thread` raises "interrupted" while `flag` is set: a loop
/// that never waits on the engine cannot be dropped at an await.
fn set_interrupt_hook(thread: &mlua::Thread, flag: Arc<AtomicBool>) {
    thread.set_hook(
        mlua::HookTriggers::new().every_nth_instruction(10_000),
        move |_, _| match flag.load(Ordering::Relaxed) {
            true => Err(mlua::Error::runtime("interrupted")),
            false => Ok(mlua::VmState::Continue),
        },
    );
}

impl Ctx {
    /// Give `thread` the interrupt hook, if there is one, until the guard
    /// is dropped.
    fn hook(&self, thread: &mlua::Thread) -> Hooked<'_> {
        let Some(flag) = self.interrupt.borrow().clone() else {
            return Hooked(self, None);
        };
        set_interrupt_hook(thread, flag);
        self.hooked.borrow_mut().push(thread.clone());
        Hooked(self, Some(thread.clone()))
    }

    fn client(&self) -> &Arc<Client> {
        &self.runner.client
    }
    pub(crate) fn cancelled(&self) -> bool {
        *self.cancel.borrow()
    }
    fn running(&self) -> Running {
        self.running.fetch_add(1, Ordering::SeqCst);
        Running(self.running.clone())
    }
}

/// Call a script's callback (on_message, on_error) as a coroutine of the
/// host, so it may wait on the engine (gmail.*, sleep) as the script's own
/// code does; the REPL's Ctrl-C reaches a loop in it too.
pub(crate) async fn call_callback<R: mlua::FromLuaMulti>(
    lua: &Lua,
    f: &mlua::Function,
    args: impl mlua::IntoLuaMulti,
) -> mlua::Result<R> {
    let ctx = ctx(lua);
    let thread = lua.create_thread(f.clone())?;
    let hooked = ctx.hook(&thread);
    let r = thread.into_async::<R>(args).await;
    drop(hooked);
    r
}

fn ctx(lua: &Lua) -> Rc<Ctx> {
    lua.app_data_ref::<Rc<Ctx>>()
        .expect("the host sets its context before running scripts")
        .clone()
}

/// A script that failed: `file:line: message`, and a traceback.
#[derive(Debug, Clone)]
pub struct ScriptError {
    pub(crate) message: String,
    traceback: Option<String>,
}

impl ScriptError {
    /// `stack traceback:` and its first 8 frames, one a line, as `run` and
    /// the REPL print them under the message; empty without a traceback.
    pub(crate) fn traceback_lines(&self) -> Vec<String> {
        let Some(tb) = &self.traceback else {
            return Vec::new();
        };
        std::iter::once("stack traceback:".to_string())
            .chain(tb.lines().take(8).map(|l| format!("  {}", l.trim_start())))
            .collect()
    }
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub struct Host {
    pub lua: Lua,
    pub(crate) ctx: Rc<Ctx>,
}

impl Host {
    pub fn new(cfg: HostConfig) -> mlua::Result<Host> {
        let lua = Lua::new();
        // A batch makes a message userdata (and more garbage) per message,
        // each dead once on_message returns. Lua sees only the userdata's
        // few bytes, not the engine's message behind it, so the incremental
        // collector lets them pile up, and their late frees fragment the
        // heap: 2.4 of the 17 µs of CPU a message cost through Lua. The
        // generational collector frees the young promptly (`cargo bench
        // --bench lua`, docs/benchmarks.md).
        lua.gc_gen(0, 0);
        // Ctrl-C ends the waits of single calls too, not only batches'.
        cfg.client.watch_cancel(cfg.cancel.clone());
        let ctx = Rc::new(Ctx {
            runner: match cfg.pacer {
                Some(p) => Runner::with_pacer(cfg.client, cfg.profile, p),
                None => Runner::new(cfg.client, cfg.profile, cfg.window),
            },
            dry_run: cfg.dry_run,
            quiet: cfg.quiet,
            verbose: cfg.verbose,
            backoff: Backoff::default(),
            cancel: cfg.cancel,
            outcome: RefCell::new(Outcome::default()),
            labels: RefCell::new(None),
            running: Arc::new(AtomicUsize::new(0)),
            interrupt: RefCell::new(None),
            hooked: RefCell::new(Vec::new()),
            folded: std::cell::Cell::new(false),
            batch_bar: RefCell::new(None),
        });
        lua.set_app_data(ctx.clone());
        gmail::register(&lua)?;
        retry::register(&lua)?;
        output::register(&lua)?;
        store::register(&lua)?;
        json::register(&lua)?;
        input::register(&lua)?;
        log::register(&lua)?;
        time::register(&lua)?;
        coroutine::register(&lua)?;
        require::register(&lua)?;
        lua.globals().set("DRY_RUN", ctx.dry_run)?;
        Ok(Host { lua, ctx })
    }

    /// Set `gmail.user`: the address this state acts for in a `--users`
    /// run (nil otherwise).
    pub(crate) fn set_user(&self, email: &str) -> mlua::Result<()> {
        self.lua
            .globals()
            .get::<mlua::Table>("gmail")?
            .set("user", email)
    }

    /// One of many mailboxes: batches draw no bar of their own (see
    /// [`Ctx::folded`]).
    pub(crate) fn fold_progress(&self) {
        self.ctx.folded.set(true);
    }

    /// Load and run a script file with `arg` set, to its end.
    async fn run_file(&self, path: &Path, args: &[String]) -> Result<(), ScriptError> {
        let source = std::fs::read(path).map_err(|e| ScriptError {
            message: format!("cannot read {}: {e}", path.display()),
            traceback: None,
        })?;
        require::set_path(&self.lua, path.parent()).map_err(script_error)?;
        let name = path.display().to_string();
        self.run_chunk(&source, &name, &name, args).await
    }

    /// Run a script, a file or a shipped one.
    pub(crate) async fn run_script(
        &self,
        script: &crate::scripts::Script,
        args: &[String],
    ) -> Result<(), ScriptError> {
        match script {
            crate::scripts::Script::File(path) => self.run_file(path, args).await,
            crate::scripts::Script::Shipped(s) => {
                // Its neighbours are the other shipped scripts; no folder.
                require::set_path(&self.lua, None).map_err(script_error)?;
                require::add_shipped_searcher(&self.lua, crate::scripts::SHIPPED)
                    .map_err(script_error)?;
                let source = s.source.as_bytes();
                self.run_chunk(source, &s.chunk_name(), s.name, args).await
            }
        }
    }

    /// Run `source` as the chunk `name` with `arg[0]` = `arg0`.
    async fn run_chunk(
        &self,
        source: &[u8],
        name: &str,
        arg0: &str,
        args: &[String],
    ) -> Result<(), ScriptError> {
        let lua = &self.lua;
        let arg = lua.create_table().map_err(script_error)?;
        arg.raw_set(0, arg0).map_err(script_error)?;
        for (i, a) in args.iter().enumerate() {
            arg.raw_set(i + 1, a.as_str()).map_err(script_error)?;
        }
        lua.globals().set("arg", arg).map_err(script_error)?;
        let chunk = lua
            .load(source)
            .set_name(format!("@{name}"))
            .into_function()
            .map_err(script_error)?;
        self.call_traced(chunk, args).await
    }

    /// From now on, Lua code run by `eval` raises "interrupted" while
    /// `flag` is set: a loop that never waits on the engine cannot be
    /// dropped at an await the way a pending call can.
    pub(crate) fn set_interrupt(&self, flag: Arc<AtomicBool>) {
        *self.ctx.interrupt.borrow_mut() = Some(flag);
    }

    /// Compile what was typed at the REPL, named `stdin`: as an expression
    /// whose values are returned when it parses as one (so `1 + 1` shows 2),
    /// else as statements. `Ok(None)` when the input stops mid-statement
    /// and `more` lines may follow to complete it.
    pub(crate) fn compile_line(
        &self,
        source: &str,
        more: bool,
    ) -> Result<Option<mlua::Function>, ScriptError> {
        let load = |text: &str| self.lua.load(text).set_name("=stdin").into_function();
        if let Ok(f) = load(&format!("return {source}")) {
            return Ok(Some(f));
        }
        match load(source) {
            Ok(f) => Ok(Some(f)),
            Err(mlua::Error::SyntaxError {
                incomplete_input: true,
                ..
            }) if more => Ok(None),
            Err(e) => Err(script_error(e)),
        }
    }

    /// Run `f` as a coroutine under xpcall, so an error carries the
    /// traceback of where it was raised.
    pub async fn call_traced(&self, f: mlua::Function, args: &[String]) -> Result<(), ScriptError> {
        self.eval(f, args).await.map(|_| ())
    }

    /// As `call_traced`, keeping what `f` returned.
    pub(crate) async fn eval(
        &self,
        f: mlua::Function,
        args: &[String],
    ) -> Result<mlua::MultiValue, ScriptError> {
        let lua = &self.lua;
        let wrapper: mlua::Function = lua
            .load("local f, h = ...; return xpcall(f, h, select(3, ...))")
            .set_name("=gmailscript")
            .into_function()
            .map_err(script_error)?;
        let handler = lua
            .create_function(|lua, e: Value| Ok(traceback(lua, &e)))
            .map_err(script_error)?;
        let mut argv = vec![Value::Function(f), Value::Function(handler)];
        for a in args {
            argv.push(Value::String(lua.create_string(a).map_err(script_error)?));
        }
        let thread = lua.create_thread(wrapper).map_err(script_error)?;
        let hooked = self.ctx.hook(&thread);
        let values = thread.into_async(mlua::MultiValue::from_vec(argv)).await;
        drop(hooked);
        let mut values: mlua::MultiValue = values.map_err(script_error)?;
        if let Some(Value::Boolean(true)) = values.pop_front() {
            return Ok(values);
        }
        let text = match values.pop_front().unwrap_or(Value::Nil) {
            Value::String(s) => s.to_string_lossy(),
            other => format!("{other:?}"),
        };
        let (message, traceback) = match text.split_once("\nstack traceback:\n") {
            Some((m, t)) => (m.to_string(), Some(t.to_string())),
            None => (text, None),
        };
        Err(ScriptError { message, traceback })
    }
}

/// The message of a Lua error value and the stack where it was raised,
/// `file:line` per frame, innermost first.
///
/// A callback (on_message, on_error) runs in a coroutine of its own: an
/// error there comes with that coroutine's traceback in its text (a Lua
/// error) or in a CallbackError (a Rust function's), and the call of
/// gmail.batch adds its own CallbackError. Those frames are the error's,
/// innermost first, cleaned of the host's; the live stack is used only
/// for an error that carries none (a plain `error()` where it runs).
fn traceback(lua: &Lua, e: &Value) -> String {
    let (message, frames) = match e {
        Value::String(s) => split_frames(&s.to_string_lossy()),
        Value::Error(err) => {
            let (message, frames) = error_frames(err);
            let message = bad_argument(lua, err).unwrap_or(message);
            (message, frames)
        }
        Value::Nil => ("error (nil)".to_string(), None),
        other => (
            other
                .to_string()
                .unwrap_or_else(|_| format!("error ({})", other.type_name())),
            None,
        ),
    };
    let frames = frames.unwrap_or_else(|| live_frames(lua));
    if frames.is_empty() {
        message
    } else {
        format!("{message}\nstack traceback:\n{}", frames.join("\n"))
    }
}

/// The script's frames of the stack running the error handler.
fn live_frames(lua: &Lua) -> Vec<String> {
    let mut frames = Vec::new();
    for level in 1..40 {
        let Some(d) = lua.inspect_stack(level) else {
            break;
        };
        let src = d.source();
        let what = src.what;
        if what == "C" {
            continue;
        }
        let file = src.short_src.map(|s| s.to_string()).unwrap_or_default();
        if host_frame(&file) {
            continue;
        }
        let line = d.curr_line();
        let name = d
            .names()
            .name
            .map(|n| format!("in function '{n}'"))
            .unwrap_or_else(|| {
                if what == "main" {
                    "in main chunk".to_string()
                } else {
                    "in function".to_string()
                }
            });
        frames.push(format!("\t{file}:{line}: {name}"));
    }
    frames
}

/// A message with a traceback Lua appended (a coroutine's error, as mlua
/// returns it): the message, and the script's frames if there were any.
fn split_frames(text: &str) -> (String, Option<Vec<String>>) {
    match text.split_once("\nstack traceback:\n") {
        Some((m, t)) => (m.to_string(), Some(script_frames(t))),
        None => (text.to_string(), None),
    }
}

/// An mlua error's message and every traceback it carries, innermost
/// first; `None` when it carries none.
fn error_frames(err: &mlua::Error) -> (String, Option<Vec<String>>) {
    match err {
        mlua::Error::CallbackError { traceback, cause } => {
            let (message, inner) = error_frames(cause);
            let mut frames = inner.unwrap_or_default();
            frames.extend(script_frames(traceback));
            (message, Some(frames))
        }
        mlua::Error::RuntimeError(m) => split_frames(m),
        mlua::Error::WithContext { context, cause } => {
            let (message, frames) = error_frames(cause);
            (format!("{context}: {message}"), frames)
        }
        other => (script_error(other.clone()).message, None),
    }
}

/// The host's own wrappers (mlua's async glue, ours) are not the script's
/// business: named `gmailscript`, or mlua's unnamed chunks.
fn host_frame(file: &str) -> bool {
    file == "gmailscript" || file.starts_with("[string \"?\"]")
}

/// The script's frames of a traceback Lua wrote (`luaL_traceback`): C
/// functions (`[C]: in function 'error'`, mlua's `poll`), the host's
/// wrappers and nested `stack traceback:` headings left out.
fn script_frames(tb: &str) -> Vec<String> {
    tb.lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("[C]:")
                && *l != "stack traceback:"
                && *l != "(...tail calls...)"
                && !l.starts_with("[string \"?\"]")
                && !l.starts_with("gmailscript:")
        })
        .map(|l| format!("\t{l}"))
        .collect()
}

/// A wrong argument type names the function, as Lua's own errors do:
/// `bad argument #1 to 'gmail.get' (error converting ...)`. mlua does not
/// know the name, so it is read off the stack: the C function being called.
fn bad_argument(lua: &Lua, err: &mlua::Error) -> Option<String> {
    bad_argument_in(lua, err, 0)
}

/// `depth`: CallbackErrors around `err`. Past the first, the error was
/// raised in a callback's coroutine, whose stack is gone: the name is read
/// off that coroutine's traceback instead.
fn bad_argument_in(lua: &Lua, err: &mlua::Error, depth: usize) -> Option<String> {
    let (pos, cause) = match err {
        mlua::Error::BadArgument {
            to: None,
            pos,
            cause,
            ..
        } => (*pos, cause),
        mlua::Error::CallbackError { cause, traceback } => {
            if depth >= 1 {
                if let mlua::Error::BadArgument {
                    to: None,
                    pos,
                    cause: why,
                    ..
                } = &**cause
                {
                    let name = called_in_traceback(traceback)?;
                    return Some(bad_argument_text(lua, *pos, name, why));
                }
            }
            return bad_argument_in(lua, cause, depth + 1);
        }
        mlua::Error::WithContext { cause, .. } => return bad_argument_in(lua, cause, depth),
        _ => return None,
    };
    // The function the script called: a C function, or the Lua wrapper
    // mlua puts around async ones (whose own C part is named `poll`). An
    // error re-raised by the host's coroutine.wrap (src/lua/coroutine.rs)
    // was raised on a stack that is gone: no name rather than a wrong one
    // (the `error` it re-raises with would be taken for `log.error`).
    let mut name = None;
    for d in (1..10).filter_map(|level| lua.inspect_stack(level)) {
        let src = d.source();
        if src.short_src.as_deref() == Some("gmailscript") {
            return None;
        }
        let wrapper = src.short_src.as_deref() == Some("[string \"?\"]");
        let Some(n) = d.names().name.map(|n| n.to_string()) else {
            continue;
        };
        if (src.what == "C" && n != "poll" && n != "error") || wrapper {
            name = Some(n);
            break;
        }
    }
    Some(bad_argument_text(lua, pos, name?, cause))
}

/// The name of the function called where `tb` was taken: the first frame
/// naming a C function (not mlua's `poll`, not `error`) or mlua's wrapper
/// of an async one, as in `[string "?"]:4: in field 'get'`.
fn called_in_traceback(tb: &str) -> Option<String> {
    tb.lines().map(str::trim).find_map(|l| {
        let c = l.starts_with("[C]:");
        if !c && !l.starts_with("[string \"?\"]") {
            return None;
        }
        let (_, quoted) = l.split_once(" '")?;
        let n = quoted.strip_suffix('\'')?;
        (!c || (n != "poll" && n != "error")).then(|| n.to_string())
    })
}

fn bad_argument_text(lua: &Lua, pos: usize, name: String, cause: &mlua::Error) -> String {
    // Lua names a function of a global table itself: `gmail.get`.
    if name.contains('.') {
        let cause = script_error(cause.clone()).message;
        return format!("bad argument #{pos} to '{name}' ({cause})");
    }
    let qualified = ["gmail", "output", "store", "json", "log", "time"]
        .iter()
        .find(|module| {
            lua.globals()
                .get::<mlua::Table>(**module)
                .and_then(|t| t.get::<Value>(name.as_str()))
                .is_ok_and(|v| v.is_function())
        })
        .map(|module| format!("{module}.{name}"))
        .unwrap_or(name);
    let cause = script_error(cause.clone()).message;
    format!("bad argument #{pos} to '{qualified}' ({cause})")
}

/// Turn an mlua error into one readable line plus a traceback.
pub(crate) fn script_error(e: mlua::Error) -> ScriptError {
    match e {
        mlua::Error::CallbackError { traceback, cause } => {
            let inner = script_error((*cause).clone());
            ScriptError {
                message: inner.message,
                traceback: Some(traceback),
            }
        }
        mlua::Error::RuntimeError(m) | mlua::Error::SyntaxError { message: m, .. } => ScriptError {
            message: m,
            traceback: None,
        },
        mlua::Error::WithContext { context, cause } => {
            let inner = script_error((*cause).clone());
            ScriptError {
                message: format!("{context}: {}", inner.message),
                traceback: inner.traceback,
            }
        }
        other => ScriptError {
            message: other.to_string(),
            traceback: None,
        },
    }
}
