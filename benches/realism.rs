//! Gmail as it really is (issue #12): `cargo bench --bench realism [NAME]`.
//! Prints figures, asserts nothing. Every scenario runs `gmailscript run`
//! as a user would, against a `gmailscript sim` in its own process with
//! its quota clock sped up (`--speed`, the client told `--quota-window`),
//! and reads the simulator's own counters.
//!
//! - learn: a legacy-quota server, a client told nothing (`--quota auto`,
//!   an empty data directory): utilisation over the first 20 windows
//!   (target ≥ 85%) and over the 20 after (≥ 97%); calls refused (≤ 2%).
//! - penalty: a 2026 server with `--rate-penalty 15m`: penalties on a first
//!   run that learns (target ≤ 1) and on a second run that starts from the
//!   quota.json the first wrote (0), and that run's utilisation (≥ 97%).
//! - outage: a 10 s `--outage` in a 3,000-message backup: failed (0) and
//!   lost (0: the Maildir holds every listed id once). `BENCH_LONG=1` adds
//!   a 2-minute outage.
//! - backup: scripts/backup.lua under `--realism gmail`, three seeds: every
//!   visible message once in the Maildir; penalties and wall time, against
//!   the same backup on the same mailbox without the preset.
//!
//! Utilisation: the simulator's count of units accepted k windows after
//! the client was started, over k × the per-window budget (the most a
//! sliding window allows in that time); the client's start-up and its
//! listing count against it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../tests/common/mod.rs"]
mod common;
use common::{SimProcess as Sim, BIN};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `gmailscript run SCRIPT` against `sim`, with its own data directory.
fn command(sim: &Sim, data: &Path, script: &str, opts: &[&str], args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("run")
        .arg(root().join(script))
        .args(["--endpoint", &sim.url])
        .args(opts)
        .arg("--")
        .args(args)
        .env("GMAILSCRIPT_TOKEN", "sim-token")
        .env("GMAILSCRIPT_DATA_DIR", data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn output(child: Child) -> (Output, String) {
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

fn refused_calls(stats: &Value) -> u64 {
    num(stats, "rate_errors") + num(stats, "concurrency_errors")
}

/// The simulator's units at `t0 + k × window` for each k in `marks`,
/// sampled while `child` runs; stops early if it exits.
fn units_at(
    sim: &Sim,
    t0: Instant,
    window: Duration,
    marks: &[u32],
    child: &mut Child,
) -> Vec<u64> {
    let mut out = Vec::new();
    for &k in marks {
        let at = t0 + window * k;
        while Instant::now() < at {
            if child.try_wait().unwrap().is_some() {
                return out;
            }
            std::thread::sleep((at - Instant::now()).min(Duration::from_millis(20)));
        }
        out.push(num(&sim.stats(), "units_spent"));
    }
    out
}

/// Message ids in a Maildir and how many files carry an id already seen.
fn maildir(dir: &Path) -> (HashSet<String>, usize) {
    let mut ids = HashSet::new();
    let mut twice = 0;
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let id = name.split('.').nth(1).unwrap_or("").to_string();
            if !ids.insert(id) {
                twice += 1;
            }
        }
    }
    (ids, twice)
}

fn pct(a: f64, b: f64) -> f64 {
    100.0 * a / b.max(1.0)
}

fn learn() {
    let speed = 30.0;
    let window = Duration::from_secs_f64(60.0 / speed);
    let (first, after) = (20u32, 20u32);
    let per_window = 15_000u64;
    // More metadata gets (5 units each on a legacy server) than 40 windows take.
    let n = per_window / 5 * u64::from(first + after + 2);
    let sim = Sim::start(&[
        "--quota",
        "legacy",
        "--speed",
        "30",
        "--messages",
        &n.to_string(),
        "--latency",
        "5ms",
        "--jitter",
        "3ms",
    ]);
    let data = tempfile::tempdir().unwrap();
    let ids = data.path().join("ids.txt");
    sim.post("/_sim/stats/reset");
    let t0 = Instant::now();
    let mut child = command(
        &sim,
        data.path(),
        "bench/fetch.lua",
        &["--quota-window", "2s"],
        &["metadata", ids.to_str().unwrap()],
    )
    .spawn()
    .unwrap();
    let marks: Vec<u32> = (1..=first + after).collect();
    let series = units_at(&sim, t0, window, &marks, &mut child);
    let units: Vec<u64> = [first, first + after]
        .iter()
        .filter_map(|k| series.get(*k as usize - 1).copied())
        .collect();
    let curve: Vec<String> = series
        .iter()
        .scan(0, |last, u| {
            let d = u - *last;
            *last = *u;
            Some(format!("{:.0}", pct(d as f64, 15_000.0)))
        })
        .collect();
    let stats = sim.stats();
    let _ = child.kill();
    let (_, text) = output(child);
    let learned = std::fs::read_to_string(data.path().join("quota.json")).unwrap_or_default();
    if units.len() < 2 {
        println!(
            "learn: the run ended before {} windows: {text}",
            first + after
        );
        return;
    }
    let calls = num(&stats, "calls_total") as f64;
    println!(
        "learn (legacy server 15,000 units/window, client --quota auto, {:.0} s windows): first {first} windows {:.1}% of the quota ({} of {} units); next {after} windows {:.1}% ({} of {}); refused calls {:.2}% ({} of {calls:.0}); penalties {} (targets: >= 85%, >= 97%, <= 2%)",
        window.as_secs_f64(),
        pct(units[0] as f64, (per_window * u64::from(first)) as f64),
        units[0],
        per_window * u64::from(first),
        pct((units[1] - units[0]) as f64, (per_window * u64::from(after)) as f64),
        units[1] - units[0],
        per_window * u64::from(after),
        pct(refused_calls(&stats) as f64, calls),
        refused_calls(&stats),
        num(&stats, "penalties"),
    );
    println!("learn: % of the quota in each window: {}", curve.join(" "));
    println!(
        "learn: quota.json: {}",
        learned.split_whitespace().collect::<Vec<_>>().join(" ")
    );
}

fn penalty() {
    let speed = 30.0;
    let window = Duration::from_secs_f64(60.0 / speed);
    let k = 15u32;
    // 300 gets (20 units) a window: the second run still has work after k.
    let n = 300 * (k as usize + 3);
    let sim = Sim::start(&[
        "--quota",
        "2026",
        "--speed",
        "30",
        "--rate-penalty",
        "15m",
        "--messages",
        &n.to_string(),
        "--latency",
        "5ms",
        "--jitter",
        "3ms",
    ]);
    let data = tempfile::tempdir().unwrap();
    let ids = data.path().join("ids.txt");
    let mut figures = Vec::new();
    for run in 1..=2 {
        sim.post("/_sim/stats/reset");
        let t0 = Instant::now();
        let mut child = command(
            &sim,
            data.path(),
            "bench/fetch.lua",
            &["--quota-window", "2s"],
            &["metadata", ids.to_str().unwrap()],
        )
        .spawn()
        .unwrap();
        let units = units_at(&sim, t0, window, &[k], &mut child);
        let (out, text) = output(child);
        let wall = t0.elapsed().as_secs_f64();
        let stats = sim.stats();
        let got = std::fs::read_to_string(&ids)
            .unwrap_or_default()
            .lines()
            .count();
        let util = units
            .first()
            .map(|u| format!("{:.1}%", pct(*u as f64, (6000 * u64::from(k)) as f64)))
            .unwrap_or_else(|| "n/a (ended sooner)".into());
        figures.push(format!(
            "run {run}: exit {:?}, {got} of {} fetched in {wall:.1} s, penalties {}, refused calls {} of {}, utilisation over the first {k} windows {util}",
            out.status.code(),
            sim.listed().len(),
            num(&stats, "penalties"),
            refused_calls(&stats),
            num(&stats, "calls_total"),
        ));
        if !out.status.success() {
            figures.push(format!("run {run} said: {}", text.trim()));
        }
    }
    let learned = std::fs::read_to_string(data.path().join("quota.json")).unwrap_or_default();
    println!(
        "penalty (2026 server, --rate-penalty 15m = {:.0} s at speed {speed}, client --quota auto): {} (targets: run 1 <= 1 penalty, run 2 none and >= 97%)",
        900.0 / speed,
        figures.join("; ")
    );
    println!(
        "penalty: quota.json: {}",
        learned.split_whitespace().collect::<Vec<_>>().join(" ")
    );
}

/// scripts/backup.lua into a fresh Maildir; (exit, text, ids, twice, wall).
fn backup(sim: &Sim, opts: &[&str]) -> (Option<i32>, String, HashSet<String>, usize, f64) {
    let data = tempfile::tempdir().unwrap();
    let dest = data.path().join("mail");
    let t = Instant::now();
    let mut all = vec!["--quiet"];
    all.extend_from_slice(opts);
    let child = command(
        sim,
        data.path(),
        "scripts/backup.lua",
        &all,
        &[dest.to_str().unwrap()],
    )
    .spawn()
    .unwrap();
    let (out, text) = output(child);
    let wall = t.elapsed().as_secs_f64();
    let (ids, twice) = maildir(&dest);
    (out.status.code(), text, ids, twice, wall)
}

fn outage(spec: &str) {
    let sim = Sim::start(&[
        "--quota",
        "2026",
        "--speed",
        "30",
        "--messages",
        "3100",
        "--latency",
        "20ms",
        "--jitter",
        "10ms",
        "--outage",
        spec,
    ]);
    let (code, text, ids, twice, wall) = backup(&sim, &["--quota-window", "2s"]);
    let stats = sim.stats();
    let want = sim.listed();
    let failed = text
        .split(", ")
        .find(|s| s.ends_with(" failed"))
        .unwrap_or("? failed");
    println!(
        "outage {spec} (2026 quota at speed 30, latency 20 ms): exit {code:?} in {wall:.1} s; {} listed, {} in the Maildir, {} missing, {} twice; {failed}; outage answers {} (targets: 0 failed, 0 lost)",
        want.len(),
        ids.len(),
        want.difference(&ids).count(),
        twice,
        stats["outage"],
    );
    if code != Some(0) {
        println!("outage: the run said: {}", text.trim());
    }
}

/// scripts/backup.lua as the brief has a user try it: `run --sim`, the
/// simulator in the same process; the visible ids come from a separate
/// simulator of the same seed (the same mailbox).
fn sim_backup(seed: &str, extra: &[&str]) -> (Option<i32>, String, HashSet<String>, usize, f64) {
    let data = tempfile::tempdir().unwrap();
    let dest = data.path().join("mail");
    let t = Instant::now();
    let child = Command::new(BIN)
        .arg("run")
        .arg(root().join("scripts/backup.lua"))
        .args([
            "--sim",
            "--sim-messages",
            "3000",
            "--sim-seed",
            seed,
            "--quiet",
        ])
        .args(extra)
        .arg("--")
        .arg(&dest)
        .env("GMAILSCRIPT_DATA_DIR", data.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out, text) = output(child);
    let wall = t.elapsed().as_secs_f64();
    let (ids, twice) = maildir(&dest);
    (out.status.code(), text, ids, twice, wall)
}

fn backup_realism() {
    for seed in ["1", "2", "3"] {
        let want = Sim::start(&["--messages", "3000", "--seed", seed]).listed();
        let (_, _, _, _, plain_wall) = sim_backup(seed, &[]);
        let (code, text, ids, twice, wall) = sim_backup(seed, &["--sim-realism", "gmail"]);
        let summary = text
            .lines()
            .find(|l| l.contains("backup of"))
            .unwrap_or("")
            .to_string();
        println!(
            "backup --sim --sim-realism gmail, seed {seed}: exit {code:?} in {wall:.1} s ({:.2} x the {plain_wall:.1} s without the preset); {} visible, {} in the Maildir, {} missing, {} twice, {} not visible (target: every visible message once); it said: {summary}",
            wall / plain_wall.max(1e-9),
            want.len(),
            ids.len(),
            want.difference(&ids).count(),
            twice,
            ids.difference(&want).count(),
        );
        if code != Some(0) {
            println!("backup: the run said: {}", text.trim());
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let on = |name: &str| only.as_deref().is_none_or(|o| o == name);
    if on("learn") {
        learn();
    }
    if on("penalty") {
        penalty();
    }
    if on("outage") {
        outage("3s+10s");
        if std::env::var_os("BENCH_LONG").is_some() {
            outage("3s+2m");
        }
    }
    if on("backup") {
        backup_realism();
    }
}
