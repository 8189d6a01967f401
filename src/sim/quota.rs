//! Quota as the real service enforces it: a cost per method, a per-user and
//! a per-project budget of units per minute (sliding window), and a per-user
//! limit on calls in flight.
//!
//! `speed` runs the quota clock faster: the window is 60 s / speed, so a test
//! that spends minutes of quota takes seconds. Utilisation (units spent ÷
//! units allowed over the run) is the same figure at any speed, because both
//! the budget and the window shrink by the same factor: at speed 60 the
//! per-user budget of 6,000 units refills every second instead of every
//! minute. Latency is not scaled; it is set separately.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Projects created since 2026-05-01.
    P2026,
    /// Older projects.
    Legacy,
    Off,
}

impl Rules {
    pub fn parse(s: &str) -> Option<Rules> {
        match s {
            "2026" => Some(Rules::P2026),
            "legacy" => Some(Rules::Legacy),
            "off" => Some(Rules::Off),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Rules::P2026 => "2026",
            Rules::Legacy => "legacy",
            Rules::Off => "off",
        }
    }

    /// Units per user per minute.
    pub fn per_user(self) -> u64 {
        match self {
            Rules::P2026 => 6_000,
            Rules::Legacy => 15_000,
            Rules::Off => u64::MAX,
        }
    }

    /// Units per project per minute.
    pub fn per_project(self) -> u64 {
        match self {
            Rules::Off => u64::MAX,
            _ => 1_200_000,
        }
    }

    /// Quota units one call of `method` costs (Google's method names).
    pub fn cost(self, method: &str) -> u64 {
        let legacy = self == Rules::Legacy;
        match method {
            "messages.get" | "messages.attachments.get" => {
                if legacy {
                    5
                } else {
                    20
                }
            }
            "messages.trash" | "messages.untrash" => {
                if legacy {
                    5
                } else {
                    20
                }
            }
            "messages.list" | "messages.modify" => 5,
            "messages.batchModify" => 50,
            "history.list" => 2,
            "labels.list" | "labels.get" | "getProfile" => 1,
            "threads.get" => {
                if legacy {
                    10
                } else {
                    40
                }
            }
            "threads.list" => 10,
            _ => 5,
        }
    }
}

/// Why a call was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Per-user per-minute budget spent; seconds until enough frees.
    User {
        retry_after: Duration,
    },
    Project {
        retry_after: Duration,
    },
    Concurrency,
}

/// Units spent in a sliding window, kept as small time slots so the sum is
/// cheap and memory is bounded whatever the call rate.
#[derive(Debug)]
struct Window {
    slots: VecDeque<(Instant, u64)>,
    total: u64,
}

const SLOTS: u32 = 120;

impl Window {
    fn new() -> Self {
        Window {
            slots: VecDeque::new(),
            total: 0,
        }
    }

    fn expire(&mut self, now: Instant, window: Duration) {
        while let Some(&(t, units)) = self.slots.front() {
            if now.duration_since(t) >= window {
                self.total -= units;
                self.slots.pop_front();
            } else {
                break;
            }
        }
    }

    fn add(&mut self, now: Instant, units: u64, window: Duration) {
        let slot = window / SLOTS;
        match self.slots.back_mut() {
            Some((t, u)) if now.duration_since(*t) < slot => *u += units,
            _ => self.slots.push_back((now, units)),
        }
        self.total += units;
    }

    /// How long until `needed` units fit under `limit`.
    fn wait_for(&self, now: Instant, window: Duration, needed: u64, limit: u64) -> Duration {
        let mut total = self.total;
        for &(t, units) in &self.slots {
            if total + needed <= limit {
                break;
            }
            total -= units;
            let frees_at = t + window;
            if total + needed <= limit {
                return frees_at.saturating_duration_since(now);
            }
        }
        Duration::ZERO
    }
}

#[derive(Debug)]
struct UserState {
    window: Window,
    in_flight: u32,
}

