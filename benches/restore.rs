//! Restore figures: `cargo bench --bench restore`. Prints, asserts nothing.
//!
//! messages.import costs 25 units, so the 2026 quota (6,000 units per user
//! per minute) allows 240 imports a minute per mailbox. With the
//! simulator's quota clock sped up (--speed 40: a 1.5 s window), imports
//! of distinct ~4 KB messages go through the engine as gmail.import sends
//! them (media uploads, one call each, 4 in flight, paced by the pacer).
//! The run stops just short of k whole windows, over which a sliding
//! window allows at most k × 240 imports: that is "allowed". Figures at
//! real speed are the sped-up ones divided by the speed.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gmailscript::gmail::quota::Profile;
use gmailscript::gmail::request::{DateSource, ImportOptions, Request};
use gmailscript::gmail::runner::{Answer, DefaultPolicy, Item, RunOptions, Runner};
use gmailscript::gmail::ApiError;
use serde_json::Value;

#[path = "../tests/common/mod.rs"]
mod common;
use common::{client, SimProcess as Sim};

fn message(i: usize) -> Bytes {
    let mut m = format!(
        "From: Sender {i} <s{i}@example.org>\r\nTo: me@example.com\r\nSubject: restored message {i}\r\nDate: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <bench-{i}@example.org>\r\n\r\n"
    );
    while m.len() < 4096 {
        m.push_str("The quick brown fox jumps over the lazy dog again and again.\r\n");
    }
    Bytes::from(m)
}

#[tokio::main]
async fn main() {
    let speed = 40.0;
    let window = Duration::from_secs_f64(60.0 / speed);
    let windows = 20u32;
    let per_window = 6_000 / 25;
    let n = per_window * (windows as usize + 1);
    let sim = Sim::start(&[
        "--quota",
        "2026",
        "--speed",
        "40",
        "--messages",
        "10",
        "--latency",
        "10ms",
        "--jitter",
        "5ms",
    ]);
    let c = client(&sim.url);
    let runner = Runner::new(c, Profile::P2026, window);
    let opts = ImportOptions {
        insert: false,
        label_ids: vec!["INBOX".into()],
        date: DateSource::Header,
        never_mark_spam: true,
    };
    let items: Vec<Result<Item, ApiError>> = (0..n)
        .map(|i| {
            Ok(Item {
                key: i.to_string(),
                request: Request::import(message(i), &opts),
            })
        })
        .collect();
    let mut sink = |_: &str, _: Answer| Ok(());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop_at = window * windows - Duration::from_millis(100);
    tokio::spawn(async move {
        tokio::time::sleep(stop_at).await;
        let _ = tx.send(true);
    });
    let run = RunOptions {
        chunk_start: 1,
        chunk_max: 1,
        parallel: 4,
        ..RunOptions::default()
    };
    let t = Instant::now();
    let report = runner
        .run(
            futures_util::stream::iter(items),
            &mut DefaultPolicy,
            &mut sink,
            &run,
            Some(rx),
        )
        .await;
    let elapsed = t.elapsed().as_secs_f64();
    let stats: Value = reqwest::get(format!("{}/_sim/stats", sim.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let allowed = per_window * windows as usize;
    let rate = stats["rate_errors"].as_f64().unwrap_or(0.0);
    let calls = stats["calls_total"].as_f64().unwrap_or(1.0);
    let per_min_real = report.ok as f64 / windows as f64;
    println!(
        "restore (import, 25 units each): {} messages in {elapsed:.1} s = {:.1} msg/s sped up x{speed}; {per_min_real:.0} msg/min at real speed = {:.1}% of the {} imports the quota allows in {windows} windows; rate errors {:.2}% of {calls:.0} calls; {} failed",
        report.ok,
        report.ok as f64 / elapsed,
        100.0 * report.ok as f64 / allowed as f64,
        allowed,
        100.0 * rate / calls,
        report.failed.len(),
    );
    println!(
        "vs Got Your Back's reported restore pace (one message every 2-3 s: 20-30 msg/min): {:.0}x to {:.0}x",
        per_min_real / 30.0,
        per_min_real / 20.0
    );
}
