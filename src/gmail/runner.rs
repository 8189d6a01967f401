//! The runner: many requests through batches, losing nothing.
//!
//! It pulls requests from a stream only as chunks need them, sends each
//! chunk as one batch (paced, several in flight if asked), queues each
//! successful part for a [`Sink`] as soon as it is decoded (the sink takes
//! them in that order while the run goes on: see `delivery`), and for
//! every failed part asks a [`Policy`] what to do. Only failed parts are
//! re-sent.
//! Every item ends exactly once: delivered, skipped, failed, or — when the
//! run stops early — counted as not done.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::{join, LocalBoxFuture};
use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};

use super::backoff::Backoff;
use super::batch::{response_id, InnerResponse};
use super::chunk::{ChunkSizer, ChunkStats};
use super::client::{Client, PartError};
use super::delivery::Queue;
use super::error::{ApiError, ErrorClass};
use super::message::Message;
use super::quota::{Pacer, Profile};
use super::request::{Method, Request};
use crate::auth::Secret;

/// One unit of work: a request and the key it is known by (a message id).
#[derive(Debug, Clone)]
pub struct Item {
    pub key: String,
    pub request: Request,
}

/// What to do with a failed part.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send it again: after this delay, or after the backoff schedule's.
    Retry(Option<Duration>),
    /// Record it as skipped (e.g. deleted since it was listed).
    Skip,
    /// Record it as failed; the run goes on (and exits non-zero).
    Fail,
    /// Stop the run: no new chunks; those in flight are finished.
    Abort,
    /// Retry it in smaller chunks (the chunk size is halved).
    Split,
}

impl Decision {
    /// The word a Lua `on_error` answers with.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Decision::Retry(_) => "retry",
            Decision::Skip => "skip",
            Decision::Fail => "fail",
            Decision::Abort => "abort",
            Decision::Split => "split",
        }
    }

    /// A Lua `on_error` word; a `"retry"` has no delay of its own.
    pub(crate) fn parse(word: &str) -> Option<Decision> {
        Some(match word {
            "retry" => Decision::Retry(None),
            "skip" => Decision::Skip,
            "fail" => Decision::Fail,
            "abort" => Decision::Abort,
            "split" => Decision::Split,
            _ => return None,
        })
    }
}

pub trait Policy {
    /// `attempt` is how many times the item has been tried so far.
    fn on_error(&mut self, err: &ApiError, key: &str, attempt: u32) -> Decision;

    /// What the runner calls: `on_error`, unless the policy must itself
    /// wait to decide (a script's on_error that calls the API). The run
    /// waits with it.
    fn on_error_async<'a>(
        &'a mut self,
        err: &'a ApiError,
        key: &'a str,
        attempt: u32,
    ) -> LocalBoxFuture<'a, Decision> {
        Box::pin(std::future::ready(self.on_error(err, key, attempt)))
    }

    /// The size of the next chunk given the last chunk's figures; `None`
    /// keeps the adaptive size (`stats.size`).
    fn chunk_size(&mut self, _stats: &ChunkStats) -> Option<usize> {
        None
    }

    /// Some(reason) stops the run (a policy that cannot go on, e.g. its
    /// own code failed). Checked before each chunk.
    fn halt(&self) -> Option<String> {
        None
    }
}

/// The default policy of DESIGN.md: retry rate, server and network errors
/// with backoff; skip 404; stop on failedPrecondition (its diagnosis says
/// why) and on a 401 that a fresh token did not cure; fail anything else.
///
/// The one definition: `gmail.batch` without `on_error`, `gmail.modify`,
/// `gmail.trash`, Lua's `gmail.default_policy.on_error`, and the retries of
/// single calls all come here; docs/lua-api.md shows it as a table, which a
/// test holds to this.
#[derive(Debug, Clone, Default)]
pub struct DefaultPolicy;

impl DefaultPolicy {
    /// What the default policy does with an error of `class`. Every class
    /// is named, so a new one must be given a decision here.
    pub(crate) fn decide(class: ErrorClass) -> Decision {
        match class {
            ErrorClass::Rate | ErrorClass::Server | ErrorClass::Network => Decision::Retry(None),
            ErrorClass::NotFound => Decision::Skip,
            // The daily quota: nothing more goes through today, so stop
            // (exit 3) with when it renews; the ids stay to do, not failed.
            ErrorClass::Precondition | ErrorClass::Auth | ErrorClass::QuotaDaily => Decision::Abort,
            ErrorClass::Invalid | ErrorClass::Forbidden | ErrorClass::Malformed => Decision::Fail,
        }
    }
}

impl Policy for DefaultPolicy {
    fn on_error(&mut self, err: &ApiError, _key: &str, _attempt: u32) -> Decision {
        DefaultPolicy::decide(err.class)
    }
}

/// A successful answer, checked: a messages.get answer is parsed (and is
/// the message asked for); any other answer is its body.
#[derive(Debug)]
pub enum Answer {
    Message(Box<Message>),
    Body(Bytes),
}

impl Answer {
    /// The answer's JSON text.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Answer::Message(m) => m.json().as_bytes(),
            Answer::Body(b) => b,
        }
    }
}

