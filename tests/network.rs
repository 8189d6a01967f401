//! Trust nothing from the network: the binary against a deliberately broken
//! server (tests/hostile). Every listed message ends delivered, skipped or
//! failed — never lost, invented or delivered twice — and no answer makes
//! it hang, grow without bound or panic.

mod common;
mod hostile;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::BIN;
use hostile::{error_json, list_page, message_id, message_json, Hostile, Reply, Req};

fn ids(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{:016x}", 0x18c0_0000_0000_0000u64 + i as u64))
        .collect()
}

/// Run `script` against `server` with extra flags; stdout, stderr, code.
fn run(server: &Hostile, script: &str, flags: &[&str]) -> (String, String, i32) {
    let out = run_output(server, script, flags);
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
        out.status.code().unwrap_or(-1),
    )
}

fn run_output(server: &Hostile, script: &str, flags: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.lua");
    std::fs::write(&path, script).unwrap();
    command(server, &path, flags).output().unwrap()
}

fn command(server: &Hostile, script: &Path, flags: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("run")
        .arg(script)
        .args(["--endpoint", &server.url, "--quota", "off", "--quiet"])
        .args(flags)
        .env("GMAILSCRIPT_TOKEN", "t0ken")
        .stdin(Stdio::null());
    c
}

/// Lines of stdout that start with `tag`, the rest of each.
fn tagged<'a>(stdout: &'a str, tag: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix(tag))
        .map(str::trim)
        .collect()
}

/// A batch of ids with quick retries; prints each delivery and the report.
const BATCH: &str = r#"
local ids = {}
for i = 1, #arg do ids[i] = arg[i] end
local report = gmail.batch(ids, {
  format = "metadata",
  backoff = { attempts = 3, base = "10ms", max = "20ms" },
  on_message = function(m) print("got " .. m.id) end,
})
print("ok " .. report.ok)
print("failed " .. report.failed)
for _, f in ipairs(report.failures) do print("failure " .. f.id .. " " .. f.error.class) end
"#;

fn batch_args(ids: &[String]) -> Vec<&str> {
    let mut v = vec!["--"];
    v.extend(ids.iter().map(String::as_str));
    v
}

#[test]
fn parts_under_unknown_content_ids_are_not_deliveries() {
    // The first id is answered under its own part; the five others,
    // every time they are asked, under a Content-ID never sent.
    let ids = ids(6);
    let good = ids[0].clone();
    let server = Hostile::start(move |req: &Req| {
        Reply::batch(
            req.batch_parts()
                .iter()
                .map(|(c, t)| {
                    let id = message_id(t);
                    let cid = match id == good {
                        true => format!("response-{c}"),
                        false => "response-bogus".to_string(),
                    };
                    (Some(cid), 200, message_json(&id))
                })
                .collect(),
        )
    });
    let (stdout, stderr, code) = run(&server, BATCH, &batch_args(&ids));
    let got = tagged(&stdout, "got ");
    assert_eq!(
        got,
        vec![ids[0].as_str()],
        "only the part named for its id counts: {stderr}"
    );
    assert_eq!(tagged(&stdout, "ok "), vec!["1"]);
    assert_eq!(tagged(&stdout, "failed "), vec!["5"], "{stdout}{stderr}");
    assert_eq!(code, 1, "failures make the exit code non-zero: {stderr}");
    // The five were asked for again (3 tries each), not taken as answered.
    let mut asked: HashMap<String, usize> = HashMap::new();
    for r in server.seen.lock().unwrap().iter() {
        for (_, t) in r.batch_parts() {
            *asked.entry(message_id(&t)).or_default() += 1;
        }
    }
    assert_eq!(asked[&ids[0]], 1);
    for id in &ids[1..] {
        assert_eq!(asked[id], 3, "{id}");
    }
}

