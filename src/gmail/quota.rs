//! Quota costs and the pacer.
//!
//! Gmail limits units per user per minute (a sliding window), each call
//! costing units by method. The pacer keeps its own record of what it spent
//! in the last window and holds a chunk back until it fits, so the engine
//! spends close to the limit without crossing it. When a rate error comes
//! anyway (another client on the same mailbox, a skewed clock), it lowers
//! its own ceiling and creeps back up after clean chunks.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::request::Method;

/// A cost table and a per-user budget.
#[derive(Debug, Clone, PartialEq)]
pub enum Profile {
    /// Projects created since 2026-05-01: 6,000 units/user/minute.
    P2026,
    /// Older projects: 15,000 units/user/minute.
    Legacy,
    /// Explicit units per window, with the 2026 cost table.
    Units(u64),
    /// Not known: the 2026 cost table, and a pace found by a [`Learn`]ing
    /// pacer from the 2026 budget up.
    Auto,
    /// No pacing.
    Off,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "2026" => Some(Profile::P2026),
            "legacy" => Some(Profile::Legacy),
            "off" => Some(Profile::Off),
            "auto" => Some(Profile::Auto),
            n => n.parse().ok().filter(|n| *n > 0).map(Profile::Units),
        }
    }

    pub(crate) fn per_user(&self) -> Option<u64> {
        match self {
            Profile::P2026 | Profile::Auto => Some(6_000),
            Profile::Legacy => Some(15_000),
            Profile::Units(n) => Some(*n),
            Profile::Off => None,
        }
    }

    pub(crate) fn cost(&self, m: Method) -> u64 {
        let legacy = *self == Profile::Legacy;
        match m {
            Method::MessagesGet | Method::MessagesTrash => {
                if legacy {
                    5
                } else {
                    20
                }
            }
            Method::MessagesList | Method::Other => 5,
            Method::MessagesBatchModify => 50,
            Method::HistoryList => 2,
            Method::MessagesImport | Method::MessagesInsert => 25,
            Method::LabelsList | Method::GetProfile => 1,
        }
    }
}

/// Share of the budget the pacer aims at: a little headroom for calls the
/// pacer does not see (another client, a retry racing the window edge).
const TARGET: f64 = 0.98;
/// Lowest the ceiling goes after repeated rate errors.
const FLOOR: f64 = 0.5;
/// While learning, each raise multiplies the limit by this.
const RAISE: f64 = 1.5;
/// Spends are also spread over the window: a bucket that refills at the
/// window's average rate holds one slice's worth (1 s of Gmail's minute),
/// so a short-window limit (a per-second one) is not tripped by a burst.
const SLICES: u32 = 60;

/// What the pacer does not know yet: the per-user limit is found by
/// raising the pace from `start` while the pacer is what holds the run back
/// and no call is refused, up to `ceiling`; the first refusal settles it
/// just under what was spent then.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Learn {
    pub(crate) start: u64,
    pub(crate) ceiling: u64,
}

/// The most a learning pacer raises the 2026 budget: twenty times (a legacy
/// project's quota counted at 2026 costs is ten times it).
pub(crate) const LEARN_CEILING: u64 = 20 * 6_000;

type Learned = Box<dyn Fn(u64) + Send + Sync>;

pub struct Pacer {
    window: Duration,
    state: Mutex<PacerState>,
    /// Told the limit as soon as a refusal shows it, to remember it.
    on_learned: Option<Learned>,
    /// The per-project budget every mailbox of a run shares, if any.
    project: Option<Arc<ProjectBudget>>,
}

/// Gmail's per-project budget (1,200,000 units a minute), shared by the
/// pacers of every mailbox a run acts on: each reserves from its own
/// per-user window first, then from this one, and gives its own units
/// back when the project has no room. A mailbox waiting on its own limit
/// thus never takes the project's units from the others.
#[derive(Debug)]
pub(crate) struct ProjectBudget(Pacer);

impl ProjectBudget {
    /// `units` per `window` (Gmail's minute, or a sped-up simulator's).
    pub(crate) fn new(units: u64, window: Duration) -> ProjectBudget {
        ProjectBudget(Pacer::with_limit(Some(units.max(1)), None, window))
    }