/// Check a successful answer to `req`: one that cannot be decoded, or that
/// carries another id than the one asked for, is a `malformed` error of
/// that item, never a delivery.
pub(crate) fn check_answer(req: &Request, body: Bytes) -> Result<Answer, ApiError> {
    let wrong_id = |got: &str, want: &str| {
        ApiError::malformed(format!(
            "the answer is for {:?}, not for {want:?} that was asked",
            got.chars().take(40).collect::<String>()
        ))
    };
    if req.call == Method::MessagesGet {
        let m = Message::from_json(&body)
            .map_err(|e| ApiError::malformed(format!("cannot decode the message: {e}")))?;
        match &req.answer_id {
            Some(want) if &m.id != want => return Err(wrong_id(&m.id, want)),
            _ => return Ok(Answer::Message(Box::new(m))),
        }
    }
    if matches!(req.call, Method::MessagesImport | Method::MessagesInsert) {
        // The id is new, so it cannot be compared; it must at least be a
        // Gmail id, or the message's fate is unknown.
        #[derive(serde::Deserialize)]
        struct Imported {
            id: Option<String>,
        }
        let got: Imported = serde_json::from_slice(&body)
            .map_err(|e| ApiError::malformed(format!("the answer is not JSON: {e}")))?;
        let ok = got.id.as_deref().is_some_and(|id| {
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if !ok {
            return Err(ApiError::malformed(
                "the import answer carries no message id; the message may or may not be in the mailbox",
            ));
        }
        return Ok(Answer::Body(body));
    }
    if let (Some(want), false) = (&req.answer_id, body.is_empty()) {
        #[derive(serde::Deserialize)]
        struct Id {
            id: Option<String>,
        }
        let got: Id = serde_json::from_slice(&body)
            .map_err(|e| ApiError::malformed(format!("the answer is not JSON: {e}")))?;
        if let Some(got) = got.id.filter(|g| g != want) {
            return Err(wrong_id(&got, want));
        }
    }
    Ok(Answer::Body(body))
}

/// Where delivered answers go. An error stops the run; the item is then
/// counted as not done, so a resumed run fetches it again.
pub trait Sink {
    /// Take one answer. It may wait (a script's on_message that calls the
    /// API, a commit): the run goes on meanwhile, answers queue for the
    /// sink, and once about two chunks' worth wait, no new chunk is sent
    /// until it catches up.
    fn deliver<'a>(
        &'a mut self,
        key: &'a str,
        answer: Answer,
    ) -> LocalBoxFuture<'a, Result<(), String>>;

    /// The run waits for the server (a Retry-After, the quota) until
    /// `until`, or no longer waits (`None`): for a progress display.
    fn waiting(&mut self, _until: Option<SystemTime>) {}
}

/// A closure is a sink that never waits.
impl<F: FnMut(&str, Answer) -> Result<(), String>> Sink for F {
    fn deliver<'a>(
        &'a mut self,
        key: &'a str,
        answer: Answer,
    ) -> LocalBoxFuture<'a, Result<(), String>> {
        Box::pin(std::future::ready(self(key, answer)))
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// First chunk size (default 50) and the most a chunk may hold (≤ 100).
    pub chunk_start: usize,
    pub chunk_max: usize,
    /// Chunks in flight at once. Parts of all of them count against the
    /// per-user concurrency limit, so 1 is the safe default.
    pub parallel: usize,
    pub backoff: Backoff,
    /// Hard cap on tries per item, whatever the policy says.
    pub max_attempts: u32,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            chunk_start: ChunkSizer::DEFAULT_START,
            chunk_max: 50,
            parallel: 1,
            backoff: Backoff::default(),
            max_attempts: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub key: String,
    pub error: ApiError,
    pub(crate) attempts: u32,
}

/// Why a run ended before all its items did.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// The policy said abort (e.g. failedPrecondition; see the diagnosis).
    Policy { key: String, error: ApiError },
    /// The sink could not take a message (disk full, ...).
    Sink { key: String, message: String },
    /// Listing the requests failed.
    Source(ApiError),
    /// Asked to stop (Ctrl-C).
    Cancelled,
    /// The policy could not go on (its own code failed).
    Halted(String),
    /// The server asked for a wait longer than `--max-wait`; the error's
    /// diagnosis says until when.
    Wait { key: String, error: ApiError },
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Policy { key, error } => {
                write!(f, "stopped on {key}: {}", error.brief())?;
                if let Some(d) = &error.diagnosis {
                    write!(f, " — {d}")?;
                }
                Ok(())
            }
            Stop::Sink { key, message } => write!(f, "could not store {key}: {message}"),
            Stop::Source(e) => write!(f, "listing failed: {e}"),
            Stop::Cancelled => f.write_str("cancelled"),
            Stop::Halted(why) => write!(f, "stopped: {why}"),
            Stop::Wait { error, .. } => match &error.diagnosis {
                Some(d) => write!(
                    f,
                    "stopped: {d} (last error: {} {})",
                    error.status, error.reason
                ),
                None => write!(f, "stopped: {error}"),
            },
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Answers the sink took.
    pub ok: u64,
    pub skipped: Vec<Failure>,
    pub failed: Vec<Failure>,
    /// Re-sends of failed parts (token refreshes not counted).
    pub retried: u64,
    /// Quota units spent by this run.
    pub units: u64,
    pub elapsed: Duration,
    pub chunks: u64,
    /// Parts answered with a rate error (quota or concurrency).
    pub rate_errors: u64,
    /// Items begun but not finished because the run stopped.
    pub not_done: u64,
    pub stopped: Option<Stop>,
}

/// The engine for one mailbox: a client, its pacer, its cost table.
pub struct Runner {
    pub(crate) client: Arc<Client>,
    pub pacer: Arc<Pacer>,
    pub(crate) profile: Profile,
}

struct Pending {
    item: Item,
    /// Tries so far.
    attempt: u32,
    /// A 401 already led to a fresh token for this item.
    refreshed: bool,
    /// Retries given back because the whole service was failing (see
    /// [`Breaker`]), bounded so that one id that always fails still ends.
    spared: u32,
}

/// Most retries an item is spared by outages; past it they count.
const MAX_SPARED: u32 = 3;
/// The breaker judges the last this many chunks, once they hold at least
/// `OUTAGE_PARTS` parts.
const RECENT_CHUNKS: usize = 8;
const OUTAGE_PARTS: usize = 5;

/// The circuit breaker: when most parts of a chunk fail with 5xx or the
/// exchange breaks, the service is down, not those ids. The pipeline
/// pauses (backing off up to [`Breaker::CAP`]), the chunk's ids go back
/// without spending a try, and a one-unit canary call (getProfile) must
/// pass before chunks go again: an outage of minutes turns no id into a
/// failure, and the run goes on within seconds of its end.
#[derive(Debug, Default)]
struct Breaker {
    /// Trips in a row; 0: closed.
    level: u32,
    /// No canary before this.
    open_until: Option<Instant>,
    /// When this outage began (the first trip since a healthy chunk).
    since: Option<Instant>,
    /// The error that tripped it last.
    last: Option<ApiError>,
}

impl Breaker {
    const CAP: Duration = Duration::from_secs(8);

    fn is_open(&self) -> bool {
        self.level > 0
    }

    fn trip(&mut self, e: &ApiError) -> Duration {
        self.level += 1;
        let exp = Duration::from_millis(500).saturating_mul(1 << self.level.min(8));
        // Full jitter above a floor, so many clients do not come back at once.
        let wait = exp
            .min(Self::CAP)
            .mul_f64(0.5 + rand::random::<f64>() * 0.5);
        let now = Instant::now();
        self.open_until = Some(now + wait);
        self.since.get_or_insert(now);
        self.last = Some(e.clone());
        wait
    }

