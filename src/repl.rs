//! `gmailscript repl`: an interactive Lua prompt over the same host and
//! modules as `run`. Each entry runs as a coroutine, like a script; Ctrl-C
//! drops it and the session goes on. When standard input is not a
//! terminal, statements are read from it, so the REPL can be scripted.

mod complete;
mod help;
mod show;

use std::future::Future;
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::FutureExt as _;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{
    Cmd, CompletionType, ConditionalEventHandler, Config, Editor, Event, EventContext,
    EventHandler, KeyEvent, RepeatCount,
};
use tokio::sync::watch;

use crate::app::{connect, Connection};
use crate::cli::ReplArgs;
use crate::exit::{EXIT_OK, EXIT_USAGE};
use crate::lua::{Host, ScriptError};

use complete::ReplHelper;

pub async fn run(args: ReplArgs, verbose: u8) -> anyhow::Result<u8> {
    let script = match &args.script {
        Some(path) => Some(crate::scripts::Script::resolve(path)?),
        None => None,
    };
    if let Some(s) = &script {
        tracing::info!("running {}", s.describe());
    }
    let conn = connect(&args.conn).await?;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    // The receiver turns on a first Ctrl-C during a batch; back off for
    // each entry.
    let host = Host::new(conn.host_config(args.dry_run, false, verbose, cancel_rx))
        .map_err(|e| anyhow::anyhow!("cannot set up Lua: {e}"))?;
    let terminal = std::io::stdin().is_terminal();
    let mut session = Session {
        modules: help::modules(&host.lua),
        host: &host,
        interrupts: terminal.then(|| listen_interrupts(&host, cancel_tx)),
        failed: false,
    };
    let local = tokio::task::LocalSet::new();
    let code = local
        .run_until(async {
            if terminal {
                say(&format!(
                    "gmailscript repl: {}{}. :help for help, Ctrl-D to quit.",
                    target(&args, &conn),
                    if args.dry_run { " (dry run)" } else { "" }
                ));
            }
            if let Some(script) = &script {
                session.script(script).await;
            }
            if terminal {
                session.interactive().await;
                EXIT_OK
            } else {
                session.piped().await;
                if session.failed {
                    EXIT_USAGE
                } else {
                    EXIT_OK
                }
            }
        })
        .await;
    drop(session);
    drop(host);
    if let Some(sim) = conn.sim {
        sim.stop().await;
    }
    Ok(code)
}

/// What the session talks to, for the greeting (never the token).
fn target(args: &ReplArgs, conn: &Connection) -> String {
    match (&conn.sim, &args.conn.endpoint) {
        (Some(sim), _) => format!(
            "the built-in simulator at {} ({} messages)",
            sim.base_url, args.conn.sim_messages
        ),
        (None, Some(url)) => url.clone(),
        (None, None) => "Gmail".to_string(),
    }
}

/// Ctrl-C while an entry runs. Only with a terminal: otherwise Ctrl-C
/// stops the process as it would any program reading a pipe. (At the
/// prompt the editor reads Ctrl-C as a key, not a signal.) During a batch
/// the first one stops it cleanly, as in `run`: chunks in flight finish,
/// their messages are delivered and the batch returns its report; a second
/// one drops the entry.
#[derive(Clone)]
struct Interrupts {
    /// Counts those that drop the entry, to wake the entry's `select!`.
    count: watch::Receiver<u64>,
    /// Set by one; Lua code that never yields checks it (`Host::set_interrupt`).
    flag: Arc<AtomicBool>,
    /// The engine's clean stop, for batches.
    cancel: Arc<watch::Sender<bool>>,
}

fn listen_interrupts(host: &Host, cancel: watch::Sender<bool>) -> Interrupts {
    let (tx, count) = watch::channel(0u64);
    let flag = Arc::new(AtomicBool::new(false));
    host.set_interrupt(flag.clone());
    let set = flag.clone();
    let cancel = Arc::new(cancel);
    let stop = cancel.clone();
    let running = host.ctx.running.clone();
    // Polled once here to put the handler in place now: the editor saves
    // the SIGINT disposition before each read and restores it after, so a
    // handler that came in during a read would be undone.
    let mut next = Box::pin(tokio::signal::ctrl_c());
    let _ = (&mut next).now_or_never();
    tokio::spawn(async move {
        while next.await.is_ok() {
            // Listening for the next one before saying anything, so a
            // Ctrl-C that follows what is printed is never missed.
            next = Box::pin(tokio::signal::ctrl_c());
            let _ = (&mut next).now_or_never();
            if running.load(Ordering::SeqCst) > 0 && !*stop.borrow() {
                eprintln!(
                    "\nstopping the batch after the chunks in flight (Ctrl-C again to drop it now)"
                );
                stop.send_replace(true);
            } else {
                set.store(true, Ordering::Relaxed);
                tx.send_modify(|n| *n += 1);
            }
        }
    });
    Interrupts {
        count,
        flag,
        cancel,
    }
}