    /// Units spent from it so far (refunds taken off).
    #[cfg(test)]
    fn spent(&self) -> u64 {
        self.0.spent()
    }
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("window", &self.window)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct PacerState {
    /// Units per window; None: no pacing.
    limit: Option<u64>,
    /// Still looking for the limit (see [`Learn`]).
    learn: Option<Learn>,
    /// A limit found by a refusal in this run, for the caller to remember.
    learned: Option<u64>,
    /// When the limit was last raised (or learning began).
    raised_at: Instant,
    /// The last limit that ran without a refusal.
    safe: u64,
    /// Stray refusals lately (see `on_chunk`), and since when.
    /// Stray refusals and calls sent since the instant, over the last
    /// quarter window.
    strays: (u32, u32, Instant),
    /// When the share last crept back up.
    crept_at: Instant,
    /// The short-window bucket (units; negative: in debt), as of `bucket_at`.
    bucket: f64,
    bucket_at: Instant,
    /// The pacer held a chunk back, or granted less of it than asked,
    /// since the last raise: the limit, not the pipeline, sets the pace.
    held_back: bool,
    spends: VecDeque<(Instant, u64)>,
    in_window: u64,
    /// Share of the limit currently allowed (TARGET, lowered by rate errors).
    share: f64,
    /// Extra time a spend is kept past the window: the server counts a call
    /// when it arrives, a little after the pacer did.
    margin: Duration,
    /// Not before this instant (a Retry-After).
    paused_until: Option<Instant>,
    spent_total: u64,
}

impl Pacer {
    /// `window` is 60 s for real Gmail; shorter against a simulator whose
    /// quota clock runs faster.
    /// `Auto` learns (see [`Learn`]) from the 2026 budget up.
    pub fn new(profile: &Profile, window: Duration) -> Pacer {
        match profile {
            Profile::Auto => Pacer::learning(
                Learn {
                    start: 6_000,
                    ceiling: LEARN_CEILING,
                },
                window,
            ),
            p => Pacer::with_limit(p.per_user(), None, window),
        }
    }

    /// Call `f` with the limit once a refusal has shown it (at most once).
    pub fn on_learned(mut self, f: impl Fn(u64) + Send + Sync + 'static) -> Pacer {
        self.on_learned = Some(Box::new(f));
        self
    }

    /// Also reserve from `project`, shared with the pacers of the other
    /// mailboxes of the run.
    pub(crate) fn with_project(mut self, project: Arc<ProjectBudget>) -> Pacer {
        self.project = Some(project);
        self
    }

    /// A pacer that finds the limit itself (see [`Learn`]).
    pub(crate) fn learning(learn: Learn, window: Duration) -> Pacer {
        let learn = Learn {
            start: learn.start.max(1),
            ceiling: learn.ceiling.max(learn.start.max(1)),
        };
        Pacer::with_limit(Some(learn.start), Some(learn), window)
    }

    fn with_limit(limit: Option<u64>, learn: Option<Learn>, window: Duration) -> Pacer {
        Pacer {
            window,
            on_learned: None,
            project: None,
            state: Mutex::new(PacerState {
                limit,
                learn,
                learned: None,
                raised_at: Instant::now(),
                safe: limit.unwrap_or(0),
                strays: (0, 0, Instant::now()),
                crept_at: Instant::now(),
                bucket: f64::MAX,
                bucket_at: Instant::now(),
                held_back: false,
                spends: VecDeque::new(),
                in_window: 0,
                share: TARGET,
                margin: Duration::from_millis(2),
                paused_until: None,
                spent_total: 0,
            }),
        }
    }