    fn close(&mut self) {
        *self = Breaker::default();
    }
}

/// A retry waiting for its time; ordered by time, then arrival.
struct Waiting {
    at: Instant,
    seq: u64,
    pending: Pending,
}

impl PartialEq for Waiting {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Waiting {}
impl PartialOrd for Waiting {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiting {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

enum Event {
    /// The answer for item `index` of `chunk`, checked.
    Part {
        chunk: u64,
        index: usize,
        result: Result<Answer, ApiError>,
    },
    Done {
        chunk: u64,
        broken: Option<ApiError>,
        /// The exchange failed before any answer came (refused, reset,
        /// a 5xx for the whole batch): what an outage looks like.
        unanswered: bool,
        rtt: Duration,
    },
}

struct InFlight {
    items: Vec<Option<Pending>>,
    stats: ChunkStats,
    token: Option<Secret>,
    /// The longest Retry-After among its rate errors.
    retry_after: Option<Duration>,
    /// Parts answered 5xx or broken, held until the chunk is done.
    outage_suspects: Vec<(Pending, ApiError)>,
}

impl Runner {
    pub fn new(client: Arc<Client>, profile: Profile, window: Duration) -> Runner {
        let pacer = Arc::new(Pacer::new(&profile, window));
        Runner::with_pacer(client, profile, pacer)
    }

    /// A runner pacing with `pacer` (one that tells what it learns, say).
    pub fn with_pacer(client: Arc<Client>, profile: Profile, pacer: Arc<Pacer>) -> Runner {
        Runner {
            pacer,
            client,
            profile,
        }
    }