/// After reading an entry: wait for more lines, go on, or leave.
#[derive(PartialEq)]
enum Flow {
    More,
    Done,
    Quit,
}

struct Session<'h> {
    host: &'h Host,
    modules: Vec<(String, String)>,
    interrupts: Option<Interrupts>,
    /// Some entry raised an error (the exit code of the piped mode).
    failed: bool,
}

impl Session<'_> {
    /// Run `source` if it is a whole entry. `last`: no more lines will
    /// come, so an unfinished statement is an error.
    async fn submit(&mut self, source: &str, last: bool) -> Flow {
        // `:help`, not a `::label::`.
        if let Some(cmd) = source.trim().strip_prefix(':') {
            if cmd.starts_with(|c: char| c.is_ascii_alphabetic()) {
                return self.command(cmd);
            }
        }
        let f = match self.host.compile_line(source, !last) {
            Ok(Some(f)) => f,
            Ok(None) => return Flow::More,
            Err(e) => {
                self.report(&e);
                return Flow::Done;
            }
        };
        match self.interruptible(self.host.eval(f, &[])).await {
            Some(Ok(values)) if !values.is_empty() => return say(&show::values(&values)),
            Some(Ok(_)) | None => {}
            Some(Err(e)) => self.report(&e),
        }
        Flow::Done
    }

    fn command(&mut self, cmd: &str) -> Flow {
        let (name, arg) = cmd.split_once(' ').unwrap_or((cmd, ""));
        match (name, arg.trim()) {
            ("help" | "h", "") => return say(&help::overview(&self.modules)),
            ("help" | "h", topic) => match help::section(topic) {
                Some(text) => return say(&text),
                None => {
                    eprintln!(
                        "no help on {topic:?}; topics: {}",
                        help::topics().join(", ")
                    );
                    self.failed = true;
                }
            },
            ("quit" | "q" | "exit", _) => return Flow::Quit,
            _ => {
                eprintln!("unknown command :{name} (commands: :help, :help TOPIC, :quit)");
                self.failed = true;
            }
        }
        Flow::Done
    }

    /// `-i SCRIPT`: run it as `run` would, then stay with its globals.
    /// Then says which globals it left, the values there are to explore
    /// (a script's locals are gone).
    async fn script(&mut self, script: &crate::scripts::Script) {
        let before = global_names(&self.host.lua);
        if let Some(Err(e)) = self.interruptible(self.host.run_script(script, &[])).await {
            self.report(&e);
            for line in e.traceback_lines() {
                eprintln!("{line}");
            }
        }
        let name = match script {
            crate::scripts::Script::File(path) => path
                .file_name()
                .unwrap_or(path.as_os_str())
                .to_string_lossy()
                .into_owned(),
            crate::scripts::Script::Shipped(s) => format!("{}.lua", s.name),
        };
        let mut new: Vec<String> = global_names(&self.host.lua)
            .into_iter()
            .filter(|g| !before.contains(g) && g != "arg")
            .collect();
        new.sort();
        if new.is_empty() {
            eprintln!("{name} left no globals (its locals are gone once it ends)");
        } else {
            eprintln!("{name} left these globals: {}", new.join(", "));
        }
    }

    fn report(&mut self, e: &ScriptError) {
        eprintln!("{}", e.message);
        self.failed = true;
    }

    /// Run `work`, unless Ctrl-C comes first: then it is dropped (None).
    async fn interruptible<T>(&self, work: impl Future<Output = T>) -> Option<T> {
        let Some(Interrupts {
            mut count,
            flag,
            cancel,
        }) = self.interrupts.clone()
        else {
            return Some(work.await);
        };
        // A Ctrl-C from before this entry does not cancel it.
        count.borrow_and_update();
        flag.store(false, Ordering::Relaxed);
        cancel.send_replace(false);
        tokio::select! {
            r = work => Some(r),
            Ok(()) = count.changed() => {
                crate::lua::progress::clear();
                // The dropped coroutine still holds what its calls had
                // borrowed (an iterator, say); collect it now so they are
                // free for the next entry.
                let _ = self.host.lua.gc_collect();
                eprintln!("interrupted");
                None
            }
        }
    }

    async fn interactive(&mut self) {
        let mut editor = match editor(&self.host.lua) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("gmailscript: cannot start line editing: {e}");
                return;
            }
        };
        let empty_at_ctrl_c = Arc::new(AtomicBool::new(true));
        editor.bind_sequence(
            KeyEvent::ctrl('C'),
            EventHandler::Conditional(Box::new(NoteEmpty(empty_at_ctrl_c.clone()))),
        );
        let mut history = history_file();
        if let Some(path) = &history {
            match editor.load_history(path) {
                Ok(()) => {}
                Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => eprintln!(
                    "gmailscript: cannot read the history in {}: {e}",
                    path.display()
                ),
            }
        }
        let mut pending = String::new();
        let mut ctrl_c_once = false;
        loop {
            let prompt = if pending.is_empty() { "> " } else { ">> " };
            // A blocking read, on purpose: the editor holds the Lua state
            // (completion), which cannot leave this thread, and this thread
            // is main's block_on, not a runtime worker, so the in-process
            // simulator and timers go on meanwhile; no Lua work is pending
            // while the prompt waits.
            let line = match editor.readline(prompt) {
                Ok(line) => line,
                Err(ReadlineError::Interrupted) => {
                    let empty = pending.is_empty() && empty_at_ctrl_c.load(Ordering::Relaxed);
                    pending.clear();
                    if empty && ctrl_c_once {
                        break;
                    }
                    ctrl_c_once = empty;
                    if empty {
                        eprintln!("(Ctrl-C again or Ctrl-D to quit)");
                    }
                    continue;
                }
                Err(ReadlineError::Eof) => break,
                Err(e) => {
                    eprintln!("gmailscript: cannot read input: {e}");
                    break;
                }
            };
            ctrl_c_once = false;
            if pending.is_empty() && line.trim().is_empty() {
                continue;
            }
            if !pending.is_empty() {
                pending.push('\n');
            }
            pending.push_str(&line);
            let flow = self.submit(&pending, false).await;
            if flow == Flow::More {
                continue;
            }
            let _ = editor.add_history_entry(pending.as_str());
            if let Some(path) = &history {
                if let Err(e) = editor.append_history(path) {
                    eprintln!(
                        "gmailscript: cannot write the history to {}: {e}; it is kept for this session only",
                        path.display()
                    );
                    history = None;
                }
            }
            pending.clear();
            if flow == Flow::Quit {
                break;
            }
        }
    }

    /// Standard input is not a terminal: read entries from it, no prompt.
    /// A thread reads the lines, so the async loop never blocks on input.
    async fn piped(&mut self) {
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let stop = line.is_err();
                if tx.blocking_send(line).is_err() || stop {
                    return;
                }
            }
        });
        let mut pending = String::new();
        while let Some(line) = rx.recv().await {
            let line = match line {
                Ok(line) => line,
                Err(e) => {
                    eprintln!("gmailscript: cannot read standard input: {e}");
                    self.failed = true;
                    return;
                }
            };
            if pending.is_empty() && line.trim().is_empty() {
                continue;
            }
            if !pending.is_empty() {
                pending.push('\n');
            }
            pending.push_str(&line);
            match self.submit(&pending, false).await {
                Flow::More => continue,
                Flow::Done => pending.clear(),
                Flow::Quit => return,
            }
        }
        if !pending.is_empty() {
            self.submit(&pending, true).await;
        }
    }
}