    /// While learning: raise the limit when the pacer, not the pipeline,
    /// has been what held the run back for a quarter of a window: it held
    /// a chunk back, and that quarter spent nearly its share of the budget.
    fn maybe_raise(&self, st: &mut PacerState, now: Instant) {
        let (Some(learn), Some(limit)) = (st.learn, st.limit) else {
            return;
        };
        let quarter = self.window / 4;
        if !st.held_back || now.duration_since(st.raised_at) < quarter {
            return;
        }
        let recent: u64 = st
            .spends
            .iter()
            .rev()
            .take_while(|(t, _)| now.duration_since(*t) < quarter)
            .map(|(_, u)| u)
            .sum();
        let share = (limit as f64 * st.share / 4.0) as u64;
        if recent * 10 < share * 9 {
            // The pipeline is slower than the pace: a higher one would not
            // be used; look again a quarter later.
            st.raised_at = now;
            st.held_back = false;
            return;
        }
        {
            let raised = ((limit as f64 * RAISE) as u64).min(learn.ceiling);
            st.safe = limit;
            st.limit = Some(raised);
            st.raised_at = now;
            st.held_back = false;
            if raised >= learn.ceiling {
                st.learn = None;
            }
            tracing::info!(
                "quota: raising the pace from {limit} to {raised} units per window (the pace held the run back; no call refused yet)"
            );
        }
    }

    /// Take as many units as fit now, from `min` up to `max`, and count them
    /// as spent; or say how long until `min` fits. Sizing a chunk to what
    /// fits, instead of waiting until a whole chunk does, is what keeps the
    /// spend close to the limit. `min` larger than the whole budget is let
    /// through alone, on an empty window.
    pub(crate) fn reserve(&self, min: u64, max: u64) -> Result<u64, Duration> {
        self.reserve_at(min, max, Instant::now())
    }

    fn reserve_at(&self, min: u64, max: u64, now: Instant) -> Result<u64, Duration> {
        let mut st = self.state.lock().unwrap();
        let Some(limit) = st.limit else {
            st.spent_total += max;
            return Ok(max);
        };
        self.maybe_raise(&mut st, now);
        let limit = st.limit.unwrap_or(limit);
        let keep = self.window + st.margin;
        while let Some(&(t, u)) = st.spends.front() {
            if now.duration_since(t) >= keep {
                st.in_window -= u;
                st.spends.pop_front();
            } else {
                break;
            }
        }
        if let Some(p) = st.paused_until.filter(|p| *p > now) {
            return Err(p - now);
        }
        let allowed = (limit as f64 * st.share) as u64;
        let free = allowed.saturating_sub(st.in_window);
        // The short window: a bucket that fills at the window's average
        // rate and holds one slice's worth, so no second takes much more
        // than its share; what a slice leaves unspent carries over. An item
        // costlier than the bucket goes alone when it is full, leaving it
        // in debt that the next slices repay. (A round trip longer than a
        // slice is met by more small chunks in flight, not bigger ones: a
        // per-second limit counts what arrives in its second.)
        let rate = allowed as f64 / self.window.as_secs_f64().max(1e-6);
        let cap = (allowed as f64 / f64::from(SLICES)).max(1.0);
        let dt = now.saturating_duration_since(st.bucket_at).as_secs_f64();
        st.bucket = (st.bucket + rate * dt).min(cap);
        st.bucket_at = st.bucket_at.max(now);
        let need = (min as f64).min(cap);
        let grant = if free >= min && st.bucket >= need {
            let room = (st.bucket.max(0.0) as u64).max(min);
            // Less than the pipeline asked for: the pace is what holds the
            // run back, as much as a refused reserve (see `maybe_raise`).
            if room.min(free) < max {
                st.held_back = true;
            }
            max.min(free).min(room)
        } else if st.in_window == 0 && st.bucket >= need {
            min
        } else if free >= min || st.in_window == 0 {
            st.held_back = true;
            let wait = (need - st.bucket) / rate.max(1e-9);
            return Err(Duration::from_secs_f64(wait.clamp(0.001, 86_400.0)));
        } else {
            st.held_back = true;
            // Until enough of the oldest spends leave the window.
            let mut used = st.in_window;
            let mut until = now;
            for &(t, u) in &st.spends {
                used -= u;
                until = t + keep;
                if used + min <= allowed {
                    break;
                }
            }
            return Err(until
                .saturating_duration_since(now)
                .max(Duration::from_millis(1)));
        };
        // Then the project's share: it may give less than was granted
        // here, or nothing yet (this mailbox's units stay its own).
        let grant = match &self.project {
            Some(p) => p.0.reserve_at(min.min(grant), grant, now)?,
            None => grant,
        };
        st.bucket -= grant as f64;
        st.spends.push_back((now, grant));
        st.in_window += grant;
        st.spent_total += grant;
        Ok(grant)
    }