    /// Run every item of `source` to its end. `cancel` turning true stops
    /// the run cleanly: chunks in flight finish, their answers delivered.
    /// The sink works beside the loop (see [`Queue`]); the run returns once
    /// it has been handed every answer.
    pub async fn run<S>(
        &self,
        source: S,
        policy: &mut dyn Policy,
        sink: &mut dyn Sink,
        opts: &RunOptions,
        cancel: Option<watch::Receiver<bool>>,
    ) -> Report
    where
        S: Stream<Item = Result<Item, ApiError>> + Unpin,
    {
        let started = Instant::now();
        let units_before = self.pacer.spent();
        let mut st = State::new(opts);
        let (tx, rx) = mpsc::channel::<Event>(256);
        let mut feed = Feed::new(source, tx, self.pacer.window());
        // About two chunks' worth of answers may wait for the sink.
        let queue = Queue::new(2 * st.sizer.max() * opts.parallel.max(1));
        let mut cx = Cx {
            runner: self,
            policy,
            opts,
            queue: &queue,
        };
        let fetching = async {
            st.drive(&mut feed, &mut cx, rx, cancel).await;
            queue.close();
        };
        join(fetching, queue.deliver(sink)).await;
        feed.tally.log();
        let (ok, not_done) = queue.counts();
        st.report.ok += ok;
        st.report.not_done += not_done;
        if let Some(stop) = queue.take_stop() {
            st.stop = Some(stop);
        }
        if let Some(e) = feed.source_error.take() {
            st.stop.get_or_insert(Stop::Source(e));
        }
        st.report.not_done += feed.staged.len() as u64;
        st.report.not_done += st.waiting.len() as u64;
        st.report.units = self.pacer.spent() - units_before;
        st.report.elapsed = started.elapsed();
        st.report.stopped = st.stop;
        st.report
    }
}

/// What every step of one run consults: the engine, the script's policy,
/// the run's options and the delivery queue.
struct Cx<'a> {
    runner: &'a Runner,
    policy: &'a mut dyn Policy,
    opts: &'a RunOptions,
    /// Where answers go on their way to the sink.
    queue: &'a Queue,
}

/// The sending side of a run: items from the source and the retry queue,
/// staged until the quota takes them, then sent as chunks.
struct Feed<S> {
    source: S,
    source_done: bool,
    /// The listing failed: what was listed before is still worked through;
    /// the run then stops on this.
    source_error: Option<ApiError>,
    /// Items taken from the source or the retry queue, not yet sent.
    staged: VecDeque<Pending>,
    /// When the pacer (or the breaker) will have room for the next chunk.
    pacer_at: Option<Instant>,
    /// Token renewals in a row that could not reach the token endpoint.
    refresh_failures: u32,
    next_chunk: u64,
    /// The chunk size last logged, to log a change once.
    logged_size: usize,
    tally: Tally,
    tx: mpsc::Sender<Event>,
}

impl<S> Feed<S>
where
    S: Stream<Item = Result<Item, ApiError>> + Unpin,
{
    fn new(source: S, tx: mpsc::Sender<Event>, window: Duration) -> Feed<S> {
        Feed {
            source,
            source_done: false,
            source_error: None,
            staged: VecDeque::new(),
            pacer_at: None,
            refresh_failures: 0,
            next_chunk: 0,
            logged_size: 0,
            tally: Tally::new(window),
            tx,
        }
    }

    /// Nothing left to send from the source or the stage.
    fn exhausted(&self) -> bool {
        self.source_done && self.staged.is_empty()
    }

    /// Send one chunk if there is work and quota; false when not now.
    async fn launch(&mut self, st: &mut State, cx: &mut Cx<'_>, parallel: usize) -> bool {
        let size = self.chunk_size(st, cx);
        self.stage(st, cx, size).await;
        if self.staged.is_empty() || st.stop.is_some() {
            return false;
        }
        if !self.canary(st, cx).await {
            return false;
        }
        let Some((n, used)) = self.take_quota(st, cx.runner, size, parallel) else {
            return false;
        };
        if !self.renew_token(st, cx, used).await {
            return false;
        }
        self.send(st, cx.runner, n, used, size).await;
        true
    }

    /// The chunk size, asked of the policy once per new set of figures,
    /// not on every wake-up.
    fn chunk_size(&mut self, st: &mut State, cx: &mut Cx<'_>) -> usize {
        if let Some(n) = st.size_for_last {
            return n;
        }
        let n = cx
            .policy
            .chunk_size(&st.last)
            .unwrap_or(st.last.size)
            .clamp(1, st.sizer.max());
        st.size_for_last = Some(n);
        if n != self.logged_size {
            let l = &st.last;
            match self.logged_size {
                0 => tracing::info!("chunk size {n} to start"),
                was => tracing::info!(
                    "chunk size {was} -> {n} after a chunk of {}: {} ok, {} rate, {} concurrency, {} server errors{}",
                    l.sent, l.ok, l.rate_errors, l.concurrency_errors, l.server_errors,
                    if l.network_error { ", network error" } else { "" }
                ),
            }
            self.logged_size = n;
        }
        n
    }

    /// Fill the stage to `size`: retries that are due first, then the source.
    async fn stage(&mut self, st: &mut State, cx: &mut Cx<'_>, size: usize) {
        let now = Instant::now();
        while self.staged.len() < size {
            match st.waiting.peek() {
                Some(Reverse(w)) if w.at <= now => {
                    self.staged.push_back(st.waiting.pop().unwrap().0.pending)
                }
                _ => break,
            }
        }
        while self.staged.len() < size && !self.source_done {
            match self.source.next().await {
                Some(Ok(item)) => {
                    let pending = Pending {
                        item,
                        attempt: 0,
                        refreshed: false,
                        spared: 0,
                    };
                    // A request that cannot be sent as it is fails alone,
                    // before it can spoil a whole batch.
                    match cx.runner.client.check(&pending.item.request) {
                        Ok(()) => self.staged.push_back(pending),
                        Err(e) => st.failed_part(cx, NO_CHUNK, pending, e, None).await,
                    }
                }
                Some(Err(e)) => {
                    self.source_error = Some(e);
                    self.source_done = true;
                }
                None => self.source_done = true,
            }
        }
    }

    /// After an outage, a one-unit canary must pass before chunks go
    /// again; false while the service is still down.
    async fn canary(&mut self, st: &mut State, cx: &mut Cx<'_>) -> bool {
        if !st.breaker.is_open() {
            return true;
        }
        if let Some(t) = st.breaker.open_until.filter(|t| *t > Instant::now()) {
            self.pacer_at = Some(t);
            return false;
        }
        match cx.runner.client.call(&Request::profile()).await {
            Err(e) if matches!(e.class, ErrorClass::Server | ErrorClass::Network) => {
                let wait = st.breaker.trip(&e);
                let key = self.staged[0].item.key.clone();
                if !st.outage_too_long(cx.runner, &key) {
                    self.pacer_at = Some(Instant::now() + wait);
                }
                false
            }
            // Answered (even with a rate error or an auth error): the
            // service is up; the chunk will say the rest.
            _ => {
                st.breaker.level = 0;
                st.breaker.open_until = None;
                true
            }
        }
    }

    /// As many of the staged items as the quota takes now (and the room
    /// in flight): their count and units; None (and when to try again)
    /// when not even the first fits.
    fn take_quota(
        &mut self,
        st: &mut State,
        runner: &Runner,
        size: usize,
        parallel: usize,
    ) -> Option<(usize, u64)> {
        let now = Instant::now();
        let costs: Vec<u64> = self
            .staged
            .iter()
            .take(size.min(st.room(parallel)))
            .map(|p| runner.profile.cost(p.item.request.call))
            .collect();
        // A chunk beyond `parallel` waits for a full slice, so the budget
        // goes in chunks of a slice, not one call at a time.
        let total: u64 = costs.iter().sum();
        let min = match runner.pacer.slice() {
            Some(slice) if st.chunks.len() >= parallel => total.min(slice).max(costs[0]),
            _ => costs[0],
        };
        let granted = match runner.pacer.reserve(min, total) {
            Ok(g) => g,
            Err(wait) => {
                if self.pacer_at.is_none() {
                    let why = match runner.pacer.limit() {
                        Some(l) => format!("for quota room ({l} units per window)"),
                        None => "out a Retry-After".to_string(),
                    };
                    if wait >= Duration::from_secs(1) {
                        tracing::info!("pacing: waiting {:.1}s {why}", wait.as_secs_f64());
                    } else {
                        tracing::debug!("pacing: waiting {}ms {why}", wait.as_millis());
                    }
                }
                self.pacer_at = Some(now + wait);
                return None;
            }
        };
        self.pacer_at = None;
        let mut n = 0;
        let mut used = 0;
        while n < costs.len() && (n == 0 || used + costs[n] <= granted) {
            used += costs[n];
            n += 1;
        }
        if granted > used {
            runner.pacer.refund(granted - used);
        }
        st.pacer_cut = n < costs.len();
        Some((n, used))
    }

    /// A token drew a 401: renew it before the next chunk. False when the
    /// chunk must wait (the token endpoint out of reach: `used` units go
    /// back) or the run stops (the renewal was refused).
    async fn renew_token(&mut self, st: &mut State, cx: &mut Cx<'_>, used: u64) -> bool {
        let Some(stale) = st.stale.take() else {
            return true;
        };
        match cx.runner.client.refresh(&stale).await {
            Ok(_) => {
                self.refresh_failures = 0;
                true
            }
            // The token endpoint out of reach: wait and try again, as for
            // any network error.
            Err(e) if e.class == ErrorClass::Network => {
                self.refresh_failures += 1;
                if let Some(d) = cx.opts.backoff.delay(self.refresh_failures, None) {
                    cx.runner.pacer.refund(used);
                    st.stale = Some(stale);
                    self.pacer_at = Some(Instant::now() + d);
                    tracing::warn!("cannot renew the access token ({e}); trying again");
                    return false;
                }
                st.stop = Some(Stop::Policy {
                    key: self.staged[0].item.key.clone(),
                    error: e,
                });
                false
            }
            Err(e) => {
                st.stop = Some(Stop::Policy {
                    key: self.staged[0].item.key.clone(),
                    error: e,
                });
                false
            }
        }
    }

    /// Put the first `n` staged items on the wire as one chunk.
    async fn send(&mut self, st: &mut State, runner: &Runner, n: usize, used: u64, size: usize) {
        let items: Vec<Pending> = self.staged.drain(..n).collect();
        let id = self.next_chunk;
        self.next_chunk += 1;
        st.report.chunks += 1;
        let requests: Vec<(String, Request)> = items
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("item-{i}"), p.item.request.clone()))
            .collect();
        tracing::debug!("chunk {id}: {} calls, {used} quota units", items.len());
        self.tally.add(items.len(), used, size);
        let token = runner.client.token().await.ok();
        st.chunks.insert(
            id,
            InFlight {
                stats: ChunkStats {
                    sent: items.len(),
                    ..ChunkStats::default()
                },
                items: items.into_iter().map(Some).collect(),
                token: token.clone(),
                retry_after: None,
                outage_suspects: Vec::new(),
            },
        );
        tokio::spawn(send_chunk(
            runner.client.clone(),
            id,
            requests,
            token,
            self.tx.clone(),
        ));
    }
}

