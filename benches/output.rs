//! Disk figures: `cargo bench --bench output`. Prints, asserts nothing.
//!
//! Each writer is measured against a baseline taken in the same run on the
//! same disk: the same bytes written with `std::fs::write`, one file per
//! message (no durability), so a slow disk slows both and the ratio says
//! what the writer itself costs.
//!
//! - maildir: N raw messages of about 8 KB, a flush every 50 (as gmail.batch
//!   commits): messages/s, MB/s, and the ratio to the baseline (target: at
//!   least 5,000 messages/s; writing is never the bottleneck).
//! - jsonl: 100,000 lines of about 2 KB, a flush every 50.
//! - state: 100,000 ids marked done, a commit every 50; then 100,000 lookups.
//!
//! `BENCH_N` sets the number of Maildir messages (default 20,000).

use std::path::Path;
use std::time::Instant;

use gmailscript::output::{self, OutMessage};
use gmailscript::store::Store;

fn raw(i: usize) -> Vec<u8> {
    let mut m = format!(
        "From: Ana <ana@example.com>\r\nTo: me@example.com\r\nSubject: report {i}\r\n\
         Date: Thu, 4 Mar 2021 00:00:00 +0000\r\nMessage-ID: <{i}@example.com>\r\n\r\n"
    )
    .into_bytes();
    while m.len() < 8 << 10 {
        m.extend_from_slice(b"The quarterly figures are attached; see the summary below.\r\n");
    }
    m
}

fn report(what: &str, n: usize, bytes: usize, secs: f64, base: f64) {
    println!(
        "{what}: {n} in {secs:.2} s = {:.0}/s, {:.1} MB/s; baseline {:.0}/s; ratio {:.2}",
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        n as f64 / base,
        base / secs
    );
}

/// The baseline: one plain file per message, no fsync.
fn baseline(dir: &Path, msgs: &[Vec<u8>]) -> f64 {
    std::fs::create_dir_all(dir).unwrap();
    let t = Instant::now();
    for (i, m) in msgs.iter().enumerate() {
        std::fs::write(dir.join(format!("{i:016x}")), m).unwrap();
    }
    t.elapsed().as_secs_f64()
}

fn maildir(dir: &Path, msgs: &[Vec<u8>]) -> f64 {
    let labels = vec!["INBOX".to_string()];
    let t = Instant::now();
    let mut w = output::maildir(dir).unwrap();
    for (i, m) in msgs.iter().enumerate() {
        let id = format!("{i:016x}");
        let json = format!(r#"{{"id":"{id}"}}"#);
        w.write(&OutMessage {
            id: &id,
            thread_id: &id,
            labels: &labels,
            label_names: &[],
            internal_date_ms: 1_614_816_000_000,
            raw: Some(m),
            json: &json,
        })
        .unwrap();
        if i % 50 == 49 {
            w.flush().unwrap();
        }
    }
    w.flush().unwrap();
    t.elapsed().as_secs_f64()
}

fn jsonl(path: &Path, n: usize) -> (f64, usize) {
    let json = format!(r#"{{"id":"x","snippet":"{}"}}"#, "s".repeat(2000));
    let t = Instant::now();
    let mut w = output::jsonl(path, None).unwrap();
    for i in 0..n {
        let id = format!("{i:016x}");
        w.write(&OutMessage {
            id: &id,
            thread_id: &id,
            labels: &[],
            label_names: &[],
            internal_date_ms: 0,
            raw: None,
            json: &json,
        })
        .unwrap();
        if i % 50 == 49 {
            w.flush().unwrap();
        }
    }
    w.flush().unwrap();
    (t.elapsed().as_secs_f64(), n * (json.len() + 1))
}

fn main() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir_in(std::env::var_os("BENCH_DIR").unwrap_or(".".into())).unwrap();
    let msgs: Vec<Vec<u8>> = (0..n).map(raw).collect();
    let bytes: usize = msgs.iter().map(Vec::len).sum();

    let base = baseline(&dir.path().join("plain"), &msgs);
    let secs = maildir(&dir.path().join("md"), &msgs);
    report("maildir (raw, flush/50)", n, bytes, secs, base);

    let lines = 100_000;
    let (secs, jbytes) = jsonl(&dir.path().join("out.jsonl"), lines);
    println!(
        "jsonl (flush/50): {lines} lines in {secs:.2} s = {:.0}/s, {:.1} MB/s",
        lines as f64 / secs,
        jbytes as f64 / secs / 1e6
    );

    let mut s = Store::open(&dir.path().join("state")).unwrap();
    let ids: Vec<String> = (0..100_000u64)
        .map(|i| format!("{:016x}", i * 0x9e37_79b9))
        .collect();
    let t = Instant::now();
    for chunk in ids.chunks(50) {
        for id in chunk {
            s.mark_done(id).unwrap();
        }
        s.commit().unwrap();
    }
    let marking = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let all = ids.iter().all(|id| s.is_done(id).unwrap());
    let lookups = t.elapsed().as_secs_f64();
    println!(
        "state: 100000 marks (commit/50) in {marking:.2} s = {:.0}/s; 100000 lookups in {lookups:.2} s (all found: {all})",
        100_000.0 / marking
    );
}
