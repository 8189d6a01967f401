//! Adaptive chunk size (AIMD, as lieer does, with memory): start at 50,
//! halve when the server answers "Too many concurrent requests", grow back
//! by steps after clean chunks, never above the configured limit — nor,
//! for a while, above the size that last drew concurrency errors.

/// What one chunk's answer said, for the next size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChunkStats {
    /// Parts sent in the chunk.
    pub(crate) sent: usize,
    pub(crate) ok: usize,
    /// Parts answered 429 "Too many concurrent requests for user".
    pub(crate) concurrency_errors: usize,
    /// Other rate errors (quota).
    pub(crate) rate_errors: usize,
    pub(crate) server_errors: usize,
    /// The exchange broke (reset, truncated, timeout).
    pub(crate) network_error: bool,
    /// The size the next chunk would have (the current rule's answer).
    pub size: usize,
}

/// Clean chunks needed before growing again.
const GROW_AFTER: u32 = 2;
/// Clean chunks after which the remembered ceiling is probed again.
const PROBE_AFTER: u32 = 200;

#[derive(Debug, Clone)]
pub(crate) struct ChunkSizer {
    size: usize,
    max: usize,
    /// Below the size that last drew concurrency errors.
    ceiling: usize,
    clean: u32,
}

impl ChunkSizer {
    pub(crate) const DEFAULT_START: usize = 50;

    /// `max` is clamped to 1..=100 (Gmail's limit per batch).
    pub(crate) fn new(start: usize, max: usize) -> ChunkSizer {
        let max = max.clamp(1, 100);
        ChunkSizer {
            size: start.clamp(1, max),
            max,
            ceiling: max,
            clean: 0,
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// Halve now (used for the `split` decision too).
    pub(crate) fn shrink(&mut self) {
        self.size = (self.size / 2).max(1);
        self.clean = 0;
    }

    pub(crate) fn observe(&mut self, s: &ChunkStats) {
        if s.concurrency_errors > 0 {
            // What got through is about what the server takes at once.
            self.ceiling = s
                .sent
                .saturating_sub(s.concurrency_errors)
                .clamp(1, self.max);
            self.size = (self.size.min(self.ceiling) / 2).max(1);
            self.clean = 0;
            return;
        }
        if s.network_error || s.server_errors * 4 > s.sent.max(1) {
            self.shrink();
            return;
        }
        self.clean += 1;
        if self.clean.is_multiple_of(PROBE_AFTER) && self.ceiling < self.max {
            self.ceiling += 1;
        }
        if self.clean.is_multiple_of(GROW_AFTER) {
            let step = (self.max / 10).max(1);
            self.size = (self.size + step).min(self.ceiling);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(n: usize) -> ChunkStats {
        ChunkStats {
            sent: n,
            ok: n,
            ..ChunkStats::default()
        }
    }

    #[test]
    fn shrinks_on_concurrency_errors_and_grows_back_to_the_ceiling() {
        let mut c = ChunkSizer::new(100, 100);
        c.observe(&ChunkStats {
            sent: 100,
            ok: 50,
            concurrency_errors: 50,
            ..ChunkStats::default()
        });
        assert_eq!(c.size(), 25);
        for _ in 0..40 {
            let n = c.size();
            c.observe(&clean(n));
        }
        assert_eq!(c.size(), 50, "grows back, but not past what drew errors");
    }

    #[test]
    fn never_above_the_limit_nor_below_one() {
        let mut c = ChunkSizer::new(50, 60);
        for _ in 0..100 {
            c.observe(&clean(60));
        }
        assert_eq!(c.size(), 60);
        for _ in 0..20 {
            c.shrink();
        }
        assert_eq!(c.size(), 1);
        assert_eq!(ChunkSizer::new(500, 500).max(), 100);
    }

    #[test]
    fn broken_exchanges_shrink() {
        let mut c = ChunkSizer::new(50, 100);
        c.observe(&ChunkStats {
            sent: 50,
            network_error: true,
            ..ChunkStats::default()
        });
        assert_eq!(c.size(), 25);
    }
}