    /// What the bucket holds when full: one slice of the window's budget
    /// (the most one chunk spends at once); None: no pacing.
    pub(crate) fn slice(&self) -> Option<u64> {
        let st = self.state.lock().unwrap();
        let allowed = (st.limit? as f64 * st.share) as u64;
        Some((allowed / u64::from(SLICES)).max(1))
    }

    /// Units that the server did not count after all (refused calls).
    pub(crate) fn refund(&self, units: u64) {
        if let Some(p) = &self.project {
            p.0.refund(units);
        }
        let mut st = self.state.lock().unwrap();
        st.spent_total = st.spent_total.saturating_sub(units);
        st.bucket += units as f64;
        let mut left = units;
        while left > 0 {
            let Some(last) = st.spends.back_mut() else {
                break;
            };
            let take = last.1.min(left);
            last.1 -= take;
            let emptied = last.1 == 0;
            left -= take;
            st.in_window -= take;
            if emptied {
                st.spends.pop_back();
            }
        }
    }

    /// The quota ran out (a chunk met many rate errors): lower the ceiling,
    /// and honour Retry-After.
    fn on_rate_error(&self, retry_after: Option<Duration>) {
        let learned = {
            let mut st = self.state.lock().unwrap();
            let learned = self.settle(&mut st).then_some(st.limit).flatten();
            if learned.is_none() {
                st.share = (st.share * 0.9).max(FLOOR);
            }
            if let Some(d) = retry_after {
                // The whole wait: a penalty lasts as long as it says, and
                // calls sent into it would only be refused.
                let until = Instant::now() + d;
                st.paused_until = Some(st.paused_until.map_or(until, |p| p.max(until)));
            }
            tracing::info!(
                "quota: Gmail refused calls for quota; pacing at {:.0}% of {} units per window{}",
                st.share * 100.0,
                st.limit.map_or("unlimited".to_string(), |l| l.to_string()),
                retry_after.map_or(String::new(), |d| format!(
                    ", nothing sent for {:.1}s (Retry-After)",
                    d.as_secs_f64()
                ))
            );
            learned
        };
        if let (Some(limit), Some(f)) = (learned, &self.on_learned) {
            f(limit);
        }
    }

    /// A chunk came back: `sent` parts, `refused` of them for quota (not
    /// concurrency), the longest Retry-After among them. Many refusals in
    /// one chunk, or strays that are at least three and a tenth of the
    /// calls sent within a quarter window, mean the quota is spent: slow
    /// down. Fewer are passing 429s (random ones do not fall when the pace
    /// does, so slowing for them only loses the budget): only retried.
    pub(crate) fn on_chunk(
        &self,
        sent: usize,
        refused: usize,
        retry_after: Option<Duration>,
        rtt: Duration,
    ) {
        let now = Instant::now();
        let spent = {
            let mut st = self.state.lock().unwrap();
            if now.duration_since(st.strays.2) > self.window / 4 {
                st.strays = (0, 0, now);
            }
            st.strays.0 = st.strays.0.saturating_add(refused as u32);
            st.strays.1 = st.strays.1.saturating_add(sent as u32);
            let many = refused >= 3 && refused * 4 >= sent;
            let (strays, calls) = (st.strays.0, st.strays.1);
            let spent = many || (strays >= 3 && strays.saturating_mul(10) >= calls);
            if spent {
                st.strays = (0, 0, now);
            }
            spent
        };
        if refused == 0 {
            self.on_clean(rtt);
            return;
        }
        self.on_refused();
        if spent {
            self.on_rate_error(retry_after);
        }
    }

    /// A call was refused for quota (not for concurrency). While learning,
    /// that is the limit found: just under what the window holds now, the
    /// refused calls refunded (the server did not count them).
    fn on_refused(&self) {
        let learned = {
            let mut st = self.state.lock().unwrap();
            self.settle(&mut st).then_some(st.limit).flatten()
        };
        if let (Some(limit), Some(f)) = (learned, &self.on_learned) {
            f(limit);
        }
    }