/// What went out since the last `-v` summary: one line per quota window
/// (at least a second, at most a minute apart), so a long run logs what
/// its chunks really were (the pace can hold them under the chunk size).
struct Tally {
    every: Duration,
    since: Instant,
    chunks: u64,
    calls: u64,
    units: u64,
    largest: usize,
    size: usize,
}

impl Tally {
    fn new(window: Duration) -> Tally {
        Tally {
            every: window.clamp(Duration::from_secs(1), Duration::from_secs(60)),
            since: Instant::now(),
            chunks: 0,
            calls: 0,
            units: 0,
            largest: 0,
            size: 0,
        }
    }

    fn add(&mut self, calls: usize, units: u64, size: usize) {
        self.chunks += 1;
        self.calls += calls as u64;
        self.units += units;
        self.largest = self.largest.max(calls);
        self.size = size;
        if self.since.elapsed() >= self.every {
            self.log();
        }
    }

    fn log(&mut self) {
        if self.chunks > 0 {
            let avg = self.calls as f64 / self.chunks as f64;
            tracing::info!(
                "last {:.1}s: {} chunks, {:.1} calls each on average (largest {}, chunk size {}{}), {} quota units",
                self.since.elapsed().as_secs_f64(),
                self.chunks,
                avg,
                self.largest,
                self.size,
                if (self.largest) < self.size { "; the quota's pace took fewer" } else { "" },
                self.units
            );
        }
        *self = Tally::new(self.every);
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

async fn cancel_changed(cancel: Option<&mut watch::Receiver<bool>>) {
    match cancel {
        Some(c) => {
            if c.changed().await.is_err() {
                std::future::pending::<()>().await
            }
        }
        None => std::future::pending().await,
    }
}

/// Nothing in flight: wait for a retry or the pacer (`at`), room in the
/// queue, a sink error or a cancel. A wait worth showing is told the sink,
/// which says until when.
async fn wait_idle(queue: &Queue, at: Option<Instant>, cancel: Option<&mut watch::Receiver<bool>>) {
    let long =
        at.is_some_and(|at| at.saturating_duration_since(Instant::now()) > Duration::from_secs(2));
    if let (true, Some(at)) = (long, at) {
        queue.waiting(SystemTime::now().checked_add(at.saturating_duration_since(Instant::now())));
    }
    tokio::select! {
        _ = sleep_until_opt(at) => {}
        _ = cancel_changed(cancel) => {}
        _ = queue.changed() => {}
    }
    if long {
        queue.waiting(None);
    }
}

/// One chunk on the wire: send, and report each part as it decodes.
///
/// A part counts for an item only when its Content-ID names that item's
/// part (`response-item-N`). Parts under another Content-ID, repeats, and
/// malformed parts are not deliveries: they are counted and dropped, and
/// the items they should have answered end the chunk unanswered (retried
/// as network errors). Only an answer with no Content-IDs at all and
/// exactly as many parts as asked is matched by order.
async fn send_chunk(
    client: Arc<Client>,
    chunk: u64,
    requests: Vec<(String, Request)>,
    token: Option<Secret>,
    tx: mpsc::Sender<Event>,
) {
    let started = Instant::now();
    let token = match token {
        Some(t) => t,
        None => match client.token().await {
            Ok(t) => t,
            Err(e) => {
                let _ = tx
                    .send(Event::Done {
                        chunk,
                        broken: Some(e),
                        unanswered: false,
                        rtt: Duration::ZERO,
                    })
                    .await;
                return;
            }
        },
    };
    let part = |index: usize, p: InnerResponse| -> Event {
        let req = &requests[index].1;
        let result = if (200..300).contains(&p.status) {
            check_answer(req, p.body)
        } else {
            Err(client.explain(ApiError::from_response(
                p.status,
                p.header("Retry-After"),
                &p.body,
            )))
        };
        Event::Part {
            chunk,
            index,
            result,
        }
    };
    // A batch carries no media (Google's batch guide): uploads go as calls
    // of their own, one after the other within the chunk. Callers that
    // upload use chunks of one and several in flight.
    if requests.iter().any(|(_, r)| r.media.is_some()) {
        let mut unanswered = true;
        let mut broken = None;
        for (index, (_, req)) in requests.iter().enumerate() {
            let result = match client.send_one(req, &token).await {
                // No answer: left to the chunk's end, judged as an outage
                // or a broken exchange like a batch that got none.
                Err(e) if e.class == ErrorClass::Network => {
                    broken = Some(e);
                    continue;
                }
                Ok(body) => check_answer(req, body),
                Err(e) => Err(e),
            };
            unanswered = false;
            let ev = Event::Part {
                chunk,
                index,
                result,
            };
            if tx.send(ev).await.is_err() {
                return;
            }
        }
        let _ = tx
            .send(Event::Done {
                chunk,
                broken,
                unanswered,
                rtt: started.elapsed(),
            })
            .await;
        return;
    }
    let refs: Vec<(String, &Request)> = requests.iter().map(|(id, r)| (id.clone(), r)).collect();
    let mut answered = vec![false; requests.len()];
    // Parts without a Content-ID, held until the answer is complete.
    let mut unnamed: Vec<InnerResponse> = Vec::new();
    let mut named = false;
    let mut stray = 0usize;
    let mut unanswered = false;
    let broken = match client.send_batch(&refs, &token).await {
        Err(e) => {
            unanswered = true;
            Some(e)
        }
        Ok(mut stream) => loop {
            match stream.next_part().await {
                Some(Ok(p)) => {
                    let Some(cid) = p.content_id.as_deref() else {
                        unnamed.push(p);
                        continue;
                    };
                    named = true;
                    let index = response_id(cid)
                        .strip_prefix("item-")
                        .and_then(|i| i.parse::<usize>().ok())
                        .filter(|i| *i < requests.len() && !answered[*i]);
                    let Some(index) = index else {
                        stray += 1;
                        continue;
                    };
                    answered[index] = true;
                    if tx.send(part(index, p)).await.is_err() {
                        return;
                    }
                }
                Some(Err(PartError::Malformed { index, reason })) => {
                    tracing::debug!("batch answer: part {index} is malformed ({reason})");
                    stray += 1;
                }
                Some(Err(PartError::Broken(e))) => break Some(e),
                None => break None,
            }
        },
    };
    if !named && broken.is_none() && unnamed.len() == requests.len() {
        for (index, p) in unnamed.drain(..).enumerate() {
            if tx.send(part(index, p)).await.is_err() {
                return;
            }
        }
    }
    stray += unnamed.len();
    if stray > 0 {
        tracing::warn!(
            "batch answer: {stray} part(s) that answer no item asked (unknown, repeated or \
             missing Content-ID, or malformed) were ignored; their items are retried"
        );
    }
    let _ = tx
        .send(Event::Done {
            chunk,
            broken,
            unanswered,
            rtt: started.elapsed(),
        })
        .await;
}

/// The chunk number of an item that failed before it was sent.
const NO_CHUNK: u64 = u64::MAX;

struct State {
    report: Report,
    sizer: ChunkSizer,
    last: ChunkStats,
    waiting: BinaryHeap<Reverse<Waiting>>,
    seq: u64,
    chunks: HashMap<u64, InFlight>,
    /// A token that drew a 401: refresh before the next chunk.
    stale: Option<Secret>,
    stop: Option<Stop>,
    /// The chunk size the policy gave for `last`.
    size_for_last: Option<usize>,
    breaker: Breaker,
    /// The last launch was cut short by the pacer (see [`State::room`]).
    pacer_cut: bool,
    /// Parts sent and parts answered 5xx, of the last chunks (the breaker).
    recent: VecDeque<(usize, usize)>,
}

impl State {
    fn new(opts: &RunOptions) -> State {
        let sizer = ChunkSizer::new(opts.chunk_start, opts.chunk_max);
        State {
            report: Report::default(),
            last: ChunkStats {
                size: sizer.size(),
                ..ChunkStats::default()
            },
            sizer,
            waiting: BinaryHeap::new(),
            seq: 0,
            chunks: HashMap::new(),
            stale: None,
            stop: None,
            size_for_last: None,
            breaker: Breaker::default(),
            pacer_cut: false,
            recent: VecDeque::new(),
        }
    }

    /// Parts a launch may add now: any number below `parallel` chunks;
    /// past it, only while the pacer is what cuts chunks short (it spreads
    /// the budget in slices shorter than a round trip), and only up to one
    /// full chunk's parts in flight, so the per-user concurrency is never
    /// more than `parallel` full chunks would use.
    fn room(&self, parallel: usize) -> usize {
        if self.chunks.len() < parallel {
            usize::MAX
        } else if self.pacer_cut {
            let in_flight: usize = self.chunks.values().map(|c| c.stats.sent).sum();
            self.sizer.max().saturating_sub(in_flight)
        } else {
            0
        }
    }

    /// The run's loop: launch chunks while there is room, work, quota and
    /// a sink keeping up; handle their answers; wait for retries and the
    /// pacer. Returns when nothing is left or in flight, or on a stop once
    /// the chunks in flight are done.
    async fn drive<S>(
        &mut self,
        feed: &mut Feed<S>,
        cx: &mut Cx<'_>,
        mut rx: mpsc::Receiver<Event>,
        mut cancel: Option<watch::Receiver<bool>>,
    ) where
        S: Stream<Item = Result<Item, ApiError>> + Unpin,
    {
        let parallel = cx.opts.parallel.max(1);
        loop {
            self.check_stops(cx, cancel.as_ref());
            while self.may_launch(cx, parallel) {
                if !feed.launch(self, cx, parallel).await {
                    break;
                }
            }
            let idle = self.chunks.is_empty();
            if idle && (self.stop.is_some() || (feed.exhausted() && self.waiting.is_empty())) {
                return;
            }
            // Wake for a retry coming due or the pacer making room, when a
            // chunk could be launched then.
            let wake_at = if self.may_launch(cx, parallel) {
                let retry_at = self.waiting.peek().map(|Reverse(w)| w.at);
                match (feed.pacer_at.filter(|_| !feed.staged.is_empty()), retry_at) {
                    (Some(p), _) => Some(p),
                    (None, r) => r,
                }
            } else {
                None
            };
            if idle {
                if wake_at.is_some() || cx.queue.full() {
                    wait_idle(cx.queue, wake_at, cancel.as_mut()).await;
                }
                continue;
            }
            tokio::select! {
                ev = rx.recv() => {
                    if let Some(ev) = ev {
                        self.handle(cx, ev).await;
                    }
                }
                _ = sleep_until_opt(wake_at) => {}
                _ = cancel_changed(cancel.as_mut()) => {}
                _ = cx.queue.changed() => {}
            }
        }
    }

    /// The sink failed, the run was cancelled, or the policy cannot go on.
    fn check_stops(&mut self, cx: &mut Cx<'_>, cancel: Option<&watch::Receiver<bool>>) {
        if let Some(stop) = cx.queue.take_stop() {
            self.stop = Some(stop);
        }
        if self.stop.is_none() && cancel.is_some_and(|c| *c.borrow()) {
            self.stop = Some(Stop::Cancelled);
        }
        if self.stop.is_none() {
            if let Some(why) = cx.policy.halt() {
                self.stop = Some(Stop::Halted(why));
            }
        }
    }

    /// A chunk may go now: not stopping, room in flight, and the sink not
    /// more than the queue's worth behind.
    fn may_launch(&self, cx: &Cx<'_>, parallel: usize) -> bool {
        self.stop.is_none() && self.room(parallel) > 0 && !cx.queue.full()
    }

    async fn handle(&mut self, cx: &mut Cx<'_>, ev: Event) {
        if let Some(stop) = cx.queue.take_stop() {
            self.stop = Some(stop);
        }
        match ev {
            Event::Part {
                chunk,
                index,
                result,
            } => {
                let Some(c) = self.chunks.get_mut(&chunk) else {
                    return;
                };
                // Repeated index: nothing to deliver twice.
                let Some(p) = c.items.get_mut(index).and_then(Option::take) else {
                    return;
                };
                let token = c.token.clone();
                match &result {
                    Ok(_) => tracing::debug!("chunk {chunk}: {} ok", p.item.key),
                    Err(e) => tracing::debug!("chunk {chunk}: {}: {e}", p.item.key),
                }
                match result {
                    // Counted when the sink takes it (or not done, after
                    // a sink error).
                    Ok(answer) => {
                        c.stats.ok += 1;
                        cx.queue.push(p.item.key, answer);
                    }
                    // Judged with the whole chunk: an outage, or these ids.
                    Err(e) if e.class == ErrorClass::Server => {
                        c.outage_suspects.push((p, e));
                    }
                    Err(e) => self.failed_part(cx, chunk, p, e, token).await,
                }
            }
            Event::Done {
                chunk,
                broken,
                unanswered,
                rtt,
            } => {
                let Some(c) = self.chunks.get_mut(&chunk) else {
                    return;
                };
                match &broken {
                    None => tracing::debug!("chunk {chunk}: answered in {}ms", rtt.as_millis()),
                    Some(e) => {
                        tracing::debug!("chunk {chunk}: broke after {}ms: {e}", rtt.as_millis())
                    }
                }
                let token = c.token.clone();
                let left: Vec<Pending> = c.items.iter_mut().filter_map(Option::take).collect();
                if !left.is_empty() {
                    c.stats.network_error = broken
                        .as_ref()
                        .is_none_or(|e| e.class == ErrorClass::Network);
                }
                let mut suspects = std::mem::take(&mut c.outage_suspects);
                // Parts missing from a whole answer are that answer's fault,
                // not an outage's; an exchange that broke may be one.
                let mut missing = Vec::new();
                // Only an exchange that got no answer at all: one that broke
                // mid-answer, or an answer that does not add up, is that
                // answer's fault and its items are retried as usual.
                let down = broken.as_ref().filter(|e| {
                    unanswered && matches!(e.class, ErrorClass::Server | ErrorClass::Network)
                });
                for p in left {
                    match (&broken, down) {
                        (_, Some(e)) => suspects.push((p, e.clone())),
                        (Some(e), None) => missing.push((p, e.clone())),
                        (None, None) => missing.push((
                            p,
                            ApiError::network("the batch answer ended without this part"),
                        )),
                    }
                }
                let sent = c.stats.sent;
                for (p, e) in missing {
                    self.failed_part(cx, chunk, p, e, token.clone()).await;
                }
                // Most parts of the recent chunks failed with 5xx, or the
                // exchange itself broke: the service is down, not these ids.
                // Counted over recent chunks, and only on enough parts: a
                // chunk of one part that met a passing 5xx is no outage
                // (the pacer's chunks are small), five such in a row are.
                self.recent.push_back((sent, suspects.len()));
                if self.recent.len() > RECENT_CHUNKS {
                    self.recent.pop_front();
                }
                let (parts, failing) = self
                    .recent
                    .iter()
                    .fold((0, 0), |(p, f), (s, x)| (p + s, f + x));
                let outage = !suspects.is_empty()
                    && (down.is_some() || (failing * 2 > parts && parts >= OUTAGE_PARTS));
                if outage {
                    self.outage(cx, chunk, suspects, token).await;
                } else {
                    if suspects.is_empty() {
                        self.breaker.close();
                    }
                    for (p, e) in suspects {
                        self.failed_part(cx, chunk, p, e, token.clone()).await;
                    }
                }
                let Some(c) = self.chunks.remove(&chunk) else {
                    return;
                };
                // Concurrency refusals alone say nothing about the quota.
                if c.stats.concurrency_errors == 0 || c.stats.rate_errors > 0 {
                    cx.runner
                        .pacer
                        .on_chunk(c.stats.sent, c.stats.rate_errors, c.retry_after, rtt);
                }
                self.report.rate_errors +=
                    (c.stats.rate_errors + c.stats.concurrency_errors) as u64;
                self.sizer.observe(&c.stats);
                self.last = ChunkStats {
                    size: self.sizer.size(),
                    ..c.stats
                };
                self.size_for_last = None;
            }
        }
    }

    /// One item's failure: counted for its chunk, then what the policy
    /// decides (a 401 first gets a fresh token, free of charge).
    async fn failed_part(
        &mut self,
        cx: &mut Cx<'_>,
        chunk: u64,
        mut p: Pending,
        e: ApiError,
        token: Option<Secret>,
    ) {
        let (runner, opts) = (cx.runner, cx.opts);
        if let Some(c) = self.chunks.get_mut(&chunk) {
            match e.class {
                ErrorClass::Rate if e.concurrent => c.stats.concurrency_errors += 1,
                ErrorClass::Rate => c.stats.rate_errors += 1,
                ErrorClass::Server => c.stats.server_errors += 1,
                _ => {}
            }
        }
        if e.class == ErrorClass::Rate {
            // The server did not count a refused call.
            runner
                .pacer
                .refund(runner.profile.cost(p.item.request.call));
            // Whether to slow down is decided per chunk, when it is done.
            if let Some(c) = self.chunks.get_mut(&chunk) {
                c.retry_after = c.retry_after.max(e.retry_after);
            }
        }
        // A 401: one fresh token, then the same item again, free of charge.
        if e.class == ErrorClass::Auth && e.status == 401 && !p.refreshed {
            p.refreshed = true;
            if self.stale.is_none() {
                self.stale = token;
            }
            self.requeue(p, Duration::ZERO);
            return;
        }
        p.attempt += 1;
        if self.stop.is_some() {
            // Stopping: nothing new is sent, so a retry would never happen.
            self.report.not_done += 1;
            return;
        }
        let mut decision = cx.policy.on_error_async(&e, &p.item.key, p.attempt).await;
        if matches!(decision, Decision::Retry(_) | Decision::Split)
            && p.attempt >= opts.max_attempts
        {
            decision = Decision::Fail;
        }
        match decision {
            Decision::Retry(after) => {
                let wait = after
                    .or_else(|| opts.backoff.delay(p.attempt, e.retry_after))
                    .unwrap_or(opts.backoff.cap);
                let max_wait = runner.client.config().max_wait;
                if wait > max_wait {
                    // Waiting that long would look like a hang: stop, say
                    // when to come back; the item is not done, so a resumed
                    // run fetches it.
                    self.report.not_done += 1;
                    self.stop = Some(Stop::Wait {
                        key: p.item.key,
                        error: super::client::wait_too_long(&e, wait, max_wait),
                    });
                    return;
                }
                tracing::info!(
                    "retrying {} in {:.1}s (attempt {}): {e}",
                    p.item.key,
                    wait.as_secs_f64(),
                    p.attempt
                );
                self.report.retried += 1;
                self.requeue(p, wait);
            }
            Decision::Split => {
                self.sizer.shrink();
                self.last.size = self.sizer.size();
                self.size_for_last = None;
                tracing::info!(
                    "{}: {e}; smaller chunks ({}) and again",
                    p.item.key,
                    self.sizer.size()
                );
                self.report.retried += 1;
                self.requeue(p, Duration::ZERO);
            }
            Decision::Skip => self.report.skipped.push(Failure {
                key: p.item.key,
                error: e,
                attempts: p.attempt,
            }),
            Decision::Fail => {
                tracing::info!("{} failed after {} attempt(s): {e}", p.item.key, p.attempt);
                self.report.failed.push(Failure {
                    key: p.item.key,
                    error: e,
                    attempts: p.attempt,
                })
            }
            Decision::Abort => {
                self.report.not_done += 1;
                self.stop = Some(Stop::Policy {
                    key: p.item.key,
                    error: e,
                });
            }
        }
    }

    /// A chunk that met an outage: trip the breaker; its ids wait for the
    /// service to come back without spending a try (up to [`MAX_SPARED`]
    /// times each); an outage longer than `--max-wait` stops the run.
    async fn outage(
        &mut self,
        cx: &mut Cx<'_>,
        chunk: u64,
        suspects: Vec<(Pending, ApiError)>,
        token: Option<Secret>,
    ) {
        let wait = self.breaker.trip(&suspects[0].1);
        tracing::info!(
            "outage suspected: {} call(s) of a chunk failed ({}); a test call in {:.1}s before more",
            suspects.len(),
            suspects[0].1,
            wait.as_secs_f64()
        );
        if self.outage_too_long(cx.runner, &suspects[0].0.item.key) {
            self.report.not_done += suspects.len() as u64;
            return;
        }
        for (mut p, e) in suspects {
            if p.spared < MAX_SPARED && self.stop.is_none() {
                p.spared += 1;
                if let Some(c) = self.chunks.get_mut(&chunk) {
                    if e.class == ErrorClass::Server {
                        c.stats.server_errors += 1;
                    }
                }
                self.report.retried += 1;
                self.requeue(p, wait);
            } else {
                self.failed_part(cx, chunk, p, e, token.clone()).await;
            }
        }
    }

    /// True (and the run stopped) once the breaker has been open for
    /// longer than `--max-wait`.
    fn outage_too_long(&mut self, runner: &Runner, key: &str) -> bool {
        let max_wait = runner.client.config().max_wait;
        let Some(since) = self.breaker.since else {
            return false;
        };
        let lasted = since.elapsed();
        if lasted <= max_wait || self.stop.is_some() {
            return false;
        }
        let mut error = self
            .breaker
            .last
            .clone()
            .unwrap_or_else(|| ApiError::network("the service does not answer"));
        error.diagnosis = Some(format!(
            "Gmail has failed nearly every call for {} (an outage at Google or on the way), \
             longer than --max-wait {}; stopped rather than spend the ids' tries; what was done \
             is saved: run again later",
            super::client::human(lasted),
            super::client::human(max_wait)
        ));
        self.stop = Some(Stop::Wait {
            key: key.to_string(),
            error,
        });
        true
    }

    fn requeue(&mut self, pending: Pending, wait: Duration) {
        self.seq += 1;
        self.waiting.push(Reverse(Waiting {
            at: Instant::now() + wait,
            seq: self.seq,
            pending,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = include_str!("../../docs/lua-api.md");

    /// The rows of the first table after `heading`: its cells, trimmed.
    fn table_after(heading: &str) -> Vec<Vec<String>> {
        let at = DOC
            .find(heading)
            .unwrap_or_else(|| panic!("{heading} in the docs"));
        DOC[at..]
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2) // header and rule
            .map(|l| {
                l.trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().to_string())
                    .collect()
            })
            .collect()
    }

    fn class_of(cell: &str) -> ErrorClass {
        let name = cell.trim_matches('`');
        ErrorClass::parse(name).unwrap_or_else(|| panic!("{name:?} is not a class"))
    }

    #[test]
    fn the_documented_default_policy_is_the_code() {
        let rows = table_after("### gmail.default_policy");
        let mut seen = Vec::new();
        for row in &rows {
            let class = class_of(&row[0]);
            let word = row[1].trim_matches('`').trim_matches('"');
            assert_eq!(
                word,
                DefaultPolicy::decide(class).as_str(),
                "docs/lua-api.md says {class} → {word}"
            );
            seen.push(class);
        }
        // One row per class (grouped by decision, so not in ALL's order).
        let mut names: Vec<&str> = seen.iter().map(ErrorClass::as_str).collect();
        let mut all: Vec<&str> = ErrorClass::ALL.iter().map(ErrorClass::as_str).collect();
        names.sort();
        all.sort();
        assert_eq!(names, all, "one row per class");
    }

    #[test]
    fn the_errors_table_lists_every_class_with_its_default() {
        let rows = table_after("| class | what it means | default policy |");
        let words = ["retry", "skip", "abort", "fail"];
        let mut seen = Vec::new();
        for row in &rows {
            let class = class_of(&row[0]);
            let said: Vec<&str> = row[2]
                .split(|c: char| !c.is_ascii_alphabetic())
                .filter(|w| words.contains(w))
                .collect();
            assert_eq!(
                said,
                [DefaultPolicy::decide(class).as_str()],
                "the Errors table's default for {class}: {}",
                row[2]
            );
            seen.push(class);
        }
        assert_eq!(seen, ErrorClass::ALL);
    }

    #[test]
    fn decision_words_round_trip() {
        for d in [
            Decision::Retry(None),
            Decision::Skip,
            Decision::Fail,
            Decision::Abort,
            Decision::Split,
        ] {
            assert_eq!(Decision::parse(d.as_str()), Some(d));
        }
        assert_eq!(Decision::parse("Retry"), None);
        assert_eq!(
            Decision::Retry(Some(Duration::from_secs(1))).as_str(),
            "retry"
        );
    }
}