/// A line on stdout; when nobody reads it any more (a closed pipe), the
/// session ends.
/// The names of the string keys of the globals table.
fn global_names(lua: &mlua::Lua) -> std::collections::HashSet<String> {
    lua.globals()
        .pairs::<mlua::Value, mlua::Value>()
        .filter_map(|kv| match kv {
            Ok((mlua::Value::String(k), _)) => Some(k.to_string_lossy()),
            _ => None,
        })
        .collect()
}

fn say(text: &str) -> Flow {
    use std::io::Write as _;
    match writeln!(std::io::stdout(), "{text}") {
        Ok(()) => Flow::Done,
        Err(_) => Flow::Quit,
    }
}

fn editor(lua: &mlua::Lua) -> rustyline::Result<Editor<ReplHelper, FileHistory>> {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .history_ignore_dups(true)?
        .history_ignore_space(true)
        .max_history_size(1000)?
        .build();
    let mut editor = Editor::with_config(config)?;
    editor.set_helper(Some(ReplHelper { lua: lua.clone() }));
    Ok(editor)
}

/// Ctrl-C at the prompt: notes whether the line was empty (twice on an
/// empty line quits), then interrupts as usual.
struct NoteEmpty(Arc<AtomicBool>);

impl ConditionalEventHandler for NoteEmpty {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        self.0.store(ctx.line().is_empty(), Ordering::Relaxed);
        None
    }
}

/// `history.txt` in the user's data directory (created if need be), or
/// None, with a warning, when there is none.
fn history_file() -> Option<PathBuf> {
    let Some(dirs) = directories::ProjectDirs::from("", "", "gmailscript") else {
        eprintln!("gmailscript: no home directory; the history is kept for this session only");
        return None;
    };
    let dir = dirs.data_dir();
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!(
            "gmailscript: cannot create {}: {e}; the history is kept for this session only",
            dir.display()
        );
        return None;
    }
    Some(dir.join("history.txt"))
}