    fn settle(&self, st: &mut PacerState) -> bool {
        let Some(learn) = st.learn.take() else {
            return false;
        };
        if st.limit == Some(st.safe) {
            // Refused before any raise: the starting pace is already too
            // much (a lower quota, another client). Nothing was learned;
            // the share comes down as without learning.
            return false;
        }
        // The server counts what it accepted in its window, which is what
        // this window holds once the refused calls are refunded. (A limit
        // that ran clean for a while proves nothing: the window may not
        // have been full.) Never below where learning began.
        let limit = st.in_window.max(learn.start);
        st.limit = Some(limit);
        st.learned = Some(limit);
        true
    }

    /// The limit a refusal showed in this run, if any; and the limit the
    /// pacer paces to now.
    pub fn learned(&self) -> Option<u64> {
        self.state.lock().unwrap().learned
    }

    pub fn limit(&self) -> Option<u64> {
        self.state.lock().unwrap().limit
    }

    /// A chunk came back without rate errors: creep back toward the target.
    /// `rtt` widens the margin so the pacer's window trails the server's.
    fn on_clean(&self, rtt: Duration) {
        self.on_clean_at(rtt, Instant::now())
    }

    fn on_clean_at(&self, rtt: Duration, now: Instant) {
        let mut st = self.state.lock().unwrap();
        // By time, not by chunk: small chunks must not undo a slow-down at
        // once. Back from the floor to the target in about ten windows.
        if now.duration_since(st.crept_at) >= self.window / 20 {
            st.share = (st.share + 0.0025).min(TARGET);
            st.crept_at = now;
        }
        st.margin = (st.margin.mul_f64(0.8) + rtt.mul_f64(0.2)).min(self.window / 20);
    }

    /// The quota window paced for.
    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    /// Share of the budget currently allowed (lowered by rate errors).
    pub fn share(&self) -> f64 {
        self.state.lock().unwrap().share
    }

