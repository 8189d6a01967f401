//! Engine figures: `cargo bench --bench engine`. Prints, asserts nothing.
//!
//! - quota: under each profile, with the simulator's quota clock sped up,
//!   units spent ÷ units allowed over the run (target ≥ 95%), and the share
//!   of calls answered by a rate error (target ≤ 1%). The run is stopped
//!   just short of k whole windows, over which a sliding-window quota allows
//!   at most k × limit units: that is "allowed".
//! - cpu: quota off, no latency: metadata messages decoded and delivered
//!   per second of this process's CPU (target ≥ 50,000).
//! - memory: 100,000 raw messages of about 20 KB through a sink that drops
//!   them; peak RSS of this process (target < 64 MB).
//!
//! The simulator runs as a separate process so its CPU and memory are not
//! counted here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gmailscript::gmail::quota::Profile;
use gmailscript::gmail::request::{Format, ListQuery, Request};
use gmailscript::gmail::runner::Answer;
use gmailscript::gmail::runner::{DefaultPolicy, Item, RunOptions, Runner};
use gmailscript::gmail::{ApiError, Client};
use serde_json::Value;

#[path = "../tests/common/mod.rs"]
mod common;
use common::{client, SimProcess as Sim};

async fn stats(sim: &Sim) -> Value {
    reqwest::get(format!("{}/_sim/stats", sim.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn reset_stats(sim: &Sim) {
    reqwest::Client::new()
        .post(format!("{}/_sim/stats/reset", sim.url))
        .send()
        .await
        .unwrap();
}

async fn ids(client: &Arc<Client>, q: Option<&str>) -> Vec<String> {
    let query = ListQuery {
        q: q.map(String::from),
        include_spam_trash: true,
        ..ListQuery::default()
    };
    client
        .list_messages(query, Default::default())
        .map(|r| r.unwrap().id)
        .collect()
        .await
}

fn items(
    ids: Vec<String>,
    format: Format,
) -> impl futures_util::Stream<Item = Result<Item, ApiError>> + Unpin {
    futures_util::stream::iter(ids.into_iter().map(move |id| {
        Ok(Item {
            request: Request::get_message(&id, format, &["From".into(), "Subject".into()]),
            key: id,
        })
    }))
}

fn self_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

async fn quota(profile: &str, per_user: u64, cost: u64) {
    // speed 20: a 3 s window. Latency is not scaled by --speed, so it is
    // set low (5 ms ≈ 100 ms at real speed) to keep the run quota-bound.
    let speed = 20.0;
    let window = Duration::from_secs_f64(60.0 / speed);
    let windows = 6u32;
    // More messages than the quota lets through in `windows` windows.
    let n = (per_user / cost * (windows as u64 + 1)) as usize;
    let sim = Sim::start(&[
        "--quota",
        profile,
        "--speed",
        "20",
        "--messages",
        &n.to_string(),
        "--latency",
        "5ms",
        "--jitter",
        "3ms",
    ]);
    let c = client(&sim.url);
    let list = ids(&c, None).await;
    // Let the listing's units leave the window, then count from zero.
    tokio::time::sleep(window + Duration::from_millis(100)).await;
    reset_stats(&sim).await;
    let runner = Runner::new(c, Profile::parse(profile).unwrap(), window);
    let mut sink = |_: &str, _: Answer| Ok(());
    // Stop just before `windows` whole windows have passed: over k windows
    // a sliding-window quota allows at most k × limit units.
    let (tx, rx) = tokio::sync::watch::channel(false);
    let stop_at = window * windows - Duration::from_millis(100);
    tokio::spawn(async move {
        tokio::time::sleep(stop_at).await;
        let _ = tx.send(true);
    });
    let t = Instant::now();
    let report = runner
        .run(
            items(list, Format::Metadata),
            &mut DefaultPolicy,
            &mut sink,
            &RunOptions::default(),
            Some(rx),
        )
        .await;
    let elapsed = t.elapsed().as_secs_f64();
    let stats = stats(&sim).await;
    let spent = stats["units_spent"].as_f64().unwrap();
    let allowed = (per_user * windows as u64) as f64;
    let calls = stats["calls_total"].as_f64().unwrap();
    let rate = stats["rate_errors"].as_f64().unwrap();
    println!(
        "quota {profile}: {} messages in {elapsed:.1} s ({windows} windows of {:.0} s); utilisation {:.1}% ({spent:.0} of {allowed:.0} units allowed); rate errors {:.2}% of {calls:.0} calls (targets: >= 95%, <= 1%)",
        report.ok,
        window.as_secs_f64(),
        100.0 * spent / allowed,
        100.0 * rate / calls,
    );
}

async fn cpu() {
    let n = 100_000usize;
    let sim = Sim::start(&[
        "--quota",
        "off",
        "--messages",
        "20000",
        "--concurrency",
        "1000",
    ]);
    let c = client(&sim.url);
    let base = ids(&c, None).await;
    let list: Vec<String> = base.iter().cycle().take(n).cloned().collect();
    for parse in [false, true] {
        let runner = Runner::new(c.clone(), Profile::Off, Duration::from_secs(60));
        let mut delivered = 0u64;
        let mut sink = |_: &str, answer: Answer| {
            if parse {
                let v: Value = serde_json::from_slice(answer.bytes()).map_err(|e| e.to_string())?;
                std::hint::black_box(v);
            }
            delivered += 1;
            Ok(())
        };
        let opts = RunOptions {
            chunk_start: 100,
            chunk_max: 100,
            parallel: 4,
            ..RunOptions::default()
        };
        let cpu0 = self_cpu();
        let t = Instant::now();
        let report = runner
            .run(
                items(list.clone(), Format::Metadata),
                &mut DefaultPolicy,
                &mut sink,
                &opts,
                None,
            )
            .await;
        let wall = t.elapsed().as_secs_f64();
        let cpu = self_cpu() - cpu0;
        println!(
            "cpu{}: {} metadata messages in {wall:.1} s wall, {cpu:.2} s client CPU = {:.0} messages per CPU-second ({:.0}/s wall) (target: >= 50000 per CPU-second)",
            if parse { " (sink parses JSON)" } else { "" },
            report.ok,
            report.ok as f64 / cpu.max(1e-9),
            report.ok as f64 / wall,
        );
        assert_eq!(delivered, report.ok);
    }
}

async fn memory() {
    let n = 100_000usize;
    let sim = Sim::start(&[
        "--quota",
        "off",
        "--messages",
        "30000",
        "--concurrency",
        "1000",
    ]);
    let c = client(&sim.url);
    let base = ids(&c, Some("larger:16K smaller:24K")).await;
    let list: Vec<String> = base.iter().cycle().take(n).cloned().collect();
    let before = peak_rss_mb();
    let runner = Runner::new(c, Profile::Off, Duration::from_secs(60));
    let mut bytes = 0u64;
    let mut sink = |_: &str, answer: Answer| {
        bytes += answer.bytes().len() as u64;
        Ok(())
    };
    let opts = RunOptions {
        parallel: 2,
        ..RunOptions::default()
    };
    let t = Instant::now();
    let report = runner
        .run(
            items(list, Format::Raw),
            &mut DefaultPolicy,
            &mut sink,
            &opts,
            None,
        )
        .await;
    println!(
        "memory: {} raw messages ({} distinct of 16-24 KB; {:.0} MB of JSON) in {:.1} s; peak RSS {:.1} MB (before the run {:.1} MB) (target: < 64 MB)",
        report.ok,
        base.len(),
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        peak_rss_mb(),
        before
    );
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // Memory first, while this process's peak RSS is still its own.
        if only.as_deref().is_none_or(|o| o == "memory") {
            memory().await;
        }
        if only.as_deref().is_none_or(|o| o == "cpu") {
            cpu().await;
        }
        if only.as_deref().is_none_or(|o| o == "quota") {
            quota("2026", 6_000, 20).await;
            quota("legacy", 15_000, 5).await;
        }
    });
}
