//! The progress bar a batch shows on stderr, and the one handle to it:
//! log lines and the REPL's Ctrl-C find the bar here, so a line prints
//! above it and an interrupted batch does not leave it drawn.

use std::cell::RefCell;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

thread_local! {
    /// The progress bar on screen, so log lines print above it.
    static PROGRESS: RefCell<Option<ProgressBar>> = const { RefCell::new(None) };
}

/// Print a line on stderr without tearing a progress bar.
pub fn eprint_line(line: &str) {
    let bar = PROGRESS.with(|p| p.borrow().clone());
    match bar {
        Some(pb) => pb.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// A batch's bar, on screen from now on: none when quiet, not asked for,
/// or stderr is not a terminal. `total` messages, when known.
/// A batch run from a callback of another gets none: the outer bar stays.
pub fn start(ctx: &super::Ctx, enabled: bool, total: Option<u64>) -> Option<ProgressBar> {
    if PROGRESS.with(|p| p.borrow().is_some()) {
        return None;
    }
    let bar = new_bar(ctx, enabled, total);
    PROGRESS.with(|p| *p.borrow_mut() = bar.clone());
    bar
}

/// The batch is over: its bar leaves the screen.
pub fn finish(bar: Option<&ProgressBar>) {
    if let Some(pb) = bar {
        pb.finish_and_clear();
        PROGRESS.with(|p| *p.borrow_mut() = None);
    }
}

/// Take the bar on screen off it (a batch dropped mid-run).
pub fn clear() {
    if let Some(bar) = PROGRESS.with(|p| p.borrow_mut().take()) {
        bar.finish_and_clear();
    }
}

fn new_bar(ctx: &super::Ctx, enabled: bool, total: Option<u64>) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    if ctx.quiet || !enabled || !std::io::stderr().is_terminal() {
        return None;
    }
    let pb = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
    };
    let template = if total.is_some() {
        "{spinner} {pos}/{len} messages [{bar:30}] {rate} · ETA {eta} · {msg}"
    } else {
        "{spinner} {pos} messages · {rate} · {elapsed} · {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        let style = style
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", s.per_sec());
                },
            )
            .progress_chars("=> ");
        pb.set_style(style);
    }
    pb.set_message("0 retries");
    pb.enable_steady_tick(Duration::from_millis(200));
    Some(pb)
}
