//! `run --users` over many mailboxes: `cargo bench --bench domain`. Prints
//! figures, asserts nothing.
//!
//! - budget: BENCH_USERS mailboxes (default 200) × BENCH_MESSAGES
//!   (default 500) fetched in one process from a `gmailscript sim` whose
//!   per-project budget binds (a quarter of what the mailboxes' per-user
//!   budgets add up to): the share of the project budget spent in each whole
//!   window, calls refused, peak RSS (targets: ≥ 90%, ≤ 1%, ≤ 400 MB);
//! - overhead: 1,000 mailboxes listed and scheduled with a script that does
//!   nothing (one message each): wall time and peak RSS against one mailbox
//!   run the same way (targets: < 1 s and < 100 MB beyond it).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{SimProcess, BIN};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// VmHWM (peak RSS) of a running process, in kB.
fn peak_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Waits for `child` to end; its peak RSS in kB, as the kernel counted it
/// (wait4's rusage), however short the run.
fn wait_peak_kb(child: std::process::Child) -> u64 {
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data the kernel fills in; the pid is our
    // child's, not yet waited for (Child is dropped without waiting).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    std::mem::forget(child);
    if r == pid {
        usage.ru_maxrss as u64
    } else {
        0
    }
}

/// A service account `corp` for `sim`, in `home`'s config directory.
fn service_account(home: &std::path::Path, sim: &SimProcess) {
    let key = common::service_key(home, sim);
    let out = Command::new(BIN)
        .args(["auth", "service-account", "--key"])
        .arg(&key)
        .args([
            "--subject",
            "admin@example.com",
            "--account",
            "corp",
            "--endpoint",
            &sim.url,
        ])
        .env("GMAILSCRIPT_CONFIG_DIR", home.join("config"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
}

const FETCH: &str = r#"
local r = gmail.batch(gmail.list{}, { format = "minimal" })
assert(r.failed == 0, gmail.user .. ": " .. r.failed .. " failed")
"#;

fn budget() {
    let users = env("BENCH_USERS", 200);
    let messages = env("BENCH_MESSAGES", 500);
    let speed = env("BENCH_SPEED", 10);
    // A quarter of the per-user budgets together: the project binds.
    let project = users * 6_000 / 4;
    let sim = SimProcess::start(&[
        "--domain",
        "example.com",
        "--domain-users",
        &(users - 1).to_string(),
        "--messages",
        &messages.to_string(),
        "--project-quota",
        &project.to_string(),
        "--speed",
        &speed.to_string(),
        "--latency",
        "5ms",
    ]);
    let dir = tempfile::tempdir().unwrap();
    service_account(dir.path(), &sim);
    let script = dir.path().join("fetch.lua");
    std::fs::write(&script, FETCH).unwrap();
    let window = 60.0 / speed as f64;
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg("run")
        .arg(&script)
        .args([
            "--account",
            "corp",
            "--endpoint",
            &sim.url,
            "--quota",
            "2026",
        ])
        .args(["--users", "all", "--parallel-users", &users.to_string()])
        .args(["--project-quota", &project.to_string(), "--quiet"])
        .env("GMAILSCRIPT_CONFIG_DIR", dir.path().join("config"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Units spent by the end of each window since the run began.
    let mut marks = vec![0u64];
    let mut peak = 0;
    let mut next = started + Duration::from_secs_f64(window);
    loop {
        peak = peak.max(peak_kb(child.id()));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() >= next {
            marks.push(sim.stats()["units_spent"].as_u64().unwrap_or(0));
            next += Duration::from_secs_f64(window);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let elapsed = started.elapsed();
    let stats = sim.stats();
    let calls = stats["calls_total"].as_u64().unwrap_or(0);
    let refused = stats["rate_errors"].as_u64().unwrap_or(0);
    // Whole windows only: from the second (the first includes start-up)
    // to the last one that ended before the run did.
    let shares: Vec<f64> = marks
        .windows(2)
        .skip(1)
        .map(|w| (w[1] - w[0]) as f64 / project as f64)
        .collect();
    let mean = shares.iter().sum::<f64>() / shares.len().max(1) as f64;
    println!(
        "domain budget: {users} mailboxes x {messages} messages, project {project} units per {window:.1}s window (speed {speed}), exit {:?}, {:.1}s",
        out.status.code(),
        elapsed.as_secs_f64()
    );
    println!(
        "  project budget spent per whole window: {} (mean {:.1}%)",
        shares
            .iter()
            .map(|s| format!("{:.1}%", s * 100.0))
            .collect::<Vec<_>>()
            .join(" "),
        mean * 100.0
    );
    println!(
        "  calls {calls}, refused for rate {refused} ({:.2}%); peak RSS {} MB",
        refused as f64 * 100.0 / calls.max(1) as f64,
        peak / 1024
    );
    if !out.status.success() {
        println!(
            "  stderr: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
}

fn overhead() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("nop.lua");
    std::fs::write(&script, "return").unwrap();
    let measure = |users: u64| {
        let mut c = Command::new(BIN);
        c.arg("run")
            .arg(&script)
            .args(["--sim", "--sim-messages", "1", "--quiet"]);
        if users > 1 {
            c.args([
                "--sim-domain",
                "example.com",
                "--sim-domain-users",
                &(users - 1).to_string(),
            ])
            .args(["--users", "all", "--parallel-users", "100"]);
        } else {
            c.args(["--sim-domain", "example.com", "--sim-domain-users", "0"]);
        }
        let started = Instant::now();
        let child = c
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let peak = wait_peak_kb(child);
        (started.elapsed(), peak)
    };
    let (t1, m1) = measure(1);
    let (tn, mn) = measure(1000);
    println!(
        "domain overhead: 1 mailbox {:.2}s {} MB; 1,000 mailboxes (sim in the process, 3 probe calls each) {:.2}s {} MB: {:.2}s and {} MB beyond one",
        t1.as_secs_f64(),
        m1 / 1024,
        tn.as_secs_f64(),
        mn / 1024,
        (tn.saturating_sub(t1)).as_secs_f64(),
        mn.saturating_sub(m1) / 1024
    );
}

fn main() {
    let only = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    if only.as_deref().is_none_or(|o| o == "overhead") {
        overhead();
    }
    if only.as_deref().is_none_or(|o| o == "budget") {
        budget();
    }
}