#[test]
fn the_same_content_id_twice_is_one_delivery() {
    let server = Hostile::start(|req: &Req| {
        let parts = req.batch_parts();
        let first = &parts[0];
        let cid = Some(format!("response-{}", first.0));
        let body = message_json(&message_id(&first.1));
        let mut out = vec![(cid.clone(), 200, body.clone()), (cid, 200, body)];
        // The rest answered properly.
        for (c, t) in &parts[1..] {
            out.push((
                Some(format!("response-{c}")),
                200,
                message_json(&message_id(t)),
            ));
        }
        Reply::batch(out)
    });
    let ids = ids(3);
    let (stdout, stderr, code) = run(&server, BATCH, &batch_args(&ids));
    let mut got = tagged(&stdout, "got ");
    got.sort();
    assert_eq!(
        got,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "{stderr}"
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn parts_without_content_ids_match_by_order_only_when_complete() {
    // No Content-IDs and one part short: nothing can be matched safely.
    let server = Hostile::start(|req: &Req| {
        let parts = req.batch_parts();
        Reply::batch(
            parts[1..]
                .iter()
                .map(|(_, t)| (None, 200, message_json(&message_id(t))))
                .collect(),
        )
    });
    let ids = ids(3);
    let (stdout, stderr, code) = run(&server, BATCH, &batch_args(&ids));
    assert!(tagged(&stdout, "got ").is_empty(), "{stdout}");
    assert_eq!(tagged(&stdout, "failed "), vec!["3"], "{stderr}");
    assert_eq!(code, 1);

    // No Content-IDs, every part there in order: matched by order.
    let server = Hostile::start(|req: &Req| {
        Reply::batch(
            req.batch_parts()
                .iter()
                .map(|(_, t)| (None, 200, message_json(&message_id(t))))
                .collect(),
        )
    });
    let (stdout, stderr, code) = run(&server, BATCH, &batch_args(&ids));
    assert_eq!(tagged(&stdout, "ok "), vec!["3"], "{stderr}");
    assert_eq!(code, 0);
}

#[test]
fn a_body_for_another_id_is_that_ids_failure() {
    // Every part, properly named, carries the message of ids[0].
    let all = ids(4);
    let first = all[0].clone();
    let server = Hostile::start(move |req: &Req| {
        Reply::batch(
            req.batch_parts()
                .iter()
                .map(|(c, _)| (Some(format!("response-{c}")), 200, message_json(&first)))
                .collect(),
        )
    });
    let (stdout, stderr, code) = run(&server, BATCH, &batch_args(&all));
    assert_eq!(tagged(&stdout, "got "), vec![all[0].as_str()], "{stderr}");
    assert_eq!(tagged(&stdout, "failed "), vec!["3"]);
    let failures = tagged(&stdout, "failure ");
    assert!(
        failures.iter().all(|f| f.ends_with(" malformed")),
        "{failures:?}"
    );
    assert_eq!(code, 1);

    // A single get is checked the same way.
    let server = Hostile::start(|_: &Req| {
        Reply::json(200, serde_json::from_str(&message_json("aaa1")).unwrap())
    });
    let script = r#"
local m, err = gmail.get("bbb2", { format = "metadata" })
print("msg " .. tostring(m))
print("class " .. err.class)
"#;
    let (stdout, stderr, code) = run(&server, script, &[]);
    assert_eq!(tagged(&stdout, "msg "), vec!["nil"], "{stderr}");
    assert_eq!(tagged(&stdout, "class "), vec!["malformed"]);
    assert_eq!(code, 0);
}

#[test]
fn a_poison_message_fails_alone_and_the_rest_are_delivered() {
    let all = ids(6);
    let poison: HashMap<String, String> = [
        (
            all[1].clone(),
            format!(r#"{{"id":"{}","raw":"!!not base64!!"}}"#, all[1]),
        ),
        (
            all[2].clone(),
            format!(r#"{{"id":"{}","internalDate":"abc"}}"#, all[2]),
        ),
        (
            all[3].clone(),
            format!(r#"{{"id":"{}", "snippet": "#, all[3]),
        ),
    ]
    .into_iter()
    .collect();
    let server = Hostile::start(move |req: &Req| {
        Reply::batch(
            req.batch_parts()
                .iter()
                .map(|(c, t)| {
                    let id = message_id(t);
                    let body = poison
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| message_json(&id));
                    (Some(format!("response-{c}")), 200, body)
                })
                .collect(),
        )
    });
    let (stdout, stderr, code) = run(&server, BATCH, &batch_args(&all));
    let mut got = tagged(&stdout, "got ");
    got.sort();
    assert_eq!(
        got,
        vec![all[0].as_str(), all[4].as_str(), all[5].as_str()],
        "{stderr}"
    );
    let mut failures = tagged(&stdout, "failure ");
    failures.sort();
    assert_eq!(
        failures,
        (1..4)
            .map(|i| format!("{} malformed", all[i]))
            .collect::<Vec<_>>(),
        "{stderr}"
    );
    assert_eq!(code, 1, "recorded failures, not a script error: {stderr}");
}

#[test]
fn a_listing_that_repeats_its_page_token_ends_with_an_error() {
    let all = ids(3);
    let page = all.clone();
    let server = Hostile::start(move |req: &Req| {
        if req.is_batch() {
            return Reply::batch(
                req.batch_parts()
                    .iter()
                    .map(|(c, t)| {
                        (
                            Some(format!("response-{c}")),
                            200,
                            message_json(&message_id(t)),
                        )
                    })
                    .collect(),
            );
        }
        // The same page, the same token, for ever.
        Reply::json(200, list_page(&page, Some("again")))
    });
    let script = r#"
local n = 0
local ok, err = pcall(function()
  for id in gmail.list{} do n = n + 1 end
end)
print("listed " .. n)
print("error " .. tostring(not ok))
print("says " .. tostring(err))
"#;
    let (stdout, stderr, code) = run(&server, script, &[]);
    assert_eq!(
        tagged(&stdout, "listed "),
        vec!["3"],
        "each id once: {stdout}{stderr}"
    );
    assert_eq!(tagged(&stdout, "error "), vec!["true"]);
    assert!(stdout.contains("page token already followed"), "{stdout}");
    assert_eq!(code, 0);
    // Two pages: the first, and the one that repeated its token.
    assert_eq!(server.count(|r| r.path().ends_with("/messages")), 2);

    // Inside gmail.batch: each id reaches on_message once; the run stops.
    let script = r#"
local report = gmail.batch(gmail.list{}, {
  on_message = function(m) print("got " .. m.id) end,
})
print("stopped " .. tostring(report.stopped))
"#;
    let (stdout, stderr, code) = run(&server, script, &[]);
    let mut got = tagged(&stdout, "got ");
    got.sort();
    assert_eq!(
        got,
        all.iter().map(String::as_str).collect::<Vec<_>>(),
        "{stderr}"
    );
    assert!(stdout.contains("listing failed"), "{stdout}");
    assert_eq!(code, 3, "a listing failure stops the run: {stderr}");
}

#[test]
fn empty_pages_for_ever_end_the_listing() {
    let server = Hostile::start(|req: &Req| {
        let n: u64 = req
            .query("pageToken")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        Reply::json(200, list_page(&[], Some(&(n + 1).to_string())))
    });
    let script = r#"
local ok, err = pcall(function() for id in gmail.list{} do end end)
print("says " .. tostring(err))
"#;
    let started = Instant::now();
    let (stdout, stderr, _) = run(&server, script, &[]);
    assert!(stdout.contains("empty pages in a row"), "{stdout}{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(server.count(|_| true), 20);
}

#[test]
fn a_history_that_repeats_its_page_token_ends_with_an_error() {
    let server = Hostile::start(|req: &Req| {
        let n = req.query("pageToken").unwrap_or_default();
        Reply::json(
            200,
            serde_json::json!({
                "history": [{"id": "9", "messagesAdded": [{"message": {"id": format!("m{n}"), "threadId": "t"}}]}],
                "historyId": "9",
                "nextPageToken": "same",
            }),
        )
    });
    let script = r#"
local it, err = gmail.history("5")
local n = 0
local ok, e = pcall(function() for c in it do n = n + 1 end end)
print("changes " .. n)
print("says " .. tostring(e))
"#;
    let (stdout, stderr, _) = run(&server, script, &[]);
    // The first page's change; the second page repeats its token and is
    // not followed.
    assert_eq!(tagged(&stdout, "changes "), vec!["1"], "{stdout}{stderr}");
    assert!(stdout.contains("page token already followed"), "{stdout}");
}

const GET: &str = r#"
local t0 = os.time()
local m, err = gmail.get(arg[1] or "abc", { format = "metadata" })
print("msg " .. tostring(m))
if err then print("class " .. err.class); print("says " .. tostring(err)) end
"#;

#[test]
fn an_endless_body_is_refused_at_the_cap() {
    let server = Hostile::start(|_: &Req| Reply::Endless {
        headers: vec![("Content-Type".into(), "application/json".into())],
        chunk: vec![b' '; 1 << 20],
    });
    let started = Instant::now();
    let out = run_output(&server, GET, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("class malformed"), "{stdout}");
    assert!(stdout.contains("larger than 96 MiB"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(60));
    // Refused, not retried: the same body would come again.
    assert_eq!(server.count(|_| true), 1);
}

#[test]
fn a_gzip_bomb_is_refused_at_the_cap() {
    // 200 MB of zeros in ~200 KB.
    let bomb = hostile::gzip_zeros(200 << 20);
    let server = Hostile::start(move |_: &Req| Reply::Full {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Content-Encoding".into(), "gzip".into()),
        ],
        body: bomb.clone(),
    });
    let out = run_output(&server, GET, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("larger than 96 MiB"), "{stdout}");
}

#[test]
fn a_stalled_body_times_out_when_idle() {
    let stall = || Reply::Stall {
        headers: vec![("Content-Type".into(), "application/json".into())],
        partial: b"{\"id\": \"abc\", ".to_vec(),
    };
    // A batch whose answer stalls: each try ends after 1 s without a byte.
    let server = Hostile::start(|_: &Req| Reply::Stall {
        headers: vec![(
            "Content-Type".into(),
            "multipart/mixed; boundary=b0undary".into(),
        )],
        partial: b"--b0undary\r\nContent-Type: application/http\r\n".to_vec(),
    });
    let ids = ids(2);
    let started = Instant::now();
    let (stdout, stderr, code) = run(
        &server,
        BATCH,
        &[&["--idle-timeout", "1s"][..], &batch_args(&ids)].concat(),
    );
    assert_eq!(tagged(&stdout, "failed "), vec!["2"], "{stdout}{stderr}");
    assert!(
        tagged(&stdout, "failure ")
            .iter()
            .all(|f| f.ends_with(" network")),
        "{stdout}"
    );
    assert_eq!(code, 1);
    let asked: usize = server
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.batch_parts().len())
        .sum();
    assert_eq!(asked, 6, "3 tries of each, as the backoff says");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(3) && elapsed < Duration::from_secs(20),
        "{elapsed:?}"
    );

    // A single call: the retry follows within the idle timeout plus the
    // first backoff (at most 1 s), not after minutes.
    let server = Hostile::start(move |_: &Req| stall());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.lua");
    std::fs::write(&path, GET).unwrap();
    let mut child = command(&server, &path, &["--idle-timeout", "1s"])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while server.count(|_| true) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        server.count(|_| true) >= 2,
        "the stalled call was never given up"
    );
}

fn rate_limited(retry_after: &'static str) -> Hostile {
    Hostile::start(move |_: &Req| {
        Reply::json(
            429,
            error_json(429, "rateLimitExceeded", "User-rate limit exceeded."),
        )
        .with_header("Retry-After", retry_after)
    })
}

#[test]
fn absurd_retry_after_values_stop_the_batch_cleanly() {
    for value in [
        "18446744073709551615",
        "999999999",
        "99999999999999999999999",
    ] {
        let server = rate_limited(value);
        let ids = ids(2);
        let started = Instant::now();
        let (stdout, stderr, code) = run(&server, BATCH, &batch_args(&ids));
        assert!(!stderr.contains("panic"), "{value}: {stderr}");
        assert_eq!(code, 3, "{value}: stopped, not failed: {stdout}{stderr}");
        assert!(
            stderr.contains("Gmail asks to wait until"),
            "{value}: {stderr}"
        );
        assert!(stderr.contains("run again then"), "{value}: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(
            tagged(&stdout, "failed "),
            vec!["0"],
            "nothing failed: {stdout}"
        );
    }
    // A single call says the same, as its error.
    let server = rate_limited("18446744073709551615");
    let (stdout, stderr, _) = run(&server, GET, &[]);
    assert!(stdout.contains("class rate"), "{stdout}{stderr}");
    assert!(stdout.contains("Gmail asks to wait until"), "{stdout}");
}

#[test]
fn a_wait_within_max_wait_is_taken() {
    // Refused once with Retry-After: 1, then answered.
    let server = Hostile::start(|req: &Req| {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let _ = req;
        if N.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            Reply::json(429, error_json(429, "rateLimitExceeded", "slow down"))
                .with_header("Retry-After", "1")
        } else {
            Reply::json(200, serde_json::from_str(&message_json("abc")).unwrap())
        }
    });
    let started = Instant::now();
    let (stdout, stderr, _) = run(&server, GET, &[]);
    assert!(stdout.contains("msg message abc"), "{stdout}{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the Retry-After was honoured"
    );
    // --max-wait below it: stopped at once instead.
    let server = rate_limited("120");
    let started = Instant::now();
    let (stdout, _, _) = run(&server, GET, &["--max-wait", "1m"]);
    assert!(stdout.contains("longer than --max-wait 1m"), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn max_wait_and_idle_timeout_are_checked() {
    let server = rate_limited("1");
    for (flag, value) in [
        ("--max-wait", "99999999999h"),
        ("--max-wait", "soon"),
        ("--idle-timeout", "0s"),
    ] {
        let (_, stderr, code) = run(&server, GET, &[flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag),
            "{flag} {value}: names the option: {stderr}"
        );
    }
}

#[test]
fn the_first_ctrl_c_ends_a_single_calls_wait() {
    let server = rate_limited("600");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.lua");
    std::fs::write(&path, GET).unwrap();
    let mut child = command(&server, &path, &["--max-wait", "1h"])
        .env("RUST_LOG", "gmailscript=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The signal: the debug line saying the call waits to retry.
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("to retry after") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the call never started waiting to retry");
    let started = Instant::now();
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "one Ctrl-C did not end the wait"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("cancelled"), "{stdout}");
    assert_eq!(status.code(), Some(130));
    assert_eq!(server.count(|_| true), 1, "no retry after Ctrl-C");
}

#[test]
fn a_request_this_side_cannot_send_is_invalid_and_not_retried() {
    let server = rate_limited("1");
    let script = r#"
local m, err = gmail.get(string.rep("a", 100000), { format = "metadata" })
print("class " .. err.class)
local r, err2 = gmail.fetch{ path = "../../../../_sim/stats" }
print("climb " .. err2.class)
local r3, err3 = gmail.fetch{ path = "messages/%2e%2e/%2e%2e/x" }
print("encoded " .. err3.class)
local report = gmail.batch({ "ok1", string.rep("b", 100000) }, {
  format = "metadata", backoff = { attempts = 2, base = "10ms" },
  on_error = function(e, id, n) print("on_error " .. e.class); return "fail" end,
})
"#;
    let started = Instant::now();
    let (stdout, stderr, _) = run(&server, script, &[]);
    assert_eq!(
        tagged(&stdout, "class "),
        vec!["invalid"],
        "{stdout}{stderr}"
    );
    assert_eq!(tagged(&stdout, "climb "), vec!["invalid"]);
    assert_eq!(tagged(&stdout, "encoded "), vec!["invalid"]);
    assert!(
        tagged(&stdout, "on_error ").contains(&"invalid"),
        "{stdout}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // Only the batch holding the good id reached the server.
    assert!(
        server.count(|r| !r.is_batch()) == 0,
        "nothing invalid was sent"
    );
}

/// An outage: every call answers 503 for a while. Without a breaker each
/// id would spend its tries in a second and fail; with it the run waits,
/// probes with one cheap call, and goes on when the service is back.
fn outage_server(outage: Duration) -> Hostile {
    let start = std::time::Instant::now();
    Hostile::start(move |req: &Req| {
        let down = start.elapsed() < outage;
        if !req.is_batch() {
            return if down {
                Reply::json(503, error_json(503, "backendError", "Backend Error"))
            } else {
                Reply::json(200, serde_json::json!({"emailAddress": "me@example.com"}))
            };
        }
        Reply::batch(
            req.batch_parts()
                .iter()
                .map(|(c, t)| {
                    let cid = Some(format!("response-{c}"));
                    if down {
                        let e = error_json(503, "backendError", "Backend Error").to_string();
                        (cid, 503, e)
                    } else {
                        (cid, 200, message_json(&message_id(t)))
                    }
                })
                .collect(),
        )
    })
}

#[test]
fn an_outage_is_waited_out_and_no_id_fails() {
    let ids = ids(30);
    let server = outage_server(Duration::from_secs(3));
    let (stdout, stderr, code) = run(&server, BATCH, &batch_args(&ids));
    assert_eq!(tagged(&stdout, "ok "), vec!["30"], "{stdout}{stderr}");
    assert_eq!(tagged(&stdout, "failed "), vec!["0"], "{stdout}{stderr}");
    assert_eq!(code, 0, "{stderr}");
    // The wait was probed with single calls, not by spending the ids.
    let probes = server.count(|r| r.path().ends_with("/profile"));
    assert!(probes >= 1, "a canary call went first");
    let batches = server.count(Req::is_batch);
    assert!(
        batches < 10,
        "the ids were not sent again and again: {batches} batches"
    );
}

#[test]
fn an_outage_longer_than_max_wait_stops_cleanly() {
    let ids = ids(10);
    let server = outage_server(Duration::from_secs(3600));
    let (stdout, stderr, code) = run(
        &server,
        BATCH,
        &[&["--max-wait", "2s"][..], &batch_args(&ids)].concat(),
    );
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert_eq!(
        tagged(&stdout, "failed "),
        vec!["0"],
        "nothing failed: {stdout}"
    );
    assert!(
        stderr.contains("Gmail has failed nearly every call"),
        "{stderr}"
    );
    assert!(stderr.contains("run again later"), "{stderr}");
}

/// A history that answers the same record under a new page token for ever
/// is a loop: the watch hands the change out once, says the paging loops,
/// and goes on polling (it does not spin on the pages).
#[test]
fn a_watch_on_a_history_that_repeats_its_records_says_it_loops() {
    use std::io::BufRead;
    use std::sync::atomic::{AtomicU64, Ordering};
    let pages = std::sync::Arc::new(AtomicU64::new(0));
    let counter = pages.clone();
    let server = Hostile::start(move |req: &Req| {
        if req.path().ends_with("/profile") {
            return Reply::json(
                200,
                serde_json::json!({"emailAddress": "me@x", "historyId": "5"}),
            );
        }
        let n = counter.fetch_add(1, Ordering::SeqCst);
        Reply::json(
            200,
            serde_json::json!({
                "history": [{"id": "9", "messagesAdded": [{"message": {"id": "18c0000000000001", "threadId": "t"}}]}],
                "historyId": "9",
                "nextPageToken": format!("p{n}"),
            }),
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("watch.lua");
    std::fs::write(
        &path,
        r#"for c in gmail.watch{ every = "100ms" } do print("change " .. c.id) io.stdout:flush() end"#,
    )
    .unwrap();
    let mut child = command(&server, &path, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Lines of stderr as they come, so a watch that never says it can
    // fail the test after a minute instead of hanging it.
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains("paging loops") {
                    break;
                }
            }
            Err(e) => {
                let _ = child.kill();
                panic!("never said the paging loops ({e}): {seen}");
            }
        }
    }
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{seen}");
    assert_eq!(
        tagged(&stdout, "change "),
        vec!["18c0000000000001"],
        "{stdout}"
    );
}
