//! Bytes of known length: the [`Mix`] mixer every rendered byte comes
//! from, text laid out in lines of known width (so a body's length is
//! known without producing its words), and the byte sinks through which
//! the same rendering code either writes a message or only counts it.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::pools::FILL;

/// SplitMix64: tiny, fast, and stable forever (unlike a library RNG whose
/// stream may change between versions), so rendered bytes never drift.
#[derive(Clone)]
pub(super) struct Mix(u64);

impl Mix {
    pub(super) fn new(seed: u64, stream: u64) -> Mix {
        let mut m = Mix(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        m.next();
        m
    }

    pub(super) fn next(&mut self) -> u64 {
        // The fault draws' SplitMix64 step, as a stream: mix(state + γ).
        let z = crate::sim::faults::splitmix(self.0);
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z
    }

    /// Uniform in `0..n` (n < 2^32).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    pub(super) fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    pub(super) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n);
        self.fill(&mut v, n);
        v
    }

    pub(super) fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        let end = out.len() + n;
        while out.len() + 8 <= end {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        let rest = end - out.len();
        out.extend_from_slice(&self.next().to_le_bytes()[..rest]);
    }
}

// Text layout: lines of known width, so the text's length is known without
// producing its words.

enum Seg {
    Line(usize),
    Blank,
}

/// Splits `budget` bytes (CRLFs included) into lines and paragraph breaks.
/// Every line costs width + 2; budget must be at least 3.
fn layout(rng: &mut Mix, budget: usize, mut f: impl FnMut(Seg) -> bool) {
    let mut b = budget;
    loop {
        for _ in 0..1 + rng.below(5) {
            if b <= 80 {
                f(Seg::Line(b - 2));
                return;
            }
            let w = 48 + rng.below(27);
            b -= w + 2;
            if !f(Seg::Line(w)) {
                return;
            }
        }
        if b > 80 {
            b -= 2;
            if !f(Seg::Blank) {
                return;
            }
        }
    }
}

/// Writes exactly `width` bytes of words. Pool words are at most 12 bytes,
/// so the loop leaves 4..=16 bytes, closed by a FILL word of that length.
fn fill_line(out: &mut Vec<u8>, rng: &mut Mix, pool: &[&str], width: usize) {
    let mut r = width;
    let mut first = true;
    while r > 16 {
        let w = rng.pick(pool);
        if !first {
            out.push(b' ');
            r -= 1;
        }
        out.extend_from_slice(w.as_bytes());
        r -= w.len();
        first = false;
    }
    if !first {
        out.push(b' ');
        r -= 1;
    }
    out.extend_from_slice(rng.pick(FILL[r]).as_bytes());
}

/// Writes `len` bytes of CRLF-terminated lines of words (`len` >= 3).
pub(super) fn write_lines(out: &mut Vec<u8>, seed: u64, pool: &[&str], len: usize, stop_at: usize) {
    let mut lay = Mix::new(seed, 1);
    let mut wr = Mix::new(seed, 2);
    layout(&mut lay, len, |seg| {
        if let Seg::Line(w) = seg {
            fill_line(out, &mut wr, pool, w);
        }
        out.extend_from_slice(b"\r\n");
        out.len() < stop_at
    });
}

pub(super) fn count_lines(seed: u64, len: usize) -> usize {
    let mut lay = Mix::new(seed, 1);
    let mut n = 0;
    layout(&mut lay, len, |_| {
        n += 1;
        true
    });
    n
}

// Output sinks: the same rendering code either writes bytes or counts them.

pub(super) trait ByteSink {
    fn put(&mut self, b: &[u8]);
    /// `len` raw bytes produced by `fill`, base64-encoded in 76-column lines
    /// when `b64`. No trailing CRLF: the next boundary delimiter brings one.
    fn content(&mut self, b64: bool, len: usize, fill: &dyn Fn(&mut Vec<u8>));
}

impl ByteSink for Vec<u8> {
    fn put(&mut self, b: &[u8]) {
        self.extend_from_slice(b);
    }

    fn content(&mut self, b64: bool, len: usize, fill: &dyn Fn(&mut Vec<u8>)) {
        if !b64 {
            fill(self);
            return;
        }
        let mut raw = Vec::with_capacity(len);
        fill(&mut raw);
        self.reserve(b64_len(raw.len()));
        let mut buf = [0u8; 76];
        for (i, chunk) in raw.chunks(57).enumerate() {
            if i > 0 {
                self.extend_from_slice(b"\r\n");
            }
            let n = STANDARD
                .encode_slice(chunk, &mut buf)
                .expect("76 bytes hold 57 encoded");
            self.extend_from_slice(&buf[..n]);
        }
    }
}

pub(super) struct Count(pub(super) usize);

impl ByteSink for Count {
    fn put(&mut self, b: &[u8]) {
        self.0 += b.len();
    }

    fn content(&mut self, b64: bool, len: usize, _: &dyn Fn(&mut Vec<u8>)) {
        self.0 += if b64 { b64_len(len) } else { len };
    }
}

/// Length of `n` bytes base64-encoded in CRLF-separated 76-column lines.
fn b64_len(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let lines = n.div_ceil(57);
    n.div_ceil(3) * 4 + 2 * (lines - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::generate::pools::{words, WORDS_JA};
    use crate::sim::generate::Lang;

    #[test]
    fn b64_len_matches_encoder() {
        for n in [0usize, 1, 2, 3, 56, 57, 58, 114, 1000, 4321] {
            let mut out = Vec::new();
            ByteSink::content(&mut out, true, n, &|o| o.resize(n, 7));
            assert_eq!(out.len(), b64_len(n), "n={n}");
        }
    }

    #[test]
    fn word_pools_fit_line_filler() {
        for lang in [Lang::En, Lang::De, Lang::Fr, Lang::Es, Lang::Ja] {
            assert!(words(lang).iter().all(|w| !w.is_empty() && w.len() <= 12));
        }
        for (n, ws) in FILL.iter().enumerate() {
            assert!(ws.iter().all(|w| w.len() == n && w.is_ascii()));
        }
        let mut rng = Mix::new(1, 1);
        for width in 1..200 {
            let mut out = Vec::new();
            fill_line(&mut out, &mut rng, WORDS_JA, width);
            assert_eq!(out.len(), width);
        }
    }
}
