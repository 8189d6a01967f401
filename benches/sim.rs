//! Simulator speed: `cargo bench --bench sim`. Prints figures, asserts
//! nothing: the simulator must never be the bottleneck of a client benchmark.
//!
//! - serve: metadata gets per second through batches of 100 on loopback,
//!   quota off, no latency (target: 20,000/s or more);
//! - generate: time to first line and peak RSS of `gmailscript sim
//!   --messages 100000` (targets: under 3 s, under 400 MB).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;
use common::SimProcess;

fn spawn_sim(args: &[&str]) -> (SimProcess, Duration) {
    let t = Instant::now();
    let sim = SimProcess::start(args);
    (sim, t.elapsed())
}

fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn generate() {
    let (sim, elapsed) = spawn_sim(&["--messages", "100000"]);
    let (pid, url) = (sim.pid(), &sim.url);
    let rss_mb = status_kb(pid, "VmHWM:") as f64 / 1024.0;
    println!(
        "generate: 100000 messages ready in {:.2} s, peak RSS {:.0} MB (targets: < 3 s, < 400 MB) at {url}",
        elapsed.as_secs_f64(),
        rss_mb
    );
}

async fn serve() {
    let (sim, _) = spawn_sim(&[
        "--messages",
        "20000",
        "--quota",
        "off",
        "--concurrency",
        "100000",
    ]);
    let (pid, url) = (sim.pid(), sim.url.clone());
    let client = reqwest::Client::new();
    let list: serde_json::Value = client
        .get(format!(
            "{url}/gmail/v1/users/me/messages?maxResults=500&includeSpamTrash=true"
        ))
        .bearer_auth("sim-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = list["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    let bodies: Arc<Vec<String>> = Arc::new(
        ids.chunks(100)
            .map(|chunk| {
                let mut b = String::new();
                for (i, id) in chunk.iter().enumerate() {
                    b.push_str(&format!(
                        "--b\r\nContent-Type: application/http\r\nContent-ID: <{i}>\r\n\r\nGET /gmail/v1/users/me/messages/{id}?format=metadata&metadataHeaders=From&metadataHeaders=Subject&prettyPrint=false\r\n\r\n"
                    ));
                }
                b.push_str("--b--\r\n");
                b
            })
            .collect(),
    );
    let served = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs(5);
    let cpu0 = cpu_seconds(pid);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (client, url, bodies, served) =
            (client.clone(), url.clone(), bodies.clone(), served.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while t.elapsed() < duration {
                let text = client
                    .post(format!("{url}/batch/gmail/v1"))
                    .bearer_auth("sim-token")
                    .header("Content-Type", "multipart/mixed; boundary=b")
                    .body(bodies[i % bodies.len()].clone())
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                let ok = text.matches("HTTP/1.1 200 OK").count() as u64;
                served.fetch_add(ok, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    let n = served.load(Ordering::Relaxed);
    let cpu = cpu_seconds(pid) - cpu0;
    println!(
        "serve: {:.0} metadata gets/s over batches of 100 ({} in {:.1} s; simulator CPU {:.1} s, {:.0} gets per simulator CPU-second) (target: >= 20000/s)",
        n as f64 / secs,
        n,
        secs,
        cpu,
        n as f64 / cpu.max(1e-9)
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test` runs benches only with
    // --benches, and then this quick check should not take long.
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    generate();
    tokio::runtime::Runtime::new().unwrap().block_on(serve());
}
