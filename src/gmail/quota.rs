//! Quota costs and the pacer.
//!
//! Gmail limits units per user per minute (a sliding window), each call
//! costing units by method. The pacer keeps its own record of what it spent
//! in the last window and holds a chunk back until it fits, so the engine
//! spends close to the limit without crossing it. When a rate error comes
//! anyway (another client on the same mailbox, a skewed clock), it lowers
//! its own ceiling and creeps back up after clean chunks.

use std::collections::VecDeque;
use std::sync::Mutex;
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
    /// No pacing.
    Off,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "2026" => Some(Profile::P2026),
            "legacy" => Some(Profile::Legacy),
            "off" => Some(Profile::Off),
            n => n.parse().ok().filter(|n| *n > 0).map(Profile::Units),
        }
    }

    pub fn per_user(&self) -> Option<u64> {
        match self {
            Profile::P2026 => Some(6_000),
            Profile::Legacy => Some(15_000),
            Profile::Units(n) => Some(*n),
            Profile::Off => None,
        }
    }

    pub fn cost(&self, m: Method) -> u64 {
        let legacy = *self == Profile::Legacy;
        match m {
            Method::MessagesGet
            | Method::AttachmentsGet
            | Method::MessagesTrash
            | Method::MessagesUntrash => {
                if legacy {
                    5
                } else {
                    20
                }
            }
            Method::ThreadsGet => {
                if legacy {
                    10
                } else {
                    40
                }
            }
            Method::MessagesList | Method::MessagesModify | Method::Other => 5,
            Method::MessagesBatchModify => 50,
            Method::MessagesDelete | Method::ThreadsList => 10,
            Method::HistoryList => 2,
            Method::LabelsList | Method::GetProfile => 1,
        }
    }
}

/// Share of the budget the pacer aims at: a little headroom for calls the
/// pacer does not see (another client, a retry racing the window edge).
const TARGET: f64 = 0.98;
/// Lowest the ceiling goes after repeated rate errors.
const FLOOR: f64 = 0.5;

#[derive(Debug)]
pub struct Pacer {
    limit: Option<u64>,
    window: Duration,
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
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
    pub fn new(profile: &Profile, window: Duration) -> Pacer {
        Pacer {
            limit: profile.per_user(),
            window,
            state: Mutex::new(PacerState {
                spends: VecDeque::new(),
                in_window: 0,
                share: TARGET,
                margin: Duration::from_millis(2),
                paused_until: None,
                spent_total: 0,
            }),
        }
    }

    fn allowed(&self, share: f64) -> u64 {
        self.limit
            .map(|l| (l as f64 * share) as u64)
            .unwrap_or(u64::MAX)
    }

    /// Take as many units as fit now, from `min` up to `max`, and count them
    /// as spent; or say how long until `min` fits. Sizing a chunk to what
    /// fits, instead of waiting until a whole chunk does, is what keeps the
    /// spend close to the limit. `min` larger than the whole budget is let
    /// through alone, on an empty window.
    pub fn reserve(&self, min: u64, max: u64) -> Result<u64, Duration> {
        let mut st = self.state.lock().unwrap();
        if self.limit.is_none() {
            st.spent_total += max;
            return Ok(max);
        }
        let now = Instant::now();
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
        let allowed = self.allowed(st.share);
        let free = allowed.saturating_sub(st.in_window);
        let grant = if free >= min {
            max.min(free)
        } else if st.in_window == 0 {
            min
        } else {
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
        st.spends.push_back((now, grant));
        st.in_window += grant;
        st.spent_total += grant;
        Ok(grant)
    }

    /// Units that the server did not count after all (refused calls).
    pub fn refund(&self, units: u64) {
        let mut st = self.state.lock().unwrap();
        st.spent_total = st.spent_total.saturating_sub(units);
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
    pub fn on_rate_error(&self, retry_after: Option<Duration>) {
        let mut st = self.state.lock().unwrap();
        st.share = (st.share * 0.9).max(FLOOR);
        if let Some(d) = retry_after {
            let until = Instant::now() + d.min(self.window);
            st.paused_until = Some(st.paused_until.map_or(until, |p| p.max(until)));
        }
    }

    /// A chunk came back without rate errors: creep back toward the target.
    /// `rtt` widens the margin so the pacer's window trails the server's.
    pub fn on_clean(&self, rtt: Duration) {
        let mut st = self.state.lock().unwrap();
        st.share = (st.share + 0.005).min(TARGET);
        st.margin = (st.margin.mul_f64(0.8) + rtt.mul_f64(0.2)).min(self.window / 20);
    }

    /// Share of the budget currently allowed (lowered by rate errors).
    pub fn share(&self) -> f64 {
        self.state.lock().unwrap().share
    }

    /// Units spent so far (refunds taken off).
    pub fn spent(&self) -> u64 {
        self.state.lock().unwrap().spent_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_back_past_the_budget_until_the_window_moves() {
        let window = Duration::from_secs(60);
        let p = Pacer::new(&Profile::Units(1000), window);
        for _ in 0..9 {
            assert_eq!(p.reserve(100, 100), Ok(100)); // 900 <= 980
        }
        // 1000 > 980: the wait is until the first spend leaves the window.
        let wait = p.reserve(100, 100).unwrap_err();
        assert!(
            wait > window - Duration::from_secs(5) && wait <= window + Duration::from_millis(2),
            "{wait:?}"
        );
        assert_eq!(p.spent(), 900);
    }

    #[test]
    fn refunds_and_rate_errors_move_the_ceiling() {
        let p = Pacer::new(&Profile::Units(1000), Duration::from_secs(60));
        assert_eq!(p.reserve(900, 900), Ok(900));
        p.refund(500);
        assert_eq!(p.spent(), 400);
        assert_eq!(p.reserve(500, 500), Ok(500), "900 fits again");
        p.on_rate_error(None);
        assert!(p.state.lock().unwrap().share < TARGET);
        for _ in 0..100 {
            p.on_clean(Duration::from_millis(1));
        }
        assert_eq!(p.state.lock().unwrap().share, TARGET);
    }

    #[test]
    fn reserve_grants_what_fits() {
        let p = Pacer::new(&Profile::Units(1000), Duration::from_secs(60));
        assert_eq!(p.reserve(20, 900), Ok(900));
        assert_eq!(p.reserve(20, 900), Ok(80), "980 is the ceiling");
        assert!(p.reserve(20, 900).is_err());
        p.refund(100);
        assert_eq!(p.reserve(20, 40), Ok(40));
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
