//! The cost of going through Lua: `cargo bench --bench lua`. Prints figures.
//!
//! - throughput: the same simulated workload (quota off, no latency, 100,000
//!   metadata gets, batches of 100, 4 in flight) through the engine alone
//!   (a sink that counts) and through `gmail.batch` with an `on_message`
//!   that reads two headers. Target: Lua delivers >= 90% of the engine's
//!   messages per second. `BENCH_ROUNDS` (2) alternations, each printed
//!   with this process's CPU time per message (the simulator runs apart),
//!   which a loaded machine disturbs less than the rates; the verdict
//!   compares the best rate of each side. `BENCH_PARTS=1` adds, each
//!   round, `gmail.batch` without on_message and with an empty one: where
//!   the Lua path's extra CPU goes.
//! - start-up: wall time of `gmailscript run` on a trivial script, median
//!   of 30 runs, beside `gmailscript --version` (target: < 20 ms).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gmailscript::gmail::quota::Profile;
use gmailscript::gmail::request::{Format, ListQuery, Request};
use gmailscript::gmail::runner::Answer;
use gmailscript::gmail::runner::{DefaultPolicy, Item, RunOptions, Runner};
use gmailscript::gmail::{ApiError, Client};
use gmailscript::lua::{Host, HostConfig};

#[path = "../tests/common/mod.rs"]
mod common;
use common::{client, SimProcess, BIN};
const N: usize = 100_000;

/// This process's user + system CPU time so far, in seconds.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Messages per second and CPU µs per message of `run`.
async fn measured(run: impl std::future::Future<Output = ()>) -> (f64, f64) {
    let (t, cpu) = (Instant::now(), cpu_seconds());
    run.await;
    let per_msg = (cpu_seconds() - cpu) * 1e6 / N as f64;
    (N as f64 / t.elapsed().as_secs_f64(), per_msg)
}

async fn engine_alone(c: Arc<Client>, ids: Vec<String>) -> (f64, f64) {
    let runner = Runner::new(c, Profile::Off, Duration::from_secs(60));
    let mut n = 0u64;
    let mut sink = |_: &str, _: Answer| {
        n += 1;
        Ok(())
    };
    let opts = RunOptions {
        chunk_start: 100,
        chunk_max: 100,
        parallel: 4,
        ..RunOptions::default()
    };
    let items = futures_util::stream::iter(ids.into_iter().map(|id| -> Result<Item, ApiError> {
        Ok(Item {
            request: Request::get_message(
                &id,
                Format::Metadata,
                &["From".into(), "Subject".into()],
            ),
            key: id,
        })
    }));
    measured(async {
        let r = runner
            .run(items, &mut DefaultPolicy, &mut sink, &opts, None)
            .await;
        assert_eq!(r.ok as usize, N);
    })
    .await
}

/// The script's on_message: reading two headers, as a script would.
const READ_TWO: &str = r#"function(m)
  local from, subject = m:header("From"), m:header("Subject")
  chars = chars + #(from or "") + #(subject or "")
end"#;

async fn through_lua(c: Arc<Client>, ids: Vec<String>, on_message: &str) -> (f64, f64) {
    let (_tx, rx) = tokio::sync::watch::channel(false);
    let host = Host::new(HostConfig {
        pacer: None,
        client: c,
        profile: Profile::Off,
        window: Duration::from_secs(60),
        dry_run: false,
        quiet: true,
        verbose: 0,
        cancel: rx,
    })
    .unwrap();
    host.lua
        .globals()
        .set("IDS", host.lua.create_sequence_from(ids).unwrap())
        .unwrap();
    let script = format!(
        r#"
        local chars = 0
        local r = gmail.batch(IDS, {{
          format = "metadata", headers = {{"From", "Subject"}},
          chunk = 100, parallel = 4, progress = false,
          on_message = {on_message},
        }})
        assert(r.ok == #IDS, "all delivered")
    "#
    );
    let f = host.lua.load(script).into_function().unwrap();
    measured(async {
        tokio::task::LocalSet::new()
            .run_until(host.call_traced(f, &[]))
            .await
            .unwrap();
    })
    .await
}

fn startup() {
    let dir = std::env::temp_dir().join(format!("gmailscript-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("trivial.lua");
    std::fs::write(&script, "local x = 1 + 1\n").unwrap();
    let median = |args: &[&str]| {
        let mut times: Vec<f64> = (0..30)
            .map(|_| {
                let t = Instant::now();
                let st = Command::new(BIN)
                    .args(args)
                    .env("GMAILSCRIPT_TOKEN", "x")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .unwrap();
                assert!(st.success(), "{args:?}");
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        times[times.len() / 2]
    };
    let version = median(&["--version"]);
    let run = median(&[
        "run",
        script.to_str().unwrap(),
        "--endpoint",
        "http://127.0.0.1:9",
    ]);
    println!(
        "start-up: `run` of a trivial script {run:.1} ms median (process start alone, --version: {version:.1} ms) (target: < 20 ms)"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    startup();
    let sim = SimProcess::start(&[
        "--quota",
        "off",
        "--messages",
        "20000",
        "--concurrency",
        "100000",
    ]);
    let url = sim.url.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = client(&url);
        let base: Vec<String> = c
            .list_messages(ListQuery { include_spam_trash: true, ..ListQuery::default() }, Default::default())
            .map(|r| r.unwrap().id)
            .collect()
            .await;
        let ids: Vec<String> = base.iter().cycle().take(N).cloned().collect();
        // Alternate, so neither side gets a warmer simulator.
        let rounds: usize = std::env::var("BENCH_ROUNDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(2)
            .clamp(1, 20);
        let parts = std::env::var("BENCH_PARTS").is_ok_and(|v| v == "1");
        let mut engine = Vec::new();
        let mut lua = Vec::new();
        for round in 1..=rounds {
            let (e, e_cpu) = engine_alone(c.clone(), ids.clone()).await;
            let (l, l_cpu) = through_lua(c.clone(), ids.clone(), READ_TWO).await;
            println!(
                "  round {round}: engine alone {e:.0} msg/s ({e_cpu:.1} µs CPU a message), through Lua {l:.0} msg/s ({l_cpu:.1} µs) = {:.0}%",
                100.0 * l / e
            );
            if parts {
                let (_, none) = through_lua(c.clone(), ids.clone(), "nil").await;
                let (_, empty) = through_lua(c.clone(), ids.clone(), "function(m) end").await;
                println!(
                    "    µs CPU a message: engine alone {e_cpu:.1}, gmail.batch without on_message {none:.1}, with an empty one {empty:.1}, reading 2 headers {l_cpu:.1}"
                );
            }
            engine.push(e);
            lua.push(l);
        }
        let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
        let (e, l) = (best(&engine), best(&lua));
        println!(
            "throughput: engine alone {e:.0} msg/s, gmail.batch + on_message reading 2 headers {l:.0} msg/s: Lua delivers {:.0}% (target: >= 90%)",
            100.0 * l / e
        );
    });
}
