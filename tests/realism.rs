//! Gmail as it really is (issue #12), through `gmailscript run` against a
//! simulator on loopback: a client told nothing finds the quota and keeps
//! it for the next run; a lockout is waited out or stops the run with the
//! time to come back; the daily limit stops the run and loses nothing; an
//! outage turns no id into a failure. Assertions are on what the user sees
//! (exit code, message, files) and on the simulator's counters, never on
//! wall time.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod common;
use common::{SimProcess as Sim, BIN};

fn script(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(name)
        .display()
        .to_string()
}

/// `gmailscript run SCRIPT OPTS -- ARGS` against `sim`, the data directory
/// (where quota.json goes) in `data`.
fn run(sim: &Sim, data: &Path, script_name: &str, opts: &[&str], args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("run")
        .arg(script(script_name))
        .args(["--endpoint", &sim.url])
        .args(opts)
        .arg("--")
        .args(args)
        .env("GMAILSCRIPT_TOKEN", "sim-token")
        .env("GMAILSCRIPT_DATA_DIR", data)
        .stdin(Stdio::null())
        .output()
        .expect("gmailscript runs")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn num(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// Message ids in a Maildir; panics on an id written twice.
fn maildir_ids(dir: &Path) -> HashSet<String> {
    let mut ids = HashSet::new();
    for sub in ["cur", "new"] {
        let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        for e in entries {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let id = name.split('.').nth(1).unwrap().to_string();
            assert!(ids.insert(id.clone()), "{id} written twice");
        }
    }
    ids
}

/// The ids bench/fetch.lua wrote, each once.
fn fetched(path: &Path) -> HashSet<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut ids = HashSet::new();
    for id in text.lines() {
        assert!(ids.insert(id.to_string()), "{id} delivered twice");
    }
    ids
}

/// quota.json's one entry: its units.
fn learned_units(data: &Path) -> u64 {
    let text = std::fs::read_to_string(data.join("quota.json"))
        .unwrap_or_else(|e| panic!("quota.json in the data directory: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap();
    let entries = v.as_object().unwrap();
    assert_eq!(entries.len(), 1, "one endpoint and mailbox: {text}");
    entries.values().next().unwrap()["units"].as_u64().unwrap()
}

#[test]
fn a_client_told_nothing_learns_a_legacy_quota_keeps_it_and_the_next_run_starts_there() {
    // A legacy server allows 15,000 units a window at 5 a get: 3,000 gets,
    // which the 2026 costs the client counts in (20 a get) make 60,000. The
    // client starts at the 2026 budget, 6,000, a tenth of it. A 6 s window
    // asks 500 gets a second of the pipeline: one slower than the limit is
    // never held back by the pace, and so has nothing to learn (twice that,
    // as this test once asked, left a loaded debug build little margin).
    let sim = Sim::start(&["--quota", "legacy", "--speed", "10", "--messages", "4000"]);
    let data = tempfile::tempdir().unwrap();
    let ids = data.path().join("ids.txt");
    let want = sim.listed();
    let out = run(
        &sim,
        data.path(),
        "bench/fetch.lua",
        &["--quota-window", "6s", "-v"],
        &["metadata", ids.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fetched(&ids), want, "every listed id once");
    let units = learned_units(data.path());
    assert!(
        units > 6_000 && units <= 120_000,
        "the pace was raised past the 2026 start and kept: {units}"
    );
    assert!(
        text(&out).contains("quota: learned"),
        "the run says what it learned: {}",
        text(&out)
    );
    let first = sim.stats();
    assert!(
        num(&first, "rate_errors") > 0,
        "the learning run met the limit (that is how it learned): {first}"
    );

    // The second run starts at the learned pace: it says so, probes no more
    // (quota.json unchanged) and is refused nothing. It starts once the
    // server's window (6 s) no longer holds what the first run spent: a
    // run that follows another at once shares its minute with it.
    std::thread::sleep(std::time::Duration::from_millis(6_200));
    sim.post("/_sim/stats/reset");
    let before = std::fs::read(data.path().join("quota.json")).unwrap();
    let out = run(
        &sim,
        data.path(),
        "bench/fetch.lua",
        &["--quota-window", "6s", "-v"],
        &["metadata", ids.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(fetched(&ids), want);
    assert!(
        text(&out).contains(&format!(
            "quota: {units} units per window, as learned before"
        )),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(data.path().join("quota.json")).unwrap(),
        before,
        "nothing more to learn"
    );
    let second = sim.stats();
    assert_eq!(num(&second, "rate_errors"), 0, "{second}");
}

#[test]
fn a_lockout_shorter_than_max_wait_is_waited_out_and_every_message_arrives() {
    // An explicit pace twice the server's budget meets a refusal for sure;
    // the lockout (2 minutes on a quota clock 60 times faster: 2 s) is
    // shorter than --max-wait.
    let sim = Sim::start(&[
        "--speed",
        "60",
        "--rate-penalty",
        "2m",
        "--messages",
        "1500",
    ]);
    let data = tempfile::tempdir().unwrap();
    let ids = data.path().join("ids.txt");
    let want = sim.listed();
    let out = run(
        &sim,
        data.path(),
        "bench/fetch.lua",
        &[
            "--quota",
            "12000",
            "--quota-window",
            "1s",
            "--max-wait",
            "1m",
        ],
        &["metadata", ids.to_str().unwrap()],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains(" 0 failed"), "{said}");
    assert_eq!(fetched(&ids), want, "every listed id once");
    let stats = sim.stats();
    assert!(
        num(&stats, "penalties") >= 1,
        "a lockout was met and waited out: {stats}"
    );
}

#[test]
fn a_lockout_longer_than_max_wait_stops_with_exit_3_and_the_time_to_come_back() {
    let sim = Sim::start(&[
        "--speed",
        "60",
        "--rate-penalty",
        "10h",
        "--messages",
        "1500",
    ]);
    let data = tempfile::tempdir().unwrap();
    let ids = data.path().join("ids.txt");
    // Listed first: the lockout refuses every call, a listing too.
    let all = sim.listed().len();
    let out = run(
        &sim,
        data.path(),
        "bench/fetch.lua",
        &[
            "--quota",
            "12000",
            "--quota-window",
            "1s",
            "--max-wait",
            "30s",
        ],
        &["metadata", ids.to_str().unwrap()],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    // 10 h at speed 60 is 10 minutes: "Gmail asks to wait until <time> (10m)".
    assert!(said.contains("Gmail asks to wait until"), "{said}");
    assert!(said.contains("longer than --max-wait 30s"), "{said}");
    assert_eq!(num(&sim.stats(), "penalties"), 1, "one lockout, not more");
    // What was fetched before the lockout was delivered, each once.
    let got = fetched(&ids);
    assert!(!got.is_empty() && got.len() < all, "{} of {all}", got.len());
}

#[test]
fn the_daily_limit_stops_with_exit_3_and_the_renewal_time_and_a_rerun_completes() {
    // 300 messages (about 270 visible, 20 units a get) need about 5,500
    // units; the day allows 3,000. A second simulator of the same seed is
    // the next day: the same mailbox, the budget renewed.
    let args = [
        "--speed",
        "60",
        "--messages",
        "300",
        "--seed",
        "4",
        "--daily-limit",
        "3000",
    ];
    let sim = Sim::start(&args);
    let want = sim.listed();
    let data = tempfile::tempdir().unwrap();
    let dest = data.path().join("mail");
    let opts = ["--quota", "2026", "--quota-window", "1s"];
    let out = run(
        &sim,
        data.path(),
        "scripts/backup.lua",
        &opts,
        &[dest.to_str().unwrap()],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(
        said.contains("Google renews it at midnight Pacific time") && said.contains(" UTC (in "),
        "{said}"
    );
    assert!(num(&sim.stats(), "daily_limit_errors") > 0);
    let first = maildir_ids(&dest);
    assert!(
        !first.is_empty() && first.len() < want.len(),
        "{}",
        first.len()
    );
    drop(sim);

    let sim = Sim::start(&args);
    let out = run(
        &sim,
        data.path(),
        "scripts/backup.lua",
        &opts,
        &[dest.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(maildir_ids(&dest), want, "every visible message once");
    // The rerun fetched only what the first did not.
    let gets = sim.stats()["calls"]["messages.get"]["200"]
        .as_u64()
        .unwrap();
    assert_eq!(gets as usize, want.len() - first.len());
}

#[test]
fn an_outage_turns_no_id_into_a_failure() {
    // 600 gets at 150 a second (2026 quota at speed 30): the run lasts
    // about 4 s; the outage covers 1 s to 4 s after the simulator starts.
    let sim = Sim::start(&[
        "--speed",
        "30",
        "--messages",
        "650",
        "--latency",
        "10ms",
        "--outage",
        "1s+3s",
    ]);
    let want = sim.listed();
    let data = tempfile::tempdir().unwrap();
    let dest = data.path().join("mail");
    let out = run(
        &sim,
        data.path(),
        "scripts/backup.lua",
        &["--quota", "2026", "--quota-window", "2s"],
        &[dest.to_str().unwrap()],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains(" 0 failed"), "{said}");
    assert_eq!(maildir_ids(&dest), want, "every visible message once");
    let stats = sim.stats();
    let outage: u64 = stats["outage"]
        .as_object()
        .map(|o| o.values().filter_map(Value::as_u64).sum())
        .unwrap_or(0);
    assert!(outage > 0, "the run met the outage: {stats}");
}
