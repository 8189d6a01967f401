//! Retry schedule: full-jitter exponential backoff (a uniformly random wait
//! between 0 and min(cap, base × 2^n)), never shorter than a server's
//! Retry-After. Full jitter spreads retries of many failed parts apart, so
//! they do not come back as one burst.

use std::time::Duration;

use rand::Rng;

#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    /// Tries in all, the first one included.
    pub attempts: u32,
    /// Full jitter (the default) or the plain exponential schedule.
    pub jitter: bool,
}

impl Default for Backoff {
    /// From 1 s, capped at 64 s, as Google asks; 8 tries.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(64),
            attempts: 8,
            jitter: true,
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (1 for the first retry); None
    /// when the tries are used up.
    pub(crate) fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if retry >= self.attempts {
            return None;
        }
        let exp = self
            .base
            .saturating_mul(
                1u32.checked_shl(retry.saturating_sub(1))
                    .unwrap_or(u32::MAX),
            )
            .min(self.cap);
        let wait = if self.jitter {
            exp.mul_f64(rand::thread_rng().gen::<f64>())
        } else {
            exp
        };
        Some(wait.max(retry_after.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_under_the_exponential_cap() {
        let b = Backoff::default();
        for retry in 1..8 {
            let ceiling = Duration::from_secs(1 << (retry - 1)).min(b.cap);
            let waits: Vec<Duration> = (0..200).map(|_| b.delay(retry, None).unwrap()).collect();
            assert!(waits.iter().all(|w| *w <= ceiling));
            // Jitter really spreads: not all in the top half.
            assert!(waits.iter().any(|w| *w < ceiling / 2));
        }
        assert_eq!(b.delay(8, None), None, "8 tries in all");
    }

    #[test]
    fn cap_and_retry_after() {
        let b = Backoff {
            jitter: false,
            attempts: 100,
            ..Backoff::default()
        };
        assert_eq!(b.delay(1, None), Some(Duration::from_secs(1)));
        assert_eq!(b.delay(4, None), Some(Duration::from_secs(8)));
        assert_eq!(b.delay(60, None), Some(Duration::from_secs(64)));
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(30))),
            Some(Duration::from_secs(30))
        );
    }
}