    /// Units spent so far (refunds taken off).
    pub(crate) fn spent(&self) -> u64 {
        self.state.lock().unwrap().spent_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn spreads_the_window_over_slices_and_holds_back_past_the_budget() {
        let p = Pacer::new(&Profile::Units(6000), MIN);
        let t0 = Instant::now();
        // 98% of 6,000 is 5,880 a minute: 98 a second, never a burst.
        assert_eq!(p.reserve_at(20, 2000, t0), Ok(98));
        // 20 more units come in 20/98 of a second.
        let wait = p.reserve_at(20, 20, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(200) && wait < Duration::from_millis(210),
            "{wait:?}"
        );
        for s in 1..60 {
            assert_eq!(p.reserve_at(98, 98, at(t0, s * 1000)), Ok(98), "second {s}");
        }
        assert_eq!(p.spent(), 5880);
        // A minute on, the slice is free but the window still holds 5,880
        // until the first spend leaves it (plus a margin for the trip).
        let wait = p.reserve_at(20, 20, at(t0, 60_000)).unwrap_err();
        assert!(wait <= Duration::from_millis(3), "{wait:?}");
        assert_eq!(p.reserve_at(20, 20, at(t0, 60_010)), Ok(20));
    }

    #[test]
    fn stray_429s_slow_the_pace_only_when_they_are_a_tenth_of_the_calls() {
        let rtt = Duration::from_millis(200);
        // 3% of calls refused at random, in chunks of 50: retried, no slower.
        let p = Pacer::new(&Profile::Units(6000), MIN);
        for i in 0..20 {
            p.on_chunk(50, 1 + i % 2, None, rtt);
        }
        assert_eq!(p.share(), TARGET, "random strays are not the quota");
        // A third of small chunks' calls refused: the pace is too high.
        let p = Pacer::new(&Profile::Units(6000), MIN);
        for _ in 0..3 {
            p.on_chunk(3, 1, None, rtt);
        }
        assert!(p.share() < TARGET, "strays that many mean slow down");
    }

    #[test]
    fn refunds_and_rate_errors_move_the_ceiling() {
        let p = Pacer::new(&Profile::Units(6000), MIN);
        let t0 = Instant::now();
        assert_eq!(p.reserve_at(98, 98, t0), Ok(98));
        p.refund(50);
        assert_eq!(p.spent(), 48);
        assert_eq!(p.reserve_at(20, 98, t0), Ok(50), "the refund is free again");
        p.on_rate_error(None);
        let lowered = p.share();
        assert!(lowered < TARGET);
        // Many clean chunks at once creep back one step, not a hundred.
        let t1 = at(t0, 3000);
        for _ in 0..100 {
            p.on_clean_at(Duration::from_millis(1), t1);
        }
        assert!(p.share() <= lowered + 0.003, "{}", p.share());
        // Clean windows bring it back to the target.
        for i in 1..=200 {
            p.on_clean_at(Duration::from_millis(1), at(t1, i * 3000));
        }
        assert_eq!(p.share(), TARGET);
    }

    #[test]
    fn a_single_costly_item_goes_alone() {
        let p = Pacer::new(&Profile::Units(1000), MIN);
        let t0 = Instant::now();
        // 16.3 a second, but one item costs 20: it goes, alone, on a full
        // bucket; the debt is repaid before the next one goes.
        assert_eq!(p.reserve_at(20, 900, t0), Ok(20));
        assert!(p.reserve_at(20, 900, t0).is_err());
        assert!(p.reserve_at(20, 900, at(t0, 1000)).is_err());
        assert_eq!(p.reserve_at(20, 900, at(t0, 1300)), Ok(20));
    }

    #[test]
    fn a_retry_after_pauses_for_all_of_it() {
        let p = Pacer::new(&Profile::Units(6000), MIN);
        p.on_rate_error(Some(Duration::from_secs(900)));
        let wait = p.reserve(20, 20).unwrap_err();
        assert!(
            wait > Duration::from_secs(890),
            "a 15-minute penalty: {wait:?}"
        );
    }

    fn learner(start: u64, ceiling: u64) -> Pacer {
        Pacer::learning(Learn { start, ceiling }, MIN)
    }

    /// Takes what the pacer gives every 50 ms from `from` to `to` (ms after
    /// t0), as a pipeline faster than the pace would.
    fn drive(p: &Pacer, t0: Instant, from: u64, to: u64) -> u64 {
        (from..to)
            .step_by(50)
            .filter_map(|ms| p.reserve_at(1, 10_000, at(t0, ms)).ok())
            .sum()
    }

    #[test]
    fn learning_raises_while_the_pacer_holds_back_and_settles_on_a_refusal() {
        let p = learner(600, 6000);
        let t0 = p.state.lock().unwrap().raised_at;
        // 588 a minute is 147 a quarter: taken in full, then a raise.
        let got = drive(&p, t0, 0, 15_000);
        assert!((140..=160).contains(&got), "{got}");
        assert_eq!(p.limit(), Some(600));
        drive(&p, t0, 15_000, 15_050);
        assert_eq!(p.limit(), Some(900));
        drive(&p, t0, 15_050, 30_050);
        assert_eq!(p.limit(), Some(1350));
        assert_eq!(p.learned(), None);
        // A refusal: the limit is what the window holds (not less than the
        // start); no raise after that.
        let held = p.state.lock().unwrap().in_window;
        p.on_refused();
        let learned = p.learned().unwrap();
        assert_eq!(learned, held.max(600));
        assert_eq!(p.limit(), Some(learned));
        drive(&p, t0, 30_050, 60_000);
        assert_eq!(p.limit(), Some(learned), "settled");
    }

    #[test]
    fn a_pipeline_given_less_than_it_asks_is_held_back_and_raised_each_quarter() {
        // Every 50 ms the bucket holds 4.9 units: each reserve is granted
        // (never refused) but short of what was asked. A quarter later the
        // limit goes up, not a whole window later when the window is full.
        let p = learner(6000, 60_000);
        let t0 = p.state.lock().unwrap().raised_at;
        drive(&p, t0, 0, 15_050);
        assert_eq!(p.limit(), Some(9000));
        drive(&p, t0, 15_050, 30_100);
        assert_eq!(p.limit(), Some(13_500));
    }

    #[test]
    fn a_pipeline_slower_than_the_pace_is_not_a_reason_to_raise() {
        let p = learner(600, 6000);
        let t0 = p.state.lock().unwrap().raised_at;
        // One small item a second: held back at times, but far below pace.
        for s in 0..40 {
            let _ = p.reserve_at(1, 1, at(t0, s * 1000));
            let _ = p.reserve_at(9, 9, at(t0, s * 1000));
            let _ = p.reserve_at(9, 9, at(t0, s * 1000));
        }
        assert_eq!(p.limit(), Some(600));
    }

    #[test]
    fn learning_stops_at_the_ceiling_and_a_refusal_before_any_raise_teaches_nothing() {
        let p = learner(600, 700);
        let t0 = p.state.lock().unwrap().raised_at;
        drive(&p, t0, 0, 15_050);
        assert_eq!(p.limit(), Some(700));
        drive(&p, t0, 15_050, 45_000);
        assert_eq!(p.limit(), Some(700), "no further");
        let q = learner(600, 6000);
        q.on_refused();
        assert_eq!(q.learned(), None);
        assert_eq!(q.limit(), Some(600));
    }

    #[test]
    fn mailboxes_share_the_project_budget_and_wait_on_their_own_limit_alone() {
        let t0 = Instant::now();
        // Two mailboxes of 6,000 a minute under a project of 3,000.
        let project = Arc::new(ProjectBudget::new(3000, MIN));
        let a = Pacer::new(&Profile::Units(6000), MIN).with_project(project.clone());
        let b = Pacer::new(&Profile::Units(6000), MIN).with_project(project.clone());
        let mut got = (0, 0);
        // They ask in turn, as two mailboxes' chunks come due.
        for ms in (0..60_000).step_by(100) {
            let (first, second) = if ms % 200 == 0 { (&a, &b) } else { (&b, &a) };
            let g = first.reserve_at(1, 10_000, at(t0, ms)).unwrap_or(0);
            let h = second.reserve_at(1, 10_000, at(t0, ms)).unwrap_or(0);
            if ms % 200 == 0 {
                got = (got.0 + g, got.1 + h);
            } else {
                got = (got.0 + h, got.1 + g);
            }
        }
        // The project's 98% in the minute, shared out; neither more than
        // what the project gave.
        assert_eq!(got.0 + got.1, 2940, "{got:?}");
        assert!(got.0 > 1000 && got.1 > 1000, "both got a share: {got:?}");
        assert_eq!(project.spent(), 2940);
        assert_eq!((a.spent(), b.spent()), got, "refused units are not kept");
        // A mailbox held back by its own (small) limit leaves the project's
        // room to the other.
        let project = Arc::new(ProjectBudget::new(6000, MIN));
        let slow = Pacer::new(&Profile::Units(600), MIN).with_project(project.clone());
        let fast = Pacer::new(&Profile::Units(6000), MIN).with_project(project.clone());
        let (mut s, mut f) = (0, 0);
        for ms in (0..60_000).step_by(100) {
            s += slow.reserve_at(1, 10_000, at(t0, ms)).unwrap_or(0);
            f += fast.reserve_at(1, 10_000, at(t0, ms)).unwrap_or(0);
        }
        assert_eq!(s, 588);
        assert!(f >= 5880 - 588 - 100, "{f}");
        // A refund goes back to both.
        let before = project.spent();
        fast.refund(20);
        assert_eq!(project.spent(), before - 20);
    }

    #[test]
    fn off_never_waits() {
        let p = Pacer::new(&Profile::Off, Duration::from_secs(60));
        for _ in 0..1000 {
            assert_eq!(p.reserve(1_000_000, 1_000_000), Ok(1_000_000));
        }
        assert_eq!(p.spent(), 1_000_000_000);
    }

    #[test]
    fn costs_follow_the_profiles() {
        assert_eq!(Profile::P2026.cost(Method::MessagesGet), 20);
        assert_eq!(Profile::Legacy.cost(Method::MessagesGet), 5);
        assert_eq!(Profile::P2026.cost(Method::MessagesBatchModify), 50);
        assert_eq!(Profile::parse("legacy"), Some(Profile::Legacy));
        assert_eq!(Profile::parse("2500"), Some(Profile::Units(2500)));
        assert_eq!(Profile::parse("fast"), None);
    }
}
