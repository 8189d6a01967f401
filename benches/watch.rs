//! `gmail.watch` as a service: `cargo bench --bench watch`. Prints figures,
//! asserts nothing.
//!
//! - latency: mail delivered at random moments (seed printed; BENCH_SEED
//!   to repeat) is handled within `every` + 1 s (every = 1 s here);
//! - idle cost: history.list calls and quota units per poll while nothing
//!   arrives (target: 1 call, 2 units);
//! - memory: the watcher's RSS after its first 100 polls and at the end of
//!   a run with mail arriving throughout (target: flat). BENCH_POLLS sets
//!   the run's length (default 600 polls of 100 ms; 2,880, a day's polls at
//!   the 30 s default, for the long version).

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::{Rng, SeedableRng};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{SimProcess, BIN};

/// Logs `id unix_seconds` for each new message, flushed at once.
const SCRIPT: &str = r#"
local out = assert(io.open(arg[1], "a"))
for c in gmail.watch{ every = arg[2] } do
  if c.type == "added" then
    out:write(c.id, " ", string.format("%.3f", time.now()), "\n")
    out:flush()
  end
end
"#;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn watcher(sim: &SimProcess, dir: &Path, log: &Path, every: &str) -> Child {
    let script = dir.join("watch.lua");
    std::fs::write(&script, SCRIPT).unwrap();
    Command::new(BIN)
        .arg("run")
        .arg(&script)
        .args(["--endpoint", &sim.url, "--quota", "off", "--"])
        .arg(log)
        .arg(every)
        .env("GMAILSCRIPT_TOKEN", "sim-token")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn handled(log: &Path) -> Vec<(String, f64)> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (id, t) = l.split_once(' ')?;
            Some((id.to_string(), t.parse().ok()?))
        })
        .collect()
}

fn deliver(sim: &SimProcess) -> Vec<String> {
    sim.post("/_sim/users/me@example.com/deliver?count=1")["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// history.list calls the simulator answered so far.
fn history_calls(sim: &SimProcess) -> u64 {
    let s = sim.stats();
    s["calls"]["history.list"]
        .as_object()
        .map_or(0, |by| by.values().filter_map(|v| v.as_u64()).sum())
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Wait until the watcher's first poll has been answered.
fn wait_first_poll(sim: &SimProcess, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while history_calls(sim) == 0 {
        assert!(child.try_wait().unwrap().is_none(), "the watcher ended");
        assert!(Instant::now() < deadline, "the watcher never polled");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn latency(seed: u64) {
    let sim = SimProcess::start(&["--quota", "off", "--messages", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handled.log");
    let mut child = watcher(&sim, dir.path(), &log, "1s");
    wait_first_poll(&sim, &mut child);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut sent = Vec::new();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(rng.gen_range(300..1700)));
        let at = now();
        for id in deliver(&sim) {
            sent.push((id, at));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while handled(&log).len() < sent.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(child);
    let got = handled(&log);
    let unique: std::collections::HashSet<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
    let twice = got.len() - unique.len();
    let mut lat: Vec<f64> = sent
        .iter()
        .filter_map(|(id, at)| got.iter().find(|(g, _)| g == id).map(|(_, t)| t - at))
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    let pick = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    println!(
        "latency (every = 1 s, seed {seed}): {} of {} handled, {twice} twice; median {:.2} s, p95 {:.2} s, max {:.2} s (target: max <= 2.00 s)",
        unique.len(),
        sent.len(),
        pick(0.5),
        pick(0.95),
        pick(1.0)
    );
}

fn idle_cost() {
    let sim = SimProcess::start(&["--quota", "2026", "--messages", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handled.log");
    let mut child = watcher(&sim, dir.path(), &log, "200ms");
    wait_first_poll(&sim, &mut child);
    sim.post("/_sim/stats/reset");
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let secs = t.elapsed().as_secs_f64();
    let s = sim.stats();
    stop(child);
    let calls = s["calls_total"].as_u64().unwrap_or(0);
    let history = s["calls"]["history.list"]
        .as_object()
        .map_or(0, |by| by.values().filter_map(|v| v.as_u64()).sum::<u64>());
    let units = s["units_spent"].as_u64().unwrap_or(0);
    let polls = secs / 0.2;
    println!(
        "idle cost (every = 200 ms, {secs:.1} s, ~{polls:.0} polls): {calls} calls ({history} history.list) = {:.2} calls/poll, {:.2} units/poll (target: 1 call, 2 units)",
        calls as f64 / polls,
        units as f64 / polls
    );
}

fn memory(polls: u64) {
    let sim = SimProcess::start(&["--quota", "off", "--messages", "50"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handled.log");
    let mut child = watcher(&sim, dir.path(), &log, "100ms");
    wait_first_poll(&sim, &mut child);
    let pid = child.id();
    let mut early = 0;
    let mut delivered = 0;
    let t = Instant::now();
    loop {
        let n = history_calls(&sim);
        if early == 0 && n >= 100 {
            early = rss_kb(pid);
        }
        if n >= polls {
            break;
        }
        // Mail arrives throughout: one message every 5 polls.
        if n / 5 > delivered {
            deliver(&sim);
            delivered += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let late = rss_kb(pid);
    let secs = t.elapsed().as_secs_f64();
    let handled = handled(&log).len();
    stop(child);
    println!(
        "memory ({polls} polls of 100 ms in {secs:.0} s, {delivered} delivered, {handled} handled): RSS {:.1} MB after 100 polls, {:.1} MB at the end ({:+.1}%)",
        early as f64 / 1024.0,
        late as f64 / 1024.0,
        (late as f64 / early.max(1) as f64 - 1.0) * 100.0
    );
}

fn main() {
    let seed = std::env::var("BENCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let polls = std::env::var("BENCH_POLLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    latency(seed);
    idle_cost();
    memory(polls);
    std::io::stdout().flush().unwrap();
}