#[derive(Debug)]
pub struct Quota {
    pub profile: Rules,
    pub window: Duration,
    pub concurrency: u32,
    state: Mutex<QuotaState>,
}

#[derive(Debug)]
struct QuotaState {
    users: HashMap<String, UserState>,
    project: Window,
    peak_in_flight: u32,
}

impl Quota {
    pub fn new(profile: Rules, speed: f64, concurrency: u32) -> Self {
        Quota {
            profile,
            window: Duration::from_secs_f64(60.0 / speed),
            concurrency,
            state: Mutex::new(QuotaState {
                users: HashMap::new(),
                project: Window::new(),
                peak_in_flight: 0,
            }),
        }
    }

    /// Admit one call of `method` for `user`: checks concurrency and both
    /// budgets, and on success spends the units and counts the call in
    /// flight until `release`. A refused call spends nothing.
    pub fn admit(&self, user: &str, method: &str) -> Result<u64, Refusal> {
        let cost = self.profile.cost(method);
        let now = Instant::now();
        let mut st = self.state.lock().unwrap();
        let QuotaState {
            users,
            project,
            peak_in_flight,
        } = &mut *st;
        let u = users.entry(user.to_string()).or_insert_with(|| UserState {
            window: Window::new(),
            in_flight: 0,
        });
        if u.in_flight >= self.concurrency {
            return Err(Refusal::Concurrency);
        }
        if self.profile != Rules::Off {
            u.window.expire(now, self.window);
            project.expire(now, self.window);
            let per_user = self.profile.per_user();
            if u.window.total + cost > per_user {
                let retry_after = u.window.wait_for(now, self.window, cost, per_user);
                return Err(Refusal::User { retry_after });
            }
            let per_project = self.profile.per_project();
            if project.total + cost > per_project {
                let retry_after = project.wait_for(now, self.window, cost, per_project);
                return Err(Refusal::Project { retry_after });
            }
            u.window.add(now, cost, self.window);
            project.add(now, cost, self.window);
        }
        u.in_flight += 1;
        *peak_in_flight = (*peak_in_flight).max(u.in_flight);
        Ok(cost)
    }

    pub fn release(&self, user: &str) {
        let mut st = self.state.lock().unwrap();
        if let Some(u) = st.users.get_mut(user) {
            u.in_flight = u.in_flight.saturating_sub(1);
        }
    }

    pub fn peak_in_flight(&self) -> u32 {
        self.state.lock().unwrap().peak_in_flight
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_refuses_past_the_limit_and_frees_after_the_window() {
        // speed 600: a 0.1 s window with the 2026 budget of 6,000 units.
        let q = Quota::new(Rules::P2026, 600.0, 1000);
        let mut ok = 0;
        loop {
            match q.admit("u", "messages.get") {
                Ok(c) => {
                    assert_eq!(c, 20);
                    q.release("u");
                    ok += 1;
                }
                Err(Refusal::User { retry_after }) => {
                    assert!(retry_after <= Duration::from_millis(100));
                    break;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(ok, 300, "6,000 units / 20 per get");
        std::thread::sleep(Duration::from_millis(110));
        assert!(q.admit("u", "messages.get").is_ok());
    }

    #[test]
    fn users_have_separate_budgets() {
        let q = Quota::new(Rules::Legacy, 1.0, 1000);
        for _ in 0..3000 {
            q.admit("a", "messages.get").unwrap();
            q.release("a");
        }
        assert!(q.admit("a", "messages.get").is_err());
        assert!(q.admit("b", "messages.get").is_ok());
    }

    #[test]
    fn concurrency_counts_calls_in_flight() {
        let q = Quota::new(Rules::Off, 1.0, 3);
        for _ in 0..3 {
            q.admit("u", "messages.get").unwrap();
        }
        assert_eq!(q.admit("u", "messages.get"), Err(Refusal::Concurrency));
        q.release("u");
        assert!(q.admit("u", "messages.get").is_ok());
        assert_eq!(q.peak_in_flight(), 3);
    }
}
