//! A watch: history.list polled for ever, each change handed out once, in
//! order, with a mark that says how far the handling has got. The mark
//! moves past a change only when the caller says the change is done
//! ([`Watcher::done`]), so a caller that commits the mark after each change
//! handles every change once across crashes and restarts (at least once
//! when it dies between its work and the commit).
//!
//! Failures that pass (network, 5xx, rate limits, a token that could not be
//! refreshed for a network reason) never end a watch: it keeps trying with
//! backoff, says so once and says so again when Gmail answers. History too
//! old (404) becomes a [`Event::Resync`] to the current history id.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::client::{human, Client, PageGuard};
use super::error::{ApiError, ErrorClass};
use super::history::{changes_of, Change};
use super::request::Request;

/// How far a watch has got: every history record up to `done` is handled,
/// and of the record `partial` names, its first `n` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    done: u64,
    partial: Option<(u64, u32)>,
}

impl Mark {
    pub(crate) fn at(done: u64) -> Mark {
        Mark {
            done,
            partial: None,
        }
    }

    /// `"123"`, or `"123 130:2"` in the middle of record 130.
    pub(crate) fn encode(&self) -> String {
        match self.partial {
            None => self.done.to_string(),
            Some((r, n)) => format!("{} {r}:{n}", self.done),
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Mark> {
        let mut words = s.split(' ');
        let done = words.next()?.parse().ok()?;
        let partial = match words.next() {
            None => None,
            Some(p) => {
                let (r, n) = p.split_once(':')?;
                Some((r.parse().ok()?, n.parse().ok()?))
            }
        };
        if words.next().is_some() {
            return None;
        }
        Some(Mark { done, partial })
    }

    /// The history id to ask history.list to start from.
    fn start(&self) -> String {
        self.done.to_string()
    }
}

/// What [`Watcher::next`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Change(Change),
    /// The history from `from` is no longer kept; changes from now on
    /// are told from `history_id`. What happened in between is unknown:
    /// the caller lists the mailbox again if it matters.
    Resync {
        from: String,
        history_id: String,
    },
    /// The mark moved with no change to hand out (records without changes
    /// the caller can act on, an idle mailbox catching up): commit it.
    Moved,
    /// Stopped on request (Ctrl-C, SIGTERM): nothing more comes.
    Stopped,
}

pub(crate) struct Watcher {
    client: Arc<Client>,
    every: Duration,
    cancel: Option<watch::Receiver<bool>>,
    /// Handled, as far as the caller has told.
    mark: Mark,
    /// Where the mark goes once the event handed out last is done.
    handed: Option<Mark>,
    /// Changes fetched and not yet handed out, each with the mark after it.
    pending: VecDeque<(Change, Mark)>,
    /// The mark after everything queued so far.
    tail: Mark,
    /// The poll under way: its start and its next page.
    poll: Option<(String, String)>,
    guard: PageGuard,
    /// The mailbox's history id at the last poll that found nothing: by
    /// the next quiet poll every record up to it has had time to show, so
    /// the mark may move there (an idle mailbox's start never grows old).
    quiet_at: Option<u64>,
    next_poll: Option<Instant>,
    backoff: Backoff,
    /// Since when Gmail has not answered, and the first failure.
    down: Option<(Instant, u32)>,
}

impl Watcher {
    pub(crate) fn new(
        client: Arc<Client>,
        mark: Mark,
        every: Duration,
        cancel: Option<watch::Receiver<bool>>,
    ) -> Watcher {
        Watcher {
            client,
            every,
            cancel,
            mark,
            handed: None,
            pending: VecDeque::new(),
            tail: mark,
            poll: None,
            guard: PageGuard::default(),
            quiet_at: None,
            next_poll: None,
            backoff: Backoff {
                base: Duration::from_secs(1),
                cap: every.clamp(Duration::from_secs(60), Duration::from_secs(300)),
                attempts: u32::MAX,
                jitter: true,
            },
            down: None,
        }
    }

