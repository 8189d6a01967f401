//! The progress bar a batch shows on stderr, and the one handle to it:
//! log lines and the REPL's Ctrl-C find the bar here, so a line prints
//! above it and an interrupted batch does not leave it drawn.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use futures_util::Stream;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

thread_local! {
    /// The progress bar on screen, so log lines print above it.
    static PROGRESS: RefCell<Option<ProgressBar>> = const { RefCell::new(None) };
    /// A `--users` run's bars (the run's, a line per mailbox), likewise.
    static MULTI: RefCell<Option<indicatif::MultiProgress>> = const { RefCell::new(None) };
}

/// Print a line on stderr without tearing a progress bar.
pub(crate) fn eprint_line(line: &str) {
    if let Some(multi) = MULTI.with(|m| m.borrow().clone()) {
        multi.suspend(|| eprintln!("{line}"));
        return;
    }
    let bar = PROGRESS.with(|p| p.borrow().clone());
    match bar {
        Some(pb) => pb.suspend(|| eprintln!("{line}")),
        None => eprintln!("{line}"),
    }
}

/// The bars of a `--users` run on this thread, while it runs (None after).
pub(crate) fn set_multi(multi: Option<indicatif::MultiProgress>) {
    MULTI.with(|m| *m.borrow_mut() = multi);
}

/// A batch's bar, on screen from now on: none when quiet, not asked for,
/// or stderr is not a terminal. `total` messages, when known.
/// A batch run from a callback of another gets none: the outer bar stays.
pub(crate) fn start(ctx: &super::Ctx, enabled: bool, total: Option<u64>) -> Option<ProgressBar> {
    if ctx.folded.get() {
        // Counted, not drawn: the run's line of this mailbox shows it.
        let busy = ctx
            .batch_bar
            .borrow()
            .as_ref()
            .is_some_and(|b| !b.is_finished());
        if busy || !enabled {
            return None;
        }
        let pb = ProgressBar::hidden();
        if let Some(n) = total {
            pb.set_length(n);
        }
        *ctx.batch_bar.borrow_mut() = Some(pb.clone());
        return Some(pb);
    }
    if PROGRESS.with(|p| p.borrow().is_some()) {
        return None;
    }
    let bar = new_bar(ctx, enabled, total);
    PROGRESS.with(|p| *p.borrow_mut() = bar.clone());
    bar
}

/// The batch is over: its bar leaves the screen.
pub(crate) fn finish(bar: Option<&ProgressBar>) {
    if let Some(pb) = bar {
        pb.finish_and_clear();
        PROGRESS.with(|p| *p.borrow_mut() = None);
    }
}

/// Take the bar on screen off it (a batch dropped mid-run).
pub(crate) fn clear() {
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

/// Ids read ahead of the runner at most, to learn where they end.
const READ_AHEAD: usize = 10_000;

/// `ids` as they are, keeping the bar's length true: a `total` is only
/// what the script expected (a profile's count has spam and trash in it,
/// ids done before are skipped), so the length is that less the ids
/// skipped as done, never below the ids seen so far, and exactly the ids
/// seen once they run out. With `read_ahead` (a listing or a list, whose
/// reading runs no script code) the ids ready now are taken ahead of the
/// runner, up to [`READ_AHEAD`], so the end is known early: a mailbox
/// smaller than that has its true length after the listing's last page.
pub(crate) fn true_length<T, E>(
    ids: impl Stream<Item = Result<T, E>> + 'static,
    bar: Option<ProgressBar>,
    skipped: Rc<Cell<u64>>,
    read_ahead: bool,
) -> impl Stream<Item = Result<T, E>> {
    use futures_util::future::Either;
    use std::task::Poll;
    let Some((bar, total)) = bar.and_then(|b| b.length().map(|n| (b, n))) else {
        return Either::Left(ids);
    };
    let cap = if read_ahead { READ_AHEAD } else { 0 };
    let mut inner = Box::pin(ids);
    let mut buf = std::collections::VecDeque::new();
    let (mut seen, mut done) = (0u64, false);
    Either::Right(futures_util::stream::poll_fn(move |cx| {
        while !done && buf.len() <= cap {
            match inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    if item.is_ok() {
                        seen += 1;
                        bar.set_length(total.saturating_sub(skipped.get()).max(seen));
                    }
                    buf.push_back(item);
                }
                Poll::Ready(None) => {
                    done = true;
                    bar.set_length(seen);
                }
                Poll::Pending => break,
            }
        }
        match buf.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if done => Poll::Ready(None),
            None => Poll::Pending,
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn the_length_is_the_ids_seen_once_they_run_out() {
        let bar = ProgressBar::hidden();
        bar.set_length(1000);
        let skipped = Rc::new(Cell::new(0));
        let ids = futures_util::stream::iter((0..973).map(Ok::<_, ()>));
        let mut s = Box::pin(true_length(ids, Some(bar.clone()), skipped.clone(), false));
        s.next().await;
        skipped.set(100);
        s.next().await;
        assert_eq!(
            bar.length(),
            Some(900),
            "the expected count less the ids done before"
        );
        let mut n = 2;
        while s.next().await.is_some() {
            n += 1;
        }
        assert_eq!((n, bar.length()), (973, Some(973)));

        // More ids than expected: the length follows.
        let bar = ProgressBar::hidden();
        bar.set_length(2);
        let ids = futures_util::stream::iter((0..5).map(Ok::<_, ()>));
        let mut s = Box::pin(true_length(ids, Some(bar.clone()), Rc::default(), false));
        for _ in 0..3 {
            s.next().await;
        }
        assert_eq!(bar.length(), Some(3));
    }

    #[tokio::test]
    async fn reading_ahead_knows_the_end_after_the_first_id_and_keeps_the_order() {
        let bar = ProgressBar::hidden();
        bar.set_length(1000);
        let ids = futures_util::stream::iter((0..973).map(Ok::<_, ()>));
        let mut s = Box::pin(true_length(ids, Some(bar.clone()), Rc::default(), true));
        assert_eq!(s.next().await, Some(Ok(0)));
        assert_eq!(bar.length(), Some(973));
        let rest: Vec<_> = s.map(|r| r.unwrap()).collect().await;
        assert_eq!(rest, (1..973).collect::<Vec<_>>());
    }
}
