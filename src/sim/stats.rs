//! What the simulator saw, for benchmarks and tests: calls by method and
//! status, quota units spent, rate errors and refusals by kind, lockouts
//! started, outages, peak concurrency (`GET /_sim/stats`).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value};

#[derive(Debug)]
pub(crate) struct Stats {
    started: Mutex<Instant>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    calls: BTreeMap<String, BTreeMap<u16, u64>>,
    units: u64,
    units_by_user: BTreeMap<String, u64>,
    /// Calls answered for each user (the token's owner), whatever the status.
    calls_by_user: BTreeMap<String, u64>,
    /// Units spent by refused calls (`--charge-refused`), part of `units`.
    units_refused: u64,
    rate_errors: u64,
    /// Quota refusals by kind (per_minute, per_second, penalty, daily,
    /// project, concurrency).
    refusals: BTreeMap<&'static str, u64>,
    /// `--rate-penalty` lockouts started.
    penalties: u64,
    daily_limit_errors: u64,
    /// Answers during an `--outage`: "503" per call or part, "reset" per
    /// exchange.
    outage: BTreeMap<&'static str, u64>,
    gzip_responses: u64,
    method_overrides: u64,
    concurrency_errors: u64,
    injected: u64,
    batches: u64,
    batch_parts: u64,
    http_requests: u64,
    outer: BTreeMap<&'static str, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            started: Mutex::new(Instant::now()),
            inner: Mutex::new(Inner::default()),
        }
    }
}

/// How a call ended, as far as the numbers care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallEnd {
    Served,
    /// Refused by the quota or the concurrency limit (not a fault).
    RateLimited,
    ConcurrencyLimited,
    /// Answered by an injected fault.
    Injected,
    /// Refused for the daily budget (not a rate error: class quota_daily).
    DailyLimited,
    /// Answered 503 during an `--outage`.
    Outage,
}

impl Stats {
    pub(crate) fn call(&self, method: &str, user: &str, status: u16, units: u64, outcome: CallEnd) {
        let mut s = self.inner.lock().unwrap();
        *s.calls
            .entry(method.to_string())
            .or_default()
            .entry(status)
            .or_default() += 1;
        if !user.is_empty() {
            *s.calls_by_user.entry(user.to_string()).or_default() += 1;
        }
        if units > 0 {
            s.units += units;
            *s.units_by_user.entry(user.to_string()).or_default() += units;
        }
        match outcome {
            CallEnd::Served => {}
            CallEnd::RateLimited => s.rate_errors += 1,
            CallEnd::ConcurrencyLimited => {
                s.rate_errors += 1;
                s.concurrency_errors += 1
            }
            CallEnd::Injected => s.injected += 1,
            CallEnd::DailyLimited => s.daily_limit_errors += 1,
            CallEnd::Outage => *s.outage.entry("503").or_default() += 1,
        }
    }

    /// A quota refusal of `kind`, which spent `charged` units (already
    /// counted by `call`); `penalty_started` when it began a lockout.
    pub(crate) fn refusal(&self, kind: &'static str, charged: u64, penalty_started: bool) {
        let mut s = self.inner.lock().unwrap();
        *s.refusals.entry(kind).or_default() += 1;
        s.units_refused += charged;
        s.penalties += penalty_started as u64;
    }

    /// Units a refused call spent outside the quota's own refusals (an
    /// injected rate error under `--charge-refused`).
    pub(crate) fn refused_units(&self, units: u64) {
        self.inner.lock().unwrap().units_refused += units;
    }

    /// An exchange reset by an `--outage`.
    pub(crate) fn outage_reset(&self) {
        *self
            .inner
            .lock()
            .unwrap()
            .outage
            .entry("reset")
            .or_default() += 1;
    }

    pub(crate) fn gzip_response(&self) {
        self.inner.lock().unwrap().gzip_responses += 1;
    }

    pub(crate) fn method_override(&self) {
        self.inner.lock().unwrap().method_overrides += 1;
    }

    pub(crate) fn batch(&self, parts: usize) {
        let mut s = self.inner.lock().unwrap();
        s.batches += 1;
        s.batch_parts += parts as u64;
    }

    pub(crate) fn http_request(&self) {
        self.inner.lock().unwrap().http_requests += 1;
    }

    pub(crate) fn outer_fault(&self, kind: &'static str) {
        *self.inner.lock().unwrap().outer.entry(kind).or_default() += 1;
    }

    pub(crate) fn reset(&self) {
        *self.inner.lock().unwrap() = Inner::default();
        *self.started.lock().unwrap() = Instant::now();
    }

    /// The JSON served at `/_sim/stats`. `quota` describes the limits so a
    /// benchmark can compute utilisation = units / allowed.
    pub(crate) fn snapshot(&self, quota: Value, peak_in_flight: u32) -> Value {
        let elapsed = self.started.lock().unwrap().elapsed().as_secs_f64();
        let s = self.inner.lock().unwrap();
        let calls: BTreeMap<&str, BTreeMap<String, u64>> = s
            .calls
            .iter()
            .map(|(m, by)| {
                (
                    m.as_str(),
                    by.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                )
            })
            .collect();
        let total: u64 = s.calls.values().flat_map(|b| b.values()).sum();
        json!({
            "elapsed_seconds": elapsed,
            "calls_total": total,
            "calls": calls,
            "units_spent": s.units,
            "units_by_user": s.units_by_user,
            "calls_by_user": s.calls_by_user,
            "units_refused": s.units_refused,
            "rate_errors": s.rate_errors,
            "refusals": s.refusals,
            "penalties": s.penalties,
            "daily_limit_errors": s.daily_limit_errors,
            "outage": s.outage,
            "gzip_responses": s.gzip_responses,
            "method_overrides": s.method_overrides,
            "concurrency_errors": s.concurrency_errors,
            "injected_faults": s.injected,
            "outer_faults": s.outer,
            "batches": s.batches,
            "batch_parts": s.batch_parts,
            "http_requests": s.http_requests,
            "peak_concurrency": peak_in_flight,
            "quota": quota,
        })
    }
}