    /// Start from the mailbox's current history id (getProfile), retried
    /// like a poll. False when stopped first.
    pub(crate) async fn start_now(&mut self) -> Result<bool, ApiError> {
        let Some(now) = self.current_history_id().await? else {
            return Ok(false);
        };
        self.mark = Mark::at(now);
        self.tail = self.mark;
        Ok(true)
    }

    /// Go on from `mark` (a saved one, or a start the script gave).
    pub(crate) fn set_mark(&mut self, mark: Mark) {
        self.mark = mark;
        self.tail = mark;
    }

    pub(crate) fn mark(&self) -> Mark {
        self.mark
    }

    /// The event handed out last is handled: the mark moves past it.
    pub(crate) fn done(&mut self) {
        if let Some(m) = self.handed.take() {
            self.mark = m;
        }
    }

    fn stopping(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| *c.borrow())
    }

    /// Sleep until `until`; false when a stop request came first.
    async fn sleep_until(&mut self, until: Instant) -> bool {
        let Some(cancel) = self.cancel.as_mut() else {
            tokio::time::sleep_until(until).await;
            return true;
        };
        if *cancel.borrow() {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(until) => true,
            _ = cancel.wait_for(|c| *c) => false,
        }
    }

    /// The next event. Waits between polls for as long as nothing happens;
    /// only an error that retrying cannot cure (a revoked login, missing
    /// permission, a mailbox without Gmail) ends it with `Err`.
    /// Asking for the next event says the last one is done.
    pub(crate) async fn next(&mut self) -> Result<Event, ApiError> {
        self.done();
        loop {
            if let Some((c, m)) = self.pending.pop_front() {
                self.handed = Some(m);
                return Ok(Event::Change(c));
            }
            if self.mark != self.tail {
                self.mark = self.tail;
                return Ok(Event::Moved);
            }
            if self.stopping() {
                return Ok(Event::Stopped);
            }
            let (start, token) = match self.poll.take() {
                Some((start, token)) => (start, Some(token)),
                None => {
                    if let Some(at) = self.next_poll {
                        if !self.sleep_until(at).await {
                            return Ok(Event::Stopped);
                        }
                    }
                    self.next_poll = Some(Instant::now() + self.every);
                    self.guard = PageGuard::default();
                    (self.tail.start(), None)
                }
            };
            let req = Request::list_history(&start, token.as_deref());
            match self.call(&req).await {
                Ok(Some(page)) => {
                    if let Err(e) = self.fill(&start, &page) {
                        // A page that cannot be used is the server's fault:
                        // start the poll again later, the mark unmoved.
                        self.failed(&e);
                        self.next_poll = Some(Instant::now() + self.wait_after(&e));
                    }
                }
                Ok(None) => return Ok(Event::Stopped),
                Err(e) if e.class == ErrorClass::NotFound => {
                    let Some(now) = self.current_history_id().await? else {
                        return Ok(Event::Stopped);
                    };
                    self.pending.clear();
                    self.quiet_at = None;
                    self.tail = Mark::at(now);
                    self.handed = Some(self.tail);
                    return Ok(Event::Resync {
                        from: start,
                        history_id: now.to_string(),
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One call, retried for as long as the failure is one that passes;
    /// None when stopped while waiting.
    async fn call(&mut self, req: &Request) -> Result<Option<Value>, ApiError> {
        loop {
            match self.client.call_json(req).await {
                Ok(v) => {
                    if let Some((since, failures)) = self.down.take() {
                        tracing::warn!(
                            "gmail.watch: Gmail answers again, after {} and {failures} failed call(s)",
                            human(since.elapsed())
                        );
                    }
                    return Ok(Some(v));
                }
                Err(e) if e.class == ErrorClass::NotFound || !passes(&e) => return Err(e),
                Err(e) => {
                    self.failed(&e);
                    let wait = self.wait_after(&e);
                    if !self.sleep_until(Instant::now() + wait).await {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn failed(&mut self, e: &ApiError) {
        match &mut self.down {
            None => {
                tracing::warn!(
                    "gmail.watch: {e}; trying again with backoff until Gmail answers (the watch goes on)"
                );
                self.down = Some((Instant::now(), 1));
            }
            Some((_, n)) => *n = n.saturating_add(1),
        }
    }

    fn wait_after(&self, e: &ApiError) -> Duration {
        let failures = self.down.map_or(1, |(_, n)| n);
        self.backoff
            .delay(failures.min(30), e.retry_after)
            .unwrap_or(self.backoff.cap)
    }

    async fn current_history_id(&mut self) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.call(&Request::profile()).await? else {
            return Ok(None);
        };
        history_id(&v["historyId"])
            .map(Some)
            .ok_or_else(|| ApiError::malformed("getProfile: no usable historyId in the answer"))
    }

    /// Queue a page's changes after the tail, each record once: records at
    /// or before the tail (an inclusive start, a page sent twice) are
    /// dropped, and of a record half handled only what is left.
    fn fill(&mut self, start: &str, page: &Value) -> Result<(), ApiError> {
        let records = page["history"].as_array();
        let next = page["nextPageToken"].as_str().map(String::from);
        let mut queued = 0;
        for record in records.into_iter().flatten() {
            let Some(r) = history_id(&record["id"]) else {
                return Err(ApiError::malformed(format!(
                    "history.list: a record whose id is not a history id: {:.40}",
                    record["id"].to_string()
                )));
            };
            if r <= self.tail.done {
                continue;
            }
            let skip = match self.tail.partial {
                Some((p, n)) if p == r => n,
                _ => 0,
            };
            let changes = changes_of(record);
            let total = changes.len() as u32;
            let before = self.tail.done;
            for (i, c) in changes.into_iter().enumerate().skip(skip as usize) {
                let after = i as u32 + 1;
                let m = if after < total {
                    Mark {
                        done: before,
                        partial: Some((r, after)),
                    }
                } else {
                    Mark::at(r)
                };
                self.pending.push_back((c, m));
                queued += 1;
            }
            self.tail = Mark::at(r);
        }
        // Judged on what was new: pages that only repeat records already
        // queued, under ever new tokens, are a loop like empty ones.
        self.guard.check("history.list", queued, next.as_deref())?;
        match next {
            Some(token) => self.poll = Some((start.to_string(), token)),
            None => {
                // A whole poll with nothing new: the mailbox's history id
                // seen at the previous quiet poll is safe to start from.
                let now = history_id(&page["historyId"]);
                if queued == 0 && self.pending.is_empty() {
                    if let Some(q) = self.quiet_at.filter(|q| *q > self.tail.done) {
                        if self.tail.partial.is_none() {
                            self.tail = Mark::at(q);
                        }
                    }
                    self.quiet_at = now;
                } else {
                    self.quiet_at = None;
                }
            }
        }
        Ok(())
    }
}

/// A history id: a decimal uint64, given as a string (or, from a lenient
/// server, a number).
fn history_id(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) if s.len() <= 20 => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// Failures that pass with time. Everything else needs the user.
fn passes(e: &ApiError) -> bool {
    matches!(
        e.class,
        ErrorClass::Rate
            | ErrorClass::Server
            | ErrorClass::Network
            | ErrorClass::Malformed
            | ErrorClass::QuotaDaily
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_refuse_junk() {
        for m in [
            Mark::at(0),
            Mark::at(u64::MAX),
            Mark {
                done: 12,
                partial: Some((15, 2)),
            },
        ] {
            assert_eq!(Mark::parse(&m.encode()), Some(m));
        }
        for bad in ["", "x", "1 2", "1 2:x", "1 2:3 4", "-1", "1  2:3"] {
            assert_eq!(Mark::parse(bad), None, "{bad:?}");
        }
    }
}
